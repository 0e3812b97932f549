"""Environment back-ends for FastTD3X: composable gymnax-API wrappers, and one small functional
interface for the trainer.

Three back-ends (gymnax, Brax, MuJoCo Playground) get a base adapter with gymnax's signatures,
`reset(key, params=None) -> (obs, state)` and `step(key, state, action, params=None) -> (obs,
state, reward, done, info)` (the classic five values PureJaxRL's wrappers read; gymnax 1.0.1's own
`step` returns six). Small wrappers add what the trainer needs and the libraries do not give:

* `ClipRescaleAction`: actions in [-1, 1] for every task, scaled to the task's bounds;
* `ActionRepeat`: rewards add up until the first termination, later repeats earn nothing;
* `TimeLimit`: our own step counter (in physics steps) and `info["truncated"]`, with the brax
  convention that a time-out which coincides with a termination counts as a termination;
* `AutoReset`: hands back the **true final observation** (`info["final_obs"]`, and the critic's
  `info["final_privileged"]` on tasks that have one), because bootstrapping at a truncation must
  use s_T, not the reset state (Playground's `BraxAutoResetWrapper` drops it, Brax's
  `AutoResetWrapper` too); what a done restores is a fresh random initial state or the env's own
  first state, as the reference's Playground fork does (`RESET_MODE`).

Every wrapper that keeps state stores the inner state in `env_state` and forwards unknown
attributes to the inner env (`observation_space(params)`, `action_space(params)`, ...), so
PureJaxRL-style wrappers (a `LogWrapper`) stack on top.

`make_env(config)` builds `AutoReset(TimeLimit(ActionRepeat(ClipRescaleAction(base))))` and
exposes it to the trainer as an `Env` of pure, *unbatched* functions (vmapped over environments
and agents), with the simulator's matmuls at `PHYSICS_PRECISION` ("highest", as the reference runs
MJX), apart from the networks' compute dtype. The trainer's `EnvState` is the stack's own state
with the observation the stack returned beside it: its functions only reorder arguments and name
`info`'s entries, so the two call conventions share one state and nothing is rebuilt per step.

Asymmetric observations: the actor sees `state`, the critic `privileged_state`. Playground's
`privileged_state` starts with `state` (`hstack([state, ...])` in every asymmetric task), so an
observation is split into `obs` (actor) and `privileged` (the critic-only tail); the critic input
is `concat(obs, privileged)`. Symmetric tasks have an empty tail.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

# gymnax tasks with tuned defaults here; any other continuous-action gymnax env works too.
GYMNAX_ENVS = ("Pendulum-v1", "MountainCarContinuous-v0")
# Every gymnax 1.0.1 env with a continuous Box action space (named in errors; checked on use).
GYMNAX_CONTINUOUS = GYMNAX_ENVS + ("PointRobot-misc", "Reacher-misc", "Swimmer-misc")

# The reference turns push perturbations off for these tasks unless USE_PUSH_RANDOMIZATION, and
# only these take USE_TUNED_REWARD (spec §8).
HUMANOID_JOYSTICK_TASKS = (
    "G1JoystickFlatTerrain",
    "G1JoystickRoughTerrain",
    "T1JoystickFlatTerrain",
    "T1JoystickRoughTerrain",
)
# The reference's tuned reward scales (its "Figure 7" G1 reward, also used for T1); Playground
# 0.2.0 has every one of these terms for both robots.
TUNED_REWARD_SCALES = {
    "energy": -5e-5,
    "action_rate": -1e-1,
    "torques": -1e-3,
    "pose": -1.0,
    "tracking_ang_vel": 1.25,
    "tracking_lin_vel": 1.25,
    "feet_phase": 1.0,
    "ang_vel_xy": -0.3,
    "orientation": -5.0,
}


class EnvState(NamedTuple):
    """What one environment carries between steps: the wrapper stack's state as the stack
    returned it, and the observation it returned beside it, split for the actor and the critic."""

    env_state: Any  # AutoResetState of `wrap(base, config)` (the `env_state` chain of wrappers)
    obs: jax.Array  # actor observation [obs_dim]
    privileged: jax.Array  # critic-only tail of the observation [privileged_dim]

    @property
    def sim(self):
        """The back-end's state (gymnax EnvState, Brax State or Playground State): rendering
        reads it."""
        return base_state(self.env_state)

    @property
    def steps(self) -> jax.Array:
        """Physics steps taken in the current episode (int32): the time limit's counter."""
        return self.env_state.env_state.steps


