"""Lockstep replay of the PyTorch reference FastTD3's own numbers through our module-level pieces.

tests/data/reference_trace_*.npz were recorded by bench/reference_trace.py from the reference's
`train.py` (its command is in each file's metadata): the initial weights, every random draw (the
exploration noise and noise scales, the sampled start indices, the target-smoothing noise),
every env step and stored transition, every n-step batch, every normalizer call, both losses,
gradient norms and the complete learner state (parameters, targets, AdamW moments) before each
update. Our pieces (`env_step`, `buffer_add`, `update_batches`/`buffer_sample`/`nstep_return`,
`critic_inputs`/`observe`/`normalizer_update`, `critic_update`, `actor_update`,
`learning_step`) run unchanged; only `jax.random`'s functions are replaced, while a replay
traces, by functions that hand out the recorded draws (`recorded_draws`), and the simulator by a
stub that returns the recorded step (`replay_env`): the env is not ours to test here.

Two replays:
* stepwise: every iteration and every update starts from the reference's recorded state before
  it, so float differences cannot accumulate;
* free-running: from the reference's initial weights only, our state carries on over the whole
  trace; the gap is printed per phase and held to a looser bound.

Traces: CartpoleSwingup (every update's full state) and T1JoystickFlatTerrain (the critic sees
privileged observations; episodes end by falls; full states kept around every 20th learning
iteration and three iterations without a terminated window). On T1, where a sampled n-step
window ended in a termination our stored next observation is the reset one, not the terminal
one the reference stores: never a target, but both normalizers see it (DESIGN.md, "Lockstep
replay"); iterations with such a window are held to DEVIATION_ATOL, the rest to the stepwise
tolerances. The wrong variants run on CartpoleSwingup.

Tolerances (float32 on both sides, different kernels and summation orders: XLA's dot products
and reductions against torch's): after one step from the reference's state our parameters are
within 1.5e-7 of its, so STEP_ATOL = 2e-6 leaves more than 10x headroom for other machines,
while the mildest wrong variant (tau 10% low) moves the targets by 1.1e-4, 50x above it (the
wrong-variant test prints each margin). AdamW moments span decades, so each array is compared
relative to its largest entry (MOMENT_RTOL 1e-4; measured 5e-6). Losses, normalizer statistics
and batch values are compared relatively (RTOL 2e-5, measured at most 1e-6, float32 sums over
a batch); exact equality only where the arithmetic is the same copy or choice: stored
transitions, noise scales, bootstrap flags, counts and AdamW step numbers.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import pathlib
import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fasttd3x.replay as replay_buffer
import purejax_fasttd3 as ft
from fasttd3x import envs, networks, normalizers

DATA = pathlib.Path(__file__).parent / "data"
TRACES = {
    "CartpoleSwingup": DATA / "reference_trace_cartpole_swingup.npz",
    "T1JoystickFlatTerrain": DATA / "reference_trace_t1_joystick_flat_terrain.npz",
}

STEP_ATOL = 2e-6  # parameters, moments, actions after one step from the reference's state
MOMENT_RTOL = 1e-4  # AdamW moments, relative to each array's largest entry (they span decades)
RTOL = 2e-5  # losses, normalizer statistics, batch values (relative, plus a tiny absolute floor)
FREE_ATOL = 1e-4  # parameters after the whole trace, free-running
FREE_RTOL = 1e-3  # losses, free-running
# Where a sampled window ended in a termination, our normalizers see the reset observation
# instead of the terminal one (DESIGN.md, "Lockstep replay"): one iteration then moves
# parameters by up to ~4e-4 (measured on the T1 trace), the free run by ~6e-3.
DEVIATION_ATOL = 2e-3
DEVIATION_FREE_ATOL = 3e-2

# torch module path of a Linear -> our flax layer name, for the actor and for each twin critic
ACTOR_LAYERS = {"net.0": "Dense_0", "net.2": "Dense_1", "fc_head.0": "Dense_2", "fc_mu.0": "head"}
CRITIC_LAYERS = {"net.0": "Dense_0", "net.2": "Dense_1", "fc_head.0": "Dense_2", "fc_head.2": "Dense_3"}


# ============================================================================== the trace
class Trace(NamedTuple):
    arrays: dict
    meta: dict
    config: dict
    hp: dict
    first_update_iteration: int

    def __getitem__(self, key):
        return self.arrays[key]

    @property
    def obs_dim(self) -> int:
        return self.arrays["reset_obs"].shape[1]

    @property
    def asymmetric(self) -> bool:
        return "reset_critic_obs_tail" in self.arrays

    def tail(self, critic_key: str, obs_key: str) -> np.ndarray:
        """The critic-only tail of a recorded critic observation (the recorder checked that the
        critic's observation is the actor's followed by it, which is how ours stores it), or an
        empty last axis on a task without one."""
        if not self.asymmetric:
            return np.zeros((*self.arrays[obs_key].shape[:-1], 0), np.float32)
        return self.arrays[f"{critic_key}_tail"]


def load_trace(path: pathlib.Path) -> Trace:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "metadata"}
        meta = json.loads(str(data["metadata"]))
    arrays = derived(arrays) | arrays
    s = meta["settings"]
    config = ft.make_config(
        s["env_name"],
        NUM_ENVS=s["num_envs"],
        NUM_EVAL_ENVS=1,
        BATCH_SIZE=s["batch_size"],
        CRITIC_HIDDEN_DIM=s["critic_hidden_dim"],
        ACTOR_HIDDEN_DIM=s["actor_hidden_dim"],
        NUM_STEPS=s["num_steps"],
        LEARNING_STARTS=s["learning_starts"],
        TOTAL_TIMESTEPS=s["total_timesteps"],
        EVAL_INTERVAL=s["total_timesteps"],
        BUFFER_SIZE=256,  # > the trace's iterations: no wrap, as in the reference's 10240
        COMPUTE_DTYPE="float32",
    )
    first = int(arrays["upd/ptr"][0]) - 1  # the update's iteration: ptr counts stored iterations
    return Trace(arrays, meta, config, ft.default_hparams(config), first)


def derived(a: dict) -> dict:
    """Arrays a compact trace leaves out (bench/reference_trace.py, DERIVABLE), from the ones it
    keeps: each normalizer's statistics before a call are those after its previous call (a
    fresh one's before the first); the reference stores the observation it acted on and, as
    the next one, the step's observation, pre-reset where the step ended an episode."""
    out = {}
    for which in ("norm", "critic_norm"):
        if f"{which}/after/mean" not in a:
            continue
        mean, var, count = (a[f"{which}/after/{k}"] for k in ("mean", "var", "count"))
        out[f"{which}/before/mean"] = np.concatenate([np.zeros_like(mean[:1]), mean[:-1]])
        out[f"{which}/before/var"] = np.concatenate([np.ones_like(var[:1]), var[:-1]])
        out[f"{which}/before/count"] = np.concatenate([np.zeros_like(count[:1]), count[:-1]])
    done = a["step/done"].astype(bool)[..., None]
    pairs = [("", "obs", "reset_obs", "step/next_obs", "step/raw_obs")]
    if "reset_critic_obs_tail" in a:
        pairs.append(
            (
                "_tail",
                "critic_obs",
                "reset_critic_obs_tail",
                "step/next_critic_obs_tail",
                "step/raw_critic_obs_tail",
            )
        )
    for suffix, name, reset, next_key, raw in pairs:
        out[f"stored/{name}{suffix}"] = np.concatenate([a[reset][None], a[next_key][:-1]])
        out[f"stored/next_{name}{suffix}"] = np.where(done, a[raw], a[next_key])
    return out


