"""Our auto-reset keeps the true final observation and flags truncation from the step counter,
checked against the raw back-end envs stepped independently, without any reset."""

import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejax_fasttd3 as ft
from fasttd3x import envs

EPISODE = 5
STEPS = 12  # crosses two time-outs (after steps 5 and 10)
NUM_ENVS = 2


_KEYS = jax.random.split(jax.random.PRNGKey(1), (STEPS + 1) * NUM_ENVS).reshape(STEPS + 1, NUM_ENVS, 2)
_compiled = {}


def _rollout(env, action):
    """Steps NUM_ENVS envs STEPS times with a constant action and known keys for every step."""

    def rollout(action):
        def body(state, step_keys):
            actions = jnp.broadcast_to(action, (NUM_ENVS, env.action_dim))
            next_state, out = jax.vmap(env.step)(state, actions, step_keys)
            return next_state, (out, next_state.obs, next_state.steps)

        return jax.lax.scan(body, jax.vmap(env.reset)(_KEYS[0]), _KEYS[1:])[1]

    if env.reset not in _compiled:  # one compilation per env
        _compiled[env.reset] = jax.jit(rollout)
    return _KEYS, jax.tree.map(np.asarray, _compiled[env.reset](jnp.float32(action)))


def _reset_key(t, env_index):
    """`Env.step` splits its key into (step, reset) keys."""
    return jax.random.split(_KEYS[t + 1, env_index])[1]


def _check_time_limit(out, obs, steps, raw_obs_at, reset_obs_for):
    """Shared assertions: dones at 5 and 10 steps, truncation, true final obs, fresh reset."""
    expected_done = np.zeros((STEPS, NUM_ENVS), bool)
    expected_done[[EPISODE - 1, 2 * EPISODE - 1]] = True
    np.testing.assert_array_equal(out.done, expected_done)
    np.testing.assert_array_equal(out.truncated, expected_done)  # these tasks never terminate
    # The step counter restarts after every done.
    np.testing.assert_array_equal(steps[:, 0], [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2])
    # Final obs at the time-out is what the raw env reaches after 5 steps with no reset...
    np.testing.assert_allclose(out.final_obs[EPISODE - 1], raw_obs_at(EPISODE), rtol=1e-5, atol=1e-5)
    # ...while the returned obs is a fresh reset with the key of that step.
    np.testing.assert_allclose(obs[EPISODE - 1], reset_obs_for(EPISODE - 1), rtol=1e-5, atol=1e-5)
    assert not np.allclose(obs[EPISODE - 1], out.final_obs[EPISODE - 1])
    # Away from dones the final obs is simply the next obs.
    not_done = ~out.done[:, 0]
    # Exact: where no episode ended, final_obs and obs select the same value of one step.
    np.testing.assert_array_equal(out.final_obs[not_done], obs[not_done])


def test_gymnax_auto_reset_keeps_final_obs():
    config = ft.make_config("Pendulum-v1", EPISODE_LENGTH=EPISODE)
    env = envs.make_env(config)
    keys, (out, obs, steps) = _rollout(env, 0.5)

    import gymnax

    raw, params = gymnax.make("Pendulum-v1")

    def raw_obs_at(n):
        obs_list = []
        for e in range(NUM_ENVS):
            o, s = raw.reset_env(keys[0, e], params)
            for _ in range(n):  # action 0.5 in [-1, 1] is a torque of 1.0 in [-2, 2]
                o, s, *_ = raw.step_env(jax.random.PRNGKey(0), s, jnp.array([1.0]), params)
            obs_list.append(np.asarray(o))
        return np.stack(obs_list)

    def reset_obs_for(t):
        return np.stack([np.asarray(raw.reset_env(_reset_key(t, e), params)[0]) for e in range(NUM_ENVS)])

    _check_time_limit(out, obs, steps, raw_obs_at, reset_obs_for)


@pytest.fixture(scope="module")
def cartpole():
    config = ft.make_config("CartpoleBalance", EPISODE_LENGTH=EPISODE, RESET_MODE="fresh")
    return envs.make_env(config)


