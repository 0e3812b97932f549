"""A stand-in for PureJaxRL's `wrappers.py`, which is not a package (its files import it as
`from wrappers import ...`) and imports navix and brax at the top. `WRAPPERS_PY` holds the pieces
PureJaxRL's algorithms take from it, the same names, signatures and `info` keys, so that the tests
and bench/bench_upstream.py need neither network nor navix; `install_wrappers(folder)` writes it
as `folder/wrappers.py`."""

import pathlib

WRAPPERS_PY = """
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


class GymnaxWrapper:
    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)


@struct.dataclass
class LogEnvState:
    env_state: Any
    episode_returns: Any
    episode_lengths: Any
    returned_episode_returns: Any
    returned_episode_lengths: Any
    timestep: Any


class LogWrapper(GymnaxWrapper):
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        return obs, LogEnvState(env_state, 0, 0, 0, 0, 0)

    def step(self, key, state, action, params=None):
        obs, env_state, reward, done, info = self._env.step(
            key, state.env_state, action, params
        )
        ret, length = state.episode_returns + reward, state.episode_lengths + 1
        state = LogEnvState(
            env_state,
            ret * (1 - done),
            length * (1 - done),
            state.returned_episode_returns * (1 - done) + ret * done,
            state.returned_episode_lengths * (1 - done) + length * done,
            state.timestep + 1,
        )
        info["returned_episode_returns"] = state.returned_episode_returns
        info["returned_episode_lengths"] = state.returned_episode_lengths
        info["timestep"] = state.timestep
        info["returned_episode"] = done
        return obs, state, reward, done, info


class ClipAction(GymnaxWrapper):
    def __init__(self, env, low=-1.0, high=1.0):
        super().__init__(env)
        self.low, self.high = low, high

    def step(self, key, state, action, params=None):
        action = jnp.clip(action, self.low, self.high)
        return self._env.step(key, state, action, params)


class VecEnv(GymnaxWrapper):
    def __init__(self, env):
        super().__init__(env)
        self.reset = jax.vmap(self._env.reset, in_axes=(0, None))
        self.step = jax.vmap(self._env.step, in_axes=(0, 0, 0, None))


def _running_moments(mean, var, count, batch):
    batch_mean, batch_var, n = batch.mean(0), batch.var(0), batch.shape[0]
    delta, total = batch_mean - mean, count + n
    m2 = var * count + batch_var * n + jnp.square(delta) * count * n / total
    return mean + delta * n / total, m2 / total, total


@struct.dataclass
class NormalizeVecObsEnvState:
    mean: Any
    var: Any
    count: Any
    env_state: Any


class NormalizeVecObservation(GymnaxWrapper):
    def _normalized(self, obs, mean, var, count, env_state):
        mean, var, count = _running_moments(mean, var, count, obs)
        state = NormalizeVecObsEnvState(mean, var, count, env_state)
        return (obs - mean) / jnp.sqrt(var + 1e-8), state

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return self._normalized(obs, jnp.zeros_like(obs), jnp.ones_like(obs), 1e-4, state)

    def step(self, key, state, action, params=None):
        obs, env_state, reward, done, info = self._env.step(
            key, state.env_state, action, params
        )
        obs, state = self._normalized(obs, state.mean, state.var, state.count, env_state)
        return obs, state, reward, done, info


@struct.dataclass
class NormalizeVecRewEnvState:
    mean: Any
    var: Any
    count: Any
    return_val: Any
    env_state: Any


class NormalizeVecReward(GymnaxWrapper):
    def __init__(self, env, gamma):
        super().__init__(env)
        self.gamma = gamma

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        zeros = jnp.zeros((obs.shape[0],))
        return obs, NormalizeVecRewEnvState(0.0, 1.0, 1e-4, zeros, state)

    def step(self, key, state, action, params=None):
        obs, env_state, reward, done, info = self._env.step(
            key, state.env_state, action, params
        )
        return_val = state.return_val * self.gamma * (1 - done) + reward
        mean, var, count = _running_moments(state.mean, state.var, state.count, return_val)
        state = NormalizeVecRewEnvState(mean, var, count, return_val, env_state)
        return obs, state, reward / jnp.sqrt(var + 1e-8), done, info
"""


def install_wrappers(folder: pathlib.Path) -> pathlib.Path:
    """Writes the stand-in as `folder/wrappers.py` and returns `folder`."""
    (folder / "wrappers.py").write_text(WRAPPERS_PY)
    return folder
