"""Compile time and program size of `train` against NUM_UPDATES (critic updates per iteration).

The updates run as a `lax.scan`, so the program holds one update whatever NUM_UPDATES is, and
compile time should stay flat: NUM_UPDATES=8 (the reference's Go1 setting) within 1.3x of 2.
Each setting is traced, lowered and compiled from a fresh `make_train` (no cache hit) `--repeats`
times; the minimum is reported, since a shared machine only ever adds time.

    python bench/bench_compile.py                         # Pendulum-v1 and CheetahRun
    python bench/bench_compile.py --env CheetahRun --updates 1 2 4 8

Writes bench/results/compile_num_updates_<device><tag>.json.
"""

from __future__ import annotations

import argparse
import time

import jax

import purejax_fasttd3 as ft
from common import environment, write


def compile_seconds(config: dict) -> tuple[float, float, int]:
    """(trace + lower seconds, XLA compile seconds, characters of the lowered program)."""
    train = jax.jit(jax.vmap(ft.make_train(config)))
    rngs = jax.random.split(jax.random.PRNGKey(0), 2)
    start = time.perf_counter()
    lowered = train.lower(rngs)
    lowered_at = time.perf_counter()
    lowered.compile()
    return lowered_at - start, time.perf_counter() - lowered_at, len(lowered.as_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=["Pendulum-v1", "CheetahRun"])
    parser.add_argument("--updates", nargs="+", type=int, default=[2, 8], help="NUM_UPDATES values")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tag", default="", help="suffix for the result file name")
    args = parser.parse_args()

    rows = []
    for env_name in args.env:
        # Small sizes: compile time depends on the program, not on array sizes.
        sizes = {"NUM_ENVS": 16, "BATCH_SIZE": 256, "NUM_EVAL_ENVS": 4}
        for num_updates in args.updates:
            config = ft.make_config(env_name, **sizes, NUM_UPDATES=num_updates)
            runs = [compile_seconds(config) for _ in range(args.repeats)]
            row = {
                "env": env_name,
                "NUM_UPDATES": num_updates,
                "lower_seconds": min(r[0] for r in runs),
                "compile_seconds": min(r[1] for r in runs),
                "program_chars": runs[0][2],
                "all_runs": [{"lower_seconds": r[0], "compile_seconds": r[1]} for r in runs],
            }
            rows.append(row)
            print(
                f"{env_name} NUM_UPDATES={num_updates}: lower {row['lower_seconds']:.1f} s, "
                f"compile {row['compile_seconds']:.1f} s, program {row['program_chars']:,} chars"
            )
        mine = [r for r in rows if r["env"] == env_name]
        low, high = mine[0], mine[-1]
        total = lambda r: r["lower_seconds"] + r["compile_seconds"]  # noqa: E731
        print(
            f"{env_name}: NUM_UPDATES={high['NUM_UPDATES']} / {low['NUM_UPDATES']} = "
            f"{total(high) / total(low):.2f}x"
        )

    device = jax.devices()[0].device_kind.replace(" ", "_")
    write(f"compile_num_updates_{device}{args.tag}", {"environment": environment(), "rows": rows})


if __name__ == "__main__":
    main()
