"""Brax tasks and the gymnax-API wrappers, checked against the raw envs stepped by hand.

Compiling MJX physics dominates the cost, so every Brax program is compiled once per module.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import purejax_fasttd3 as ft
from fasttd3x import configs, envs
from shared_configs import SMALL_AGENT

# inverted_pendulum: reward 1 every step, terminates once the pole leans past 0.2 rad.
TASK = "inverted_pendulum"
REPEAT = 3
EPISODE = 6  # physics steps: a time-out after 2 agent steps
AGENT_STEPS = 5
# Per env: a constant action; a strong push topples the pole within a few physics steps, a
# gentle one does not within the time limit.
ACTIONS = np.array([0.0, 0.05, 1.0, -1.0, 0.6, -0.4], np.float32)
NUM_ENVS = len(ACTIONS)
_KEYS = jax.random.split(jax.random.PRNGKey(3), (AGENT_STEPS + 1) * NUM_ENVS).reshape(
    AGENT_STEPS + 1, NUM_ENVS, 2
)


def _np(tree):
    return jax.tree.map(np.asarray, tree)


@pytest.fixture(scope="module")
def rollout():
    """Our stack: NUM_ENVS envs, AGENT_STEPS steps with known keys, action repeat 3."""
    config = ft.make_config(TASK, EPISODE_LENGTH=EPISODE, ACTION_REPEAT=REPEAT)
    env = envs.make_env(config)
    assert config["RESET_MODE"] == "fresh" and env.episode_iterations == EPISODE // REPEAT

    def run(actions):
        def body(state, keys):
            state, out = jax.vmap(env.step)(state, actions, keys)
            return state, (out, state.obs, state.steps)

        return jax.lax.scan(body, jax.vmap(env.reset)(_KEYS[0]), _KEYS[1:])[1]

    out = _np(jax.jit(run)(jnp.asarray(ACTIONS)[:, None]))
    return env, out


@pytest.fixture(scope="module")
def raw_reference(rollout):
    """The raw Brax env (no Brax wrappers) stepped physics step by physics step with no reset,
    in one compiled program; also the reset observation for every (agent step, env) key."""
    raw = rollout[0].backend

    def one_env(keys, action):
        start = raw.reset(keys[0])

        def body(state, _):
            state = raw.step(state, jnp.array([action]))
            return state, (state.obs, state.reward, state.done > 0.5)

        obs, rewards, dones = jax.lax.scan(body, start, None, length=EPISODE)[1]
        fresh = jax.vmap(lambda k: raw.reset(jax.random.split(k)[1]).obs)(keys[1:])
        return jnp.concatenate([start.obs[None], obs]), rewards, dones, fresh

    obs, rewards, dones, fresh = _np(jax.jit(jax.vmap(one_env, in_axes=(1, 0)))(_KEYS, jnp.asarray(ACTIONS)))
    return fresh, list(zip(obs, rewards, dones))


def test_brax_final_obs_truncation_and_termination(rollout, raw_reference):
    """Agent step t covers physics steps 3t+1..3t+3. The first episode ends at the first agent
    step containing a raw termination (terminated), else at the time-out (truncated); its final
    obs is the raw obs after the whole repeat, and the next obs is a fresh reset."""
    _, (out, obs, steps) = rollout
    fresh, episodes = raw_reference
    outcomes = set()
    for e, (raw_obs, _, raw_done) in enumerate(episodes):
        terminated_at = [t for t in range(EPISODE // REPEAT) if raw_done[: REPEAT * (t + 1)].any()]
        end = terminated_at[0] if terminated_at else EPISODE // REPEAT - 1
        truncated = not terminated_at
        outcomes.add(truncated)
        np.testing.assert_array_equal(out.done[: end + 1, e], np.arange(end + 1) == end)
        np.testing.assert_array_equal(out.truncated[: end + 1, e], (np.arange(end + 1) == end) & truncated)
        for t in range(end + 1):
            np.testing.assert_allclose(out.final_obs[t, e], raw_obs[REPEAT * (t + 1)], rtol=1e-4, atol=1e-5)
        assert steps[end, e] == 0 and steps[0, e] == (REPEAT if end > 0 else 0)
        np.testing.assert_allclose(obs[end, e], fresh[e, end], rtol=1e-6)
        assert out.final_privileged.shape[-1] == 0
    assert outcomes == {True, False}, "the cases must cover both a termination and a time-out"


def test_brax_rewards_stop_at_termination_inside_a_repeat(rollout, raw_reference):
    """The reward of an agent step is the raw rewards of its repeats up to the first
    termination, included; later repeats (still stepped) earn nothing."""
    _, (out, _, _) = rollout
    _, episodes = raw_reference
    cut_short = 0
    for e, (_, raw_reward, raw_done) in enumerate(episodes):
        for t in range(EPISODE // REPEAT):
            window = slice(REPEAT * t, REPEAT * (t + 1))
            if raw_done[: window.start].any():
                break  # the episode already ended; the env was reset
            dones = raw_done[window]
            paid = np.argmax(dones) + 1 if dones.any() else REPEAT
            cut_short += paid < REPEAT
            np.testing.assert_allclose(out.reward[t, e], raw_reward[window][:paid].sum(), rtol=1e-6)
    assert cut_short > 0, "some termination must fall before the last repeat"


# ----------------------------------------------------------------------------------------------
# Composition with a PureJaxRL-style wrapper (our own, written for this test)
# ----------------------------------------------------------------------------------------------
@struct.dataclass
class LogState:
    env_state: Any
    episode_return: jax.Array
    returned_episode_return: jax.Array


class LogWrapper:
    """Episode-return logging in PureJaxRL's style: own state dataclass, delegation by
    __getattr__, and it reads only (obs, state, reward, done, info)."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs, LogState(state, jnp.float32(0.0), jnp.float32(0.0))

    def step(self, key, state, action, params=None):
        obs, inner, reward, done, info = self._env.step(key, state.env_state, action, params)
        total = state.episode_return + reward
        returned = jnp.where(done, total, state.returned_episode_return)
        info = {**info, "returned_episode_return": returned}
        return obs, LogState(inner, jnp.where(done, 0.0, total), returned), reward, done, info


