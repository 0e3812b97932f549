"""What the in-chunk progress reports cost: one heartbeat, and the share of an eval chunk.

`make_train_loop(config, heartbeat=...)` runs each eval interval as a scan over
`heartbeat_segments` segments and calls back to the host after each. Two measurements:
1. One host callback's cost: a 20,000-step scan of a trivial body with a no-op callback every
   step against the same scan without it (the fastest of `--repeats` each).
2. The default job's settings (Pendulum-v1, 8 agents; the first 500 iterations) and an interval
   ten times longer, run with a no-op heartbeat and without, alternating, `--repeats` pairs.
   Each pair gives a relative difference (with / without - 1); the result is the median of
   those with a bootstrap 95% CI, which says how large a cost the runs could still hide. Run
   times on a CPU vary by several percent, far more than the cost the callback predicts, so the
   overhead is also derived: heartbeats per chunk x the cost of one / the median chunk time.

    python bench/bench_heartbeat.py --repeats 15      # on an otherwise idle machine
    python bench/bench_heartbeat.py --agents 32 --repeats 5

Writes bench/results/heartbeat_cost_<device>.json.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import numpy as np

import purejax_fasttd3 as ft
from common import environment, write
from fasttd3x import progress

# The rule under test: the train loop sends no heartbeats in intervals under
# progress.MIN_HEARTBEAT_INTERVAL iterations. To measure what heartbeats would cost there, this
# benchmark lifts it, so both cases send them.
progress.MIN_HEARTBEAT_INTERVAL = 0

# The default job's settings (its first 500 of 2,000 iterations), and an interval ten times longer.
CASES = {
    "default job (EVAL_INTERVAL 100)": {"TOTAL_TIMESTEPS": 500},
    "EVAL_INTERVAL 1000": {"EVAL_INTERVAL": 1_000, "TOTAL_TIMESTEPS": 1_000},
}


def run_program(config: dict, agents: int, heartbeat):
    """(compiled vmapped run over every eval, its initial state)."""
    loop = ft.make_train_loop(config, heartbeat=heartbeat)
    rngs = jax.random.split(jax.random.PRNGKey(0), agents)
    state = jax.jit(jax.vmap(loop.init, out_axes=ft.RUNNER_AXES))(rngs)
    run = jax.vmap(
        functools.partial(loop.run, num_evals=loop.num_evals),
        in_axes=(ft.RUNNER_AXES,),
        out_axes=(ft.RUNNER_AXES, 0),
    )
    return jax.jit(run).lower(state).compile(), state


def seconds(compiled, state) -> float:
    start = time.perf_counter()
    jax.block_until_ready(compiled(state))
    return time.perf_counter() - start


def callback_seconds(repeats: int, steps: int = 20_000) -> float:
    """Seconds one no-op host callback adds to a scan step (measured difference of fastest runs)."""

    def loop(report: bool):
        def body(x, _):
            if report:
                jax.debug.callback(lambda value: None, x)
            return x + 1.0, None

        return jax.jit(lambda x: jax.lax.scan(body, x, None, length=steps)[0])

    plain, reporting = loop(False), loop(True)
    x = jax.numpy.float32(0.0)
    jax.block_until_ready((plain(x), reporting(x)))  # compiled
    best = {}
    for name, fn in (("plain", plain), ("reporting", reporting)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(x))
            times.append(time.perf_counter() - start)
        best[name] = min(times)
    return (best["reporting"] - best["plain"]) / steps


def paired_overhead(without: list[float], with_: list[float], reps: int = 10_000) -> dict:
    """The median over pairs of (with / without - 1) in percent, with a bootstrap 95% CI."""
    ratios = 100.0 * (np.asarray(with_) / np.asarray(without) - 1.0)
    draws = np.random.default_rng(0).choice(ratios, size=(reps, ratios.size))
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    ci95 = [round(float(low), 2), round(float(high), 2)]
    return {"median": round(float(np.median(ratios)), 2), "ci95": ci95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    per_callback = callback_seconds(args.repeats)
    print(f"one heartbeat: {per_callback * 1e6:.1f} us", flush=True)
    rows = []
    for name, overrides in CASES.items():
        config = ft.make_config("Pendulum-v1", **overrides)
        plain = run_program(config, args.agents, None)
        beating = run_program(config, args.agents, lambda done: None)
        times = {"without": [], "with": []}
        for _ in range(args.repeats):
            times["without"].append(seconds(*plain))
            times["with"].append(seconds(*beating))
        middle = {key: float(np.median(values)) for key, values in times.items()}
        iterations = config["TOTAL_TIMESTEPS"]
        reports = ft.heartbeat_segments(config["EVAL_INTERVAL"]) * iterations // config["EVAL_INTERVAL"]
        overhead = paired_overhead(times["without"], times["with"])
        derived = 100.0 * reports * per_callback / middle["without"]
        print(
            f"{name}: medians {middle} s over {iterations} iterations, {reports} heartbeats: "
            f"{overhead['median']:+.2f}% (95% CI {overhead['ci95']}) measured, {derived:.3f}% derived",
            flush=True,
        )
        rows.append(
            {
                "case": name,
                "eval_interval": config["EVAL_INTERVAL"],
                "iterations": iterations,
                "heartbeats": reports,
                "agents": args.agents,
                "pairs": args.repeats,
                "median_seconds_without": round(middle["without"], 4),
                "median_seconds_with": round(middle["with"], 4),
                "overhead_percent_median_of_pairs": overhead["median"],
                "overhead_percent_ci95": overhead["ci95"],
                "overhead_percent_derived": round(derived, 4),
                "all_seconds": {key: [round(t, 4) for t in values] for key, values in times.items()},
            }
        )
    write(
        f"heartbeat_cost_{jax.devices()[0].platform}",
        {
            "what": "run time with a no-op heartbeat callback against none (alternating pairs)",
            "seconds_per_callback": per_callback,
            "rows": rows,
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
