"""One agent out of a vmapped FastTD3 run: pick it, save it, load it, act, evaluate, render.

`jax.vmap(train)` returns every agent stacked on leading axes ([S] for seeds, [G, S] for a grid
of seeds). These helpers take one agent out, keep only what acting needs (a `Policy`) and run it
exactly as `make_train`'s evaluation does:

    out = jax.jit(jax.vmap(train))(rngs)
    index = best_agent(out["metrics"])
    policy = policy_from_state(select_agent(out["runner_state"], index))
    save_policy("results/pendulum_best", config, policy)
    config, policy = load_policy("results/pendulum_best")
    returns = jax.jit(lambda p, k: evaluate_policy(config, p, k))(policy, jax.random.PRNGKey(1))
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from fasttd3x import checkpoints, envs
from fasttd3x.networks import make_networks
from fasttd3x.normalizers import Normalizer, normalize
from purejax_fasttd3 import TrainState, episode_returns, make_train_loop

CONFIG_FILE = "config.json"
PARAMS_DIR = "policy"  # the orbax checkpoint inside a saved policy's folder


class Policy(NamedTuple):
    """Everything needed to act: the actor and the actor-observation normalizer (frozen)."""

    actor_params: Any
    obs_norm: Normalizer


# ==================================================================================================
# PICKING ONE AGENT
# ==================================================================================================
def select_agent(tree, index: int | tuple[int, ...]):
    """Agent `index` of a pytree with leading agent axes (an int for one vmap, a tuple for nested).

    Checks the bounds itself: JAX clamps out-of-range indices, which would silently pick the
    last agent.
    """
    index = index if isinstance(index, tuple) else (index,)

    def pick(x):
        if x.ndim < len(index) or not all(-n <= i < n for i, n in zip(index, x.shape)):
            raise IndexError(f"Agent index {index} does not fit a leaf of shape {x.shape}.")
        return x[index]

    return jax.tree.map(pick, tree)


def best_agent(metrics: dict, metric: str = "eval_return") -> int | tuple[int, ...]:
    """Index of the agent whose last value of `metric` is highest; agents ending in NaN never win.

    The index has one entry per leading agent axis (an int when there is one), ready for
    `select_agent`.
    """
    final = np.asarray(metrics[metric])[..., -1]
    if np.isnan(final).all():
        raise ValueError(f"Every agent's final {metric} is NaN; there is no best agent.")
    index = np.unravel_index(np.nanargmax(final), final.shape)
    return int(index[0]) if final.ndim == 1 else tuple(int(i) for i in index)


def policy_from_state(train_state: TrainState) -> Policy:
    return Policy(train_state.actor_params, train_state.obs_norm)


# ==================================================================================================
# SAVE / LOAD
# ==================================================================================================
def save_policy(path, config: dict, policy: Policy, hparams: dict | None = None) -> None:
    """Writes `path/config.json` and the orbax checkpoint `path/policy`.

    `hparams` (the agent's traced settings, e.g. one grid point) overwrite the config's values
    in the saved config, so it records the settings this agent really trained with.

    Both are written into a hidden folder beside `path` that is renamed to `path` only once
    complete, so a crash never leaves a half-written policy under `path`.
    """
    path = pathlib.Path(path).resolve()
    if path.exists():
        raise FileExistsError(f"{path} already exists; save_policy does not overwrite.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        trained = {**config, **{k: float(v) for k, v in (hparams or {}).items()}}
        (staging / CONFIG_FILE).write_text(json.dumps(trained, indent=2, sort_keys=True))
        tree = {"actor_params": policy.actor_params, "obs_norm": policy.obs_norm._asdict()}
        with ocp.StandardCheckpointer() as checkpointer:  # leaving the block waits for the write
            checkpointer.save(staging / PARAMS_DIR, tree)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_policy(path) -> tuple[dict, Policy]:
    """Returns (config, policy) saved by `save_policy`; restores the stored tree as is."""
    path = pathlib.Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"No saved policy at {path}.")
    missing = [name for name in (CONFIG_FILE, PARAMS_DIR) if not (path / name).exists()]
    if missing:
        raise ValueError(f"{path} is not a policy written by save_policy: it lacks {missing}.")
    config = json.loads((path / CONFIG_FILE).read_text())
    with ocp.StandardCheckpointer() as checkpointer:
        tree = checkpointer.restore(path / PARAMS_DIR)
    return config, Policy(tree["actor_params"], Normalizer(**tree["obs_norm"]))


def load_checkpoint_policy(path, agent: int) -> tuple[dict, Policy, int]:
    """(config, policy, evaluations done) of sweep agent `agent` from a mid-run checkpoint
    (`combo_XXX/checkpoint_LO-HI.npz`, written by `sweep.py --checkpoint-every`), to evaluate or
    render a run that is still going. The config carries the agent's own traced settings."""
    path = pathlib.Path(path)
    call = checkpoints.parse_checkpoint_name(path)
    if call is None or not (path.parent / CONFIG_FILE).exists():
        raise ValueError(
            f"{path} is not a sweep checkpoint (combo_XXX/checkpoint_LO-HI.npz beside config.json)."
        )
    lo, hi, process = call
    config = json.loads((path.parent / CONFIG_FILE).read_text())
    template = jax.eval_shape(make_train_loop(config).init, jax.random.PRNGKey(0))
    specs, treedef = jax.tree.flatten(template)
    leaves, _, meta = checkpoints.load_checkpoint(path)
    if len(leaves) != len(specs):
        raise ValueError(
            f"{path} holds {len(leaves)} state arrays, but its config.json describes {len(specs)}: "
            "the checkpoint and the config are from different versions or sweeps."
        )
    rows = next(leaf.shape[0] for leaf, spec in zip(leaves, specs) if leaf.ndim > spec.ndim)
    first = lo + process * rows  # each process saves its own consecutive rows
    if not (lo <= agent < hi and first <= agent < first + rows):
        raise IndexError(
            f"agent {agent} is not in {path.name}, which holds agents {first}-{min(first + rows, hi) - 1}."
        )
    row = agent - first
    state = jax.tree.unflatten(treedef, [x[row] if x.ndim > s.ndim else x for x, s in zip(leaves, specs)])
    trained = {**config, **{k: float(v) for k, v in state.hparams.items()}}
    return trained, policy_from_state(state.train_state), int(meta["evals_done"])


# ==================================================================================================
# ACT / EVALUATE / RENDER
# ==================================================================================================
def act(config: dict, policy: Policy, obs: jax.Array) -> jax.Array:
    """Deterministic action in [-1, 1] for `obs` [..., obs_dim], as `make_train` evaluates."""
    action_dim = policy.actor_params["params"]["head"]["bias"].shape[-1]
    actor = make_networks(config, action_dim).actor  # the trained architecture (AGENT, SIM_TYPE)
    if config["OBS_NORMALIZATION"]:
        obs = normalize(policy.obs_norm, obs)
    return actor.apply(policy.actor_params, obs)


def evaluate_policy(config: dict, policy: Policy, rng: jax.Array, num_envs: int | None = None):
    """Return of one deterministic episode on each of `num_envs` envs (default NUM_EVAL_ENVS).

    The envs start from `jax.vmap(env.reset)(jax.random.split(rng, num_envs))`, so `make_train`'s
    `k_eval` replays its evaluation. Rewards add up until the first done or the time limit, as in
    `make_train`. Pure: jit it with `config` and `num_envs` closed over.
    """
    num_envs = config["NUM_EVAL_ENVS"] if num_envs is None else num_envs
    if num_envs < 1:
        raise ValueError(f"num_envs={num_envs} is not allowed: evaluate at least one env.")
    env = envs.make_env(config)
    states = jax.vmap(env.reset)(jax.random.split(rng, num_envs))
    return episode_returns(env, lambda obs: act(config, policy, obs), states)


def render_episode(
    config: dict,
    policy: Policy,
    path,
    rng: jax.Array,
    num_steps: int | None = None,
    height: int = 240,
    width: int = 320,
    camera: str | None = None,
) -> int:
    """Writes a video of one deterministic episode of a Playground task; returns its frame count.

    The episode runs from `env.reset(rng)` until its first done or `num_steps` agent steps
    (default: the time limit). `.gif` is written with Pillow; other suffixes (`.mp4`, ...) with
    mediapy, which needs ffmpeg. Rendering needs OpenGL: on a headless machine set
    MUJOCO_GL=egl (or osmesa) before mujoco is first imported.
    """
    kind = envs.task_kind(config["ENV_NAME"])
    if kind != "playground":
        raise ValueError(
            f"render_episode needs a MuJoCo Playground task; {config['ENV_NAME']!r} is a {kind} "
            "task, which has no renderer here."
        )
    import mujoco

    env = envs.make_env(config)
    task = env.backend
    try:  # fail before compiling the rollout
        mujoco.Renderer(task.mj_model, height=height, width=width).close()
    except Exception as error:
        raise RuntimeError(
            f"MuJoCo cannot render here (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {error}. "
            "On a headless machine set MUJOCO_GL=egl or MUJOCO_GL=osmesa before importing mujoco."
        ) from error

    num_steps = env.episode_iterations if num_steps is None else num_steps

    def rollout(policy, rng):
        def step(state, _):
            state, _, done = env.eval_step(state, act(config, policy, state.obs))
            return state, (state.sim, done)

        first = env.reset(rng)
        _, (sims, dones) = jax.lax.scan(step, first, None, length=num_steps)
        return first.sim, sims, dones

    first, sims, dones = jax.device_get(jax.jit(rollout)(policy, rng))
    length = int(np.argmax(dones)) + 1 if dones.any() else num_steps
    trajectory = [first] + [jax.tree.map(lambda x: x[t], sims) for t in range(length)]
    frames = task.render(trajectory, height=height, width=width, camera=camera)
    fps = 1.0 / (task.dt * config["ACTION_REPEAT"])
    _write_video(pathlib.Path(path), frames, fps)
    return len(frames)


def _write_video(path: pathlib.Path, frames, fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":  # Pillow needs no ffmpeg
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0)
    else:
        import mediapy

        mediapy.write_video(path, frames, fps=fps)
