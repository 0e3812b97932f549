"""The reference's further options against NumPy versions of its formulas: gradient-norm clipping,
reward normalization, SimNorm heads, the SimbaV2 networks; the Playground locomotion keys reach
the task's config; one short vmapped run with all the learner options on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpy_reference as ref
import purejax_fasttd3 as ft
from fasttd3x import envs, networks, policy, replay
from shared_configs import TINY_AGENT


def _params(tree):
    return tree["params"]


def _perturbed(params, key, scale=0.3):
    """Parameters moved off their init (constant scalers, zero biases), so every one counts."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )


def _f64(x):
    return np.asarray(x, np.float64)


# ------------------------------------------------------------------------ gradient-norm clipping
@pytest.mark.parametrize("max_norm", [0.0, 0.05, 1e6])
def test_clip_grad_norm_matches_torch_formula(max_norm):
    grads = {"a": jnp.linspace(-1.0, 2.0, 6).reshape(2, 3), "b": {"c": jnp.array([0.5, -0.25])}}
    config = {"USE_GRAD_NORM_CLIPPING": True}
    clipped = ft.clip_grad_norm(config, {"MAX_GRAD_NORM": jnp.float32(max_norm)}, grads)
    expected = ref.clip_grad_norm(jax.tree.leaves(grads), max_norm)
    for got, want in zip(jax.tree.leaves(clipped), expected):
        np.testing.assert_allclose(_f64(got), want, rtol=1e-6)
    off = ft.clip_grad_norm({"USE_GRAD_NORM_CLIPPING": False}, {"MAX_GRAD_NORM": jnp.float32(0.05)}, grads)
    assert off is grads  # the switch off leaves the program as it was


# ------------------------------------------------------------------------ reward normalization
def test_reward_normalizer_matches_reference():
    num_envs, gamma, v_min, v_max = 5, 0.97, -10.0, 4.0
    rng = np.random.default_rng(0)
    rn, expected = ft.reward_normalizer_init(num_envs), ref.RewardScale(num_envs, gamma, v_min, v_max)
    update = jax.jit(ft.reward_normalizer_update)
    for _ in range(30):
        reward = rng.normal(1.0, 2.0, num_envs).astype(np.float32)
        done = rng.random(num_envs) < 0.15
        rn = update(rn, reward, done, jnp.float32(gamma))
        expected.update(reward, done)
        np.testing.assert_allclose(_f64(rn.returns), expected.returns, rtol=1e-5, atol=1e-5)
        sample = rng.normal(0.0, 3.0, 7).astype(np.float32)
        np.testing.assert_allclose(
            _f64(ft.scale_reward(rn, sample, v_min, v_max)), expected(sample), rtol=1e-5
        )
    assert float(rn.stats.count) == expected.count == 30 * num_envs


def test_reward_scale_uses_the_return_bound_when_it_dominates():
    """max|G| / g_max wins over std(G) when returns are large for the support."""
    rn = ft.RewardNormalizer(
        jnp.zeros(2), ft.Normalizer(jnp.zeros(1), jnp.ones(1), jnp.float32(4.0)), jnp.float32(50.0)
    )
    np.testing.assert_allclose(float(ft.scale_reward(rn, jnp.float32(10.0), -5.0, 20.0)), 1.0, rtol=1e-6)


def test_learner_batches_scale_sampled_rewards():
    """The batches every update learns from carry the sampled n-step rewards divided by the
    scale; without the option they are the buffer's."""
    num_envs, size = 2, 12
    config = ft.make_config(
        "Pendulum-v1",
        NUM_ENVS=num_envs,
        BATCH_SIZE=8,
        NUM_STEPS=2,
        BUFFER_SIZE=size,
        REWARD_NORMALIZATION=True,
        V_MIN=-5.0,
        V_MAX=20.0,
    )
    hp = ft.default_hparams(config)
    buf = replay.buffer_init(size, num_envs, 1, 0, 1, 5)
    buf = buf._replace(reward=jax.random.normal(jax.random.PRNGKey(0), (size, num_envs)), ptr=jnp.int32(size))
    expected = ref.RewardScale(num_envs, float(hp["GAMMA"]), -5.0, 20.0)
    rn = ft.reward_normalizer_init(num_envs)
    for t in range(6):
        reward, done = np.full(num_envs, 30.0 * t, np.float32), np.array([t == 3, False])
        rn = ft.reward_normalizer_update(rn, reward, done, hp["GAMMA"])
        expected.update(reward, done)
    ts = ft.TrainState(*(None,) * 7, reward_norm=rn)
    key = jax.random.PRNGKey(1)
    scaled = ft.learner_batches(config, hp, ts, buf, key).reward
    raw = ft.learner_batches({**config, "REWARD_NORMALIZATION": False}, hp, ts, buf, key).reward
    np.testing.assert_array_equal(
        np.asarray(raw), np.asarray(ft.update_batches(config, buf, key, hp["GAMMA"]).reward)
    )
    np.testing.assert_allclose(_f64(scaled), expected(raw), rtol=1e-5)
    assert not np.allclose(np.asarray(scaled), np.asarray(raw))


