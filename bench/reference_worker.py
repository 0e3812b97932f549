"""Runs the PyTorch reference FastTD3's own `train.py` main loop for one seed, inside the reference's
throwaway venv (built by bench/bench_reference.py), and records what it logs.

    <venv>/bin/python -I bench/reference_worker.py --source <extracted reference> --out run.json \
        -- --env_name CartpoleSwingup --seed 3 --num_envs 16 ...

Everything after `--` goes to the reference's tyro parser unchanged. The worker:

* loads `reference_worker_patch.py` (beside it) so playground 0.2.0 behaves like the authors' fork;
* forces `device_rank=None` in the reference's Playground `make_env` (its default 0 asks JAX for
  a GPU even with `--no-cuda`);
* puts a recording `wandb` module in `sys.modules`. The reference computes its evaluation
  (`evaluate()`, a closure inside `main`) only to pass it to `wandb.log`, so with `--use-wandb`
  this stand-in receives every evaluation the reference itself makes, unchanged, and nothing
  leaves the machine. Each `log` call is written to `--out` at once (atomically), so an
  interrupted run keeps its finished evaluations; `"complete": true` is set when `main` returns;
* with `--torch-threads N`, sets torch's intra-op threads to N after `train.py` is imported
  (`train.py` sets OMP_NUM_THREADS=1 before importing torch, so the reference runs on one
  thread unless told otherwise); the JSON records the count torch used.

The JSON holds `args` (the reference's parsed settings), `evals` (iteration, env_steps,
eval_return, eval_length, wall_seconds) and `logs` (iteration, wall_seconds, the reference's own
`speed` in iterations/s) from every `wandb.log` call, which comes every 100 iterations.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import time
import types


class Recorder:
    """What the stand-in `wandb` receives, written to `path` after every call."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.start = time.perf_counter()
        self.result = {"args": None, "num_envs": None, "evals": [], "logs": [], "complete": False}
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=1) + "\n")
        tmp.replace(self.path)

    def init(self, config=None, **_):
        self.result["args"] = {k: v for k, v in (config or {}).items() if _is_plain(v)}
        self.result["num_envs"] = self.result["args"].get("num_envs")
        self.write()

    def log(self, data: dict, step: int | None = None, **_):
        seconds = time.perf_counter() - self.start
        self.result["logs"].append(
            {"iteration": step, "wall_seconds": seconds, "speed": _float(data.get("speed"))}
        )
        if "eval_avg_return" in data:
            self.result["evals"].append(
                {
                    "iteration": step,
                    "env_steps": step * self.result["num_envs"],
                    "eval_return": _float(data["eval_avg_return"]),
                    "eval_length": _float(data.get("eval_avg_length")),
                    "wall_seconds": seconds,
                }
            )
        self.write()

    def module(self) -> types.ModuleType:
        wandb = types.ModuleType("wandb")
        wandb.init = self.init
        wandb.log = self.log
        wandb.finish = lambda *a, **k: None
        wandb.Video = lambda *a, **k: None
        return wandb


def _is_plain(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _float(value):
    return None if value is None else float(value)


def _load_patch():
    path = pathlib.Path(__file__).with_name("reference_worker_patch.py")
    spec = importlib.util.spec_from_file_location("reference_worker_patch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.apply()


def _cpu_make_env(playground_env) -> None:
    original = playground_env.make_env

    def make_env(env_name, seed, num_envs, num_eval_envs, device_rank, **kwargs):
        return original(env_name, seed, num_envs, num_eval_envs, None, **kwargs)

    playground_env.make_env = make_env


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="folder of the extracted reference (has fast_td3/)")
    parser.add_argument("--out", required=True, help="JSON file written after every logged step")
    parser.add_argument(
        "--torch-threads", type=int, help="torch's intra-op threads (default: train.py's OMP_NUM_THREADS=1)"
    )
    args = parser.parse_args(argv[:split])
    reference_args = argv[split + 1 :]

    package = pathlib.Path(args.source).resolve() / "fast_td3"
    if not (package / "train.py").exists():
        raise SystemExit(f"--source {args.source}: no fast_td3/train.py there")
    recorder = Recorder(pathlib.Path(args.out).resolve())
    sys.modules["wandb"] = recorder.module()
    sys.path.insert(0, str(package))  # train.py imports its siblings as top-level modules
    sys.argv = [str(package / "train.py"), *reference_args]
    # train.py first: it sets OMP_NUM_THREADS=1 (and its other environment variables) before it
    # imports torch, and the patch's Playground imports would import torch before that.
    import train

    if args.torch_threads is not None:
        if args.torch_threads < 1:
            raise SystemExit(f"--torch-threads {args.torch_threads}: must be at least 1")
        sys.modules["torch"].set_num_threads(args.torch_threads)
    _load_patch()
    import environments.mujoco_playground_env as playground_env

    _cpu_make_env(playground_env)
    train.main()
    recorder.result["torch_threads"] = sys.modules["torch"].get_num_threads()
    recorder.result["complete"] = True
    recorder.write()


if __name__ == "__main__":
    main()
