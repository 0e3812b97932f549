"""Records a lockstep trace of the PyTorch reference FastTD3 (younggyoseo/FastTD3 at 229ed59):
its own `train.py` main loop at tiny sizes, with every random draw, stored transition, sampled
batch, normalizer state, loss, gradient norm and parameter written to one small .npz, which
tests/test_lockstep.py replays through FastTD3X's module-level pieces (no torch needed there).

    python bench/reference_trace.py --env CartpoleSwingup \
        --out tests/data/reference_trace_cartpole_swingup.npz
    MENAGERIE_PATH=../shared/menagerie python bench/reference_trace.py --env T1JoystickFlatTerrain \
        --out tests/data/reference_trace_t1_joystick_flat_terrain.npz

(a few minutes each on 2 CPU cores, most of it compiling the simulator.)

Host side (this environment's python) it builds or reuses the reference venv and source under
`--cache` (bench/bench_reference.py's `ensure_reference_source`/`ensure_reference_venv`; pass
`--reference-git-dir` to extract the source from a local git directory), then runs this same file
inside that venv with `--inside`. Inside, it sets the reference up as bench/reference_worker.py
does (its Playground patch, `device_rank=None`, a stand-in `wandb`), shortens the task's episodes
to `--episode-length` (so time-outs happen within the trace), and wraps, at run time only, the
points where the reference draws random numbers or changes state:

* `Actor.explore`: the normalized observation, the dones, the per-env noise scales before and
  after, the fresh uniform draw (`torch.rand`) when it redraws, the Gaussian noise
  (`torch.randn_like`) and the action; the actor's parameters it acts with;
* the training env's `step`: reward, done, time-out, next observation and the pre-reset one;
* `SimpleReplayBuffer.extend` (the stored transition) and `.sample` (the write pointer, the start
  indices `torch.randint` drew, and the n-step batch it returns);
* `EmpiricalNormalization.forward`: its statistics before and after every call;
* each update: the full learner state before it (actor, critic and target parameters, both
  AdamW states), the target-smoothing noise, the losses passed to the grad scaler, the gradient
  norms and learning rates at each optimizer step; the state after the last update.

On a task whose critic sees privileged observations (T1JoystickFlatTerrain) the fork's
`reset_with_critic_obs` and the critic observations in `step`'s info are added over the worker's
patch, which refuses such tasks; critic observations are saved as their critic-only tail after
checking that each begins with the actor's observation. Where full per-update states would make
the file large (`DETAIL_EVERY`), states and batch observations are kept around every Nth learning
iteration and three without a terminated window only, and arrays that follow from others
(`DERIVABLE`) are left out.

Nothing in the reference's files is changed, and none of its code is copied here. The .npz
holds float32/int32 arrays and a JSON `metadata` entry with the exact command, the reference's
parsed settings and the venv's package versions. Locomotion tasks read the robot meshes from
`$MENAGERIE_PATH`, as envs.py does (e.g. `MENAGERIE_PATH=../shared/menagerie`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import shlex
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

# Tiny sizes; everything else is the reference's default for a Playground task except the ones
# named here (each chosen so the trace covers the warm-up edge, time-outs and n-step windows
# within a few MB).
TRACE_ARGS = {
    "num_envs": 4,
    "num_eval_envs": 1,
    "batch_size": 32,
    "critic_hidden_dim": 16,
    "actor_hidden_dim": 16,
    "num_steps": 3,
    "learning_starts": 140,
    "total_timesteps": 200,
}
EPISODE_LENGTH = 50
# Narrower still where observations are wide, so a trace stays a few MB.
TASK_ARGS = {"T1JoystickFlatTerrain": {"critic_hidden_dim": 8, "actor_hidden_dim": 8, "batch_size": 16}}
# Where a full learner state per update would be too large: keep the states and the batches'
# observations only around every Nth learning iteration and the first three whose batches hold no
# window ending in a termination (before each of their updates and after).
DETAIL_EVERY = {"T1JoystickFlatTerrain": 20}
# Arrays that follow from others, left out of compact traces (tests/test_lockstep.py derives
# them): a normalizer's statistics before a call are those after its previous one; the stored
# transition is the acted-on observation and the step's next (pre-reset at a done) one.
DERIVABLE = ("norm/before/", "critic_norm/before/", "stored/obs", "stored/next_obs", "stored/critic_obs_tail",
             "stored/next_critic_obs_tail", "it/norm_obs")  # fmt: skip


# ============================================================================== inside the venv
class TraceRecorder:
    """Collects what the wrapped reference calls see; `arrays()` stacks it for the .npz."""

    def __init__(self):
        self.actors, self.critics, self.optimizers, self.normalizers = [], [], [], []
        self.phase = None  # "explore" or "update": which draw a torch.rand/randn_like is
        self.draws = {}
        self.iterations = []  # one dict per explore call (iteration)
        self.steps = []  # one dict per env step
        self.stored = []  # one dict per buffer extend
        self.updates = []  # one dict per update
        self.norm_calls = ([], [])  # per normalizer (actor's, critic's), one dict per call
        self.final_state = None
        self.reset_obs = self.reset_critic_obs = None

    # ---------------------------------------------------------------- state snapshots
    @staticmethod
    def params(module) -> dict:
        return {name: p.detach().clone().numpy() for name, p in module.named_parameters()}

    @staticmethod
    def optimizer_state(optimizer, module) -> dict:
        import numpy as np

        out = {"step": 0.0}
        for name, p in module.named_parameters():
            state = optimizer.state.get(p, {})
            zeros = np.zeros(tuple(p.shape), np.float32)
            out[f"m/{name}"] = state["exp_avg"].clone().numpy() if state else zeros
            out[f"v/{name}"] = state["exp_avg_sq"].clone().numpy() if state else zeros
            if state:
                out["step"] = float(state["step"])
        return out

    def learner_state(self) -> dict:
        actor, qnet, target = self.actors[0], self.critics[0], self.critics[1]
        q_opt, actor_opt = self.optimizers
        state = {f"actor/{k}": v for k, v in self.params(actor).items()}
        state |= {f"critic/{k}": v for k, v in self.params(qnet).items()}
        state |= {f"target/{k}": v for k, v in self.params(target).items()}
        state |= {f"critic_opt/{k}": v for k, v in self.optimizer_state(q_opt, qnet).items()}
        state |= {f"actor_opt/{k}": v for k, v in self.optimizer_state(actor_opt, actor).items()}
        return state

    @staticmethod
    def norm_stats(norm) -> dict:
        return {
            "mean": norm._mean.squeeze(0).clone().numpy(),
            "var": norm._var.squeeze(0).clone().numpy(),
            "count": float(norm.count),
        }

    # ---------------------------------------------------------------- packing
    def arrays(self, detail_every: int = 1) -> dict:
        import numpy as np

        def stack(rows, prefix):
            keys = rows[0].keys()
            return {f"{prefix}/{k}": np.stack([np.asarray(r[k]) for r in rows]) for k in keys}

        out = {"reset_obs": self.reset_obs}
        out |= stack(self.iterations, "it")
        out |= stack(self.steps, "step")
        out |= stack(self.stored, "stored")
        out |= _keep_detail(stack(self.updates, "upd"), detail_every)
        out |= stack(self.norm_calls[0], "norm")
        if self.norm_calls[1]:
            out |= stack(self.norm_calls[1], "critic_norm")
        if self.reset_critic_obs is not None:
            out["reset_critic_obs"] = self.reset_critic_obs
        out |= {f"final/{k}": np.asarray(v) for k, v in self.final_state.items()}
        out = _critic_tails(out, self.reset_obs.shape[1])
        if detail_every > 1:
            out = {k: v for k, v in out.items() if not k.startswith(DERIVABLE)}
        return {k: _compact(v) for k, v in out.items()}


CRITIC_KEYS = ("reset_critic_obs", "step/next_critic_obs", "step/raw_critic_obs", "stored/critic_obs",
               "stored/next_critic_obs", "upd/batch/critic_obs", "upd/batch/next_critic_obs")  # fmt: skip


def _critic_tails(out: dict, obs_dim: int) -> dict:
    """Critic observations as their critic-only tail (`<key>_tail`), after checking that each
    begins with the actor's observation, the layout the reference's buffer and ours assume."""
    import numpy as np

    pairs = {"reset_critic_obs": "reset_obs", "step/next_critic_obs": "step/next_obs",
             "step/raw_critic_obs": "step/raw_obs", "stored/critic_obs": "stored/obs",
             "stored/next_critic_obs": "stored/next_obs", "upd/batch/critic_obs": "upd/batch/obs",
             "upd/batch/next_critic_obs": "upd/batch/next_obs"}  # fmt: skip
    for key in [k for k in CRITIC_KEYS if k in out]:
        critic = out.pop(key)
        assert np.array_equal(critic[..., :obs_dim], out[pairs[key]]), key
        out[f"{key}_tail"] = critic[..., obs_dim:]
    return out


def _keep_detail(upd: dict, every: int, clean: int = 3) -> dict:
    """Full states and batch observations only around every `every`th learning iteration and
    the first `clean` iterations whose batches hold no window ending in a termination (those the
    replay can hold to float precision): before their two updates and after them;
    `upd/state_at` and `upd/batch_at` name the updates kept."""
    import numpy as np

    count = len(upd["upd/ptr"])
    iteration = np.arange(count) // 2
    done, truncated = upd["upd/batch/done"].astype(bool), upd["upd/batch/truncated"].astype(bool)
    terminated = (done & ~truncated).any(1).reshape(-1, 2).any(1)
    chosen = np.union1d(
        np.flatnonzero(np.arange(count // 2) % every == 0), np.flatnonzero(~terminated)[:clean]
    )
    batch_at = np.flatnonzero(np.isin(iteration, chosen))
    state_at = np.union1d(batch_at, [k for k in batch_at + 2 if k < count])
    heavy = (
        "upd/state/",
        "upd/batch/obs",
        "upd/batch/next_obs",
        "upd/batch/critic_obs",
        "upd/batch/next_critic_obs",
    )
    for key in [k for k in upd if k.startswith(heavy)]:
        upd[key] = upd[key][state_at if key.startswith("upd/state/") else batch_at]
    return upd | {"upd/state_at": state_at, "upd/batch_at": batch_at}


def _compact(x):
    import numpy as np

    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x.astype(np.float32)
    if x.dtype.kind in "iub":
        return x.astype(np.int32)
    return x


def _record_instances(cls, into: list) -> None:
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        into.append(self)

    cls.__init__ = __init__


def _record_draws(torch, rec: TraceRecorder) -> None:
    """torch.rand / torch.randn_like / torch.randint keep their values in `rec.draws[phase]`."""
    for name in ("rand", "randn_like", "randint"):
        original = getattr(torch, name)

        def draw(*args, _original=original, _name=name, **kwargs):
            value = _original(*args, **kwargs)
            if rec.phase is not None:
                rec.draws.setdefault(rec.phase, {})[_name] = value.clone().numpy()
            return value

        setattr(torch, name, draw)


def _wrap_explore(actor_cls, rec: TraceRecorder) -> None:
    original = actor_cls.explore

    def explore(self, obs, dones=None, deterministic=False):
        import numpy as np

        n_envs = self.noise_scales.shape[0]
        scales_before = self.noise_scales.squeeze(1).clone().numpy()
        rec.phase, rec.draws = "explore", {}
        action = original(self, obs, dones, deterministic)
        rec.phase = None
        draws = rec.draws.get("explore", {})
        no_done = np.zeros(n_envs, bool)
        rec.iterations.append({
            "norm_obs": obs.clone().numpy(),
            "prev_done": no_done if dones is None else dones.clone().numpy().astype(bool),
            "scales_before": scales_before,
            "scales_after": self.noise_scales.squeeze(1).clone().numpy(),
            "fresh_uniform": draws.get("rand", np.full((n_envs, 1), np.nan))[:, 0],
            "redrawn": "rand" in draws,
            "noise": draws["randn_like"],
            "action": action.clone().numpy(),
            **{f"actor/{k}": v for k, v in rec.params(rec.actors[0]).items()},
        })  # fmt: skip
        return action

    actor_cls.explore = explore


def _wrap_env_step(rsl_rl_cls, rec: TraceRecorder) -> None:
    original_step, original_reset = rsl_rl_cls.step, rsl_rl_cls.reset
    original_reset_critic = rsl_rl_cls.reset_with_critic_obs

    def reset(self):
        obs = original_reset(self)
        rec.reset_obs = obs.clone().numpy()
        return obs

    def reset_with_critic_obs(self):
        obs, critic_obs = original_reset_critic(self)
        rec.reset_obs, rec.reset_critic_obs = obs.clone().numpy(), critic_obs.clone().numpy()
        return obs, critic_obs

    def step(self, action):
        next_obs, reward, done, info = original_step(self, action)
        observations = info["observations"]
        row = {
            "action_in": action.clone().numpy(),
            "next_obs": next_obs.clone().numpy(),
            "raw_obs": observations["raw"]["obs"].clone().numpy(),
            "reward": reward.clone().numpy(),
            "done": done.clone().numpy().astype(bool),
            "time_out": info["time_outs"].clone().numpy().astype(bool),
        }
        if observations.get("critic") is not None:
            row["next_critic_obs"] = observations["critic"].clone().numpy()
            row["raw_critic_obs"] = observations["raw"]["critic_obs"].clone().numpy()
        rec.steps.append(row)
        return next_obs, reward, done, info

    rsl_rl_cls.reset, rsl_rl_cls.step = reset, step
    rsl_rl_cls.reset_with_critic_obs = reset_with_critic_obs


def _wrap_buffer(buffer_cls, rec: TraceRecorder) -> None:
    original_extend, original_sample = buffer_cls.extend, buffer_cls.sample

    def extend(self, td):
        rec.stored.append({
            "ptr": self.ptr,
            "obs": td["observations"].clone().numpy(),
            "action": td["actions"].clone().numpy(),
            "next_obs": td["next"]["observations"].clone().numpy(),
            "reward": td["next"]["rewards"].clone().numpy(),
            "done": td["next"]["dones"].clone().numpy(),
            "truncated": td["next"]["truncations"].clone().numpy(),
        })  # fmt: skip
        if "critic_observations" in td.keys():
            rec.stored[-1]["critic_obs"] = td["critic_observations"].clone().numpy()
            rec.stored[-1]["next_critic_obs"] = td["next"]["critic_observations"].clone().numpy()
        return original_extend(self, td)

    def sample(self, batch_size):
        rec.phase, rec.draws = "sample", {}
        data = original_sample(self, batch_size)
        rec.phase = "update"
        row = {
            "ptr": self.ptr,
            "indices": rec.draws["sample"]["randint"],
            "obs_norm/before": rec.norm_stats(rec.normalizers[0]),
            "critic_norm/before": rec.norm_stats(rec.normalizers[1]),
            **{f"state/{k}": v for k, v in rec.learner_state().items()},
            "batch/obs": data["observations"].clone().numpy(),
            "batch/action": data["actions"].clone().numpy(),
            "batch/reward": data["next"]["rewards"].clone().numpy(),
            "batch/next_obs": data["next"]["observations"].clone().numpy(),
            "batch/done": data["next"]["dones"].clone().numpy(),
            "batch/truncated": data["next"]["truncations"].clone().numpy(),
            "batch/effective_n_steps": data["next"]["effective_n_steps"].clone().numpy(),
            **_critic_batch(data, rec),
            "losses": [],
            "grad_norms": [],
            "lrs": [],
            "optimizers": [],
        }
        rec.updates.append(row)
        return data

    buffer_cls.extend, buffer_cls.sample = extend, sample


def _critic_batch(data, rec: TraceRecorder) -> dict:
    if "critic_observations" not in data.keys():
        return {}
    return {
        "batch/critic_obs": data["critic_observations"].clone().numpy(),
        "batch/next_critic_obs": data["next"]["critic_observations"].clone().numpy(),
    }


def _wrap_normalizer(norm_cls, rec: TraceRecorder) -> None:
    original = norm_cls.forward

    def forward(self, x, center=True, update=True):
        before = rec.norm_stats(self)
        y = original(self, x, center, update)
        if update and self.training:
            after = rec.norm_stats(self)
            rec.norm_calls[rec.normalizers.index(self)].append({
                "rows": x.shape[0],
                **{f"before/{k}": v for k, v in before.items()},
                **{f"after/{k}": v for k, v in after.items()},
            })  # fmt: skip
        return y

    norm_cls.forward = forward


def _wrap_learner_calls(torch, train, rec: TraceRecorder) -> None:
    """Losses (what the grad scaler is handed), gradient norms and learning rates at each step."""
    scale = train.GradScaler.scale

    def scaled(self, outputs):
        if rec.updates:
            rec.updates[-1]["losses"].append(float(outputs.detach()))
        return scale(self, outputs)

    train.GradScaler.scale = scaled
    adamw_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        if rec.updates and rec.phase == "update":
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            row = rec.updates[-1]
            row["grad_norms"].append(float(norm))
            row["lrs"].append(float(self.param_groups[0]["lr"]))
            row["optimizers"].append(rec.optimizers.index(self))
        return adamw_step(self, *args, **kwargs)

    torch.optim.AdamW.step = step


def _finish_updates(rec: TraceRecorder) -> None:
    """Per update: the target noise, and the losses/norms as fixed-size arrays."""
    import numpy as np

    for row in rec.updates:
        critic_loss, *actor_loss = row.pop("losses")
        norms, opts, lrs = row.pop("grad_norms"), row.pop("optimizers"), row.pop("lrs")
        row["critic_loss"] = critic_loss
        row["actor_updated"] = bool(actor_loss)
        row["actor_loss"] = actor_loss[0] if actor_loss else np.nan
        row["critic_grad_norm"] = norms[opts.index(0)]
        row["actor_grad_norm"] = norms[opts.index(1)] if 1 in opts else np.nan
        row["critic_lr"] = lrs[opts.index(0)]
        for key in [k for k in row if isinstance(row[k], dict)]:
            row |= {f"{key}/{k}": v for k, v in row.pop(key).items()}


def _target_noise_recorder(torch, rec: TraceRecorder) -> None:
    """The update's randn_like (target smoothing) lands in rec.draws['update']; move it to the row."""
    original = torch.optim.AdamW.zero_grad

    def zero_grad(self, *args, **kwargs):
        if rec.updates and rec.phase == "update" and "target_noise" not in rec.updates[-1]:
            rec.updates[-1]["target_noise"] = rec.draws["update"]["randn_like"]
        return original(self, *args, **kwargs)

    torch.optim.AdamW.zero_grad = zero_grad


