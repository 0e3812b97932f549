"""Environment back-ends for FastTD3X behind one small functional interface.

Both back-ends (gymnax and MuJoCo Playground) are exposed as an `Env` of pure, *unbatched*
functions; the trainer vmaps them over environments and agents. What the trainer needs and the
libraries do not give:

* an auto-reset that hands back the **true final observation** (actor and privileged) of every
  episode, because bootstrapping at a time-limit truncation must use s_T, not the reset state
  (Playground's `BraxAutoResetWrapper` drops it; see shared/reference/playground_notes.md);
* a truncation flag from our own step counter, with the brax convention that a time-out which
  coincides with a termination counts as a termination;
* actions in [-1, 1] for every task (clipped here, then scaled to the task's bounds);
* asymmetric observations: the actor sees `state`, the critic `privileged_state`.

Playground's `privileged_state` starts with `state` (`hstack([state, ...])` in every asymmetric
task), so an observation is split into `obs` (actor) and `privileged` (the critic-only tail);
the critic input is `concat(obs, privileged)`. Symmetric tasks have an empty tail.
"""

from __future__ import annotations

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
    return {"EPISODE_LENGTH": int(cfg.episode_length), "ACTION_REPEAT": int(cfg.action_repeat)}


def make_env(config: dict) -> Env:
    """Builds the task named by `config["ENV_NAME"]` with the config's back-end settings."""
    name = config["ENV_NAME"]
    if name in GYMNAX_ENVS:
        return _make_gymnax(name, config["EPISODE_LENGTH"])
    return _make_playground(
        name, config["EPISODE_LENGTH"], config["ACTION_REPEAT"], config["IMPL"]
    )


def _auto_reset(reset, next_state: EnvState, done, key) -> EnvState:
    """Replaces a finished episode's state by a fresh `reset(key)`; keeps it otherwise."""
    fresh = reset(key)
    return jax.tree.map(lambda r, s: jnp.where(done, r, s), fresh, next_state)


# ==================================================================================================
# gymnax
# ==================================================================================================
def _gymnax_make(env_name: str):
    import gymnax

    return gymnax.make(env_name)


def _make_gymnax(env_name: str, episode_length: int) -> Env:
    gym_env, params = _gymnax_make(env_name)
    # Our own counter sets the time limit, so gymnax's must never fire first.
    params = params.replace(max_steps_in_episode=episode_length + 1)
    space = gym_env.action_space(params)
    low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
    action_dim = int(space.shape[0]) if space.shape else 1
    obs_dim = int(gym_env.observation_space(params).shape[0])
    no_privileged = jnp.zeros((0,), jnp.float32)

    def to_env_action(action):
        action = jnp.clip(action, -1.0, 1.0)
        return low + (action + 1.0) * 0.5 * (high - low)

    def reset(key):
        obs, sim = gym_env.reset_env(key, params)
        return EnvState(sim, obs.astype(jnp.float32), no_privileged, jnp.int32(0))

    def raw_step(state: EnvState, action, key):
        obs, sim, reward, terminated, _ = gym_env.step_env(
            key, state.sim, to_env_action(action), params
        )
        stepped = EnvState(sim, obs.astype(jnp.float32), no_privileged, state.steps + 1)
        return stepped, reward.astype(jnp.float32), jnp.asarray(terminated, bool)

    def step(state: EnvState, action, key):
        key_step, key_reset = jax.random.split(key)
        stepped, reward, terminated = raw_step(state, action, key_step)
        timed_out = stepped.steps >= episode_length
        done = terminated | timed_out
        out = StepOutput(reward, done, timed_out & ~terminated, stepped.obs, stepped.privileged)
        return _auto_reset(reset, stepped, done, key_reset), out

    def eval_step(state: EnvState, action):
        # Pendulum and MountainCar ignore the step key.
        stepped, reward, terminated = raw_step(state, action, jax.random.PRNGKey(0))
        return stepped, reward, terminated

    return Env(env_name, obs_dim, 0, action_dim, episode_length, reset, step, eval_step)


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


def _make_playground(env_name: str, episode_length: int, action_repeat: int, impl: str) -> Env:
    registry = _playground_registry()
    overrides: dict[str, Any] = {"impl": impl}
    if env_name in _PUSH_OFF_TASKS:
        overrides.update({"push_config.enable": False, "push_config.magnitude_range": [0.0, 0.0]})
    task = registry.load(env_name, config_overrides=overrides)

    obs_size = task.observation_size
    if isinstance(obs_size, dict):  # asymmetric: actor `state`, critic `privileged_state`
        obs_dim = int(obs_size["state"][0])
        privileged_dim = int(obs_size["privileged_state"][0]) - obs_dim
    else:
        obs_dim, privileged_dim = int(obs_size), 0
    action_dim = int(task.action_size)

    def split_obs(obs):
        if isinstance(obs, dict):
            return obs["state"], obs["privileged_state"][obs_dim:]
        return obs, jnp.zeros((0,), obs.dtype)

    def reset(key):
        sim = task.reset(key)
        obs, privileged = split_obs(sim.obs)
        return EnvState(sim, obs, privileged, jnp.int32(0))

    def raw_step(state: EnvState, action):
        action = jnp.clip(action, -1.0, 1.0)

        def repeat(carry, _):
            sim, done = carry
            sim = task.step(sim, action)
            return (sim, done | (sim.done > 0.5)), sim.reward

        (sim, terminated), rewards = jax.lax.scan(
            repeat, (state.sim, jnp.bool_(False)), None, length=action_repeat
        )
        obs, privileged = split_obs(sim.obs)
        stepped = EnvState(sim, obs, privileged, state.steps + action_repeat)
        return stepped, rewards.sum(), terminated

    def step(state: EnvState, action, key):
        stepped, reward, terminated = raw_step(state, action)
        timed_out = stepped.steps >= episode_length
        done = terminated | timed_out
        out = StepOutput(reward, done, timed_out & ~terminated, stepped.obs, stepped.privileged)
        return _auto_reset(reset, stepped, done, key), out

    return Env(
        env_name,
        obs_dim,
        privileged_dim,
        action_dim,
        math.ceil(episode_length / action_repeat),
        reset,
        step,
        raw_step,
    )
