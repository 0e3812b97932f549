"""Does a sweep's CPU device layout deadlock jaxlib's batched LAPACK kernels?

MJX's constraint solver factorizes every env's matrix each physics step with jaxlib's LAPACK
Cholesky. jaxlib 0.10.x splits such a batch over XLA's CPU thread pool (one thread per core) and
blocks until the pieces are done, while each host device's computation itself occupies a thread of
that pool. With a device on every core, every thread can end up waiting for pieces that no thread
is free to run: the process sits at 0% CPU forever (`python sweep.py --env CheetahRun --seeds 2` on
2 cores did; bench/results/logs/cpu_deadlock_cheetahrun_stacks.txt holds its threads' stacks).

This runs `PROGRAM` (batched 9x9 Cholesky, 4,096 matrices per device, 100 steps: under a second
when it runs) in a fresh process for each layout, with a time limit, a few times each:

    python bench/bench_cpu_deadlock.py            # one device per core, and the sweep's choice
    python bench/bench_cpu_deadlock.py --devices 1 2 --repeats 5 --limit 60

Writes bench/results/cpu_deadlock_cpu.json: per layout, how many runs finished and in what time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import environment, write
from fasttd3x import capacity

PROGRAM = """
import jax, jax.numpy as jnp
mesh = jax.make_mesh((len(jax.devices()),), ("agents",))
rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
a = jax.random.normal(jax.random.PRNGKey(0), (len(jax.devices()) * 4096, 9, 9))
matrices = jax.device_put(a @ jnp.swapaxes(a, -1, -2) + 9.0 * jnp.eye(9), rows)
def factorize(m):
    step = lambda x, _: (x + 1e-3 * jnp.linalg.cholesky(x)[..., :1, :1] * jnp.eye(9), None)
    return jax.lax.scan(step, m, None, length=100)[0]
out = jax.jit(factorize, in_shardings=rows, out_shardings=rows)(matrices)
print("finished on", len(jax.devices()), "devices:", bool(jnp.isfinite(out).all()))
"""


def run_once(devices: int, limit: float) -> dict:
    """One fresh process with `devices` host devices: finished or not, and its wall seconds."""
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        return {"finished": False, "seconds": round(time.perf_counter() - start, 1)}
    finished = proc.returncode == 0 and "True" in proc.stdout
    return {"finished": finished, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    chosen, why = capacity.cpu_device_count("CheetahRun", cores)
    parser.add_argument("--devices", nargs="+", type=int, default=sorted({cores, chosen}))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds before a run counts as stuck")
    args = parser.parse_args()

    layouts = []
    for devices in args.devices:
        runs = [run_once(devices, args.limit) for _ in range(args.repeats)]
        finished = sum(r["finished"] for r in runs)
        print(
            f"{devices} host device(s) on {cores} cores: {finished}/{len(runs)} finished {runs}", flush=True
        )
        layouts.append({"host_devices": devices, "finished": finished, "runs": runs})
    write(
        "cpu_deadlock_cpu",
        {
            "what": "batched 9x9 Cholesky (4,096 per device, 100 steps) sharded over host devices",
            "cores": cores,
            "limit_seconds": args.limit,
            "sweep_layout_for_mjx_tasks": {"host_devices": chosen, "why": why},
            "lapack_blocks_pool": capacity.LAPACK_BLOCKS_POOL,
            "layouts": layouts,
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