class StepOutput(NamedTuple):
    """One step's outcome. After a done, `EnvState.obs` is already the next episode's."""

    reward: jax.Array
    done: jax.Array  # bool: terminated or timed out
    truncated: jax.Array  # bool: timed out without terminating (bootstrap from final_obs)
    final_obs: jax.Array  # the observation the step reached, before any reset
    final_privileged: jax.Array  # its critic-only tail ([0] on tasks without one)


class Env(NamedTuple):
    """A task as pure per-environment functions (vmap them for a batch)."""

    name: str
    obs_dim: int
    privileged_dim: int
    action_dim: int
    episode_iterations: int  # agent steps before a time-limit truncation (episode length / repeat)
    reset: Callable[[jax.Array], EnvState]
    step: Callable[[EnvState, jax.Array, jax.Array], tuple[EnvState, StepOutput]]
    # Evaluation step: no auto-reset, done only at a termination (callers bound the episode);
    # returns (state, reward, done).
    eval_step: Callable[[EnvState, jax.Array], tuple[EnvState, jax.Array, jax.Array]]
    backend: Any  # the wrapped gymnax, Brax or Playground env (rendering, inspection)


# ==================================================================================================
# Task registry
# ==================================================================================================
def task_kind(env_name: str) -> str:
    """ "gymnax", "brax" or "playground"; ValueError naming the allowed tasks otherwise."""
    if env_name in BRAX_TASKS:
        return "brax"
    import gymnax

    if env_name in gymnax.registered_envs:
        _gymnax_make(env_name)  # refuses discrete action spaces
        return "gymnax"
    registry = _playground_registry()
    if env_name in registry.ALL_ENVS:
        return "playground"
    raise ValueError(
        f"ENV_NAME={env_name!r} is not a known task. Allowed: a gymnax env with continuous "
        f"actions {list(GYMNAX_CONTINUOUS)}, a Brax task {list(BRAX_TASKS)} or a MuJoCo "
        f"Playground task, one of {sorted(registry.ALL_ENVS)}."
    )


def env_defaults(env_name: str) -> dict:
    """Back-end settings of a task that the config exposes: episode length, action repeat."""
    kind = task_kind(env_name)
    if kind == "gymnax":
        _, params = _gymnax_make(env_name)
        return {"EPISODE_LENGTH": int(params.max_steps_in_episode), "ACTION_REPEAT": 1}
    if kind == "brax":
        # PureJaxRL's and Brax's training length; a fresh random start, as Brax resets.
        return {"EPISODE_LENGTH": 1000, "ACTION_REPEAT": 1, "RESET_MODE": "fresh"}
    cfg = _playground_registry().get_default_config(env_name)
    return {
        "EPISODE_LENGTH": int(cfg.episode_length),
        "ACTION_REPEAT": int(cfg.action_repeat),
        # The reference's Playground fork restarts every env from its own first state.
        "RESET_MODE": "first_state",
    }


def make_base(config: dict):
    """The back-end adapter of `config["ENV_NAME"]` (gymnax signatures, no wrappers)."""
    name = config["ENV_NAME"]
    kind = task_kind(name)
    if kind == "gymnax":
        return GymnaxBase(name)
    if kind == "brax":
        return BraxBase(name)
    return PlaygroundBase(name, config["IMPL"], config["USE_PUSH_RANDOMIZATION"], config["USE_TUNED_REWARD"])


def wrap(base, config: dict):
    """The wrapper stack `make_env` runs: AutoReset(TimeLimit(ActionRepeat(ClipRescaleAction)))."""
    repeated = ActionRepeat(ClipRescaleAction(base), config["ACTION_REPEAT"])
    return AutoReset(TimeLimit(repeated, config["EPISODE_LENGTH"]), config["RESET_MODE"])