def _load_sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _allow_privileged_obs(rsl_rl_cls, raw_obs_key: str) -> None:
    """The authors' fork on a task whose critic sees privileged observations (the worker's
    patch refuses those): `reset_with_critic_obs`, and `step` with the critic observation and
    the pre-reset one of each in `info`, as the reference's train loop reads them. Applied over
    the worker's patch: its refusal sees a symmetric env while it checks."""
    patched_init = rsl_rl_cls.__init__
    unpatched_init = _unwrapped_init(patched_init)

    def hide_asymmetry(self, *args, **kwargs):
        unpatched_init(self, *args, **kwargs)
        self._asymmetric, self.asymmetric_obs = self.asymmetric_obs, False

    def __init__(self, *args, **kwargs):
        _set_unwrapped_init(patched_init, hide_asymmetry)
        try:
            patched_init(self, *args, **kwargs)
        finally:
            _set_unwrapped_init(patched_init, unpatched_init)
        self.asymmetric_obs = self._asymmetric

    def reset_with_critic_obs(self):
        import torch  # noqa: F401

        self.env_state = self.reset_fn(self.key_reset)
        obs = self.env_state.obs
        return wrapper_torch._jax_to_torch(obs["state"]), wrapper_torch._jax_to_torch(obs["privileged_state"])

    plain_step = rsl_rl_cls.step

    def step(self, action):
        if not self.asymmetric_obs:
            return plain_step(self, action)
        import torch

        to_torch = wrapper_torch._jax_to_torch
        jax_action = wrapper_torch._torch_to_jax(torch.clip(action, -1.0, 1.0))
        self.env_state = self.step_fn(self.env_state, jax_action)
        obs, raw = self.env_state.obs, self.env_state.info[raw_obs_key]
        info = {
            "time_outs": to_torch(self.env_state.info["truncation"]),
            "observations": {
                "critic": to_torch(obs["privileged_state"]),
                "raw": {"obs": to_torch(raw["state"]), "critic_obs": to_torch(raw["privileged_state"])},
            },
            "log": {},
        }
        return to_torch(obs["state"]), to_torch(self.env_state.reward), to_torch(self.env_state.done), info

    from mujoco_playground._src import wrapper_torch

    rsl_rl_cls.__init__, rsl_rl_cls.step = __init__, step
    rsl_rl_cls.reset_with_critic_obs = reset_with_critic_obs


