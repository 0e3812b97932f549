"""Environment back-ends for FastTD3X behind one small functional interface.

Both back-ends (gymnax and MuJoCo Playground) are exposed as an `Env` of pure, *unbatched*
functions; the trainer vmaps them over environments and agents. What the trainer needs and the
libraries do not give:

* an auto-reset that hands back the **true final observation** (actor and privileged) of every
  episode, because bootstrapping at a time-limit truncation must use s_T, not the reset state
  (Playground's `BraxAutoResetWrapper` drops it; see shared/reference/playground_notes.md);
* a choice of what a done restores: a fresh random initial state, or the env's own first state
  as the reference's Playground fork does (`RESET_MODE`);
* a truncation flag from our own step counter, with the brax convention that a time-out which
  coincides with a termination counts as a termination;
* actions in [-1, 1] for every task (clipped here, then scaled to the task's bounds);
* the simulator's matmuls at `PHYSICS_PRECISION` ("highest", as the reference runs MJX), apart
  from the networks' compute dtype;
* asymmetric observations: the actor sees `state`, the critic `privileged_state`.

Playground's `privileged_state` starts with `state` (`hstack([state, ...])` in every asymmetric
task), so an observation is split into `obs` (actor) and `privileged` (the critic-only tail);
the critic input is `concat(obs, privileged)`. Symmetric tasks have an empty tail.
"""

from __future__ import annotations

import functools
import math
import os
import pathlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

GYMNAX_ENVS = ("Pendulum-v1", "MountainCarContinuous-v0")

# The reference turns push perturbations off for these tasks unless asked (spec §8).
_PUSH_OFF_TASKS = (
    "G1JoystickFlatTerrain",
    "G1JoystickRoughTerrain",
    "T1JoystickFlatTerrain",
    "T1JoystickRoughTerrain",
)


class EnvState(NamedTuple):
    """What one environment carries between steps."""

    sim: Any  # back-end state (gymnax EnvState or Playground State)
    obs: jax.Array  # actor observation [obs_dim]
    privileged: jax.Array  # critic-only tail of the observation [privileged_dim]
    steps: jax.Array  # env steps taken in the current episode (int32)
    first: Any = None  # RESET_MODE="first_state": the env's first state, restored at every done


class StepOutput(NamedTuple):
    """One step's outcome. After a done, `EnvState.obs` is already the next episode's."""

    reward: jax.Array
    done: jax.Array  # bool: terminated or timed out
    truncated: jax.Array  # bool: timed out without terminating (bootstrap from final_obs)
    final_obs: jax.Array  # the observation the step reached, before any reset
    final_privileged: jax.Array


class Env(NamedTuple):
    """A task as pure per-environment functions (vmap them for a batch)."""

    name: str
    obs_dim: int
    privileged_dim: int
    action_dim: int
    episode_iterations: int  # agent steps before a time-limit truncation (episode length / repeat)
    reset: Callable[[jax.Array], EnvState]
    step: Callable[[EnvState, jax.Array, jax.Array], tuple[EnvState, StepOutput]]
    # Evaluation step: no time limit and no auto-reset; returns (state, reward, done).
    eval_step: Callable[[EnvState, jax.Array], tuple[EnvState, jax.Array, jax.Array]]
    backend: Any  # the wrapped gymnax or Playground env (rendering, inspection)


def env_defaults(env_name: str) -> dict:
    """Back-end settings of a task that the config exposes: episode length, action repeat."""
    if env_name in GYMNAX_ENVS:
        gym_env, params = _gymnax_make(env_name)
        return {"EPISODE_LENGTH": int(params.max_steps_in_episode), "ACTION_REPEAT": 1}
    registry = _playground_registry()
    if env_name not in registry.ALL_ENVS:
        raise ValueError(
            f"ENV_NAME={env_name!r} is not a known task. Allowed: gymnax {list(GYMNAX_ENVS)} or a "
            f"MuJoCo Playground task, one of {sorted(registry.ALL_ENVS)}."
        )
    cfg = registry.get_default_config(env_name)
    return {
        "EPISODE_LENGTH": int(cfg.episode_length),
        "ACTION_REPEAT": int(cfg.action_repeat),
        # The reference's Playground fork restarts every env from its own first state.
        "RESET_MODE": "first_state",
    }


def make_env(config: dict) -> Env:
    """Builds the task named by `config["ENV_NAME"]` with the config's back-end settings."""
    make = _make_gymnax if config["ENV_NAME"] in GYMNAX_ENVS else _make_playground
    return make(config)