def make_env(config: dict) -> Env:
    """Builds the task named by `config["ENV_NAME"]` with the config's back-end settings."""
    stack = wrap(make_base(config), config)
    eval_stack = None
    if config["USE_TUNED_REWARD"]:  # the reference trains on tuned rewards, evaluates on the task's
        eval_stack = wrap(make_base({**config, "USE_TUNED_REWARD": False}), config)
    return _as_env(config, stack, eval_stack)


# ==================================================================================================
# Wrappers (gymnax API)
# ==================================================================================================
class Wrapper:
    """Forwards unknown attributes to the wrapped env (as PureJaxRL's GymnaxWrapper does), so
    settings such as `action_repeat` or methods such as `privileged` reach any wrapper above."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        if name == "_env":  # not set yet (e.g. while unpickling): no infinite recursion
            raise AttributeError(name)
        return getattr(self._env, name)

    def reset(self, key, params=None):
        return self._env.reset(key, params)

    def step(self, key, state, action, params=None):
        return self._env.step(key, state, action, params)


def base_state(state):
    """The back-end's own state under any stack of wrapper states (each keeps it in `env_state`)."""
    while hasattr(state, "env_state"):
        state = state.env_state
    return state


def _replace_base(state, new_base):
    """`state` with its back-end state replaced, wrapper states kept."""
    if not hasattr(state, "env_state"):
        return new_base
    inner = _replace_base(state.env_state, new_base)
    if dataclasses.is_dataclass(state):
        return dataclasses.replace(state, env_state=inner)
    return state._replace(env_state=inner)


class ClipRescaleAction(Wrapper):
    """Clips actions to [-1, 1] and maps them affinely onto the env's `action_bounds(params)`;
    bounds of None mean the env takes [-1, 1] as it is (Brax, Playground): no rounding added."""

    def action_space(self, params=None):
        """[-1, 1]: what the agent acts in, whatever the env's own bounds."""
        return _box(-1.0, 1.0, self.action_dim)

    def step(self, key, state, action, params=None):
        action = jnp.clip(action, -1.0, 1.0)
        bounds = self._env.action_bounds(params)
        if bounds is not None:
            low, high = bounds
            action = low + (action + 1.0) * 0.5 * (high - low)
        return self._env.step(key, state, action, params)


class ActionRepeat(Wrapper):
    """Applies each action `action_repeat` times (one key each). Rewards add up until the first
    termination and later repeats earn nothing, so a terminal step is never paid for twice; the
    env keeps stepping to the end of the repeat (done is then True)."""

    def __init__(self, env, action_repeat: int):
        super().__init__(env)
        self.action_repeat = int(action_repeat)

    def step(self, key, state, action, params=None):
        def repeat(carry, step_key):
            state, terminated = carry
            obs, state, reward, done, info = self._env.step(step_key, state, action, params)
            return (state, terminated | done), (obs, jnp.where(terminated, 0.0, reward), info)

        keys = jax.random.split(key, self.action_repeat)
        (state, terminated), (obs, rewards, info) = jax.lax.scan(repeat, (state, jnp.bool_(False)), keys)
        obs, info = jax.tree.map(lambda x: x[-1], (obs, info))
        return obs, state, rewards.sum(), terminated, info


@struct.dataclass
class TimeLimitState:
    env_state: Any
    steps: jax.Array  # physics steps in the current episode (int32)


class TimeLimit(Wrapper):
    """Ends an episode after `max_steps` physics steps (an inner `ActionRepeat` counts
    `action_repeat` per step), flagging `info["truncated"]` only when it did not also terminate."""

    def __init__(self, env, max_steps: int):
        super().__init__(env)
        self.max_steps = int(max_steps)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs, TimeLimitState(state, jnp.int32(0))

    def step(self, key, state, action, params=None):
        obs, inner, reward, terminated, info = self._env.step(key, state.env_state, action, params)
        steps = state.steps + getattr(self._env, "action_repeat", 1)
        timed_out = steps >= self.max_steps
        info = {**info, "truncated": timed_out & ~terminated}
        return obs, TimeLimitState(inner, steps), reward, terminated | timed_out, info