# Set for the replay, not compared: our buffer is smaller (it never wraps in either), and the
# trace ran without evaluations (the reference's 0; ours needs an interval dividing the run).
REPLAY_SIZES = ("buffer_size", "eval_interval", "num_eval_envs", "total_timesteps")


def reference_settings_match(trace: Trace) -> list[str]:
    """Our defaults for the task against the reference's parsed settings (upper-case keys)."""
    s = trace.meta["settings"]
    return [
        f"{k}: ours {trace.config[k.upper()]!r}, reference {s[k]!r}"
        for k in s
        if k.upper() in trace.config and trace.config[k.upper()] != s[k] and k not in REPLAY_SIZES
    ]


# ============================================================================== torch -> flax
def flax_layers(flat: dict, prefix: str, layers: dict) -> dict:
    """torch Linear weight [out, in] -> flax kernel [in, out]; biases as they are."""
    return {
        ours: {
            "kernel": jnp.swapaxes(jnp.asarray(flat[f"{prefix}{theirs}.weight"]), -1, -2),
            "bias": jnp.asarray(flat[f"{prefix}{theirs}.bias"]),
        }
        for theirs, ours in layers.items()
    }


def actor_params(flat: dict) -> dict:
    return {"params": flax_layers(flat, "", ACTOR_LAYERS)}


def critic_params(flat: dict) -> dict:
    twins = [flax_layers(flat, f"qnet{i}.", CRITIC_LAYERS) for i in (1, 2)]
    return {"params": jax.tree.map(lambda a, b: jnp.stack([a, b]), *twins)}


def sub(arrays: dict, prefix: str, index=None) -> dict:
    """Entries under `prefix/` (prefix stripped), at `index` of their leading axis if given."""
    n = len(prefix) + 1
    return {
        k[n:]: (v if index is None else v[index]) for k, v in arrays.items() if k.startswith(prefix + "/")
    }


def adam_state(hp: dict, params, flat: dict, to_flax):
    """Our AdamW state holding the reference's moments and step count."""
    step = jnp.round(jnp.asarray(flat["step"])).astype(jnp.int32)
    state = ft.adamw(hp).init(params)
    adam = state.inner_state[0]._replace(count=step, mu=to_flax(sub(flat, "m")), nu=to_flax(sub(flat, "v")))
    return state._replace(count=step, inner_state=(adam, *state.inner_state[1:]))


def normalizer(mean, var, count) -> normalizers.Normalizer:
    return normalizers.Normalizer(jnp.asarray(mean), jnp.asarray(var), jnp.asarray(count, jnp.float32))


def train_state(
    trace: Trace, state: dict, obs_norm: normalizers.Normalizer, critic_norm=None
) -> ft.TrainState:
    """Our TrainState from one recorded learner state (flat `actor/...`, `critic/...` keys)."""
    actor = actor_params(sub(state, "actor"))
    critic = critic_params(sub(state, "critic"))
    critic_dim = trace.obs_dim + trace.tail("reset_critic_obs", "reset_obs").shape[-1]
    return ft.TrainState(
        actor_params=actor,
        critic_params=critic,
        target_critic_params=critic_params(sub(state, "target")),
        actor_opt_state=adam_state(trace.hp, actor, sub(state, "actor_opt"), actor_params),
        critic_opt_state=adam_state(trace.hp, critic, sub(state, "critic_opt"), critic_params),
        obs_norm=obs_norm,
        critic_norm=normalizers.normalizer_init(critic_dim) if critic_norm is None else critic_norm,
    )


# ============================================================================== recorded draws
@contextlib.contextmanager
def recorded_draws(action_noise=None, fresh_uniform=None, offsets=None, target_noise=None):
    """While our code traces, jax.random hands out the reference's draws instead of its own.

    `split` gives index keys [0, i], so the i-th update of a learning step (scanned over split
    keys) gets `target_noise[i]`; `normal` tells the action noise from the smoothing noise by
    shape; `uniform` applies our own min/max scaling to the reference's raw torch.rand draw;
    `randint` returns the reference's start indices (both samplers draw offsets from the oldest
    slot, which is slot 0 before the buffer wraps)."""
    saved = {name: getattr(jax.random, name) for name in ("split", "normal", "uniform", "randint")}

    def ours(key, shape, recorded) -> bool:
        """A draw ours makes in training (raw uint32 keys); flax's parameter-shape checks
        (typed keys) and any other shape go to jax's own functions."""
        raw = not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        return raw and recorded is not None and tuple(shape) == tuple(recorded.shape)

    def split(key, num=2):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            return saved["split"](key, num)
        return jnp.stack([jnp.zeros(num, jnp.uint32), jnp.arange(num, dtype=jnp.uint32)], -1)

    def normal(key, shape=(), dtype=jnp.float32):
        if ours(key, shape, action_noise):
            return action_noise
        if ours(key, shape, None if target_noise is None else target_noise[0]):
            return target_noise[key[1]]
        return saved["normal"](key, shape, dtype)

    def uniform(key, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0):
        if ours(key, shape, fresh_uniform):
            return fresh_uniform * (maxval - minval) + minval
        return saved["uniform"](key, shape, dtype, minval, maxval)

    def randint(key, shape, minval, maxval, dtype=jnp.int32):
        assert ours(key, shape, offsets), shape
        return offsets

    try:
        for name, fn in (("split", split), ("normal", normal), ("uniform", uniform), ("randint", randint)):
            setattr(jax.random, name, fn)
        yield
    finally:
        for name, fn in saved.items():
            setattr(jax.random, name, fn)