@pytest.mark.slow
def test_playground_auto_reset_keeps_final_obs(cartpole):
    """CartpoleBalance (impl='jax') with 5-step episodes through our wrapper."""
    from mujoco_playground import registry

    task = registry.load("CartpoleBalance", config_overrides={"impl": "jax"})
    keys, (out, obs, steps) = _rollout(cartpole, 0.3)

    def raw_obs_at(n):
        def run(key):  # a loop, not n inlined MJX steps: one step body to compile
            state = jax.lax.fori_loop(0, n, lambda _, s: task.step(s, jnp.array([0.3])), task.reset(key))
            return state.obs

        return np.asarray(jax.jit(jax.vmap(run))(keys[0]))

    def reset_obs_for(t):
        reset_keys = jnp.stack([_reset_key(t, e) for e in range(NUM_ENVS)])
        return np.asarray(jax.jit(jax.vmap(lambda k: task.reset(k).obs))(reset_keys))

    _check_time_limit(out, obs, steps, raw_obs_at, reset_obs_for)
    assert cartpole.privileged_dim == 0 and cartpole.episode_iterations == EPISODE
    # Actions outside [-1, 1] are clipped before reaching the simulator.
    _, (clipped, _, _) = _rollout(cartpole, 7.0)
    _, (unit, _, _) = _rollout(cartpole, 1.0)
    np.testing.assert_allclose(clipped.final_obs, unit.final_obs)


@pytest.mark.slow
def test_playground_first_state_reset_restores_each_envs_first_state():
    """The reference fork's reset: every episode of an env starts from that env's first state."""
    config = ft.make_config("CartpoleBalance", EPISODE_LENGTH=EPISODE)
    assert config["RESET_MODE"] == "first_state"  # the Playground default, as in the reference
    env = envs.make_env(config)
    keys, (out, obs, steps) = _rollout(env, 0.3)
    first_obs = np.asarray(jax.jit(jax.vmap(lambda k: env.reset(k).obs))(keys[0]))  # jit: MJX eagerly is slow
    for t in (EPISODE - 1, 2 * EPISODE - 1):
        assert out.done[t].all() and out.truncated[t].all()
        np.testing.assert_allclose(obs[t], first_obs, rtol=1e-6)
    np.testing.assert_array_equal(steps[:, 0], [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2])
    # Same start, same actions, deterministic physics: both episodes end in the same state.
    np.testing.assert_allclose(out.final_obs[2 * EPISODE - 1], out.final_obs[EPISODE - 1], rtol=1e-5)
    assert not np.allclose(out.final_obs[EPISODE - 1], first_obs)


def test_gymnax_first_state_reset():
    config = ft.make_config("Pendulum-v1", EPISODE_LENGTH=EPISODE, RESET_MODE="first_state")
    env = envs.make_env(config)
    keys, (out, obs, _) = _rollout(env, 0.5)
    first_obs = np.asarray(jax.vmap(lambda k: env.reset(k).obs)(keys[0]))
    np.testing.assert_allclose(obs[EPISODE - 1], first_obs)
    np.testing.assert_allclose(out.final_obs[2 * EPISODE - 1], out.final_obs[EPISODE - 1], rtol=1e-5)


def _menagerie_path():
    if os.environ.get("MENAGERIE_PATH"):
        return os.environ["MENAGERIE_PATH"]
    shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "menagerie"
    return str(shared) if (shared / "booster_t1").exists() else None


@pytest.mark.slow
def test_t1_loads_offline_with_asymmetric_observations(monkeypatch):
    """T1 loads from MENAGERIE_PATH; privileged_state starts with state (the split we rely on)."""
    path = _menagerie_path()
    if path is None:
        pytest.skip("no MENAGERIE_PATH and no ../shared/menagerie with booster_t1")
    monkeypatch.setenv("MENAGERIE_PATH", path)
    config = ft.make_config("T1JoystickFlatTerrain")
    env = envs.make_env(config)
    assert (env.obs_dim, env.privileged_dim, env.action_dim) == (85, 95, 23)
    from mujoco_playground import registry

    task = registry.load("T1JoystickFlatTerrain", config_overrides={"impl": "jax"})
    obs = jax.jit(task.reset)(jax.random.PRNGKey(0)).obs
    # Exact: one reset builds both from the same values (the privileged state extends the state).
    np.testing.assert_array_equal(np.asarray(obs["privileged_state"][:85]), np.asarray(obs["state"]))


def _dot_precisions(lowered_text: str) -> list[str]:
    """The precision config of every dot_general in a lowered StableHLO program."""
    dots = [line for line in lowered_text.splitlines() if "stablehlo.dot_general" in line]
    return ["HIGHEST" if "HIGHEST" in line else "DEFAULT" for line in dots]


@pytest.mark.slow
def test_playground_physics_at_highest_precision(cartpole):
    """PHYSICS_PRECISION="highest" (the default) reaches every matmul of MJX's traced step."""
    state = jax.eval_shape(cartpole.reset, jax.random.PRNGKey(0))  # shapes suffice to lower
    lowered = jax.jit(cartpole.step).lower(state, jnp.zeros(cartpole.action_dim), jax.random.PRNGKey(1))
    precisions = _dot_precisions(lowered.as_text())
    assert precisions and set(precisions) == {"HIGHEST"}, precisions


