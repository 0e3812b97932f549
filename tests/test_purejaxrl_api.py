"""PureJaxRL's algorithms run on our env stacks: what `ppo_continuous_action.make_train` does with
an env (spaces, LogWrapper, ClipAction, VecEnv, NormalizeVecObservation, NormalizeVecReward, and
minibatch reshapes of every `info` leaf) over Pendulum-v1, Brax inverted_pendulum and Playground
CartpoleBalance, a few steps each with random actions (no learning).

PureJaxRL's `wrappers.py` is not a package: its files import it as `from wrappers import ...`, and
it imports navix and brax at the top. `WRAPPERS_PY` is our stand-in with the pieces PureJaxRL's
algorithms take from it, the same names, signatures and `info` keys, written here so the tests need
neither network nor navix; `install_wrappers(folder)` writes it as `folder/wrappers.py`.
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
import purejax_fasttd3 as ft

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


@pytest.fixture(scope="module")
def wrappers(tmp_path_factory):
    folder = str(install_wrappers(tmp_path_factory.mktemp("purejaxrl")))
    sys.path.insert(0, folder)
    sys.modules.pop("wrappers", None)
    import wrappers

    yield wrappers
    sys.path.remove(folder)
    sys.modules.pop("wrappers", None)


NUM_ENVS, NUM_STEPS, NUM_MINIBATCHES = 4, 6, 2
STACKS = {  # task -> (make_config overrides, observation size, action size)
    "Pendulum-v1": ({"EPISODE_LENGTH": 4}, 3, 1),
    "inverted_pendulum": ({"EPISODE_LENGTH": 4}, 4, 1),
    "CartpoleBalance": ({"EPISODE_LENGTH": 4}, 5, 1),
}


@pytest.mark.parametrize("env_name", list(STACKS))
def test_ppo_continuous_action_env_handling_runs_on_our_stack(wrappers, env_name):
    overrides, obs_size, act_size = STACKS[env_name]
    config = ft.make_config(env_name, **overrides)
    env = envs.wrap(envs.make_base(config), config)
    env_params = getattr(env, "default_params", None)
    # The spaces PureJaxRL reads, as gymnax types; the agent acts in [-1, 1].
    from gymnax.environments import spaces

    action_space, observation_space = env.action_space(env_params), env.observation_space(env_params)
    assert isinstance(action_space, spaces.Box) and isinstance(observation_space, spaces.Box)
    assert action_space.shape == (act_size,) and observation_space.shape == (obs_size,)
    np.testing.assert_array_equal(np.broadcast_to(action_space.low, (act_size,)), -1.0)
    np.testing.assert_array_equal(np.broadcast_to(action_space.high, (act_size,)), 1.0)
    assert (env_params is not None) == (env_name == "Pendulum-v1")  # gymnax has default_params
    layer = env  # every wrapper answers the same spaces, down to ClipRescaleAction
    while isinstance(layer, envs.Wrapper):
        assert layer.observation_space(env_params).shape == (obs_size,)
        np.testing.assert_array_equal(layer.action_space(env_params).high, action_space.high)
        layer = layer._env
    assert isinstance(layer.action_space(env_params), spaces.Box)  # the base: native bounds
    # ppo_continuous_action.make_train's stack, in its order.
    env = wrappers.LogWrapper(env)
    env = wrappers.ClipAction(env)
    env = wrappers.VecEnv(env)
    env = wrappers.NormalizeVecObservation(env)
    env = wrappers.NormalizeVecReward(env, 0.99)

    def rollout(rng):
        rng, key = jax.random.split(rng)
        obs, state = env.reset(jax.random.split(key, NUM_ENVS), env_params)

        def step(carry, key):
            obs, state = carry
            k_act, k_step = jax.random.split(key)
            action = 2.0 * jax.random.normal(k_act, (NUM_ENVS, action_space.shape[0]))  # clipped
            next_obs, state, reward, done, info = env.step(
                jax.random.split(k_step, NUM_ENVS), state, action, env_params
            )
            return (next_obs, state), (obs, action, reward, done, info)

        return jax.lax.scan(step, (obs, state), jax.random.split(rng, NUM_STEPS))[1]

    obs, action, reward, done, info = jax.jit(rollout)(jax.random.PRNGKey(0))
    assert obs.shape == (NUM_STEPS, NUM_ENVS, obs_size)
    assert np.isfinite(np.asarray(obs)).all() and np.isfinite(np.asarray(reward)).all()
    # Episodes of at most 4 steps; LogWrapper reports a return once an env has ended one.
    done = np.asarray(done)
    assert done[:4].any(0).all()
    ended = np.logical_or.accumulate(done, axis=0)
    np.testing.assert_array_equal(np.asarray(info["returned_episode_returns"]) != 0.0, ended)
    assert "final_privileged" not in info  # no privileged part in these tasks
    # The minibatch reshapes of PPO's update epoch, on every leaf of the trajectory.
    batch_size = NUM_STEPS * NUM_ENVS
    batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), (obs, action, info))
    permutation = jax.random.permutation(jax.random.PRNGKey(1), batch_size)
    shuffled = jax.tree.map(lambda x: jnp.take(x, permutation, axis=0), batch)
    minibatches = jax.tree.map(lambda x: jnp.reshape(x, [NUM_MINIBATCHES, -1] + list(x.shape[1:])), shuffled)
    for leaf in jax.tree.leaves(minibatches):
        assert leaf.shape[:2] == (NUM_MINIBATCHES, batch_size // NUM_MINIBATCHES)
        assert leaf.size > 0
