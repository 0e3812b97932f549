"""Runs the PureJaxRL file itself (`upstream/purejaxrl/fasttd3.py`) on held-out seeds and writes
bench/results/upstream_<task>.json: the config, the seeds, each seed's mean training episode return
over the last 10% of iterations (LogWrapper's `returned_episode_returns`, as PureJaxRL reports
returns) and over each tenth of the run, and the wall time with compilation; and
bench/results/upstream_<task>.png, that return against env steps (mean and range over seeds).

    python bench/bench_upstream.py pendulum           # the file's __main__ config, SEED 100
    python bench/bench_upstream.py inverted_pendulum  # Brax (mjx), CPU-sized

The file imports PureJaxRL's `wrappers.py` (`from wrappers import ...`). By default the run uses
our stand-in with the same interface (upstream/purejaxrl/wrappers_stand_in.py), written to a
temporary folder. `--wrappers DIR` runs it with the `wrappers.py` in DIR instead, e.g. PureJaxRL's own, copied
from its public repository into a throwaway folder outside this one (never committed; it imports
chex and navix at the top, which must be importable), and writes
bench/results/upstream_<task>_purejaxrl_wrappers.json beside the stand-in's file, with the
per-seed returns of both and whether they are equal.

    python bench/bench_upstream.py pendulum --wrappers /tmp/purejaxrl/purejaxrl \
        --wrappers-source "luchris429/purejaxrl purejaxrl/wrappers.py at commit 31756b1"
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np

from common import RESULTS, ROOT, environment

sys.path.insert(0, str(ROOT / "upstream" / "purejaxrl"))
from wrappers_stand_in import install_wrappers  # noqa: E402

UPSTREAM = ROOT / "upstream" / "purejaxrl" / "fasttd3.py"
PENDULUM = {  # the file's __main__ config; tuned with seed 0, measured here with seed 100
    "ENV_NAME": "Pendulum-v1",
    "NUM_ENVS": 16,
    "TOTAL_TIMESTEPS": 2_000,
    "LEARNING_STARTS": 10,
    "BUFFER_SIZE": 4_000,
    "BATCH_SIZE": 128,
    "UPDATES_PER_STEP": 2,
    "POLICY_FREQUENCY": 2,
    "N_STEP": 3,
    "NUM_ATOMS": 101,
    "CRITIC_HIDDEN_DIM": 128,
    "ACTOR_HIDDEN_DIM": 64,
    "EPISODE_LENGTH": 200,
    "CRITIC_LEARNING_RATE": 1e-3,
    "ACTOR_LEARNING_RATE": 1e-3,
    "CRITIC_LEARNING_RATE_END": 1e-3,
    "ACTOR_LEARNING_RATE_END": 1e-3,
    "GAMMA": 0.99,
    "TAU": 0.1,
    "POLICY_NOISE": 0.2,
    "NOISE_CLIP": 0.5,
    "STD_MIN": 0.05,
    "STD_MAX": 0.8,
    "V_MIN": -1000.0,
    "V_MAX": 0.0,
    "WEIGHT_DECAY": 0.0,
    "INIT_SCALE": 0.01,
    "PRE_TANH_PENALTY": 1e-2,
    "SEED": 100,
    "NUM_SEEDS": 8,
}
INVERTED_PENDULUM = {  # untuned: Pendulum's settings, sized for a CPU, support [0, 100]
    **PENDULUM,
    "ENV_NAME": "inverted_pendulum",
    "NUM_ENVS": 32,
    "TOTAL_TIMESTEPS": 1_500,
    "BUFFER_SIZE": 1_500,
    "BATCH_SIZE": 256,
    "N_STEP": 1,
    "EPISODE_LENGTH": 1000,
    "V_MIN": 0.0,
    "V_MAX": 100.0,
    "PRE_TANH_PENALTY": 0.0,
    "NUM_SEEDS": 2,
}
CONFIGS = {"pendulum": PENDULUM, "inverted_pendulum": INVERTED_PENDULUM}


def load_upstream(wrappers: pathlib.Path | None = None):
    folder = wrappers or install_wrappers(pathlib.Path(tempfile.mkdtemp()))
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("upstream_fasttd3", UPSTREAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def episode_return(metrics, window: slice) -> np.ndarray:
    """Per seed: the mean return of the episodes that ended within `window` (iterations)."""
    ended = metrics["returned_episode"][:, window]
    returns = np.where(ended, metrics["returned_episode_returns"][:, window], 0.0)
    return returns.sum((1, 2)) / np.maximum(ended.sum((1, 2)), 1)


def plot(result: dict, tenths: np.ndarray, path: pathlib.Path) -> None:
    """Return per tenth of the run ([seeds, 10]) against the env steps at its end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["env_steps"] * np.arange(1, 11) / 10
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(steps, tenths.mean(0), label=f"mean of {len(tenths)} seeds")
    ax.fill_between(steps, tenths.min(0), tenths.max(0), alpha=0.3, label="min to max")
    ax.set(xlabel="env steps", ylabel="episode return (training)", title=f"FastTD3, {result['task']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=sorted(CONFIGS))
    parser.add_argument("--wrappers", type=pathlib.Path, help="folder holding the wrappers.py to use")
    parser.add_argument("--wrappers-source", default="", help="where --wrappers' file came from")
    args = parser.parse_args()
    task = args.task
    config = dict(CONFIGS[task])
    upstream = load_upstream(args.wrappers)
    if args.wrappers is not None:
        imported = pathlib.Path(sys.modules["wrappers"].__file__).resolve().parent
        assert imported == args.wrappers.resolve(), f"the file imported {imported}/wrappers.py"
    rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])
    start = time.perf_counter()
    out = jax.block_until_ready(jax.jit(jax.vmap(upstream.make_train(dict(config))))(rngs))
    seconds = time.perf_counter() - start
    metrics = jax.tree.map(np.asarray, out["metrics"])
    total = config["TOTAL_TIMESTEPS"]
    last = episode_return(metrics, slice(total - total // 10, None))
    tenths = [episode_return(metrics, slice(i * total // 10, (i + 1) * total // 10)) for i in range(10)]
    result = {
        "what": "upstream/purejaxrl/fasttd3.py run as is (jit(vmap(make_train(config))) over the seeds)",
        "task": config["ENV_NAME"],
        "config": config,
        "env_steps": total * config["NUM_ENVS"],
        "seconds_with_compile": round(seconds, 1),
        "metric": "mean training episode return (LogWrapper) of the episodes ended in the last 10% of "
        "iterations, per seed",
        "last_10pct_return_per_seed": [round(float(x), 1) for x in last],
        "last_10pct_return_mean": round(float(last.mean()), 1),
        "last_10pct_return_min": round(float(last.min()), 1),
        "return_per_tenth_per_seed": np.stack(tenths, 1).round(1).tolist(),
        "environment": environment(),
    }
    path = RESULTS / f"upstream_{task}.json"
    if args.wrappers is not None:
        stand_in = json.loads(path.read_text())
        result = {
            **result,
            "wrappers": args.wrappers_source or str(args.wrappers),
            "seconds_with_compile_note": "a check of results, not a timing: the machine may be shared",
            "stand_in_file": path.name,
            "stand_in_last_10pct_return_per_seed": stand_in["last_10pct_return_per_seed"],
            "equal_to_stand_in": stand_in["last_10pct_return_per_seed"]
            == result["last_10pct_return_per_seed"]
            and stand_in["return_per_tenth_per_seed"] == result["return_per_tenth_per_seed"],
        }
        path = RESULTS / f"upstream_{task}_purejaxrl_wrappers.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
    else:
        path.write_text(json.dumps(result, indent=2) + "\n")
        plot(result, np.stack(tenths, 1), path.with_suffix(".png"))
    print(json.dumps({k: v for k, v in result.items() if k not in ("config", "environment")}, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