def test_physics_precision_setting_leaves_networks_alone():
    """The setting wraps the simulator only: with "highest", a matmul traced inside the env
    functions carries HIGHEST while the networks' matmuls keep the default; "default" leaves
    the simulator at the backend's default too."""
    matrix = jnp.arange(9.0).reshape(3, 3)

    def sim(x):
        return x @ matrix

    x = jnp.ones(3)
    highest = envs._at_precision("highest", sim)
    assert _dot_precisions(jax.jit(highest).lower(x).as_text()) == ["HIGHEST"]
    assert _dot_precisions(jax.jit(envs._at_precision("default", sim)).lower(x).as_text()) == ["DEFAULT"]
    # Networks traced next to the wrapped simulator are untouched.
    both = jax.jit(lambda x: highest(x) + sim(x)).lower(x).as_text()
    assert sorted(_dot_precisions(both)) == ["DEFAULT", "HIGHEST"]
    # In a whole Pendulum training program (no matmuls in its physics) every matmul is a
    # network's: none run at HIGHEST although the config asks for it for the simulator.
    config = ft.make_config(
        "Pendulum-v1",
        NUM_ENVS=2,
        NUM_EVAL_ENVS=1,
        TOTAL_TIMESTEPS=20,
        EVAL_INTERVAL=20,
        BUFFER_SIZE=16,
        BATCH_SIZE=4,
        CRITIC_HIDDEN_DIM=8,
        ACTOR_HIDDEN_DIM=4,
        NUM_ATOMS=5,
    )
    assert config["PHYSICS_PRECISION"] == "highest"
    program = jax.jit(ft.make_train(config)).lower(jax.random.PRNGKey(0)).as_text()
    precisions = _dot_precisions(program)
    assert precisions and set(precisions) == {"DEFAULT"}