def _unwrapped_init(patched_init):
    """The __init__ the worker's patch wrapped (the only function in its closure)."""
    (cell,) = [c for c in patched_init.__closure__ if callable(c.cell_contents)]
    return cell.cell_contents


def _set_unwrapped_init(patched_init, init) -> None:
    (cell,) = [c for c in patched_init.__closure__ if callable(c.cell_contents)]
    cell.cell_contents = init


def _use_local_menagerie() -> None:
    """Robot meshes from `$MENAGERIE_PATH` (as envs.py reads them), not a network clone."""
    import os

    from mujoco_playground._src import mjx_env

    if os.environ.get("MENAGERIE_PATH"):
        mjx_env.MENAGERIE_PATH = pathlib.Path(os.environ["MENAGERIE_PATH"]).resolve()


def _short_episodes(registry, episode_length: int) -> None:
    original = registry.get_default_config

    def get_default_config(env_name):
        config = original(env_name)
        config.episode_length = episode_length
        return config

    registry.get_default_config = get_default_config


def run_inside(args, reference_args: list[str]) -> None:
    import numpy as np

    package = pathlib.Path(args.source).resolve() / "fast_td3"
    worker = _load_sibling("reference_worker")
    rec = TraceRecorder()
    sys.modules["wandb"] = worker.Recorder(pathlib.Path(tempfile.mkdtemp()) / "wandb.json").module()
    sys.path.insert(0, str(package))
    sys.argv = [str(package / "train.py"), *reference_args]
    import train  # sets the reference's environment variables before torch is imported

    worker._load_patch()
    import environments.mujoco_playground_env as playground_env
    import fast_td3
    import fast_td3_utils
    import torch
    from mujoco_playground import registry
    from mujoco_playground._src import wrapper_torch

    worker._cpu_make_env(playground_env)
    _use_local_menagerie()
    patch = sys.modules.get("reference_worker_patch") or _load_sibling("reference_worker_patch")
    _allow_privileged_obs(wrapper_torch.RSLRLBraxWrapper, patch.RAW_OBS)
    _short_episodes(registry, args.episode_length)
    _record_instances(fast_td3.Actor, rec.actors)
    _record_instances(fast_td3.Critic, rec.critics)
    _record_instances(torch.optim.AdamW, rec.optimizers)
    _record_instances(fast_td3_utils.EmpiricalNormalization, rec.normalizers)
    _record_draws(torch, rec)
    _wrap_explore(fast_td3.Actor, rec)
    _wrap_env_step(wrapper_torch.RSLRLBraxWrapper, rec)
    _wrap_buffer(fast_td3_utils.SimpleReplayBuffer, rec)
    _wrap_normalizer(fast_td3_utils.EmpiricalNormalization, rec)
    _wrap_learner_calls(torch, train, rec)
    _target_noise_recorder(torch, rec)
    train.save_params = lambda *a, **k: setattr(rec, "final_state", rec.learner_state())
    settings = {}
    train_get_args = train.get_args
    train.get_args = lambda: settings.setdefault("args", train_get_args())
    train.main()
    _finish_updates(rec)
    arrays = rec.arrays(args.detail_every)
    metadata = {
        "command": args.command,
        "reference_args": reference_args,
        "episode_length": args.episode_length,
        "settings": {k: v for k, v in vars(settings["args"]).items() if _is_plain(v)},
        "versions": _versions(),
        "torch_threads": torch.get_num_threads(),
        "detail_every": args.detail_every,
    }
    arrays["metadata"] = np.array(json.dumps(metadata))
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(rec.iterations)} iterations, {len(rec.updates)} updates")