# ------------------------------------------------------------------------ SimNorm heads
SEQ, DIM = 3, 4


def test_simnorm_actor_and_critic_match_numpy():
    obs_dim, action_dim = 5, 2
    actor = networks.Actor(action_dim, 16, jnp.float32, SEQ, DIM)
    critic = networks.DistributionalCritic(7, 16, jnp.float32, SEQ, DIM)
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, obs_dim))
    action = jax.random.uniform(jax.random.PRNGKey(2), (6, action_dim), minval=-1, maxval=1)
    a_params = _perturbed(actor.init(jax.random.PRNGKey(3), obs), jax.random.PRNGKey(4))
    c_params = _perturbed(critic.init(jax.random.PRNGKey(5), obs, action), jax.random.PRNGKey(6))
    p = jax.tree.map(_f64, _params(a_params))
    assert p["Dense_2"]["kernel"].shape == (8, SEQ * DIM)  # h/2 -> seq_len * sim_dimension
    x = relu_layers(_f64(obs), p, 2)
    x = simnorm_head(x, p)
    np.testing.assert_allclose(x.reshape(6, SEQ, DIM).sum(-1), 1.0, rtol=1e-12)  # points on simplices
    want = np.tanh(x @ p["head"]["kernel"] + p["head"]["bias"])
    np.testing.assert_allclose(_f64(actor.apply(a_params, obs)), want, rtol=2e-5, atol=2e-6)
    p = jax.tree.map(_f64, _params(c_params))
    x = relu_layers(np.concatenate([_f64(obs), _f64(action)], -1), p, 2)
    x = simnorm_head(x, p)
    want = x @ p["Dense_3"]["kernel"] + p["Dense_3"]["bias"]
    np.testing.assert_allclose(_f64(critic.apply(c_params, obs, action)), want, rtol=2e-5, atol=2e-6)


def simnorm_head(x, p):
    """The reference's SimNorm layer on x with the network's third Dense and its LayerNorm."""
    dense, norm = p["Dense_2"], p["LayerNorm_0"]
    return ref.simnorm_linear(x, dense["kernel"], dense["bias"], norm["scale"], norm["bias"], SEQ, DIM)


def relu_layers(x, p, count):
    for i in range(count):
        x = ref.relu(x @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"])
    return x


def test_sim_type_selects_the_heads():
    env = envs.make_env(ft.make_config("Pendulum-v1"))
    for sim_type, actor_seq, critic_seq in [
        ("", 0, 0),
        ("sim_actor", 5, 0),
        ("sim_critic", 0, 6),
        ("sim_both", 5, 6),
    ]:
        config = ft.make_config(
            "Pendulum-v1", SIM_TYPE=sim_type, ACTOR_SEQ_LEN=5, CRITIC_SEQ_LEN=6, SIM_DIMENSION=3
        )
        nets = ft.make_networks(config, env.action_dim)
        assert (nets.actor.seq_len, nets.critic.seq_len) == (actor_seq, critic_seq)
        assert nets.actor.sim_dimension == nets.critic.sim_dimension == 3


# ------------------------------------------------------------------------ SimbaV2
HIDDEN = 8


def _simba_parts(p, num_blocks):
    """The numpy reference's (embed, blocks, head) from a SimbaV2 module's parameters."""
    embed = (p["Dense_0"]["kernel"], p["Scaler_0"]["scaler"])
    blocks = [
        (
            p[f"Dense_{2 * b + 1}"]["kernel"],
            p[f"Scaler_{2 * b + 1}"]["scaler"],
            p[f"Dense_{2 * b + 2}"]["kernel"],
            p[f"Scaler_{2 * b + 2}"]["scaler"],
        )
        for b in range(num_blocks)
    ]
    h = p["head"]
    head = (h["Dense_0"]["kernel"], h["Scaler_0"]["scaler"], h["Dense_1"]["kernel"], h["bias"])
    return embed, blocks, head


def test_simbav2_init_is_the_references():
    """Orthogonal bias-free kernels, scalers stored at init*scale, zero output bias."""
    num_blocks = 2
    critic = networks.SimbaV2Critic(7, HIDDEN, num_blocks)
    params = critic.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros((1, 2)))
    p = jax.tree.map(_f64, _params(params))
    embed, blocks, head = _simba_parts(p, num_blocks)
    assert set(jax.tree.leaves(jax.tree.map(lambda x: x.ndim, p))) <= {1, 2}
    assert not any("bias" in d for d in (p["Dense_0"], p["Dense_1"]))
    kernel = embed[0]  # [6, 8]: more outputs than inputs -> orthonormal rows
    np.testing.assert_allclose(kernel @ kernel.T, np.eye(6), atol=1e-5)
    up = blocks[0][0]  # [8, 32]
    np.testing.assert_allclose(up @ up.T, np.eye(HIDDEN), atol=1e-5)
    np.testing.assert_allclose(embed[1], 2.0 / HIDDEN)  # sqrt(2/h) * sqrt(2/h)
    np.testing.assert_allclose(blocks[0][1], 2.0 / HIDDEN / 4.0)  # expansion 4: both / 2
    np.testing.assert_allclose(blocks[0][3], 1.0 / (num_blocks + 1) / np.sqrt(HIDDEN), rtol=1e-6)
    np.testing.assert_allclose(head[1], 1.0)
    np.testing.assert_array_equal(head[3], 0.0)


