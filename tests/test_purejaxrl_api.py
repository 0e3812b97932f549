"""PureJaxRL's algorithms run on our env stacks: what `ppo_continuous_action.make_train` does with
an env (spaces, LogWrapper, ClipAction, VecEnv, NormalizeVecObservation, NormalizeVecReward, and
minibatch reshapes of every `info` leaf) over Pendulum-v1, Brax inverted_pendulum and Playground
CartpoleBalance, a few steps each with random actions (no learning).

PureJaxRL's `wrappers.py` is not a package: its files import it as `from wrappers import ...`, and
it imports navix and brax at the top: the tests use our stand-in,
upstream/purejaxrl/wrappers_stand_in.py.
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejax_fasttd3 as ft
from fasttd3x import envs

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "upstream" / "purejaxrl"))
from wrappers_stand_in import install_wrappers  # noqa: E402


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