def _is_plain(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _versions() -> dict:
    import importlib.metadata as m

    names = ["torch", "jax", "jaxlib", "mujoco", "mujoco-mjx", "playground", "brax", "tensordict", "numpy"]
    return {n: m.version(n) for n in names}


# ============================================================================== host side
def reference_cli(env: str, seed: int) -> list[str]:
    sizes = [f"--{k.replace('_', '-')}={v}" for k, v in (TRACE_ARGS | TASK_ARGS.get(env, {})).items()]
    return [
        f"--env-name={env}", f"--seed={seed}", *sizes, "--eval-interval=0", "--render-interval=0",
        "--save-interval=0", "--no-cuda", "--no-amp", "--no-compile", "--no-use-wandb",
        "--exp-name=fasttd3x_trace",
    ]  # fmt: skip


def run_host(args) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import bench_reference

    cache = pathlib.Path(args.cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    source = bench_reference.ensure_reference_source(cache, args.reference_git_dir)
    python = bench_reference.ensure_reference_venv(cache)
    out = pathlib.Path(args.out).resolve()
    command = "python bench/reference_trace.py " + shlex.join(sys.argv[1:])
    inside = [
        str(python), "-I", str(pathlib.Path(__file__).resolve()), "--inside", "--source", str(source),
        "--out", str(out), "--episode-length", str(args.episode_length), "--command", command,
        "--detail-every", str(DETAIL_EVERY.get(args.env, 1)),
        "--", *reference_cli(args.env, args.seed),
    ]  # fmt: skip
    print(f"$ {shlex.join(inside)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="reference_trace_") as tmp:
        subprocess.run(inside, cwd=tmp, env=bench_reference.worker_env(cache), check=True)


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartpoleSwingup")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help=".npz to write")
    parser.add_argument("--episode-length", type=int, default=EPISODE_LENGTH)
    parser.add_argument("--cache", default="~/.cache/fasttd3x/reference-229ed59")
    parser.add_argument("--reference-git-dir", default=None)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--command", help=argparse.SUPPRESS)
    parser.add_argument("--detail-every", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv[:split])
    if args.inside:
        run_inside(args, argv[split + 1 :])
    else:
        run_host(args)


if __name__ == "__main__":
    main()