@struct.dataclass
class AutoResetState:
    env_state: Any
    first: Any = None  # reset_mode="first_state": (obs, env_state) every episode restarts from


class AutoReset(Wrapper):
    """Starts a new episode at every done and keeps what the step reached in `info["final_obs"]`
    (and `info["final_privileged"]` when the env has a privileged part, `privileged_dim > 0`).

    reset_mode "fresh" draws `reset(key)` with the second half of the step's key; "first_state"
    restores the env's own first state (the reference's Playground fork: no reset computed),
    through the back-end's `restart(stepped, first)` when it has one (Playground keeps `info`).
    """

    def __init__(self, env, reset_mode: str = "fresh"):
        super().__init__(env)
        if reset_mode not in ("fresh", "first_state"):
            raise ValueError(f"reset_mode={reset_mode!r} is not allowed; choose 'fresh' or 'first_state'.")
        self.reset_mode = reset_mode

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs, AutoResetState(state, (obs, state) if self.reset_mode == "first_state" else None)

    def step(self, key, state, action, params=None):
        key_step, key_reset = jax.random.split(key)
        obs, stepped, reward, done, info = self._env.step(key_step, state.env_state, action, params)
        info = {"truncated": jnp.bool_(False), **info, "final_obs": obs}
        if getattr(self._env, "privileged_dim", 0):  # no empty arrays in `info` (PureJaxRL reshapes them)
            info["final_privileged"] = self._env.privileged(base_state(stepped))
        if self.reset_mode == "first_state":
            first_obs, first = state.first
            restart = getattr(self._env, "restart", None)
            restored = (
                base_state(first) if restart is None else restart(base_state(stepped), base_state(first))
            )
            new_obs, new_state = first_obs, _replace_base(first, restored)
        else:
            new_obs, new_state = self._env.reset(key_reset, params)
        obs, inner = jax.tree.map(lambda r, s: jnp.where(done, r, s), (new_obs, new_state), (obs, stepped))
        return obs, AutoResetState(inner, state.first), reward, done, info


# ==================================================================================================
# The trainer's interface on top of the wrapper stack
# ==================================================================================================
def _as_env(config: dict, stack: AutoReset, eval_stack: AutoReset | None = None) -> Env:
    """`Env` over `wrap(base, config)`: the stack's own functions in the trainer's argument order,
    its state carried as the stack returns it (see `EnvState`), `info` read into `StepOutput`.
    `eval_step` steps `eval_stack` (default: `stack`), the same task and state type, whose reward
    may differ."""
    base = _innermost(stack)
    # TimeLimit(ActionRepeat(ClipRescaleAction(base))): no auto-reset
    time_limited = (eval_stack or stack)._env

    def observed(obs, state) -> EnvState:
        return EnvState(state, obs, base.privileged(base_state(state)))

    def reset(key):
        return observed(*stack.reset(key))

    def step(state: EnvState, action, key):
        obs, stepped, reward, done, info = stack.step(key, state.env_state, action)
        # AutoReset reports the final tail only where there is one (no empty `info` arrays).
        final_privileged = info["final_privileged"] if base.privileged_dim else jnp.zeros((0,), jnp.float32)
        out = StepOutput(reward, done, info["truncated"], info["final_obs"], final_privileged)
        return observed(obs, stepped), out

    def eval_step(state: EnvState, action):
        key = jax.random.PRNGKey(0)
        obs, limited, reward, done, info = time_limited.step(key, state.env_state.env_state, action)
        # A time-out ends nothing here: evaluation bounds its episodes itself and a render may
        # run past the limit. `done & ~truncated` is the termination, also one at the time-out.
        terminated = done & ~info["truncated"]
        return observed(obs, state.env_state.replace(env_state=limited)), reward, terminated

    physics = functools.partial(_at_precision, config["PHYSICS_PRECISION"])
    return Env(
        config["ENV_NAME"],
        base.obs_dim,
        base.privileged_dim,
        base.action_dim,
        math.ceil(config["EPISODE_LENGTH"] / time_limited.action_repeat),
        physics(reset),
        physics(step),
        physics(eval_step),
        base.backend,
    )