# ============================================================================== the env, replayed
class RecordedStep(NamedTuple):
    next_obs: jax.Array
    reward: jax.Array
    done: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    next_privileged: jax.Array
    final_privileged: jax.Array


def replay_env(obs_dim: int, privileged_dim: int, action_dim: int) -> envs.Env:
    """An Env whose step returns the step recorded in its state (the reference's simulator)."""

    def step(state, action, key):
        r = state.env_state
        out = envs.StepOutput(r.reward, r.done, r.truncated, r.final_obs, r.final_privileged)
        return envs.EnvState(r, r.next_obs, r.next_privileged), out

    return envs.Env("replay", obs_dim, privileged_dim, action_dim, 50, None, step, None, None)


# ============================================================================== the reference's data
def reference_obs(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """[T, N, ...]: the raw observation the reference acted on at each iteration, and its
    critic-only tail."""
    obs = np.concatenate([trace["reset_obs"][None], trace["step/next_obs"][:-1]])
    tails = (
        trace.tail("reset_critic_obs", "reset_obs")[None],
        trace.tail("step/next_critic_obs", "step/next_obs")[:-1],
    )
    return obs, np.concatenate(tails)


def recorded_steps(trace: Trace) -> RecordedStep:
    """[T, N, ...]: what the reference's simulator returned at each iteration."""
    a = trace.arrays
    return RecordedStep(
        next_obs=a["step/next_obs"],
        reward=a["step/reward"],
        done=a["step/done"].astype(bool),
        truncated=a["step/time_out"].astype(bool),
        final_obs=a["step/raw_obs"],
        next_privileged=trace.tail("step/next_critic_obs", "step/next_obs"),
        final_privileged=trace.tail("step/raw_critic_obs", "step/raw_obs"),
    )


def fresh_draws(trace: Trace) -> np.ndarray:
    """[T, N]: the uniform draw the reference makes for envs done at iteration t (its next
    explore call); NaN where it draws none, so a use of it would show."""
    fresh = trace["it/fresh_uniform"]
    return np.concatenate([fresh[1:], np.full_like(fresh[:1], np.nan)])


def norm_calls(trace: Trace, rows: int, which: str = "norm") -> np.ndarray:
    """The calls of one normalizer that had `rows` rows (the rollout's envs or a batch)."""
    return np.flatnonzero(trace[f"{which}/rows"] == rows)


def norm_stats(trace: Trace, when: str, calls) -> tuple:
    return tuple(trace[f"norm/{when}/{k}"][calls] for k in ("mean", "var", "count"))


def learning_iterations(trace: Trace) -> np.ndarray:
    return trace.first_update_iteration + np.arange(len(trace["upd/ptr"]) // 2)


def update_count(trace: Trace) -> int:
    return len(trace["upd/ptr"])


def recorded(trace: Trace, name: str) -> np.ndarray:
    """The updates whose full state (`state_at`) or batch observations (`batch_at`) the trace
    keeps: all of them, or those around every Nth learning iteration (bench/reference_trace.py)."""
    return trace.arrays.get(f"upd/{name}", np.arange(update_count(trace)))


def states_before(trace: Trace, ks) -> dict:
    """[len(ks), ...]: the reference's learner state before updates `ks` (after the last one:
    its final state)."""
    at, ks = recorded(trace, "state_at"), np.asarray(ks)
    assert np.isin(ks, np.append(at, update_count(trace))).all(), "state not recorded"
    rows = np.where(ks == update_count(trace), len(at), np.searchsorted(at, ks))
    before, final = sub(trace.arrays, "upd/state"), sub(trace.arrays, "final")
    return {k: np.concatenate([v, final[k][None]])[rows] for k, v in before.items()}


def detail_iterations(trace: Trace) -> np.ndarray:
    """Learning iterations with their batches and the states before and after them recorded."""
    first_updates = recorded(trace, "batch_at")[0::2]
    return trace.first_update_iteration + first_updates // 2


def batch_record(trace: Trace, name: str, ks) -> np.ndarray:
    """The reference's batch field `name` for updates `ks` (observations kept only for some)."""
    values = trace[f"upd/batch/{name}"]
    if len(values) == update_count(trace):
        return values[ks]
    return values[np.searchsorted(recorded(trace, "batch_at"), ks)]


def batch_tail(trace: Trace, name: str, ks) -> np.ndarray:
    tails = trace.tail(
        f"upd/batch/critic_{name}" if name == "obs" else "upd/batch/next_critic_obs", f"upd/batch/{name}"
    )
    if len(tails) == update_count(trace):
        return tails[ks]
    return tails[np.searchsorted(recorded(trace, "batch_at"), ks)]


def ends_in_termination(trace: Trace, ks) -> np.ndarray:
    """Per update in `ks`: does its batch hold a window that ended in a termination (where our
    stored next observation is the reset one, not the reference's terminal one)?"""
    done, trunc = trace["upd/batch/done"][ks].astype(bool), trace["upd/batch/truncated"][ks].astype(bool)
    return (done & ~trunc).any(-1)


def iteration_offsets(trace: Trace) -> np.ndarray:
    """[G, N, 2 * per_env]: each learning iteration's start indices, update after update, as our
    `update_batches` splits one draw per env between the updates."""
    idx = trace["upd/indices"]
    return np.concatenate([idx[0::2], idx[1::2]], axis=2)


def pairs(x):
    """[K, ...] per update -> [G, 2, ...] per learning iteration."""
    return x.reshape(-1, 2, *x.shape[1:])


# ============================================================================== our pieces, compiled
ZERO_KEY = jnp.zeros(2, jnp.uint32)


class Replay(NamedTuple):
    trace: Trace
    nets: networks.Networks
    env: envs.Env
    initial: ft.TrainState  # the reference's initial weights, a fresh normalizer
    buffer: replay_buffer.ReplayBuffer  # all of the reference's transitions, written by our buffer_add


def reference_train_state(replay: Replay, flat: dict, norm: tuple, critic_norm: tuple) -> ft.TrainState:
    critic = normalizer(*critic_norm) if replay.trace.asymmetric else None
    return train_state(replay.trace, flat, normalizer(*norm), critic)


def make_replay(trace: Trace) -> Replay:
    obs_dim, action_dim = trace["reset_obs"].shape[1], trace["it/action"].shape[2]
    nets = networks.make_networks(trace.config, action_dim)
    first = {k: v[0] for k, v in sub(trace.arrays, "upd/state").items()}  # unchanged since init
    initial = train_state(trace, first, normalizers.normalizer_init(obs_dim))  # the critic's: fresh too
    initial = initial._replace(actor_params=actor_params(sub(trace.arrays, "it/actor", 0)))
    privileged_dim = trace.tail("reset_critic_obs", "reset_obs").shape[-1]
    env = replay_env(obs_dim, privileged_dim, action_dim)
    return Replay(trace, nets, env, initial, reference_buffer(trace))


def empty_buffer(trace: Trace) -> replay_buffer.ReplayBuffer:
    n, action_dim = trace["stored/obs"].shape[1], trace["it/action"].shape[2]
    privileged_dim = trace.tail("reset_critic_obs", "reset_obs").shape[-1]
    return replay_buffer.buffer_init(
        trace.config["BUFFER_SIZE"],
        n,
        trace.obs_dim,
        privileged_dim,
        action_dim,
        trace.meta["episode_length"],
    )


def reference_buffer(trace: Trace) -> replay_buffer.ReplayBuffer:
    """Our buffer after `buffer_add` of every transition the reference stored (one scan).
    Sampling at iteration g reads only slots <= g + 1, so this buffer with ptr = g + 1 is what
    ours held then, plus slot g + 1's observation (see `with_next_slot`)."""
    a = trace.arrays
    step = envs.StepOutput(
        a["stored/reward"],
        a["stored/done"].astype(bool),
        a["stored/truncated"].astype(bool),
        a["step/raw_obs"],
        trace.tail("step/raw_critic_obs", "step/raw_obs"),
    )  # fmt: skip
    privileged = trace.tail("stored/critic_obs", "stored/obs")

    def add(buffer, x):
        obs, privileged, action, step = x
        return replay_buffer.buffer_add(buffer, obs, privileged, action, step), None

    xs = (a["stored/obs"], privileged, a["stored/action"], step)
    return jax.jit(lambda: jax.lax.scan(add, empty_buffer(trace), xs)[0])()


def with_next_slot(
    buffer: replay_buffer.ReplayBuffer, next_obs, next_privileged
) -> replay_buffer.ReplayBuffer:
    """Writes slot ptr's observation now (our buffer_add writes the same next iteration). The
    reference may sample the n-step window that ends at the newest transition; ours never draws
    it (DESIGN.md, differences from the reference), but with that slot written it gathers it."""
    slot = buffer.ptr % buffer.obs.shape[0]
    return buffer._replace(
        obs=buffer.obs.at[slot].set(next_obs), privileged=buffer.privileged.at[slot].set(next_privileged)
    )


def rollout_stepwise(replay: Replay):
    """`env_step` at every iteration from the reference's state before it (vmapped over T)."""
    trace, config = replay.trace, replay.trace.config

    def one(actor_flat, norm, obs, privileged, recorded, scale, noise, fresh, t):
        ts = replay.initial._replace(actor_params=actor_params(actor_flat), obs_norm=normalizer(*norm))
        runner = ft.Runner(ts, envs.EnvState(recorded, obs, privileged), empty_buffer(trace)._replace(ptr=t),
                           scale, jnp.zeros_like(scale), None, trace.hp, jnp.int32(0), ZERO_KEY)  # fmt: skip
        with recorded_draws(action_noise=noise, fresh_uniform=fresh):
            runner, _ = ft.env_step(replay.nets, replay.env, config, runner, (ZERO_KEY,) * 3)
        return slot_contents(runner.buffer, t) | {
            "noise_scale": runner.noise_scale,
            "norm": runner.train_state.obs_norm,
        }

    return jax.jit(jax.vmap(one))


def slot_contents(buf: replay_buffer.ReplayBuffer, t) -> dict:
    slot = t % buf.obs.shape[0]
    envs_idx = jnp.arange(buf.obs.shape[1])
    return {
        "obs": buf.obs[slot], "action": buf.action[slot], "reward": buf.reward[slot], "done": buf.done[slot],
        "truncated": buf.truncated[slot], "final": buf.final_obs[buf.final_index[slot], envs_idx],
        "privileged": buf.privileged[slot],
    }  # fmt: skip


def learning_stepwise(replay: Replay, with_batches: bool = True):
    """Each learning iteration from the reference's state before it (vmapped over them): our
    n-step batches (unless not `with_batches`: a smaller program) and `learning_step` (both
    updates, the actor cadence, the targets)."""
    config, hp = replay.trace.config, replay.trace.hp

    def one(flat, norm, critic_norm, iteration, offsets, noise, next_obs, next_privileged):
        ts = reference_train_state(replay, flat, norm, critic_norm)
        buffer = with_next_slot(replay.buffer._replace(ptr=iteration + 1), next_obs, next_privileged)
        batches = None
        if with_batches:
            with recorded_draws(offsets=offsets):
                batches = ft.update_batches(config, buffer, ZERO_KEY, hp["GAMMA"])
        with recorded_draws(offsets=offsets, target_noise=noise):
            ts, sums = ft.learning_step(replay.nets, config, hp, ts, buffer, ZERO_KEY, iteration)
        return batches, ts, sums

    return jax.jit(jax.vmap(one))


def update_stepwise(replay: Replay):
    """Each update alone from the reference's state before it (vmapped over them): the
    normalizer calls, `critic_update`, and `actor_update` on the updated critic, as the
    reference orders them."""
    config, hp = replay.trace.config, replay.trace.hp

    def one(flat, norm, critic_norm, batch, noise, lr):
        ts = reference_train_state(replay, flat, norm, critic_norm)
        ts, inputs = ft.critic_inputs(config, ts, batch)
        with recorded_draws(target_noise=noise[None]):
            ts, critic_loss, _ = ft.critic_update(replay.nets, config, hp, ts, batch, inputs, ZERO_KEY, lr)
        _, actor_loss = ft.actor_update(replay.nets, config, hp, ts, inputs, lr)
        return ts, critic_loss, actor_loss

    return jax.jit(jax.vmap(one))


class Draws(NamedTuple):
    """One iteration's recorded draws and simulator output, the free-running scan's input."""

    recorded: RecordedStep
    action_noise: jax.Array
    fresh: jax.Array
    offsets: jax.Array
    target_noise: jax.Array
    iteration: jax.Array


def all_draws(trace: Trace) -> Draws:
    t_count, first = len(trace["it/action"]), trace.first_update_iteration
    offsets, noise = iteration_offsets(trace), pairs(trace["upd/target_noise"])
    padded = lambda x: np.concatenate([np.zeros((first, *x.shape[1:]), x.dtype), x])  # noqa: E731
    return Draws(
        recorded_steps(trace),
        trace["it/noise"],
        fresh_draws(trace),
        padded(offsets),
        padded(noise),
        np.arange(t_count, dtype=np.int32),
    )


def free_running(replay: Replay):
    """The whole trace from the reference's initial weights: our env_step, then, past
    LEARNING_STARTS, our learning_step (iteration_step's wiring, with slot ptr's observation
    written before sampling as in `with_next_slot`), carrying our own state throughout."""
    trace, config, hp = replay.trace, replay.trace.config, replay.trace.hp

    def body(runner, x: Draws):
        runner = runner._replace(
            env_state=envs.EnvState(x.recorded, runner.env_state.obs, runner.env_state.privileged)
        )
        with recorded_draws(action_noise=x.action_noise, fresh_uniform=x.fresh):
            runner, _ = ft.env_step(replay.nets, replay.env, config, runner, (ZERO_KEY,) * 3)
        action = runner.buffer.action[x.iteration % runner.buffer.obs.shape[0]]
        sampling = with_next_slot(runner.buffer, runner.env_state.obs, runner.env_state.privileged)
        with recorded_draws(offsets=x.offsets, target_noise=x.target_noise):
            ts, sums = jax.lax.cond(
                x.iteration > config["LEARNING_STARTS"],
                lambda ts: ft.learning_step(replay.nets, config, hp, ts, sampling, ZERO_KEY, x.iteration),
                lambda ts: (ts, ft.no_updates()),
                runner.train_state,
            )
        out = (action, ts.obs_norm, ts.actor_params, ts.critic_params, ts.target_critic_params, sums)  # noqa: E501
        return runner._replace(train_state=ts), out

    def run(draws: Draws):
        n = trace["reset_obs"].shape[0]
        reset_tail = jnp.asarray(trace.tail("reset_critic_obs", "reset_obs"))
        start = envs.EnvState(
            jax.tree.map(lambda x: x[0], draws.recorded), jnp.asarray(trace["reset_obs"]), reset_tail
        )
        scales = jnp.asarray(trace["it/scales_after"][0])
        runner = ft.Runner(
            replay.initial, start, empty_buffer(trace), scales, jnp.zeros(n), None, hp, jnp.int32(0), ZERO_KEY
        )
        return jax.lax.scan(body, runner, draws)

    return jax.jit(run)


# ============================================================================== comparisons
def max_abs(a, b) -> float:
    return float(
        max(
            np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
        )
    )


def max_rel(a, b) -> float:
    """Max |a - b| / (|b| + 1e-6): relative, with a floor for entries near 0."""
    return float(
        max(
            np.max(
                np.abs(np.asarray(x, np.float64) - y) / (np.abs(np.asarray(y, np.float64)) + 1e-6),
                initial=0.0,
            )
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
        )
    )


def max_scaled(a, b) -> float:
    """Max |a - b| over each array divided by its largest |b| (AdamW moments span decades)."""
    return float(
        max(
            np.max(np.abs(np.asarray(x, np.float64) - y)) / (np.max(np.abs(y)) + 1e-30)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
        )
    )


def learner_errors(ts: ft.TrainState, state: dict) -> dict:
    """Parameters, targets and AdamW states (stacked or single) against a recorded state."""
    adam_c, adam_a = ts.critic_opt_state.inner_state[0], ts.actor_opt_state.inner_state[0]
    steps = lambda s: np.round(state[f"{s}/step"]).astype(int)  # noqa: E731
    return {
        "actor": max_abs(ts.actor_params, actor_params_np(sub(state, "actor"))),
        "critic": max_abs(ts.critic_params, critic_params_np(sub(state, "critic"))),
        "target": max_abs(ts.target_critic_params, critic_params_np(sub(state, "target"))),
        "adam_moments": max(
            max_scaled(adam_c.mu, critic_params_np(sub(state, "critic_opt/m"))),
            max_scaled(adam_c.nu, critic_params_np(sub(state, "critic_opt/v"))),
            max_scaled(adam_a.mu, actor_params_np(sub(state, "actor_opt/m"))),
            max_scaled(adam_a.nu, actor_params_np(sub(state, "actor_opt/v"))),
        ),
        "adam_steps": max_abs((adam_c.count, adam_a.count), (steps("critic_opt"), steps("actor_opt"))),
    }


def actor_params_np(flat: dict) -> dict:
    return jax.tree.map(np.asarray, actor_params(flat))


def critic_params_np(flat: dict) -> dict:
    """Stacked [K, ...] recorded states: the twin axis goes after K, as our vmapped outputs
    hold it."""
    twins = [flax_layers(flat, f"qnet{i}.", CRITIC_LAYERS) for i in (1, 2)]
    return {"params": jax.tree.map(lambda a, b: np.stack([a, b], axis=1), *twins)}


def norm_errors(ours: normalizers.Normalizer, ref: tuple, name: str = "norm") -> dict:
    mean, var, count = ref
    return {
        f"{name}_mean": max_rel(ours.mean, mean),
        f"{name}_var": max_rel(ours.var, var),
        f"{name}_count": max_abs(ours.count, count),
    }


def critic_norm_stats(trace: Trace, when: str, calls) -> tuple:
    return tuple(trace[f"critic_norm/{when}/{k}"][calls] for k in ("mean", "var", "count"))


def critic_norm_before_updates(trace: Trace, ks) -> tuple:
    """The critic normalizer before updates `ks` (a fresh one's stats on a symmetric task)."""
    if not trace.asymmetric:
        dim = trace.obs_dim
        return (
            np.zeros((len(ks), dim), np.float32),
            np.ones((len(ks), dim), np.float32),
            np.zeros(len(ks), np.float32),
        )
    return tuple(trace[f"upd/critic_norm/before/{k}"][ks] for k in ("mean", "var", "count"))


def batch_errors(batches: replay_buffer.Batch, trace: Trace, ks) -> dict:
    """Our n-step batches [K, B, ...] against the reference's. Next observations are compared
    where the window bootstraps: after a termination ours holds the reset observation, the
    reference the terminal one (never used for a target; DESIGN.md)."""
    a = trace.arrays
    done, trunc = a["upd/batch/done"][ks].astype(bool), a["upd/batch/truncated"][ks].astype(bool)
    boot = trunc | ~done
    ours = (batches.obs, batches.privileged, batches.action, batches.reward)
    ref = (
        batch_record(trace, "obs", ks),
        batch_tail(trace, "obs", ks),
        a["upd/batch/action"][ks],
        a["upd/batch/reward"][ks],
    )
    ours_next = (np.asarray(batches.next_obs)[boot], np.asarray(batches.next_privileged)[boot])
    ref_next = (batch_record(trace, "next_obs", ks)[boot], batch_tail(trace, "next_obs", ks)[boot])
    return {
        "batch": max(max_rel(ours, ref), max_rel(ours_next, ref_next)),
        "discount": max_rel(
            batches.discount, np.float32(trace.config["GAMMA"]) ** a["upd/batch/effective_n_steps"][ks]
        ),
        "bootstrap": max_abs(batches.bootstrap, boot.astype(np.float32)),
    }


def rollout_errors(out: dict, trace: Trace) -> dict:
    a = trace.arrays
    stored = (
        a["stored/obs"],
        trace.tail("stored/critic_obs", "stored/obs"),
        a["stored/reward"],
        a["stored/done"].astype(bool),
        a["stored/truncated"].astype(bool),
    )
    truncated = a["stored/truncated"].astype(bool)
    final = np.concatenate(
        [a["stored/next_obs"], trace.tail("stored/next_critic_obs", "stored/next_obs")], -1
    )
    return {
        "action": max_abs(out["action"], a["it/action"]),
        "stored": max(
            max_abs((out["obs"], out["privileged"], out["reward"], out["done"], out["truncated"]), stored),
            max_abs(np.asarray(out["final"])[truncated], final[truncated]),
        ),
        "noise_scale": max_abs(out["noise_scale"][:-1], a["it/scales_after"][1:]),
    }


STEP_TOLERANCES = {
    "actor": STEP_ATOL, "critic": STEP_ATOL, "target": STEP_ATOL, "adam_moments": MOMENT_RTOL,
    "adam_steps": 0, "norm_mean": RTOL, "norm_var": RTOL, "norm_count": 0, "critic_loss": RTOL,
    "actor_loss": RTOL, "action": STEP_ATOL, "noise_scale": 0.0, "stored": 0.0, "batch": RTOL,
    "critic_norm_mean": RTOL, "critic_norm_var": RTOL, "critic_norm_count": 0,
    "discount": RTOL, "bootstrap": 0.0, "actor_updates": 0,
}  # fmt: skip


def exceeded(errors: dict, tolerances: dict) -> dict:
    return {k: v for k, v in errors.items() if v > tolerances[k]}


class LearningReplay(NamedTuple):
    """What the stepwise learning replay computed for the detail iterations."""

    clean: dict  # max errors over iterations whose batches hold no window ending in a termination
    terminated: dict  # the same over the others ({} if none)
    batches: replay_buffer.Batch  # our batches, flat over the updates `ks`
    ks: np.ndarray  # the updates replayed


def learning_errors(trace: Trace, step) -> LearningReplay:
    """Runs `learning_stepwise`'s compiled function over the detail iterations; max errors."""
    a, its = trace.arrays, detail_iterations(trace)
    k0 = 2 * (its - trace.first_update_iteration)
    norm_before = tuple(a[f"upd/obs_norm/before/{k}"][k0] for k in ("mean", "var", "count"))
    next_obs, next_tail = a["step/next_obs"][its], trace.tail("step/next_critic_obs", "step/next_obs")[its]
    offsets, noise = iteration_offsets(trace)[k0 // 2], pairs(a["upd/target_noise"])[k0 // 2]
    critic_before = critic_norm_before_updates(trace, k0)
    batches, ts, sums = step(
        states_before(trace, k0),
        norm_before,
        critic_before,
        its.astype(np.int32),
        offsets,
        noise,
        next_obs,
        next_tail,
    )
    ks = np.stack([k0, k0 + 1], 1).reshape(-1)
    flat = (
        None
        if batches is None
        else jax.tree.map(lambda x: np.asarray(x).reshape(x.shape[0] * x.shape[1], *x.shape[2:]), batches)
    )
    per_iteration = lambda x: jax.tree.map(lambda v: np.asarray(v)[rows], x)  # noqa: E731
    terminated = ends_in_termination(trace, ks).reshape(-1, 2).any(1)
    out = []
    for rows in (np.flatnonzero(~terminated), np.flatnonzero(terminated)):
        if len(rows) == 0:
            out.append({})
            continue
        update_rows = np.stack([2 * rows, 2 * rows + 1], 1).reshape(-1)
        batch_rows = None if flat is None else jax.tree.map(lambda v: v[update_rows], flat)
        out.append(
            iteration_errors(
                trace, k0[rows], per_iteration(ts), per_iteration(sums), batch_rows, ks[update_rows]
            )
        )
    return LearningReplay(*out, flat, ks)


def iteration_errors(trace: Trace, k0, ts, sums, batches, ks) -> dict:
    a = trace.arrays
    update_calls = norm_calls(trace, trace.config["BATCH_SIZE"]).reshape(-1, 2)
    critic_norm = {}
    if trace.asymmetric:
        critic_calls = norm_calls(trace, trace.config["BATCH_SIZE"], "critic_norm").reshape(-1, 2)
        critic_norm = norm_errors(
            ts.critic_norm, critic_norm_stats(trace, "after", critic_calls[k0 + 1, 1]), "critic_norm"
        )
    losses = a["upd/critic_loss"][k0] + a["upd/critic_loss"][k0 + 1]
    actor_losses = np.nansum(np.stack([a["upd/actor_loss"][k0], a["upd/actor_loss"][k0 + 1]]), 0)
    return {
        **({} if batches is None else batch_errors(batches, trace, ks)),
        **learner_errors(ts, states_before(trace, k0 + 2)),
        **critic_norm,
        **norm_errors(ts.obs_norm, norm_stats(trace, "after", update_calls[k0 + 1, 1])),
        "critic_loss": max_rel(sums.critic_loss, losses),
        "actor_loss": max_rel(sums.actor_loss, actor_losses),
        "actor_updates": max_abs(
            sums.actor_updates, a["upd/actor_updated"][k0] + a["upd/actor_updated"][k0 + 1]
        ),
    }


# ============================================================================== fixtures, tests
@pytest.fixture(scope="module", params=sorted(TRACES))
def trace(request) -> Trace:
    return load_trace(TRACES[request.param])


@pytest.fixture(scope="module")
def replay(trace) -> Replay:
    return make_replay(trace)


@pytest.fixture(scope="module")
def learning(replay):
    """The stepwise learning replay's errors and our batches, from the unchanged code."""
    return learning_errors(replay.trace, learning_stepwise(replay))


def test_trace_covers_what_the_replay_checks(trace):
    """The recording spans the warm-up edge, time-outs, n-step windows cut short and both
    update kinds."""
    a = trace.arrays
    assert len(a["it/action"]) >= 200
    assert len(a["upd/ptr"]) >= 100
    assert a["upd/actor_updated"].sum() >= 10
    assert a["step/time_out"].any(1).sum() >= 2
    assert trace.first_update_iteration == trace.config["LEARNING_STARTS"] + 1
    assert (a["upd/batch/effective_n_steps"] < trace.config["NUM_STEPS"]).any()
    assert a["it/redrawn"].sum() >= 2  # noise scales redrawn after episode ends
    if trace.asymmetric:  # the locomotion trace: episodes also end by falls
        assert (a["step/done"] & ~a["step/time_out"]).any()


def test_left_out_arrays_follow_from_the_kept_ones():
    """What compact traces leave out is derived exactly as the reference recorded it (checked
    on the CartpoleSwingup trace, which keeps everything)."""
    with np.load(TRACES["CartpoleSwingup"]) as data:
        arrays = {k: data[k] for k in data.files if k != "metadata"}
    for key, value in derived(arrays).items():
        np.testing.assert_array_equal(value, arrays[key], err_msg=key)


def test_our_defaults_are_the_reference_settings(trace):
    assert reference_settings_match(trace) == []


def test_initial_weights_act_as_the_reference_actor(replay):
    """The torch layouts map onto our flax trees: the reference's first action, from its
    initial actor, its normalized observation and its noise."""
    trace = replay.trace
    ours = jax.eval_shape(
        replay.nets.actor.init, jax.random.PRNGKey(0), jnp.zeros((1, trace["reset_obs"].shape[1]))
    )
    assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, replay.initial.actor_params)
    first_call = norm_calls(trace, trace.config["NUM_ENVS"])[0]
    norm_obs = normalizers.normalize(normalizer(*norm_stats(trace, "after", first_call)), trace["reset_obs"])
    mean_action = replay.nets.actor.apply(replay.initial.actor_params, norm_obs)
    noise = trace["it/noise"][0] * trace["it/scales_after"][0][:, None]
    np.testing.assert_allclose(mean_action + noise, trace["it/action"][0], atol=STEP_ATOL)


def test_rollout_stepwise(replay):
    """Every iteration's env_step from the reference's state before it: the action, the stored
    transition (the true final observation of time-outs), the noise scales after the step, the
    normalizer."""
    trace = replay.trace
    a, calls = trace.arrays, norm_calls(trace, trace.config["NUM_ENVS"])
    t = np.arange(len(a["it/action"]), dtype=np.int32)
    out = rollout_stepwise(replay)(
        sub(a, "it/actor"), norm_stats(trace, "before", calls), *reference_obs(trace), recorded_steps(trace),
        a["it/scales_after"], a["it/noise"], fresh_draws(trace), t,
    )  # fmt: skip
    errors = rollout_errors(out, trace) | norm_errors(out["norm"], norm_stats(trace, "after", calls))
    print("rollout, stepwise max errors:", errors)
    assert exceeded(errors, STEP_TOLERANCES) == {}


def test_learning_stepwise(learning):
    """Each recorded learning iteration from the reference's state before it: our batches and
    `learning_step` (both updates, cadence, targets, both normalizers, AdamW). Where a sampled
    window ended in a termination our next observation is the reset one (a deliberate
    difference, DESIGN.md): those iterations are held to DEVIATION_ATOL on parameters only."""
    print("learning_step, stepwise max errors:", learning.clean)
    assert learning.clean, "no recorded iteration without a terminated window"
    assert exceeded(learning.clean, STEP_TOLERANCES) == {}
    if learning.terminated:
        print("  iterations with a window ending in a termination:", learning.terminated)
        moved = {k: learning.terminated[k] for k in ("actor", "critic", "target")}
        assert max(moved.values()) < DEVIATION_ATOL, moved
        assert (
            exceeded({k: learning.terminated[k] for k in ("batch", "discount", "bootstrap")}, STEP_TOLERANCES)
            == {}
        )


def test_updates_stepwise(replay, learning):
    """Each update alone from the reference's state before it, on our (checked) batch."""
    trace, ks = replay.trace, learning.ks
    a = trace.arrays
    norm = tuple(a[f"upd/obs_norm/before/{k}"][ks] for k in ("mean", "var", "count"))
    critic_norm = critic_norm_before_updates(trace, ks)
    ts, critic_loss, actor_loss = update_stepwise(replay)(
        states_before(trace, ks),
        norm,
        critic_norm,
        learning.batches,
        a["upd/target_noise"][ks],
        a["upd/critic_lr"][ks],
    )
    clean = ~ends_in_termination(trace, ks)
    updated = a["upd/actor_updated"][ks].astype(bool) & clean
    calls = norm_calls(trace, trace.config["BATCH_SIZE"]).reshape(-1, 2)[ks]
    rows = lambda x: jax.tree.map(lambda v: np.asarray(v)[clean], x)  # noqa: E731
    errors = {
        "critic": max_abs(
            rows(ts.critic_params), rows(critic_params_np(sub(states_before(trace, ks + 1), "critic")))
        ),
        "critic_loss": max_rel(np.asarray(critic_loss)[clean], a["upd/critic_loss"][ks][clean]),
        "actor_loss": max_rel(np.asarray(actor_loss)[updated], a["upd/actor_loss"][ks][updated]),
        **norm_errors(rows(ts.obs_norm), norm_stats(trace, "after", calls[clean, 1])),
    }
    print(
        f"updates, stepwise max errors ({clean.sum()} of {len(ks)} updates without a terminated window):",
        errors,
    )
    assert clean.sum() >= 4
    assert exceeded(errors, STEP_TOLERANCES) == {}


# Each deliberately wrong variant: (module, function, text in its source, replacement). The
# function is replaced in the module that defines it, where its callers look it up.
WRONG_VARIANTS = {
    "tau 10% low": (ft, "learning_step", 'hp["TAU"])', '0.9 * hp["TAU"])'),
    "CDQ takes the larger critic": (ft, "critic_update", "values[0] < values[1]", "values[0] > values[1]"),
    "actor on the other updates": (
        ft,
        "learning_step",
        "i % policy_frequency == 1",
        "i % policy_frequency == 0",
    ),
    "n-step discount gamma^(n-1)": (replay_buffer, "nstep_return", "gamma**summed", "gamma ** (summed - 1)"),
    "normalizer updated one step late": (
        ft,
        "observe",
        "norm = normalizer_update(norm, x)\n    return norm, normalize(norm, x)",
        "return normalizer_update(norm, x), normalize(norm, x)",
    ),
}


def mutant(module, name: str, old: str, new: str):
    """`module.name` with `old` replaced by `new` in its source, compiled in the module's
    namespace (the text must occur exactly once, so a refactor shows here)."""
    function = getattr(module, name)
    assert function.__module__ == module.__name__, f"{name} is defined in {function.__module__}"
    source = textwrap.dedent(inspect.getsource(function))
    assert source.count(old) == 1, f"{name}: {old!r} occurs {source.count(old)} times"
    namespace = dict(vars(module))
    exec(compile(source.replace(old, new), f"<wrong {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


@pytest.fixture(scope="module")
def cartpole_replay() -> Replay:
    return make_replay(load_trace(TRACES["CartpoleSwingup"]))


@pytest.mark.parametrize("variant", sorted(WRONG_VARIANTS))
def test_a_wrong_variant_fails_the_replay(cartpole_replay, variant, monkeypatch):
    """On CartpoleSwingup (every update's state recorded, no terminations)."""
    module, name, old, new = WRONG_VARIANTS[variant]
    monkeypatch.setattr(module, name, mutant(module, name, old, new))
    errors = learning_errors(
        cartpole_replay.trace, learning_stepwise(cartpole_replay, with_batches=False)
    ).clean
    failed = exceeded(errors, STEP_TOLERANCES)
    print(f"{variant}: exceeded {failed}")
    assert failed


def test_free_running(replay):
    """The whole trace from the reference's initial weights, our state carried throughout:
    prints how the gap grows (at the iterations whose states are recorded) and holds it to a
    loose bound (FREE_ATOL; DEVIATION_FREE_ATOL where windows ended in terminations)."""
    trace = replay.trace
    a, first = trace.arrays, trace.first_update_iteration
    _, (action, norm, actor, critic, target, sums) = free_running(replay)(all_draws(trace))
    its = detail_iterations(trace)
    after = states_before(trace, 2 * (its - first) + 2)
    rollout, update = (
        norm_calls(trace, trace.config["NUM_ENVS"]),
        norm_calls(trace, trace.config["BATCH_SIZE"]),
    )
    last_call = rollout.copy()
    all_its = first + np.arange(update_count(trace) // 2)
    last_call[all_its] = update.reshape(-1, 2)[2 * (all_its - first) + 1, 1]
    ref_norm = norm_stats(trace, "after", last_call)
    per_it = lambda x, y: np.array(  # ours at iterations `its` against the recorded states
        [max_abs(jax.tree.map(lambda v: v[i], x), jax.tree.map(lambda v: v[j], y)) for j, i in enumerate(its)]
    )
    gaps = {
        "action": np.abs(np.asarray(action) - a["it/action"]).reshape(len(action), -1).max(1)[its],
        "norm_mean": np.abs(np.asarray(norm.mean) - ref_norm[0]).max(1)[its],
        "actor": per_it(actor, actor_params_np(sub(after, "actor"))),
        "critic": per_it(critic, critic_params_np(sub(after, "critic"))),
        "target": per_it(target, critic_params_np(sub(after, "target"))),
        "critic_loss": np.abs(
            np.asarray(sums.critic_loss)[its] - pairs(a["upd/critic_loss"]).sum(1)[its - first]
        ),
    }
    warmup_action = np.abs(np.asarray(action)[:first] - a["it/action"][:first]).max()
    marks = sorted({0, 1, len(its) // 3, 2 * len(its) // 3, len(its) - 1})
    print(f"free-running, warm-up (iterations 0-{first - 1}) max action error {warmup_action:.2e}")
    for k, g in gaps.items():
        print(f"free-running {k:12s}" + " ".join(f"it {its[m]}: {g[m]:.2e}" for m in marks))
    bound = (
        DEVIATION_FREE_ATOL if ends_in_termination(trace, np.arange(update_count(trace))).any() else FREE_ATOL
    )
    assert warmup_action < STEP_ATOL
    assert max(gaps["action"].max(), gaps["actor"].max(), gaps["critic"].max(), gaps["target"].max()) < bound
    if bound == FREE_ATOL:
        assert (
            max_rel(np.asarray(sums.critic_loss)[its], pairs(a["upd/critic_loss"]).sum(1)[its - first])
            < FREE_RTOL
        )