GYM_EPISODE = 5


def _gym_rollout(env, steps, action):
    def run(key):
        obs, state = env.reset(key)

        def body(state, key):
            obs, state, reward, done, info = env.step(key, state, action)
            return state, (obs, reward, done, info)

        return obs, jax.lax.scan(body, state, jax.random.split(key, steps))[1]

    return _np(jax.jit(run)(jax.random.PRNGKey(5)))


def test_log_wrapper_composes_on_top_of_the_stack():
    config = ft.make_config("Pendulum-v1", EPISODE_LENGTH=GYM_EPISODE)
    env = LogWrapper(envs.wrap(envs.GymnaxBase("Pendulum-v1"), config))
    # Attributes reach through both kinds of wrapper.
    assert (env.obs_dim, env.action_dim, env.action_repeat, env.max_steps) == (3, 1, 1, GYM_EPISODE)
    first_obs, (obs, reward, done, info) = _gym_rollout(env, 2 * GYM_EPISODE, jnp.array([0.5]))
    np.testing.assert_array_equal(np.flatnonzero(done), [GYM_EPISODE - 1, 2 * GYM_EPISODE - 1])
    assert info["truncated"][done].all() and not info["truncated"][~done].any()
    # The logged return of each episode is the sum of the raw env's rewards (torque 1.0 = 0.5
    # rescaled from [-1, 1] to [-2, 2]), stepped by hand from the same start.
    raw, params = envs._gymnax_make("Pendulum-v1")
    _, state = raw.reset_env(jax.random.PRNGKey(5), params)
    expected = 0.0
    for _ in range(GYM_EPISODE):
        o, state, r, *_ = raw.step_env(jax.random.PRNGKey(0), state, jnp.array([1.0]), params)
        expected += float(r)
    np.testing.assert_allclose(info["returned_episode_return"][GYM_EPISODE - 1], expected, rtol=1e-5)
    np.testing.assert_allclose(info["final_obs"][GYM_EPISODE - 1], np.asarray(o), rtol=1e-5)
    assert info["returned_episode_return"][0] == 0.0  # nothing returned before the first done