# ----------------------------------------------------------------------------------------------
# One state for both call conventions
# ----------------------------------------------------------------------------------------------
def test_trainer_state_is_the_wrapper_stacks_state():
    """`Env` carries the gymnax-API stack's own state: the stack steps it as it is, and the
    back-end state under it is the raw env's."""
    config = ft.make_config("Pendulum-v1", EPISODE_LENGTH=EPISODE)
    env = envs.make_env(config)
    stack = envs.wrap(envs.GymnaxBase("Pendulum-v1"), config)
    raw, params = envs._gymnax_make("Pendulum-v1")
    key, action = jax.random.PRNGKey(2), jnp.array([0.5])

    state = env.reset(key)
    assert isinstance(state.env_state, envs.AutoResetState)
    assert isinstance(state.env_state.env_state, envs.TimeLimitState) and state.steps == 0
    raw_obs, raw_state = raw.reset_env(key, params)
    np.testing.assert_allclose(state.obs, raw_obs, rtol=1e-6)
    for ours, theirs in zip(jax.tree.leaves(state.sim), jax.tree.leaves(raw_state), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)

    trainer_state, out = jax.jit(env.step)(state, action, key)
    obs, stack_state, reward, done, _ = jax.jit(stack.step)(key, state.env_state, action)
    assert jax.tree.structure(trainer_state.env_state) == jax.tree.structure(stack_state)
    for ours, theirs in zip(jax.tree.leaves(trainer_state.env_state), jax.tree.leaves(stack_state)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(trainer_state.obs, obs, rtol=1e-6)
    np.testing.assert_allclose(out.reward, reward, rtol=1e-6)
    assert trainer_state.steps == 1 and not done


class Drift:
    """A base env whose bookkeeping is known by hand: the state adds up the actions, the actor
    sees (s, 2s), the critic also s**2, the reward is s, and it terminates once s >= `end`."""

    obs_dim, privileged_dim, action_dim = 2, 1, 1
    backend = None

    def __init__(self, end: float):
        self.end = end

    def action_bounds(self, params=None):
        return None

    def privileged(self, s):
        return jnp.stack([s * s])

    def reset(self, key, params=None):
        return jnp.zeros(2), jnp.float32(0.0)

    def step(self, key, s, action, params=None):
        s = s + action[0]
        return jnp.stack([s, 2 * s]), s, s, s >= self.end, {}


def _drift_env(end: float, episode: int):
    config = {
        "ENV_NAME": "Drift",
        "EPISODE_LENGTH": episode,
        "ACTION_REPEAT": 1,
        "RESET_MODE": "fresh",
        "PHYSICS_PRECISION": "highest",
    }
    return envs._as_env(config, envs.wrap(Drift(end), config))


def test_privileged_tail_before_and_at_a_time_out():
    """The critic's tail follows the state, and at a done `final_privileged` is the tail of the
    state the step reached while `privileged` is already the reset state's."""
    env = _drift_env(end=10.0, episode=3)
    state = env.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(state.privileged, [0.0])
    step = jax.jit(env.step)
    for t, s in enumerate((0.5, 1.0, 1.5), start=1):
        state, out = step(state, jnp.array([0.5]), jax.random.PRNGKey(t))
        np.testing.assert_allclose(out.final_obs, [s, 2 * s])
        np.testing.assert_allclose(out.final_privileged, [s * s])
    assert out.done and out.truncated
    np.testing.assert_array_equal(state.obs, [0.0, 0.0])
    np.testing.assert_array_equal(state.privileged, [0.0])
    assert state.steps == 0


@pytest.mark.parametrize(
    ("end", "expected_done"),
    [
        (1.25, [False, False, False, False, True, True]),  # terminates after the time-out
        (1.0, [False, False, False, True, True, True]),  # terminates at the time-out
    ],
)
def test_eval_step_ends_at_terminations_only(end, expected_done):
    """Evaluation neither resets nor stops at the time limit (4 steps here): it runs on from the
    same state and its done is the env's termination, also when it falls on the time-out."""
    env = _drift_env(end=end, episode=4)

    def rollout(state):
        def body(state, _):
            state, reward, done = env.eval_step(state, jnp.array([0.25]))
            return state, (state.obs, state.steps, reward, done)

        return jax.lax.scan(body, state, None, length=6)[1]

    obs, steps, reward, done = jax.jit(rollout)(env.reset(jax.random.PRNGKey(0)))
    s = 0.25 * np.arange(1, 7)
    np.testing.assert_allclose(obs, np.stack([s, 2 * s], -1))
    np.testing.assert_allclose(reward, s)
    np.testing.assert_array_equal(done, expected_done)
    np.testing.assert_array_equal(steps, np.arange(1, 7))  # the time limit's counter runs on


# ----------------------------------------------------------------------------------------------
# The gymnax API as PureJaxRL reads it
# ----------------------------------------------------------------------------------------------
def test_info_holds_no_empty_arrays():
    """PureJaxRL reshapes every `info` leaf into minibatches: a task without a critic-only tail
    reports no `final_privileged`; one with a tail does."""
    config = ft.make_config("Pendulum-v1", EPISODE_LENGTH=EPISODE)
    stack = envs.wrap(envs.GymnaxBase("Pendulum-v1"), config)
    key = jax.random.PRNGKey(0)
    _, state = stack.reset(key)
    info = stack.step(key, state, jnp.array([0.5]))[4]
    assert set(info) == {"truncated", "final_obs"}
    assert all(leaf.size > 0 for leaf in jax.tree.leaves(info))
    drift = envs.wrap(Drift(end=10.0), {"EPISODE_LENGTH": 3, "ACTION_REPEAT": 1, "RESET_MODE": "fresh"})
    _, state = drift.reset(key)
    np.testing.assert_allclose(drift.step(key, state, jnp.array([0.5]))[4]["final_privileged"], [0.25])


def _assert_box(space, low, high, size):
    from gymnax.environments import spaces

    assert isinstance(space, spaces.Box) and space.shape == (size,)
    np.testing.assert_array_equal(np.broadcast_to(space.low, (size,)), np.float32(low))
    np.testing.assert_array_equal(np.broadcast_to(space.high, (size,)), np.float32(high))


def test_gymnax_spaces_of_the_stack():
    """The stack acts in [-1, 1] whatever the task's bounds; observations keep the task's."""
    config = ft.make_config("Pendulum-v1")
    base = envs.GymnaxBase("Pendulum-v1")
    stack = envs.wrap(base, config)
    high = [1.0, 1.0, 8.0]  # cos, sin, angular velocity (gymnax's max_speed)
    for env in (base, stack):
        _assert_box(env.observation_space(env.default_params), np.negative(high), high, 3)
    _assert_box(base.action_space(), [-2.0], [2.0], 1)  # gymnax's max_torque
    _assert_box(stack.action_space(base.default_params), [-1.0], [1.0], 1)
    action = stack.action_space().sample(jax.random.PRNGKey(0))
    assert action.shape == (1,) and stack.action_space().contains(action)
    _assert_box(envs.GymnaxBase("PointRobot-misc").action_space(), [-0.1] * 2, [0.1] * 2, 2)


@pytest.mark.parametrize(
    ("task", "obs_dim", "action_dim"), [("inverted_pendulum", 4, 1), ("CartpoleBalance", 5, 1)]
)
def test_brax_and_playground_spaces(task, obs_dim, action_dim):
    """Brax and Playground tasks take [-1, 1] as they are; observations are unbounded."""
    config = ft.make_config(task)
    base = envs.make_base(config)
    for env in (base, envs.wrap(base, config)):
        _assert_box(env.observation_space(), -np.inf, np.inf, obs_dim)
        _assert_box(env.action_space(), -1.0, 1.0, action_dim)