@pytest.mark.parametrize("shape", [(6, 8), (32, 8), (8, 8)])
def test_orthogonal_init_is_numpys_sign_fixed_qr(shape):
    """Q of NumPy's QR of the same Gaussian draw, signs fixed so diag(R) > 0 (torch's
    `orthogonal_`), transposed back when the kernel is wide."""
    key = jax.random.PRNGKey(3)
    tall = np.asarray(jax.random.normal(key, (max(shape), min(shape))), np.float64)
    q, r = np.linalg.qr(tall)
    want = q * np.sign(np.diag(r))
    want = want if shape[0] >= shape[1] else want.T
    np.testing.assert_allclose(networks.orthogonal_init(key, shape), want, atol=2e-5)


def test_vmapped_simbav2_init_calls_no_lapack():
    """Agents' SimbaV2 networks initialize under vmap without a LAPACK custom call (jaxlib 0.10's
    batched QR deadlocked the CPU thread pool in a bench run)."""
    critic = networks.SimbaV2Critic(7, HIDDEN, 1)
    init = jax.vmap(lambda k: critic.init(k, jnp.zeros((1, 3)), jnp.zeros((1, 2))))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    assert "custom_call" not in jax.jit(init).lower(keys).as_text()


@pytest.mark.parametrize("num_blocks", [1, 2])
def test_simbav2_actor_and_critic_match_numpy(num_blocks):
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
    action = jax.random.uniform(jax.random.PRNGKey(2), (6, 2), minval=-1, maxval=1)
    actor, critic = (
        networks.SimbaV2Actor(2, HIDDEN, num_blocks),
        networks.SimbaV2Critic(7, HIDDEN, num_blocks),
    )
    a_params = _perturbed(actor.init(jax.random.PRNGKey(3), obs), jax.random.PRNGKey(4))
    c_params = _perturbed(critic.init(jax.random.PRNGKey(5), obs, action), jax.random.PRNGKey(6))
    parts = _simba_parts(jax.tree.map(_f64, _params(a_params)), num_blocks)
    want = np.tanh(ref.simbav2(obs, *parts, HIDDEN))
    np.testing.assert_allclose(_f64(actor.apply(a_params, obs)), want, rtol=2e-5, atol=2e-6)
    parts = _simba_parts(jax.tree.map(_f64, _params(c_params)), num_blocks)
    want = ref.simbav2(np.concatenate([_f64(obs), _f64(action)], -1), *parts, HIDDEN)
    np.testing.assert_allclose(_f64(critic.apply(c_params, obs, action)), want, rtol=2e-5, atol=2e-5)


def test_simbav2_refuses_simnorm():
    with pytest.raises(ValueError, match="SIM_TYPE='sim_both' is not allowed"):
        ft.make_config("Pendulum-v1", AGENT="fasttd3_simbav2", SIM_TYPE="sim_both")


