"""policy.py: picking one agent out of a vmapped run, saving and loading it, and replaying
`make_train`'s evaluation with it. One compiled two-seed training run is shared by the module."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageSequence

import purejax_fasttd3 as ft
from fasttd3x import policy as pol
from shared_configs import PENDULUM_SMALL as SMALL

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config():
    return ft.make_config("Pendulum-v1", **SMALL)


@pytest.fixture(scope="module")
def run(config):
    """Two seeds trained at once: (their train rngs, the vmapped output)."""
    rngs = jax.random.split(jax.random.PRNGKey(3), 2)
    return rngs, jax.jit(jax.vmap(ft.make_train(config)))(rngs)


def _assert_trees_equal(a, b):
    """Exact: slicing, saving and loading copy arrays; nothing is recomputed."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_select_agent_slices_every_leaf(run):
    _, out = run
    one = pol.select_agent(out, 1)
    _assert_trees_equal(one, jax.tree.map(lambda x: x[1], out))
    assert isinstance(one["runner_state"], ft.TrainState)
    assert one["metrics"]["eval_return"].shape == (1,)
    # Nested vmaps: a [G, S, ...] tree indexed by (grid point, seed).
    grid = jax.tree.map(lambda x: jnp.stack([x, x + 1]), out["runner_state"])
    _assert_trees_equal(pol.select_agent(grid, (1, 0)), jax.tree.map(lambda x: x[0] + 1, out["runner_state"]))
    _assert_trees_equal(pol.select_agent(grid, (1, -1)), pol.select_agent(grid, (1, 1)))
    with pytest.raises(IndexError, match="does not fit"):
        pol.select_agent(out, 2)  # JAX itself would clamp this to agent 1
    with pytest.raises(IndexError, match="does not fit"):
        pol.select_agent(out["metrics"], (0, 0, 0))


def test_best_agent_ignores_nan():
    metrics = {
        "eval_return": np.array([[-5.0, -1.0], [-9.0, np.nan], [0.0, -3.0]]),
        "train_return": np.array([[1.0, np.nan], [np.nan, 2.0], [3.0, np.nan]]),
    }
    assert pol.best_agent(metrics) == 0  # the last eval counts, not the best one
    assert pol.best_agent(metrics, "train_return") == 1
    grid = {"eval_return": np.array([[[-2.0], [np.nan]], [[np.nan], [-1.0]], [[-4.0], [-3.0]]])}
    assert pol.best_agent(grid) == (1, 1)
    with pytest.raises(ValueError, match="NaN"):
        pol.best_agent({"eval_return": np.full((2, 3), np.nan)})


def test_save_load_roundtrip(run, config, tmp_path):
    _, out = run
    policy = pol.policy_from_state(pol.select_agent(out["runner_state"], 1))
    pol.save_policy(tmp_path / "agent", config, policy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]  # no staging folder left
    loaded_config, loaded = pol.load_policy(tmp_path / "agent")
    assert loaded_config == config
    assert isinstance(loaded, pol.Policy) and isinstance(loaded.obs_norm, ft.Normalizer)
    _assert_trees_equal(loaded, policy)
    jax.tree.map(lambda a, b: np.testing.assert_equal(a.dtype, b.dtype), loaded, policy)
    with pytest.raises(FileExistsError):
        pol.save_policy(tmp_path / "agent", config, policy)


def test_save_failure_leaves_nothing(run, tmp_path):
    _, out = run
    policy = pol.policy_from_state(pol.select_agent(out["runner_state"], 0))
    with pytest.raises(TypeError):  # not JSON-serializable
        pol.save_policy(tmp_path / "agent", {"ENV_NAME": object()}, policy)
    assert list(tmp_path.iterdir()) == []


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved policy"):
        pol.load_policy(tmp_path / "missing")
    (tmp_path / "not_a_policy").mkdir()
    with pytest.raises(ValueError, match="not a policy"):
        pol.load_policy(tmp_path / "not_a_policy")


