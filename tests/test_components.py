"""Unit tests of the FastTD3 building blocks against independent NumPy references.

Covers the C51 projection (spec §3.2, App. B), n-step returns and the replay buffer (§5), the
empirical normalizer (§6.1) and config validation / per-task defaults (§1).
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejax_fasttd3 as ft
from fasttd3x import configs, envs, progress, replay
from numpy_reference import project


# ==================================================================================================
# C51 projection
# ==================================================================================================
def _softmax_rows(rng, rows, atoms):
    logits = rng.normal(size=(rows, atoms)) * 2.0
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _project(p, r, boot, disc, v_min, v_max):
    f = lambda a: jnp.asarray(a, jnp.float32)
    return np.asarray(ft.categorical_projection(f(p), f(r), f(boot), f(disc), v_min, v_max))


def test_projection_matches_triangular_kernel():
    """Random rows, zero-reward terminal rows and clipped rows all match the float64 kernel."""
    rng = np.random.default_rng(0)
    rows, atoms, v_min, v_max = 256, 101, -10.0, 10.0
    p = _softmax_rows(rng, rows, atoms)
    r = rng.uniform(-3, 3, rows).astype(np.float32)
    boot = (rng.random(rows) > 0.1).astype(np.float32)
    disc = np.full(rows, 0.97**3, np.float32)
    r[:32], boot[:32] = 0.0, 0.0  # all mass on the atom at 0
    r[32:48], boot[32:48] = 1e6, 1.0  # clipped at v_max
    r[48:64], boot[48:64] = -1e6, 1.0  # clipped at v_min
    r[64:80], boot[64:80] = 0.0, 1.0  # r = 0 with bootstrap: b_j lands near atoms
    m = _project(p, r, boot, disc, v_min, v_max)
    ref = project(p, r, boot, disc, v_min, v_max)
    np.testing.assert_allclose(m, ref, atol=1e-5)
    np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(m[:32], np.eye(atoms)[np.full(32, 50)], atol=1e-5)
    np.testing.assert_allclose(m[32:48], np.eye(atoms)[np.full(16, atoms - 1)], atol=1e-5)
    np.testing.assert_allclose(m[48:64], np.eye(atoms)[np.zeros(16, int)], atol=1e-5)


def test_projection_exact_atoms_are_one_hot_not_split():
    """Exact-atom targets keep all their mass there (pre-#30 code spread it to neighbours)."""
    rng = np.random.default_rng(1)
    atoms, v_min, v_max = 101, -50.0, 50.0  # dz = 1: integer targets are exact atoms in float32
    p = _softmax_rows(rng, 64, atoms)
    r = rng.integers(-50, 51, 64).astype(np.float32)
    r[:3] = [-50.0, 0.0, 50.0]  # both edges and the centre
    m = _project(p, r, np.zeros(64), np.ones(64), v_min, v_max)
    np.testing.assert_allclose(m, np.eye(atoms)[(r - v_min).astype(int)], atol=1e-6)
    # r = 0, bootstrap 1, discount 1 maps each atom onto itself: the projection is the identity.
    m = _project(p, np.zeros(64), np.ones(64), np.ones(64), v_min, v_max)
    np.testing.assert_allclose(m, p, atol=1e-5)  # float32 linspace atoms are off by ~1e-6
    assert np.abs(m.sum(-1) - 1.0).max() < 1e-5  # the pre-fix variant gives row sums up to 2


# ==================================================================================================
# n-step return
# ==================================================================================================
def nstep_np(rewards, dones, gamma):
    """Loop reference: sum gamma^k r_k up to and including the first done."""
    flat_r, flat_d = rewards.reshape(-1, rewards.shape[-1]), dones.reshape(-1, dones.shape[-1])
    n = rewards.shape[-1]
    out_r, out_disc, out_last = [], [], []
    for rr, dd in zip(flat_r, flat_d):
        total, count, last = 0.0, 0, n - 1
        for k in range(n):
            total += gamma**k * float(rr[k])
            count += 1
            if dd[k]:
                last = k
                break
        out_r.append(total), out_disc.append(gamma**count), out_last.append(last)
    shape = rewards.shape[:-1]
    return (np.reshape(out_r, shape), np.reshape(out_disc, shape), np.reshape(out_last, shape))


@pytest.mark.parametrize("n", [1, 3, 5])
def test_nstep_return_matches_loop(n):
    """Reward sum, discount gamma^count and last index stop at the first done (included)."""
    rng = np.random.default_rng(n)
    gamma = 0.9
    rewards = rng.normal(size=(4, 50, n)).astype(np.float32)
    dones = (rng.random((4, 50, n)) < 0.3).astype(np.float32)
    dones[0, 0] = 0.0  # a window with no done
    dones[0, 1] = 1.0  # done at every step: only the first reward counts
    r, disc, last = replay.nstep_return(jnp.asarray(rewards), jnp.asarray(dones), jnp.float32(gamma))
    ref_r, ref_disc, ref_last = nstep_np(rewards, dones, gamma)
    np.testing.assert_allclose(np.asarray(r), ref_r, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(disc), ref_disc, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(last), ref_last)
    assert float(disc[0, 0]) == pytest.approx(gamma**n)
    assert float(disc[0, 1]) == pytest.approx(gamma)


# ==================================================================================================
# Replay buffer
# ==================================================================================================
B, N_ENVS, OBS_DIM, PRIV_DIM, ACT_DIM, EP_ITERS, T_TOTAL = 8, 3, 2, 1, 1, 4, 20


def _code(t, e):
    return 100.0 * t + e  # iteration and env of a stored slot, exact in float32


@pytest.fixture(scope="module")
def history():
    """A logged rollout (terminations, time-outs, both at once) and the buffer after each add."""
    rng = np.random.default_rng(0)
    T, N = T_TOTAL, N_ENVS
    code = _code(np.arange(T)[:, None], np.arange(N)[None, :])  # [T, N]
    h = dict(
        obs=np.stack([code, -code], -1).astype(np.float32),
        priv=(code + 0.5)[..., None].astype(np.float32),
        action=(code + 0.25)[..., None].astype(np.float32),
        reward=rng.normal(size=(T, N)).astype(np.float32),
        # final_obs differs from the next slot's obs everywhere, so using the wrong one is caught.
        final_obs=np.stack([code + 5000, code + 7000], -1).astype(np.float32),
        final_priv=(code + 9000)[..., None].astype(np.float32),
        done=np.zeros((T, N), bool),
        trunc=np.zeros((T, N), bool),
    )
    steps = np.zeros(N, int)
    for t in range(T):  # envs.py rules: time-out after EP_ITERS, termination wins over time-out
        steps += 1
        term = rng.random(N) < 0.2
        timed_out = steps >= EP_ITERS
        h["done"][t], h["trunc"][t] = term | timed_out, timed_out & ~term
        steps[h["done"][t]] = 0
    term = h["done"] & ~h["trunc"]
    assert h["trunc"].any() and term.any() and (~h["done"]).any()

    buf = replay.buffer_init(B, N, OBS_DIM, PRIV_DIM, ACT_DIM, EP_ITERS)
    add = jax.jit(ft.buffer_add)
    snapshots = {0: buf}
    for t in range(T):
        step = envs.StepOutput(
            jnp.asarray(h["reward"][t]),
            jnp.asarray(h["done"][t]),
            jnp.asarray(h["trunc"][t]),
            jnp.asarray(h["final_obs"][t]),
            jnp.asarray(h["final_priv"][t]),
        )
        buf = add(buf, jnp.asarray(h["obs"][t]), jnp.asarray(h["priv"][t]), jnp.asarray(h["action"][t]), step)
        snapshots[t + 1] = buf
    h["snapshots"] = snapshots
    return h


def reference_window(h, t, e, n, gamma):
    """NumPy n-step transition starting at iteration t of env e, from the logged history."""
    total, count = 0.0, 0
    for k in range(n):
        end = t + k
        total += gamma**k * float(h["reward"][end, e])
        count += 1
        if h["done"][end, e]:
            break
    if h["trunc"][end, e]:
        nxt, nxt_priv, boot = h["final_obs"][end, e], h["final_priv"][end, e], 1.0
    elif h["done"][end, e]:
        nxt, nxt_priv, boot = None, None, 0.0  # termination: next obs is never used
    else:
        nxt, nxt_priv, boot = h["obs"][end + 1, e], h["priv"][end + 1, e], 1.0
    return total, gamma**count, boot, nxt, nxt_priv


def test_buffer_wraps_around(history):
    """ptr counts iterations; after wrapping, slot t % B holds iteration t's data."""
    buf = history["snapshots"][T_TOTAL]
    assert int(buf.ptr) == T_TOTAL
    assert int(history["snapshots"][5].ptr) == 5
    for t in range(T_TOTAL - B, T_TOTAL):  # exact: the buffer stores copies of what it was given
        s = t % B
        np.testing.assert_array_equal(np.asarray(buf.obs[s]), history["obs"][t])
        np.testing.assert_array_equal(np.asarray(buf.privileged[s]), history["priv"][t])
        np.testing.assert_array_equal(np.asarray(buf.action[s]), history["action"][t])
        np.testing.assert_array_equal(np.asarray(buf.reward[s]), history["reward"][t])
        np.testing.assert_array_equal(np.asarray(buf.done[s]), history["done"][t])
        np.testing.assert_array_equal(np.asarray(buf.truncated[s]), history["trunc"][t])


@pytest.mark.parametrize("ptr", [4, 8, 13, 20])
@pytest.mark.parametrize("n", [1, 3])
def test_buffer_sample_matches_history(history, ptr, n):
    """Env-major stratified samples from valid starts, with n-step targets as in the history."""
    buf, gamma, per_env = history["snapshots"][ptr], 0.9, 16
    size = min(ptr, B)
    valid = set(range(ptr - size, ptr - n))  # oldest size - n stored iterations
    for seed in range(4):
        batch = ft.buffer_sample(buf, jax.random.PRNGKey(seed), per_env, n, jnp.float32(gamma))
        batch = jax.tree.map(np.asarray, batch)
        assert batch.obs.shape == (N_ENVS * per_env, OBS_DIM)
        for x in (batch.reward, batch.discount, batch.bootstrap):
            assert x.shape == (N_ENVS * per_env,)
        for i in range(N_ENVS * per_env):
            c = int(batch.obs[i, 0])
            t, e = c // 100, c % 100
            assert e == i // per_env, "samples must be env-major, per_env from each env"
            assert t in valid, f"start {t} is not a valid start {sorted(valid)} at ptr={ptr}"
            assert batch.obs[i, 1] == -c and batch.privileged[i, 0] == c + 0.5
            assert batch.action[i, 0] == c + 0.25
            r, disc, boot, nxt, nxt_priv = reference_window(history, t, e, n, gamma)
            np.testing.assert_allclose(batch.reward[i], r, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(batch.discount[i], disc, rtol=1e-6)
            assert batch.bootstrap[i] == boot
            if nxt is not None:  # exact: a gather of stored values
                np.testing.assert_array_equal(batch.next_obs[i], nxt)
                np.testing.assert_array_equal(batch.next_privileged[i], nxt_priv)


@pytest.mark.parametrize("n", [1, 3])
def test_disable_bootstrap_ends_returns_at_time_outs(history, n):
    """DISABLE_BOOTSTRAP (the reference's `bootstrap = ~dones`): windows that end in a time-out
    no longer bootstrap; everything else about the batch is unchanged."""
    buf, key = history["snapshots"][T_TOTAL], jax.random.PRNGKey(5)
    normal = jax.tree.map(np.asarray, ft.buffer_sample(buf, key, 64, n, jnp.float32(0.9)))
    ended = jax.tree.map(np.asarray, ft.buffer_sample(buf, key, 64, n, jnp.float32(0.9), True))
    timed_out = np.zeros(len(normal.obs), bool)
    for i, c in enumerate(normal.obs[:, 0].astype(int)):
        t, e = c // 100, c % 100
        r, disc, boot, nxt, _ = reference_window(history, t, e, n, 0.9)
        timed_out[i] = boot == 1.0 and nxt is not None and nxt[0] >= 5000
        assert ended.bootstrap[i] == (0.0 if timed_out[i] else boot)
    assert timed_out.any() and (normal.bootstrap[timed_out] == 1.0).all()
    for field in ("obs", "action", "next_obs"):  # gathers of stored values: exact
        np.testing.assert_array_equal(getattr(ended, field), getattr(normal, field))
    for field in ("reward", "discount"):  # computed by two programs (the flag is static): rounding
        np.testing.assert_allclose(getattr(ended, field), getattr(normal, field), rtol=1e-6, atol=1e-7)


def test_buffer_sample_covers_truncation_and_termination_ends(history):
    """The fixture exercises the interesting window ends (so the check above is not vacuous)."""
    ptr, n = T_TOTAL, 3
    kinds = set()
    for e in range(N_ENVS):
        for t in range(ptr - B, ptr - n):
            _, _, boot, nxt, _ = reference_window(history, t, e, n, 0.9)
            kinds.add("term" if boot == 0.0 else "trunc" if nxt[0] >= 5000 else "alive")
    assert kinds == {"term", "trunc", "alive"}


@pytest.mark.parametrize("ptr,n", [(20, 1), (20, 3), (6, 1), (6, 3)])
def test_buffer_sample_hits_every_valid_start(history, ptr, n):
    """With many samples each valid start of each env is drawn, roughly uniformly."""
    buf, per_env = history["snapshots"][ptr], 4000
    batch = ft.buffer_sample(buf, jax.random.PRNGKey(123), per_env, n, jnp.float32(0.9))
    t = np.asarray(batch.obs[:, 0]).astype(int).reshape(N_ENVS, per_env) // 100
    size = min(ptr, B)
    valid = np.arange(ptr - size, ptr - n)
    for e in range(N_ENVS):
        counts = np.array([(t[e] == s).sum() for s in valid])
        assert counts.sum() == per_env, "a start outside the valid range was drawn"
        expected = per_env / len(valid)
        assert counts.min() > 0.7 * expected and counts.max() < 1.3 * expected, counts


# ==================================================================================================
# Observation normalizer
# ==================================================================================================
def normalizer_np(batches, dim):
    """Spec §6.1 update in float64, quirk included (the cross term uses the updated mean)."""
    mean, var, count = np.zeros(dim), np.ones(dim), 0.0
    for x in batches:
        x = np.asarray(x, np.float64).reshape(-1, dim)
        nb = x.shape[0]
        bm, bv = x.mean(0), x.var(0)
        n_new = count + nb
        mean = mean + (bm - mean) * nb / n_new
        delta2 = bm - mean
        var = (var * count + bv * nb + delta2**2 * count * nb / n_new) / n_new
        count = n_new
    return mean, var, count


def test_normalizer_matches_reference_rule():
    """Mean, var, count and normalize() follow §6.1 over batches of varied sizes from count 0."""
    rng = np.random.default_rng(0)
    dim = 4
    batches = [
        rng.normal(loc=3.0 * k, scale=1.0 + k, size=(nb, dim)).astype(np.float32)
        for k, nb in enumerate([7, 1, 33, 5, 128])
    ]
    batches.append(rng.normal(size=(2, 3, dim)).astype(np.float32))  # leading dims are flattened
    norm = ft.normalizer_init(dim)
    for i, x in enumerate(batches):
        norm = ft.normalizer_update(norm, jnp.asarray(x))
        mean, var, count = normalizer_np(batches[: i + 1], dim)
        np.testing.assert_allclose(np.asarray(norm.mean), mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(norm.var), var, rtol=1e-5, atol=1e-5)
        assert float(norm.count) == count
    x = rng.normal(size=(10, dim)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(ft.normalize(norm, jnp.asarray(x))),
        (x - mean) / (np.sqrt(var) + 0.01),
        rtol=1e-5,
        atol=1e-5,
    )


def test_normalizer_first_update_and_quirk_is_kept():
    """First update gives the batch stats; later updates are NOT exact pooled variance."""
    x1 = np.array([[-1.0], [1.0]] * 50, np.float32)  # mean 0, var 1
    x2 = x1 + 10.0  # mean 10, var 1
    norm = ft.normalizer_update(ft.normalizer_init(1), jnp.asarray(x1))
    np.testing.assert_allclose(np.asarray(norm.var), [1.0], rtol=1e-6)  # init var 1 is ignored
    np.testing.assert_allclose(np.asarray(norm.mean), [0.0], atol=1e-6)
    norm = ft.normalizer_update(norm, jnp.asarray(x2))
    exact = np.var(np.concatenate([x1, x2]), 0)  # 26 = Chan/Welford
    np.testing.assert_allclose(np.asarray(norm.mean), [5.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(norm.var), [7.25], rtol=1e-5)  # (1 + 1 + 25/2) / 2
    assert abs(float(norm.var[0]) - float(exact[0])) > 10.0


# ==================================================================================================
# Config
# ==================================================================================================
@pytest.mark.parametrize(
    "env,overrides,key,bad",
    [
        ("Pendulum-v1", {"NUM_ENV": 8}, "NUM_ENV", "NUM_ENV"),
        ("Pendulum-v1", {"NUM_ENVS": "8"}, "NUM_ENVS", "'8'"),
        ("Pendulum-v1", {"NUM_ENVS": 8.0}, "NUM_ENVS", "8.0"),
        ("Pendulum-v1", {"USE_CDQ": 1}, "USE_CDQ", "1"),
        ("Pendulum-v1", {"NUM_STEPS": True}, "NUM_STEPS", "True"),
        ("Pendulum-v1", {"GAMMA": "0.9"}, "GAMMA", "'0.9'"),
        ("Pendulum-v1", {"GAMMA": True}, "GAMMA", "True"),
        ("Pendulum-v1", {"BATCH_SIZE": 250}, "BATCH_SIZE", "250"),
        ("Pendulum-v1", {"NUM_STEPS": 0}, "NUM_STEPS", "0"),
        ("Pendulum-v1", {"V_MIN": 5.0, "V_MAX": 5.0}, "V_MIN", "5.0"),
        ("Pendulum-v1", {"V_MIN": 7, "V_MAX": -3}, "V_MIN", "7.0"),
        ("Pendulum-v1", {"TOTAL_TIMESTEPS": 1001}, "TOTAL_TIMESTEPS", "1001"),
        ("Pendulum-v1", {"COMPUTE_DTYPE": "float16"}, "COMPUTE_DTYPE", "float16"),
        ("NoSuchTask-v9", {}, "ENV_NAME", "NoSuchTask-v9"),
    ],
)
def test_make_config_errors_name_key_and_value(env, overrides, key, bad):
    """Bad settings raise ValueError whose message names the key and the bad value."""
    with pytest.raises(ValueError) as err:
        ft.make_config(env, **overrides)
    msg = str(err.value)
    assert key in msg and bad in msg, msg


def test_make_config_does_not_mutate_inputs():
    """Overrides and module defaults are left untouched; each call returns a fresh dict."""
    d = {"NUM_ENVS": 8, "BATCH_SIZE": 64, "GAMMA": 1}
    d_before = copy.deepcopy(d)
    defaults, unchanged = ft.make_config("Pendulum-v1"), ft.make_config("Pendulum-v1")
    tasks_before = copy.deepcopy(configs.TASK_OVERRIDES)
    c = ft.make_config("Pendulum-v1", **d)
    assert d == d_before and configs.TASK_OVERRIDES == tasks_before
    assert c["NUM_ENVS"] == 8 and c["BATCH_SIZE"] == 64
    assert c["GAMMA"] == 1.0 and isinstance(c["GAMMA"], float)  # ints accepted for floats
    c["NUM_ENVS"] = 999
    defaults["GAMMA"] = 0.5
    assert ft.make_config("Pendulum-v1") == unchanged  # edits of returned configs reach no later one


def test_make_config_reference_defaults():
    """Per-task values of the reference (spec §1.2-1.3)."""
    c = ft.make_config("CheetahRun")
    expected = dict(
        NUM_STEPS=3,
        V_MIN=-500.0,
        V_MAX=500.0,
        STD_MIN=0.1,
        STD_MAX=0.4,
        POLICY_NOISE=0.1,
        GAMMA=0.97,
        NUM_ENVS=1024,
        BATCH_SIZE=32768,
        BUFFER_SIZE=10240,
        NUM_UPDATES=2,
        TOTAL_TIMESTEPS=150000,
        USE_CDQ=True,
    )
    assert {k: c[k] for k in expected} == expected
    c = ft.make_config("T1JoystickFlatTerrain")
    expected = dict(
        TOTAL_TIMESTEPS=100000,
        POLICY_NOISE=0.001,
        STD_MIN=0.001,
        STD_MAX=0.4,
        NUM_STEPS=1,
        V_MIN=-10.0,
        V_MAX=10.0,
        GAMMA=0.97,
    )
    assert {k: c[k] for k in expected} == expected
    c = ft.make_config("Go1JoystickFlatTerrain")
    expected = dict(NUM_UPDATES=8, TOTAL_TIMESTEPS=50000, STD_MIN=0.2, STD_MAX=0.8, POLICY_NOISE=0.2)
    assert {k: c[k] for k in expected} == expected
    c = ft.make_config("LeapCubeReorient")
    expected = dict(NUM_STEPS=3, GAMMA=0.99, POLICY_NOISE=0.2, V_MIN=-50.0, V_MAX=50.0, USE_CDQ=False)
    assert {k: c[k] for k in expected} == expected


def test_default_hparams_are_float32_scalars_of_traced_keys():
    """default_hparams holds exactly the traced float settings, as float32 scalars."""
    config = ft.make_config("Pendulum-v1", GAMMA=0.95, TAU=0.05)
    h = ft.default_hparams(config)
    assert set(h) == set(configs.HPARAM_DEFAULTS) and set(h).isdisjoint(configs.STATIC_DEFAULTS)
    assert all(isinstance(value, float) for value in configs.HPARAM_DEFAULTS.values())
    for key, value in h.items():
        assert value.dtype == jnp.float32 and value.shape == ()
        assert float(value) == pytest.approx(config[key], rel=1e-6)
    assert float(h["GAMMA"]) == pytest.approx(0.95) and float(h["TAU"]) == pytest.approx(0.05)


@pytest.mark.parametrize(
    "key, ours",
    [("LR", "CRITIC_LEARNING_RATE"), ("UPDATE_EPOCHS", "NUM_UPDATES"), ("PROGRESS", "ProgressPrinter")],
)
def test_purejaxrl_only_keys_are_refused_naming_ours(key, ours):
    """A PureJaxRL config never half-applies: its keys are refused, with the key to use here."""
    with pytest.raises(ValueError, match=ours) as error:
        ft.make_config("Pendulum-v1", **{key: 1e-3})
    assert f"{key} is not a FastTD3X setting" in str(error.value)
    assert set(configs.PUREJAXRL_ONLY).isdisjoint(configs.STATIC_DEFAULTS) and set(
        configs.PUREJAXRL_ONLY
    ).isdisjoint(ft.HPARAM_DEFAULTS)


# ==================================================================================================
# Progress reports
# ==================================================================================================
@pytest.mark.parametrize(
    "interval, segments",
    [(1, 0), (100, 0), (999, 0), (1_000, 100), (1_009, 1), (4_000, 400), (5_000, 500), (1_000_000, 500)],
)
def test_heartbeat_segments_divide_the_interval_within_limits(interval, segments):
    """Intervals of 1,000 iterations or more report evenly: at most 500 times, every 10
    iterations or more (a prime interval once, at its end); shorter ones at evaluations only."""
    assert progress.heartbeat_segments(interval) == segments


def test_progress_printer_gives_rate_and_time_left(monkeypatch, capsys):
    clock = iter([0.0, 100.0, 100.0, 100.0, 160.0, 160.0, 160.0, 170.0, 170.0, 600.0, 600.0])
    monkeypatch.setattr(ft.time, "perf_counter", lambda: next(clock))
    config = ft.make_config("Pendulum-v1", EVAL_INTERVAL=1_000, TOTAL_TIMESTEPS=10_000)
    printer = progress.ProgressPrinter(config, min_seconds=30.0)  # t=0
    printer.heartbeat(1)  # t=100: the first report is the rate's origin: no rate yet
    first = capsys.readouterr().out
    assert "eval 1/10 in progress: 1/1,000 iterations (the rate and the time left follow)" in first, first
    printer.heartbeat(61)  # t=160: 60 iterations in 60 s
    line = capsys.readouterr().out
    assert "eval 1/10 in progress: 61/1,000 iterations, 1.00 it/s" in line, line
    assert "the run in 2.8 h" in line, line  # 9,939 iterations left at 1 it/s
    printer.heartbeat(81)  # t=170: 10 s after the last line, under min_seconds: silent
    assert capsys.readouterr().out == ""
    printer(0)  # t=600: eval 1 done, 999 iterations in 500 s
    line = capsys.readouterr().out
    assert "eval 1/10" in line and "2.0 it/s" in line and "run ETA 75.1 min" in line, line
