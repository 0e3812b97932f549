"""Checkpoints of a running sweep call, and atomic writes of .npz and JSON files.

A checkpoint holds one device call's complete state, so that a killed sweep resumes the call bit
for bit. With several processes each writes its own rows of the call:

    combo_XXX/checkpoint_AAAAAA-BBBBBB.npz             the call of agents A..B-1, one process
    combo_XXX/checkpoint_AAAAAA-BBBBBB_processK.npz    process K's rows of it, several processes
        leaf_NNNNN      this process's rows of every leaf of the call's state (`jax.tree.leaves`
                        order; rows past B-A pad the call to its size); the eval counter whole
        metric_<NAME>   [call size, evals done] of every metric, every row of the call
        meta            JSON string: format, evals_done, run_seconds

A file is written whole or not at all (a killed write leaves only `<name>.tmp`), and is read
back whole or refused with a `CorruptFileError` that names it: unreadable, of another format, or
holding the state of another config. sweep.py writes and resumes from checkpoints; policy.py
reads one agent out of one. This module imports neither, nor the trainer.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil

import jax
import numpy as np

# /2: the env state is the wrapper stack's own (envs.EnvState), so /1 files hold another tree.
FORMAT = "fasttd3x-checkpoint/2"
NAME = re.compile(r"checkpoint_(\d+)-(\d+)(?:_process(\d+))?\.npz")  # what `checkpoint_path` writes


class CorruptFileError(ValueError):
    """A results or checkpoint file that cannot be read back."""


# ==================================================================================================
# ATOMIC WRITES
# ==================================================================================================
def partial_path(path: pathlib.Path) -> pathlib.Path:
    """Where a file is written before it is renamed to `path`; only a killed write leaves it."""
    return path.with_name(path.name + ".tmp")


def write_npz(path: pathlib.Path, arrays: dict) -> None:
    """Atomic: a reader (or a resumed sweep) sees the whole file or none of it."""
    tmp = partial_path(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: pathlib.Path, data) -> None:
    """Atomic, like `write_npz`; floats that JSON lacks (NumPy scalars) are written as floats."""
    tmp = partial_path(path)
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


# ==================================================================================================
# CHECKPOINTS
# ==================================================================================================
def checkpoint_path(folder: pathlib.Path, lo: int, hi: int) -> pathlib.Path:
    """This process's checkpoint of the call of agents lo..hi-1."""
    part = f"_process{jax.process_index()}" if jax.process_count() > 1 else ""
    return folder / f"checkpoint_{lo:06d}-{hi:06d}{part}.npz"


def parse_checkpoint_name(path: pathlib.Path) -> tuple[int, int, int] | None:
    """(lo, hi, process) of a checkpoint's file name (process 0 for a single process's file);
    None for a file that is not named as a checkpoint."""
    match = NAME.fullmatch(path.name)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3] or 0))


def local_state_rows(state) -> list[np.ndarray]:
    """This process's rows of every leaf of a sharded state (all rows in a single process)."""
    rows = []
    for leaf in jax.tree.leaves(state):
        if leaf.sharding.is_fully_replicated:
            rows.append(np.asarray(leaf.addressable_shards[0].data))
            continue
        shards = {s.index[0].start or 0: s for s in leaf.addressable_shards}
        rows.append(np.concatenate([np.asarray(shards[k].data) for k in sorted(shards)]))
    return rows


def save_checkpoint(path: pathlib.Path, state, metrics: dict, meta: dict) -> None:
    """A call's complete state, its metrics so far and `meta` (evals done, run seconds), written
    atomically: a crash while writing leaves the previous checkpoint in place."""
    arrays = {f"leaf_{i:05d}": leaf for i, leaf in enumerate(local_state_rows(state))}
    arrays.update({f"metric_{name}": values for name, values in metrics.items()})
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, **meta}))
    write_npz(path, arrays)


def load_checkpoint(path: pathlib.Path) -> tuple[list[np.ndarray], dict, dict]:
    """(state leaves, metrics so far, meta); an unreadable file is refused, named. Whether the
    leaves fit a config is `check_state_fits`'s to say."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            leaves = [data[k] for k in sorted(k for k in data.files if k.startswith("leaf_"))]
            metrics = {k[len("metric_") :]: data[k] for k in data.files if k.startswith("metric_")}
    except Exception as error:
        raise CorruptFileError(
            f"checkpoint {path} is unreadable ({type(error).__name__}: {error}). Delete it to train "
            "its agents from the start, then rerun the same command."
        ) from None
    return leaves, metrics, meta


def check_state_fits(leaves: list[np.ndarray], specs: list) -> None:
    """Refuses leaves read from a checkpoint that are not a call's state of this config: another
    number of arrays, or another shape past the leading (agent) axis. `specs` are the state's
    leaves as traced for the call (shapes and dtypes)."""
    if len(leaves) != len(specs):
        raise CorruptFileError(f"the checkpoint holds {len(leaves)} arrays, this config's state {len(specs)}")
    for leaf, spec in zip(leaves, specs):
        if leaf.shape[1:] != spec.shape[1:] or leaf.ndim != spec.ndim:
            raise CorruptFileError(
                f"an array of shape {leaf.shape} where this config's state has {spec.shape}"
            )


def check_disk(folder: pathlib.Path, per_call: int, agents: int) -> None:
    """Prints what a checkpoint of `agents` agents (`per_call` bytes) costs, and refuses when the
    disk cannot hold two: the one being written beside the one it replaces."""
    free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    existing = sum(p.stat().st_size for p in folder.glob("checkpoint_*.npz")) if folder.exists() else 0
    print(
        f"checkpoints: {per_call / 2**30:.2f} GiB per call ({agents} agents x "
        f"{per_call / agents / 2**20:.1f} MiB of replay, env and network state); "
        f"{free / 2**30:.1f} GiB free on {folder.parent}"
    )
    if free + existing < 2 * per_call:
        raise ValueError(
            f"--checkpoint-every: a checkpoint of one call takes {per_call / 2**30:.2f} GiB and the "
            f"results disk needs room for two ({2 * per_call / 2**30:.2f} GiB) but has "
            f"{(free + existing) / 2**30:.2f} GiB. Free disk space, choose another --out, or lower "
            "the agents per call (--chunk) or the replay size (--set BUFFER_SIZE=...)"
        )