def test_reloaded_policy_reproduces_training_eval(run, config, tmp_path):
    rngs, out = run
    pol.save_policy(
        tmp_path / "agent", config, pol.policy_from_state(pol.select_agent(out["runner_state"], 1))
    )
    loaded_config, policy = pol.load_policy(tmp_path / "agent")
    # make_train's INIT: rng, k_actor, k_critic, k_env, k_noise, k_eval = jax.random.split(rng, 6)
    k_eval = jax.random.split(rngs[1], 6)[5]
    returns = jax.jit(lambda p, k: pol.evaluate_policy(loaded_config, p, k))(policy, k_eval)
    assert returns.shape == (config["NUM_EVAL_ENVS"],)
    np.testing.assert_allclose(returns.mean(), out["metrics"]["eval_return"][1, -1], rtol=1e-4)
    # Agents vmapped at once give each agent's own return.
    both = jax.jit(jax.vmap(lambda p, k: pol.evaluate_policy(config, p, k).mean()))(
        pol.policy_from_state(out["runner_state"]), jax.vmap(lambda r: jax.random.split(r, 6)[5])(rngs)
    )
    np.testing.assert_allclose(both, out["metrics"]["eval_return"][:, -1], rtol=1e-4)


def test_act_range_and_shape(run, config):
    _, out = run
    policy = pol.policy_from_state(pol.select_agent(out["runner_state"], 0))
    obs = jax.random.normal(jax.random.PRNGKey(0), (7, 3)) * 100.0  # far outside the data
    action = np.asarray(pol.act(config, policy, obs))
    assert action.shape == (7, 1)
    assert np.all(np.abs(action) <= 1.0)
    # One observation and a batch of seven are programs of different shapes (a matrix-vector
    # against a matrix-matrix product): the API promises the same action to float32 rounding.
    single = np.asarray(pol.act(config, policy, obs[0]))
    assert single.shape == (1,)
    np.testing.assert_allclose(single, action[0], rtol=1e-5, atol=1e-6)


def test_render_rejects_gymnax(config, tmp_path):
    policy = pol.Policy({}, ft.normalizer_init(3))  # never used: the task is checked first
    with pytest.raises(ValueError, match="Playground"):
        pol.render_episode(config, policy, tmp_path / "x.gif", jax.random.PRNGKey(0))
    assert list(tmp_path.iterdir()) == []


# mujoco picks its OpenGL backend (MUJOCO_GL) once, at import, so rendering runs in subprocesses.
_GL_PROBE = "import mujoco; mujoco.Renderer(mujoco.MjModel.from_xml_string('<mujoco/>'), 8, 8).close()"
_RENDER_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp
    import purejax_fasttd3 as ft; from fasttd3x import envs, networks, policy as pol

    config = ft.make_config("CartpoleBalance", ACTOR_HIDDEN_DIM=16)
    env = envs.make_env(config)
    params = networks.Actor(env.action_dim, 16).init(jax.random.PRNGKey(0), jnp.zeros((1, env.obs_dim)))
    policy = pol.Policy(params, ft.normalizer_init(env.obs_dim))
    frames = pol.render_episode(
        config, policy, sys.argv[1], jax.random.PRNGKey(1), num_steps=4, height=48, width=64
    )
    print("frames", frames)
    """
)


def _python(code, cwd, backend, *args):
    """Runs `code` with this repo importable, in `cwd` (MuJoCo writes its log there)."""
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}  # mujoco sets it
    env.update(MUJOCO_GL=backend, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_render_playground_episode(tmp_path):
    candidates = [os.environ["MUJOCO_GL"]] if os.environ.get("MUJOCO_GL") else ["egl", "osmesa"]
    failures = {}
    for backend in candidates:
        probe = _python(_GL_PROBE, tmp_path, backend)
        if probe.returncode == 0:
            break
        failures[backend] = (probe.stderr.strip().splitlines() or ["no output"])[-1]
    else:
        pytest.skip(f"no OpenGL backend works here: {failures}")

    result = _python(_RENDER_SCRIPT, tmp_path, backend, "episode.gif")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames 5" in result.stdout  # the reset state and 4 steps
    with Image.open(tmp_path / "episode.gif") as gif:  # Pillow merges repeated frames, not time
        durations = [gif.info["duration"] for _ in ImageSequence.Iterator(gif)]
        assert gif.size == (64, 48) and sum(durations) == 5 * 10  # CartpoleBalance: 100 fps