# ------------------------------------------------------------------------ one run, all options on
def test_vmapped_run_with_every_learner_option():
    """SimbaV2, reward normalization and grad clipping train two agents (one program); the reward
    statistics live in the train state and saw every env step."""
    config = ft.make_config(
        "Pendulum-v1",
        **dict(TINY_AGENT, NUM_ENVS=2, NUM_EVAL_ENVS=2, BUFFER_SIZE=40, BATCH_SIZE=8, NUM_STEPS=3),
        AGENT="fasttd3_simbav2",
        CRITIC_NUM_BLOCKS=1,
        REWARD_NORMALIZATION=True,
        V_MIN=-10.0,  # a support around 0, so rewards keep a scale
        V_MAX=10.0,
        USE_GRAD_NORM_CLIPPING=True,
        MAX_GRAD_NORM=0.5,
    )
    out = jax.jit(jax.vmap(ft.make_train(config)))(jax.random.split(jax.random.PRNGKey(0), 2))
    metrics, ts = out["metrics"], out["runner_state"]
    assert np.isfinite(np.asarray(metrics["critic_loss"])).all()
    assert np.isfinite(np.asarray(metrics["eval_return"])).all()
    np.testing.assert_array_equal(np.asarray(ts.reward_norm.stats.count), 40 * 2)
    max_abs = np.asarray(ts.reward_norm.max_abs)
    assert (max_abs > 0).all() and (max_abs >= np.abs(np.asarray(ts.reward_norm.returns)).max(-1)).all()
    # A trained SimbaV2 agent acts through policy.act with its own architecture.
    agent = jax.tree.map(lambda x: x[0], ts)
    obs = jnp.linspace(-1.0, 1.0, 9).reshape(3, 3)
    seen = ft.normalize(agent.obs_norm, obs) if config["OBS_NORMALIZATION"] else obs
    actor = networks.SimbaV2Actor(1, config["ACTOR_HIDDEN_DIM"], config["ACTOR_NUM_BLOCKS"])
    acted = policy.act(config, policy.policy_from_state(agent), obs)
    np.testing.assert_allclose(acted, actor.apply(agent.actor_params, seen), rtol=1e-6)


# ------------------------------------------------------------------------ Playground locomotion keys
class _FakeTask:
    observation_size = {"state": (3,), "privileged_state": (5,)}
    action_size = 2


@pytest.fixture
def loads(monkeypatch):
    """The config_overrides of every Playground load, with a stand-in task (nothing compiles)."""
    from mujoco_playground import registry

    seen = []

    def load(name, config_overrides):
        seen.append(dict(config_overrides))
        return _FakeTask()

    monkeypatch.setattr(registry, "load", load)
    return seen


def test_push_and_tuned_reward_reach_playground(loads):
    envs.make_env(ft.make_config("G1JoystickFlatTerrain"))
    assert loads[-1]["push_config.enable"] is False
    assert not any(key.startswith("reward_config") for key in loads[-1])
    envs.make_env(ft.make_config("G1JoystickFlatTerrain", USE_PUSH_RANDOMIZATION=True))
    assert "push_config.enable" not in loads[-1]  # pushes as Playground ships them
    loads.clear()
    envs.make_env(ft.make_config("T1JoystickRoughTerrain", USE_TUNED_REWARD=True))
    train, evaluation = loads  # the reference evaluates on the task's own reward
    assert {
        k: train[f"reward_config.scales.{k}"] for k in envs.TUNED_REWARD_SCALES
    } == envs.TUNED_REWARD_SCALES
    assert not any(key.startswith("reward_config") for key in evaluation)
    assert train["push_config.enable"] is evaluation["push_config.enable"] is False


@pytest.mark.parametrize(
    "task, key, value, message",
    [
        (
            "Go1JoystickFlatTerrain",
            "USE_PUSH_RANDOMIZATION",
            True,
            "USE_PUSH_RANDOMIZATION=True is not allowed",
        ),
        ("Pendulum-v1", "USE_TUNED_REWARD", True, "USE_TUNED_REWARD=True is not allowed: the reference"),
        (
            "T1JoystickFlatTerrain",
            "USE_DOMAIN_RANDOMIZATION",
            True,
            "USE_DOMAIN_RANDOMIZATION=True is not allowed",
        ),
        ("G1JoystickFlatTerrain", "ACTION_BOUNDS", 3.0, "ACTION_BOUNDS=3.0 is not allowed.*IsaacLab"),
        ("Pendulum-v1", "REWARD_NORMALIZATION", True, r"REWARD_NORMALIZATION=True .*V_MAX=0.0"),
    ],
)
def test_unsupported_settings_are_refused(task, key, value, message):
    with pytest.raises(ValueError, match=message):
        ft.make_config(task, **{key: value})