def test_foreign_wrapper_state_inside_first_state_auto_reset():
    """AutoReset finds the back-end state under a foreign wrapper state (`env_state` chain) and
    restores the first state of every env with that wrapper's state intact."""
    config = ft.make_config("Pendulum-v1")
    inner = LogWrapper(envs.TimeLimit(envs.ClipRescaleAction(envs.GymnaxBase("Pendulum-v1")), GYM_EPISODE))
    env = envs.AutoReset(inner, "first_state")
    first_obs, (obs, _, done, info) = _gym_rollout(env, 2 * GYM_EPISODE, jnp.array([0.5]))
    assert done[GYM_EPISODE - 1] and done[2 * GYM_EPISODE - 1]
    np.testing.assert_allclose(obs[GYM_EPISODE - 1], first_obs)
    np.testing.assert_allclose(
        info["final_obs"][2 * GYM_EPISODE - 1], info["final_obs"][GYM_EPISODE - 1], rtol=1e-5
    )
    assert config["RESET_MODE"] == "fresh"  # first_state here is the wrapper's own argument


# ----------------------------------------------------------------------------------------------
# Any continuous gymnax env
# ----------------------------------------------------------------------------------------------
def test_other_continuous_gymnax_env_is_rescaled_to_its_bounds():
    """PointRobot-misc takes actions in [-0.1, 0.1]: our 1.0 must reach it as 0.1."""
    config = ft.make_config("PointRobot-misc", EPISODE_LENGTH=3)
    env = envs.make_env(config)
    raw, params = envs._gymnax_make("PointRobot-misc")
    assert (env.obs_dim, env.action_dim, env.episode_iterations) == (
        raw.observation_space(params).shape[0],
        2,
        3,
    )
    state = env.reset(jax.random.PRNGKey(0))
    action = jnp.array([1.0, -0.5])
    state, out = jax.jit(env.step)(state, action, jax.random.PRNGKey(1))
    _, raw_state = raw.reset_env(jax.random.PRNGKey(0), params)
    key_step = jax.random.split(jax.random.split(jax.random.PRNGKey(1))[0], 1)[0]
    raw_obs, _, raw_reward, _, _ = raw.step_env(key_step, raw_state, jnp.array([0.1, -0.05]), params)
    np.testing.assert_allclose(out.final_obs, raw_obs, rtol=1e-6)
    np.testing.assert_allclose(out.reward, raw_reward, rtol=1e-6)


def test_discrete_and_unknown_tasks_are_refused():
    with pytest.raises(ValueError, match=r"CartPole-v1.*Discrete.*Pendulum-v1"):
        ft.make_config("CartPole-v1")
    with pytest.raises(ValueError, match=r"NoSuchTask.*inverted_pendulum"):
        ft.make_config("NoSuchTask")


def test_brax_defaults_are_config_keys():
    known = set(configs.STATIC_DEFAULTS) | set(ft.HPARAM_DEFAULTS)
    from brax import envs as brax_envs

    for task, defaults in configs.BRAX_TASK_DEFAULTS.items():
        assert task in brax_envs._envs and set(defaults) <= known, task
        config = ft.make_config(task)  # validates every value
        assert config["EPISODE_LENGTH"] == 1000 and config["V_MIN"] < config["V_MAX"]


# ----------------------------------------------------------------------------------------------
# Training on a Brax task
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_short_training_run_on_brax():
    config = ft.make_config(
        TASK,
        **SMALL_AGENT,
        NUM_EVAL_ENVS=4,
        TOTAL_TIMESTEPS=40,
        EVAL_INTERVAL=20,
        BUFFER_SIZE=64,
        EPISODE_LENGTH=50,
        LEARNING_STARTS=5,
    )
    metrics = _np(jax.jit(ft.make_train(config))(jax.random.PRNGKey(0))["metrics"])
    for name, value in metrics.items():
        assert value.shape == (2,) and np.all(np.isfinite(value)), name
    np.testing.assert_array_equal(metrics["iteration"], [20, 40])
    # inverted_pendulum pays 1 per step for at most 50 steps.
    assert np.all((metrics["eval_return"] >= 1) & (metrics["eval_return"] <= 50))