def _innermost(env):
    while isinstance(env, Wrapper):
        env = env._env
    return env


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


def _box(low, high, size: int):
    """gymnax's `Box` of flat float32 vectors: every adapter's observations and actions."""
    from gymnax.environments import spaces

    return spaces.Box(low, high, (size,), jnp.float32)


def _flat_bounds(space) -> tuple[jax.Array, jax.Array]:
    """(low, high) of a gymnax `Box` as float32 vectors, in the order `jnp.ravel` flattens."""

    def flat(bound):
        return jnp.broadcast_to(jnp.asarray(bound, jnp.float32), space.shape).reshape(-1)

    return flat(space.low), flat(space.high)


# ==================================================================================================
# gymnax
# ==================================================================================================
@functools.cache
def _gymnax_make(env_name: str):
    """`gymnax.make`, refusing tasks FastTD3 cannot act in (discrete or unbuildable)."""
    import gymnax
    from gymnax.environments import spaces

    def refuse(why: str):
        return ValueError(
            f"ENV_NAME={env_name!r} {why}; FastTD3 needs continuous actions. Allowed gymnax "
            f"tasks (continuous Box action space): {list(GYMNAX_CONTINUOUS)}."
        )

    try:
        env, params = gymnax.make(env_name)
        space = env.action_space(params)
    except Exception as error:  # e.g. MNISTBandit downloads data on construction
        raise refuse(f"could not be built ({type(error).__name__}: {error})") from error
    if not isinstance(space, spaces.Box):
        raise refuse(f"has a {type(space).__name__} action space")
    return env, params


class UnitBoxSpaces:
    """The gymnax space methods of a back-end whose actions are already in [-1, 1] (Brax and
    Playground): `obs_dim` and `action_dim` are set by the subclass."""

    def action_bounds(self, params=None):
        return None  # [-1, 1] as it is

    def action_space(self, params=None):
        return _box(-1.0, 1.0, self.action_dim)

    def observation_space(self, params=None):
        return _box(-jnp.inf, jnp.inf, self.obs_dim)


class GymnaxBase:
    """A gymnax env stepped through `step_env`: gymnax's own time limit and auto-reset (in
    `step`) are left out, ours wrap it. Observations are flattened float32 vectors."""

    def __init__(self, env_name: str):
        self.backend, self.default_params = _gymnax_make(env_name)
        self.name = env_name
        self._action_shape = tuple(self.backend.action_space(self.default_params).shape)
        self.action_dim = math.prod(self._action_shape)
        self.obs_dim = math.prod(self.backend.observation_space(self.default_params).shape)
        self.privileged_dim = 0

    def _params(self, params):
        return self.default_params if params is None else params

    def action_bounds(self, params=None):
        return _flat_bounds(self.backend.action_space(self._params(params)))

    def action_space(self, params=None):
        """The env's own bounds, flattened (`ClipRescaleAction` above answers [-1, 1])."""
        return _box(*self.action_bounds(params), self.action_dim)

    def observation_space(self, params=None):
        return _box(*_flat_bounds(self.backend.observation_space(self._params(params))), self.obs_dim)

    def reset(self, key, params=None):
        obs, state = self.backend.reset_env(key, self._params(params))
        return jnp.ravel(obs).astype(jnp.float32), state

    def step(self, key, state, action, params=None):
        action = jnp.reshape(action, self._action_shape)
        obs, state, reward, done, _ = self.backend.step_env(key, state, action, self._params(params))
        obs = jnp.ravel(obs).astype(jnp.float32)
        return obs, state, jnp.asarray(reward, jnp.float32), jnp.asarray(done, bool), {}

    def privileged(self, state):
        return jnp.zeros((0,), jnp.float32)


