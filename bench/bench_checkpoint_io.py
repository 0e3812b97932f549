"""Write time and size of one sweep call's checkpoint, as sweep.py --checkpoint-every writes it,
beside orbax's StandardCheckpointer on the same state (issue #22: own format or orbax's).

A call of `--agents` fresh agents (init only: the run program is never compiled), and the same
state filled with random values (a full replay buffer), are saved `--repeats` times each way, to
a fresh folder:
  ours:  checkpoints.save_checkpoint (np.savez, fsync, rename, directory fsync), then the CRC-32
         of the file that the manifest records (checkpoints.checksum), then the manifest.
  orbax: ocp.StandardCheckpointer().save of the same state's leaves (but the zero-size ones, which
         orbax refuses), waited for.
Times are the median of the repeats, the first one included (the page cache is warm for both).

    python bench/bench_checkpoint_io.py --env CheetahRun --agents 4

Writes bench/results/checkpoint_io_<env>_<agents>agents.json.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import purejax_fasttd3 as ft  # noqa: E402
from common import environment, parse_overrides, write  # noqa: E402
from fasttd3x import checkpoints  # noqa: E402


def folder_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CheetahRun")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()

    config = ft.make_config(args.env, **parse_overrides(args.set))
    loop = ft.make_train_loop(config)
    init = jax.jit(jax.vmap(loop.init, out_axes=ft.RUNNER_AXES))
    rngs = jax.random.split(jax.random.PRNGKey(0), args.agents)
    hparams = {k: np.full(args.agents, v, np.float32) for k, v in ft.HPARAM_DEFAULTS.items()}
    state = jax.block_until_ready(init(rngs, hparams))
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    result = {
        "env": args.env,
        "agents": args.agents,
        "overrides": parse_overrides(args.set),
        "repeats": args.repeats,
        "state_bytes": state_bytes,
        # A fresh state's replay buffer is zeros, which orbax's compression shrinks to nothing;
        # "filled" replaces every float leaf with random values, as a full buffer mid-run holds.
        "fresh": measure(state, args),
        "filled": measure(jax.tree.map(noise, state), args),
        "environment": environment(),
    }
    print(result)
    write(f"checkpoint_io_{args.env}_{args.agents}agents", result)


def noise(x: jax.Array) -> jax.Array:
    if not jnp.issubdtype(x.dtype, jnp.floating) or not x.size:
        return x
    return jax.random.uniform(jax.random.PRNGKey(x.size), x.shape, x.dtype)


def measure(state, args) -> dict:
    """Median seconds and bytes of `args.repeats` saves of `state`, ours and orbax's."""
    nonempty = [x for x in jax.tree.leaves(state) if x.size]  # orbax refuses zero-size arrays
    metrics = {"eval_return": np.zeros((args.agents, 1), np.float32)}
    meta = {"evals_done": 1, "run_seconds": 0.0}
    root = pathlib.Path(tempfile.mkdtemp(prefix="checkpoint_io_", dir=args.dir))
    ours, crc, orbax = [], [], []
    try:
        for repeat in range(args.repeats):
            part = checkpoints.part_path(root, 0, args.agents, repeat + 1, 0)
            start = time.perf_counter()
            checkpoints.save_checkpoint(part, state, metrics, meta)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            size, checksum = checkpoints.checksum(part)
            checkpoints.write_manifest(checkpoints.manifest_path(root, 0, args.agents), repeat + 1,
                                       [{"name": part.name, "bytes": size, "crc32": checksum}])  # fmt: skip
            crc.append(time.perf_counter() - start)
            ours_bytes = part.stat().st_size
            part.unlink()

            target = root / f"orbax_{repeat}"
            start = time.perf_counter()
            with ocp.StandardCheckpointer() as checkpointer:  # leaving the block waits for the write
                checkpointer.save(target, nonempty)
            orbax.append(time.perf_counter() - start)
            orbax_bytes = folder_bytes(target)
            shutil.rmtree(target)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "ours": {
            "bytes": ours_bytes,
            "write_s": statistics.median(ours),
            "crc_and_manifest_s": statistics.median(crc),
        },
        "orbax": {"bytes": orbax_bytes, "write_s": statistics.median(orbax)},
        "all_seconds": {"ours_write": ours, "ours_crc_and_manifest": crc, "orbax_write": orbax},
    }


if __name__ == "__main__":
    main()
