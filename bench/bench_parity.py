"""Learning parity with the PyTorch FastTD3, and wall-clock time to that result.

Trains `--seeds` agents in one vmapped run with the task's reference settings and compares the
mean eval return over seeds with the reference's published curve (spec §9.1). For
T1JoystickFlatTerrain the defaults here give 10,000 iterations of 1024 envs (10.24M env steps)
with evaluations at 5.12M and 10.24M, the two published anchors (17.50 and 23.36). Wall time
includes compilation, as a user waits for it.

    python bench/bench_parity.py --env T1JoystickFlatTerrain --seeds 1
    python bench/bench_parity.py --env T1JoystickFlatTerrain --seeds 1 \
        --set STD_MIN=0.05 --set STD_MAX=0.8 --tag _paper_noise
    python bench/bench_parity.py --env CheetahRun --iterations 20000 --eval-interval 5000

The paper-era runs explored with std in U[0.05, 0.8] (spec §0); the second command is that
ablation. Writes bench/results/parity_<env>_<device>_<seeds>seeds<tag>.json.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

import purejax_fasttd3 as ft
from common import RESULTS, compile_and_run, environment, parse_overrides, write

# Published mean eval returns of the reference, by env steps, with their provenance.
REFERENCE_RETURNS = {
    task: {int(steps): value for steps, value in returns.items()}
    for task, returns in json.loads((RESULTS / "reference_published.json").read_text())[
        "mean_eval_return"
    ].items()
}


def reference_comparison(env: str, mean_returns: dict[int, float]) -> dict:
    """Our mean eval return (`mean_returns`, by env steps) against the published one, at every
    env-step count that both have."""
    return {
        str(steps): {"ours": mean_returns[steps], "reference": ref, "ratio": mean_returns[steps] / ref}
        for steps, ref in REFERENCE_RETURNS.get(env, {}).items()
        if steps in mean_returns
    }


def evaluation_row(metrics: dict, evals_done: int, interval: int, num_envs: int) -> dict:
    """One evaluation of vmapped seeds from the metrics of the eval chunk that ended with it
    ([seeds, 1] each, as `common.Chunks` returns them)."""
    metrics = jax.tree.map(lambda x: np.asarray(x, float)[:, -1], metrics)
    train = metrics["train_return"][np.isfinite(metrics["train_return"])]  # empty if no episode ended
    return {
        "eval": evals_done,
        "iteration": evals_done * interval,
        "env_steps": evals_done * interval * num_envs,
        "eval_return_mean": float(metrics["eval_return"].mean()),
        "eval_return_per_seed": metrics["eval_return"].tolist(),
        "train_return_mean": float(train.mean()) if train.size else None,
        "critic_loss_mean": float(metrics["critic_loss"].mean()),
        "q_mean_mean": float(metrics["q_mean"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="T1JoystickFlatTerrain")
    parser.add_argument("--seeds", type=int, default=1, help="agents trained together (vmapped)")
    parser.add_argument("--iterations", type=int, default=10_000, help="TOTAL_TIMESTEPS (iterations)")
    parser.add_argument("--eval-interval", type=int, default=5_000, help="EVAL_INTERVAL (iterations)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--tag", default="", help="suffix for the result file name")
    args = parser.parse_args()

    overrides = {
        "TOTAL_TIMESTEPS": args.iterations,
        "EVAL_INTERVAL": args.eval_interval,
        **parse_overrides(args.set),
    }
    config = ft.make_config(args.env, **overrides)
    train = jax.jit(jax.vmap(ft.make_train(config)))
    rngs = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    start = time.perf_counter()
    out, _, compile_s, run_s = compile_and_run(train, rngs)
    wall_s = time.perf_counter() - start

    metrics = jax.tree.map(lambda x: np.asarray(x).tolist(), out["metrics"])
    env_steps = ft.env_steps_at_evals(config).tolist()
    mean = np.mean(metrics["eval_return"], axis=0)
    reference = REFERENCE_RETURNS.get(args.env, {})
    comparison = reference_comparison(args.env, dict(zip(env_steps, mean.tolist())))
    info = environment()
    result = {
        "benchmark": "parity",
        "env": args.env,
        "seeds": args.seeds,
        "compile_seconds": compile_s,
        "run_seconds": run_s,
        "wall_seconds_compile_included": wall_s,
        "env_steps": env_steps,
        "mean_eval_return": mean.tolist(),
        "metrics_per_seed": metrics,
        "reference_comparison": comparison,
        "overrides": overrides,
        "config": config,
        **info,
    }
    print(f"compile {compile_s:.0f} s, run {run_s:.0f} s; mean eval return by env steps:")
    for steps, value in zip(env_steps, mean):
        ref = reference.get(steps)
        print(
            f"  {steps:>12,}  {value:8.2f}" + (f"   reference {ref:.2f} ({value / ref:.0%})" if ref else "")
        )
    device = info["device"].replace(" ", "_")
    write(f"parity_{args.env}_{device}_{args.seeds}seeds{args.tag}", result)


if __name__ == "__main__":
    main()