# ==================================================================================================
# Brax
# ==================================================================================================
# The Brax tasks offered (their FastTD3 settings: configs.BRAX_TASK_DEFAULTS).
BRAX_TASKS = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "walker2d",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "pusher",
    "reacher",
)

BRAX_BACKEND = "mjx"  # see BraxBase


class BraxBase(UnitBoxSpaces):
    """A raw Brax env (`brax.envs.get_environment`, without Brax's `EpisodeWrapper` and
    `AutoResetWrapper`: the first keeps paying rewards after a termination, the second drops the
    final observation). Brax envs take actions in [-1, 1] and scale them themselves.

    Physics back-end `BRAX_BACKEND="mjx"`: MuJoCo's own dynamics in XLA, the simulator the
    reference trains on through Playground (so "highest" precision and the MuJoCo task defaults
    carry over), fast per step on GPU and CPU. "positional" (PureJaxRL's choice) and "spring" are
    approximate physics with different dynamics; "generalized" compiles a little faster on CPU
    but steps slower.
    """

    def __init__(self, env_name: str, backend: str = BRAX_BACKEND):
        from brax import envs as brax_envs

        self.backend = brax_envs.get_environment(env_name, backend=backend)
        self.name = env_name
        # Traced, not run: Brax's observation_size runs a reset eagerly, op by op (45 s on CPU).
        self.obs_dim = int(jax.eval_shape(self.backend.reset, jax.random.PRNGKey(0)).obs.shape[-1])
        self.action_dim = int(self.backend.action_size)
        self.privileged_dim = 0

    def reset(self, key, params=None):
        state = self.backend.reset(key)
        return state.obs, state

    def step(self, key, state, action, params=None):
        del key  # Brax steps are deterministic given the state
        state = self.backend.step(state, action)
        return state.obs, state, state.reward, state.done > 0.5, {}

    def privileged(self, state):
        return jnp.zeros((0,), jnp.float32)


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


class PlaygroundBase(UnitBoxSpaces):
    """A Playground task (`impl` "jax" or "warp") with the actor's observation as `obs` and the
    critic-only tail from `privileged(state)`. Playground tasks take actions in [-1, 1]."""

    def __init__(self, env_name: str, impl: str, push: bool = False, tuned_reward: bool = False):
        overrides: dict[str, Any] = {"impl": impl}
        if env_name in HUMANOID_JOYSTICK_TASKS and not push:
            overrides.update({"push_config.enable": False, "push_config.magnitude_range": [0.0, 0.0]})
        if tuned_reward:
            overrides.update({f"reward_config.scales.{k}": v for k, v in TUNED_REWARD_SCALES.items()})
        self.backend = _playground_registry().load(env_name, config_overrides=overrides)
        self.name = env_name
        obs_size = self.backend.observation_size
        if isinstance(obs_size, dict):  # asymmetric: actor `state`, critic `privileged_state`
            self.obs_dim = int(obs_size["state"][0])
            self.privileged_dim = int(obs_size["privileged_state"][0]) - self.obs_dim
        else:
            self.obs_dim, self.privileged_dim = int(obs_size), 0
        self.action_dim = int(self.backend.action_size)

    def _actor_obs(self, state):
        return state.obs["state"] if isinstance(state.obs, dict) else state.obs

    def privileged(self, state):
        if isinstance(state.obs, dict):
            return state.obs["privileged_state"][self.obs_dim :]
        return jnp.zeros((0,), state.obs.dtype)

    def reset(self, key, params=None):
        state = self.backend.reset(key)
        return self._actor_obs(state), state

    def step(self, key, state, action, params=None):
        del key  # Playground steps are deterministic given the state
        state = self.backend.step(state, action)
        return self._actor_obs(state), state, state.reward, state.done > 0.5, {}

    def restart(self, stepped, first):
        # The fork's BraxAutoResetWrapper restores physics and observation; `info` (e.g. a
        # joystick command) and metrics carry over into the next episode.
        return stepped.replace(data=first.data, obs=first.obs)
