"""A resumed sweep's compile time without and with the persistent compilation cache.

A resume is a new process running the same command, so it compiles the sweep's programs again
unless they are on disk. For each task this runs `sweep.py` three times into one results folder,
each time after deleting the results file so the call trains again (what a killed sweep resumes):

    first    with an empty cache folder (compiles and fills it)
    no cache --no-compile-cache (what every resume paid before)
    cached   the same cache folder (what a resume pays now)

and reads the sweep's own "compiled in X s" line (tracing, lowering and compiling or loading),
plus each process's wall time. Measure on an idle machine: compile time is CPU-bound, and other
work on the cores only adds to it.

JAX's cache never stores a program with host callbacks. A third case shows what that costs:
Pendulum-v1 with evaluation intervals of 1,000 iterations, whose training program reports
heartbeats from inside (a callback), against the same sweep with --no-heartbeats.

    python bench/bench_compile_cache.py                        # every case
    python bench/bench_compile_cache.py --case Pendulum-v1 --smoke --results /tmp/x   # seconds

Writes bench/results/compile_cache_<device>.json.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from common import ROOT, environment, write

# CPU sizes: what compiles is the program, whose size does not depend on these; the run is short.
PENDULUM = {"NUM_ENVS": 16, "BATCH_SIZE": 256, "TOTAL_TIMESTEPS": 40, "EVAL_INTERVAL": 20}
CHEETAH = {**PENDULUM, "NUM_EVAL_ENVS": 4, "TOTAL_TIMESTEPS": 20, "EVAL_INTERVAL": 10}
LONG_INTERVALS = {**PENDULUM, "NUM_ENVS": 4, "TOTAL_TIMESTEPS": 1000, "EVAL_INTERVAL": 1000}
CASES = {  # name: (task, sizes, extra sweep flags)
    "Pendulum-v1": ("Pendulum-v1", PENDULUM, []),
    "CheetahRun": ("CheetahRun", CHEETAH, []),
    "Pendulum-v1, 1,000-iteration intervals, heartbeats": ("Pendulum-v1", LONG_INTERVALS, []),
    "Pendulum-v1, 1,000-iteration intervals, --no-heartbeats": (
        "Pendulum-v1",
        LONG_INTERVALS,
        ["--no-heartbeats"],
    ),
}
# --smoke: smaller networks still, to check the script end to end in seconds (not a result).
SMOKE = {"CRITIC_HIDDEN_DIM": 16, "ACTOR_HIDDEN_DIM": 8, "NUM_ATOMS": 11, "NUM_ENVS": 4, "BATCH_SIZE": 32}
COMPILED = re.compile(r"compiled in ([0-9.]+) s")


def run_sweep(env: str, sizes: dict, out: pathlib.Path, cache: list[str]) -> dict:
    """One sweep process that trains the whole (one-call) sweep again; its compile and wall seconds."""
    for results in out.glob("combo_*/agents_*.npz"):
        results.unlink()  # the call trains again, as after a kill
    sets = [arg for key, value in sizes.items() for arg in ("--set", f"{key}={value}")]
    cmd = [sys.executable, "sweep.py", "--env", env, "--seeds", "2", "--out", str(out), *sets]
    cmd += ["--quiet", "--no-plots", "--chunk", "2", *cache]
    env_vars = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env_vars, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"compile_seconds": float(COMPILED.search(proc.stdout).group(1)), "process_seconds": wall}


def measure(case: str, env: str, sizes: dict, flags: list[str], work: pathlib.Path) -> dict:
    folder = work / f"case_{len(list(work.iterdir()))}"
    cache, out = folder / "cache", folder / "sweep"
    row = {"case": case, "env": env, "sizes": sizes, "flags": flags}
    row["first"] = run_sweep(env, sizes, out, ["--compile-cache", str(cache), *flags])
    row["no_cache"] = run_sweep(env, sizes, out, ["--no-compile-cache", *flags])
    row["cached"] = run_sweep(env, sizes, out, ["--compile-cache", str(cache), *flags])
    row["cached_programs"] = sorted(f.name.split("-")[0] for f in cache.iterdir())
    row["cache_bytes"] = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    row["speedup"] = row["no_cache"]["compile_seconds"] / max(row["cached"]["compile_seconds"], 1e-9)
    print(
        f"{case}: resume compile {row['no_cache']['compile_seconds']:.1f} s without the cache, "
        f"{row['cached']['compile_seconds']:.1f} s with it ({row['speedup']:.1f}x); process "
        f"{row['no_cache']['process_seconds']:.0f} s -> {row['cached']['process_seconds']:.0f} s; "
        f"cache {row['cache_bytes'] / 2**20:.1f} MiB holding {row['cached_programs']}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--smoke", action="store_true", help="tiny networks: checks the script, no result")
    parser.add_argument("--results", type=pathlib.Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fasttd3x-bench-cache-") as work:
        for case in args.case:
            env, sizes, flags = CASES[case]
            sizes = {**sizes, **(SMOKE if args.smoke else {})}
            rows.append(measure(case, env, sizes, flags, pathlib.Path(work)))
    import jax

    device = "cpu" if jax.devices()[0].platform == "cpu" else jax.devices()[0].device_kind.replace(" ", "_")
    name = f"compile_cache_{device}{'_smoke' if args.smoke else ''}"
    write(name, {"environment": environment(), "smoke": args.smoke, "rows": rows}, args.results)


if __name__ == "__main__":
    main()