def _assemble(config, backend, obs_dim, privileged_dim, action_dim, reset, sim_step, restart_sim) -> Env:
    """Adds action clipping, action repeat, the time limit and auto-reset to a back-end,
    with the config's EPISODE_LENGTH, ACTION_REPEAT and RESET_MODE.

    `reset(key) -> EnvState`; `sim_step(state, action in [-1, 1], key) -> (state, reward,
    terminated)` advances one physics step and counts it in `state.steps`;
    `restart_sim(stepped_sim, first_sim)` is what a done restores in RESET_MODE="first_state".
    Auto-reset at a done either draws a fresh `reset(key)` ("fresh") or restores the env's own
    first state ("first_state", the reference's Playground fork: cheaper, no reset computed).
    """
    episode_length, action_repeat = config["EPISODE_LENGTH"], config["ACTION_REPEAT"]
    if config["RESET_MODE"] == "first_state":

        def initial(key):
            state = reset(key)
            return state._replace(first=state)

        def restarted(stepped: EnvState, key):
            first = stepped.first
            return EnvState(
                restart_sim(stepped.sim, first.sim), first.obs, first.privileged, first.steps, first
            )

    else:
        initial = reset

        def restarted(stepped: EnvState, key):
            return reset(key)

    def raw_step(state: EnvState, action, key):
        first, state = state.first, state._replace(first=None)  # constant: kept out of the scan
        action = jnp.clip(action, -1.0, 1.0)

        def repeat(carry, step_key):
            # Rewards add up until the first termination; later repeats earn nothing.
            state, terminated = carry
            state, reward, ended = sim_step(state, action, step_key)
            return (state, terminated | ended), jnp.where(terminated, 0.0, reward)

        keys = jax.random.split(key, action_repeat)
        (state, terminated), rewards = jax.lax.scan(repeat, (state, jnp.bool_(False)), keys)
        return state._replace(first=first), rewards.sum(), terminated

    def step(state: EnvState, action, key):
        key_step, key_reset = jax.random.split(key)
        stepped, reward, terminated = raw_step(state, action, key_step)
        timed_out = stepped.steps >= episode_length
        done = terminated | timed_out
        out = StepOutput(reward, done, timed_out & ~terminated, stepped.obs, stepped.privileged)
        next_episode = restarted(stepped, key_reset)
        next_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), next_episode, stepped)
        return next_state, out

    def eval_step(state: EnvState, action):
        return raw_step(state, action, jax.random.PRNGKey(0))

    episode_iterations = math.ceil(episode_length / action_repeat)
    physics = functools.partial(_at_precision, config["PHYSICS_PRECISION"])
    return Env(
        config["ENV_NAME"],
        obs_dim,
        privileged_dim,
        action_dim,
        episode_iterations,
        physics(initial),
        physics(step),
        physics(eval_step),
        backend,
    )


def _at_precision(precision: str, fn: Callable) -> Callable:
    """`fn` traced under `jax.default_matmul_precision(precision)`: every float32 matmul of the
    simulator carries that precision in the program, whatever the caller's default ("default"
    leaves the backend's choice, TF32 on recent NVIDIA GPUs)."""
    if precision == "default":
        return fn

    @functools.wraps(fn)
    def at_precision(*args):
        with jax.default_matmul_precision(precision):
            return fn(*args)

    return at_precision


# ==================================================================================================
# gymnax
# ==================================================================================================
def _gymnax_make(env_name: str):
    import gymnax

    return gymnax.make(env_name)


def _make_gymnax(config: dict) -> Env:
    gym_env, params = _gymnax_make(config["ENV_NAME"])
    space = gym_env.action_space(params)
    low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
    action_dim = int(space.shape[0]) if space.shape else 1
    obs_dim = int(gym_env.observation_space(params).shape[0])
    no_privileged = jnp.zeros((0,), jnp.float32)

    def reset(key):
        obs, sim = gym_env.reset_env(key, params)
        return EnvState(sim, obs.astype(jnp.float32), no_privileged, jnp.int32(0))

    def sim_step(state: EnvState, action, key):
        # `step_env` applies no time limit (gymnax's lives in `step`); ours is in _assemble.
        env_action = low + (action + 1.0) * 0.5 * (high - low)
        obs, sim, reward, terminated, _ = gym_env.step_env(key, state.sim, env_action, params)
        state = EnvState(sim, obs.astype(jnp.float32), no_privileged, state.steps + 1)
        return state, reward.astype(jnp.float32), jnp.asarray(terminated, bool)

    restart_sim = lambda stepped_sim, first_sim: first_sim  # noqa: E731
    return _assemble(config, gym_env, obs_dim, 0, action_dim, reset, sim_step, restart_sim)


# ==================================================================================================
# MuJoCo Playground
# ==================================================================================================
def _playground_registry():
    _use_local_menagerie()
    from mujoco_playground import registry

    return registry


def _use_local_menagerie() -> None:
    """Points Playground at `$MENAGERIE_PATH` so locomotion tasks load without network."""
    path = os.environ.get("MENAGERIE_PATH")
    if not path:
        return
    from mujoco_playground._src import mjx_env

    mjx_env.MENAGERIE_PATH = pathlib.Path(path).resolve()


def _make_playground(config: dict) -> Env:
    env_name = config["ENV_NAME"]
    registry = _playground_registry()
    overrides: dict[str, Any] = {"impl": config["IMPL"]}
    if env_name in _PUSH_OFF_TASKS:
        overrides.update({"push_config.enable": False, "push_config.magnitude_range": [0.0, 0.0]})
    task = registry.load(env_name, config_overrides=overrides)

    obs_size = task.observation_size
    if isinstance(obs_size, dict):  # asymmetric: actor `state`, critic `privileged_state`
        obs_dim = int(obs_size["state"][0])
        privileged_dim = int(obs_size["privileged_state"][0]) - obs_dim
    else:
        obs_dim, privileged_dim = int(obs_size), 0

    def as_state(sim, steps):
        if isinstance(sim.obs, dict):
            return EnvState(sim, sim.obs["state"], sim.obs["privileged_state"][obs_dim:], steps)
        return EnvState(sim, sim.obs, jnp.zeros((0,), sim.obs.dtype), steps)

    def reset(key):
        return as_state(task.reset(key), jnp.int32(0))

    def sim_step(state: EnvState, action, key):
        del key  # Playground steps are deterministic given the state
        sim = task.step(state.sim, action)
        return as_state(sim, state.steps + 1), sim.reward, sim.done > 0.5

    def restart_sim(stepped_sim, first_sim):
        # The fork's BraxAutoResetWrapper restores physics and observation; `info` (e.g. a
        # joystick command) and metrics carry over into the next episode.
        return stepped_sim.replace(data=first_sim.data, obs=first_sim.obs)

    return _assemble(
        config, task, obs_dim, privileged_dim, int(task.action_size), reset, sim_step, restart_sim
    )
