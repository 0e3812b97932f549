"""Checkpoints of a running sweep call, and atomic writes of .npz and JSON files.

A checkpoint holds one device call's complete state, so that a killed sweep resumes the call bit
for bit. With several processes each writes its own rows of the call, and process 0 commits them:

    combo_XXX/checkpoint_AAAAAA-BBBBBB.npz       the call of agents A..B-1, one process
    combo_XXX/checkpoint_AAAAAA-BBBBBB_evalEEEEEE_processK.npz
                                                process K's rows of it at eval E, several processes
        leaf_NNNNN      this process's rows of every leaf of the call's state (`jax.tree.leaves`
                        order; rows past B-A pad the call to its size); the eval counter whole
        metric_<NAME>   [call size, evals done] of every metric, every row of the call
        meta            JSON string: format, evals_done, run_seconds
    combo_XXX/checkpoint_AAAAAA-BBBBBB.json      several processes: the manifest (process 0's
                        folder): the eval of the complete checkpoint and each process's part of
                        it (file name, bytes, CRC-32)

A multi-process checkpoint counts only once its manifest names it: every process writes its part,
all agree that every part is on disk, then process 0 writes the manifest, last; only then does
each process delete its parts of the previous checkpoint. A kill at any point leaves the previous
complete checkpoint and its manifest in place (the resume point), and parts of a later evaluation
that are ignored.

A file is written whole or not at all (a killed write leaves only `<name>.tmp`; the directory is
fsynced after the rename, so the new name survives a power loss too), and is read back whole or
refused with a `CorruptFileError` that names it: unreadable, of another format, or holding the
state of another config. The sweep (sweep.py) writes and resumes from checkpoints, with the
multi-process protocol at the end of this module; policy.py reads one agent out of one. This
module imports neither, nor the trainer.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import zlib

import jax
import numpy as np

from fasttd3x import distributed

# /2: the env state is the wrapper stack's own (envs.EnvState), so /1 files hold another tree.
FORMAT = "fasttd3x-checkpoint/2"
MANIFEST_FORMAT = "fasttd3x-checkpoint-manifest/1"
# What `checkpoint_path` and `part_path` write: (lo, hi, eval, process).
NAME = re.compile(r"checkpoint_(\d+)-(\d+)(?:_eval(\d+)_process(\d+))?\.npz")
# Test-only fault injection: "K:E" makes process K kill itself (SIGKILL) right after writing its
# part of the checkpoint at eval E, before the processes agree that every part is written.


class CorruptFileError(ValueError):
    """A results or checkpoint file that cannot be read back."""


# ==================================================================================================
# ATOMIC WRITES
# ==================================================================================================
def partial_path(path: pathlib.Path) -> pathlib.Path:
    """Where a file is written before it is renamed to `path`; only a killed write leaves it."""
    return path.with_name(path.name + ".tmp")


def fsync_dir(folder: pathlib.Path) -> None:
    """Makes the names in `folder` (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: pathlib.Path, path: pathlib.Path) -> None:
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_npz(path: pathlib.Path, arrays: dict) -> None:
    """Atomic: a reader (or a resumed sweep) sees the whole file or none of it."""
    tmp = partial_path(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    _commit(tmp, path)


def write_json(path: pathlib.Path, data) -> None:
    """Atomic, like `write_npz`; floats that JSON lacks (NumPy scalars) are written as floats."""
    tmp = partial_path(path)
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())
    _commit(tmp, path)


def remove_partial_writes(folder: pathlib.Path, process: int) -> list[str]:
    """Deletes what killed writes left in `folder` (`*.tmp`, a second Ctrl-C's too): process 0
    every one but other processes' checkpoint parts, another process its own parts only (a
    shared folder is cleaned once, and no process deletes a file another is writing). Returns
    the names deleted."""
    removed = []
    for tmp in sorted(folder.glob("*.tmp")) if folder.exists() else []:
        call = _fields(tmp.with_suffix(""))
        owner = call[3] if call is not None and call[2] is not None else 0
        if owner == process:
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def checksum(path: pathlib.Path) -> tuple[int, int]:
    """(bytes, CRC-32) of a file, read in blocks: what a manifest records of each part."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            crc = zlib.crc32(block, crc)
    return path.stat().st_size, crc


# ==================================================================================================
# CHECKPOINTS
# ==================================================================================================
def checkpoint_path(folder: pathlib.Path, lo: int, hi: int) -> pathlib.Path:
    """The checkpoint of the call of agents lo..hi-1 written by a single process."""
    return folder / f"checkpoint_{lo:06d}-{hi:06d}.npz"


def part_path(folder: pathlib.Path, lo: int, hi: int, evals: int, process: int) -> pathlib.Path:
    """Process `process`'s part of the checkpoint at eval `evals` of the call of agents lo..hi-1."""
    return folder / f"checkpoint_{lo:06d}-{hi:06d}_eval{evals:06d}_process{process}.npz"


def manifest_path(folder: pathlib.Path, lo: int, hi: int) -> pathlib.Path:
    """The manifest of the call's complete multi-process checkpoint (process 0's folder)."""
    return folder / f"checkpoint_{lo:06d}-{hi:06d}.json"


def _fields(path: pathlib.Path) -> tuple[int, int, int | None, int] | None:
    """(lo, hi, eval, process) of a checkpoint's file name (eval None and process 0 for a single
    process's file); None for a file that is not named as a checkpoint."""
    match = NAME.fullmatch(path.name)
    if match is None:
        return None
    return int(match[1]), int(match[2]), None if match[3] is None else int(match[3]), int(match[4] or 0)


def parse_checkpoint_name(path: pathlib.Path) -> tuple[int, int, int] | None:
    """(lo, hi, process) of a checkpoint's file name (process 0 for a single process's file);
    None for a file that is not named as a checkpoint."""
    fields = _fields(path)
    return None if fields is None else (fields[0], fields[1], fields[3])


def write_manifest(path: pathlib.Path, evals: int, parts: list[dict]) -> None:
    """Commits a multi-process checkpoint: `parts[k]` is process k's part (name, bytes, crc32)."""
    write_json(path, {"format": MANIFEST_FORMAT, "evals_done": evals, "parts": parts})


def read_manifest(path: pathlib.Path) -> dict:
    """A manifest written by `write_manifest`; an unreadable one is refused, named."""
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        manifest["evals_done"], manifest["parts"]  # noqa: B018  (both present, or refused)
    except Exception as error:
        raise CorruptFileError(
            f"checkpoint manifest {path} is unreadable ({type(error).__name__}: {error}). Delete the "
            f"call's checkpoint files ({path.stem}*) on every host to train its agents from the "
            "start, then rerun the same command."
        ) from None
    return manifest


def check_part(path: pathlib.Path, part: dict) -> str | None:
    """Why `path` is not the part a manifest names (`part`: name, bytes, crc32); None if it is."""
    if not path.exists():
        return f"its part {path.name} is missing"
    size, crc = checksum(path)
    if size != part["bytes"]:
        return f"its part {path.name} has {size} bytes, the manifest says {part['bytes']}"
    if crc != part["crc32"]:
        return f"its part {path.name} has CRC-32 {crc:08x}, the manifest says {part['crc32']:08x}"
    return None


def remove_checkpoints(folder: pathlib.Path, process: int, finished) -> list[str]:
    """Deletes `process`'s checkpoint files in `folder` of the calls (lo, hi) that `finished(lo,
    hi)` says are done: its parts, and if process 0 the manifests and single-process files.
    Returns the names deleted."""
    removed = []
    for path in sorted(folder.glob("checkpoint_*")) if folder.exists() else []:
        call = _fields(path.with_suffix(".npz"))  # a manifest is named as the call's .npz
        if call is not None and call[3] == process and finished(call[0], call[1]):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def remove_old_parts(folder: pathlib.Path, lo: int, hi: int, process: int, keep_evals: int) -> None:
    """Deletes `process`'s parts of the call's checkpoints at other evals than `keep_evals`."""
    for path in folder.glob(f"checkpoint_{lo:06d}-{hi:06d}_eval*_process{process}.npz"):
        if _fields(path)[2] != keep_evals:
            path.unlink(missing_ok=True)


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


# ==================================================================================================
# THE MULTI-PROCESS PROTOCOL: save a call's checkpoint, agree where to resume it
# ==================================================================================================
def agents_name(lo: int, hi: int) -> str:
    """How messages name the agents of a call."""
    return f"agents {lo}-{hi - 1}"


def agreed_resume_point(folder: pathlib.Path, lo: int, hi: int) -> pathlib.Path | None:
    """The checkpoint file this process resumes `call` from, or None to start it anew. A single
    process resumes from its file if there is one. Several resume from the checkpoint process 0's
    manifest names, once every process has found its part of it whole (bytes and CRC-32 as the
    manifest says); a missing or damaged part stops every process with the same message. Parts
    no manifest names (a kill before the manifest was written) are ignored. A checkpoint written
    by another number of processes is refused (`_written_by_others`)."""
    manifest, single = manifest_path(folder, lo, hi), checkpoint_path(folder, lo, hi)
    processes, process = jax.process_count(), jax.process_index()
    if processes == 1:
        if manifest.exists():
            written = read_manifest(manifest)
            raise _written_by_others(lo, hi, manifest, len(written["parts"]), written["evals_done"])
        return single if single.exists() else None

    def read() -> list[int]:  # evals, then the bytes and CRC-32 of each process's part
        if process != 0 or not manifest.exists():
            if process == 0 and single.exists():
                raise _written_by_others(lo, hi, single, 1)
            return [0] * (1 + 2 * processes)
        written = read_manifest(manifest)
        if len(written["parts"]) != processes:
            raise _written_by_others(lo, hi, manifest, len(written["parts"]), written["evals_done"])
        return [written["evals_done"], *(v for p in written["parts"] for v in (p["bytes"], p["crc32"]))]

    what = f"reading the checkpoint manifest of {agents_name(lo, hi)}"
    row = distributed.process_0_int64(distributed.agreed(what, read), what)
    evals = int(row[0])
    if not evals:
        return None
    part = part_path(folder, lo, hi, evals, process)

    def check() -> None:
        expected = {"bytes": int(row[1 + 2 * process]), "crc32": int(row[2 + 2 * process])}
        cause = check_part(part, expected)
        if cause:
            raise CorruptFileError(cause)

    distributed.agreed(
        f"resuming {agents_name(lo, hi)} from their checkpoint at eval {evals} ({manifest.name})",
        check,
        advice="Every process needs its part of the checkpoint its manifest names: restore the part, "
        f"or delete the call's checkpoint files ({manifest.stem}*) on every host to train its agents "
        "from the start, then rerun the same command",
    )
    return part


def _written_by_others(
    lo: int, hi: int, path: pathlib.Path, writers: int, evals: int | None = None
) -> ValueError:
    """The refusal of a checkpoint (`path`: its manifest, or one process's file) that `writers`
    processes wrote: each wrote its own rows of the call's state, so only as many resume it."""
    count = lambda n: "one process" if n == 1 else f"{n} processes"
    how = "without --distributed" if writers == 1 else f"with --distributed in {writers} processes"
    at = f" at eval {evals}" if evals else ""
    return ValueError(
        f"{agents_name(lo, hi)} have a checkpoint{at} written by {count(writers)} ({path}), and this sweep "
        f"runs {count(jax.process_count())}: a checkpoint resumes only in as many processes as wrote "
        f"it. Run the same command {how} to resume it, or delete the call's checkpoint files "
        f"({path.stem}*) on every host to train its agents from the start"
    )


def save_call_checkpoint(folder: pathlib.Path, lo: int, hi: int, state, metrics: dict, meta: dict) -> None:
    """The running call's checkpoint at eval `meta["evals_done"]`: one file from a single
    process. With several, each process writes its part; once all have, process 0 writes the
    manifest that commits them; then each process deletes its parts of the previous checkpoint
    (this module's docstring)."""
    if jax.process_count() == 1:
        save_checkpoint(checkpoint_path(folder, lo, hi), state, metrics, meta)
        return
    evals, process = meta["evals_done"], jax.process_index()
    names = [part_path(folder, lo, hi, evals, k).name for k in range(jax.process_count())]

    def write_part() -> np.ndarray:
        part = folder / names[process]
        save_checkpoint(part, state, metrics, meta)
        return np.array(checksum(part), np.int64)

    what = f"writing the checkpoint of {agents_name(lo, hi)} at eval {evals}"
    written = distributed.allgather(distributed.agreed(what, write_part).view(np.int32), what).view(np.int64)
    parts = [{"name": n, "bytes": int(b), "crc32": int(c)} for n, (b, c) in zip(names, written)]
    manifest = manifest_path(folder, lo, hi)
    distributed.agreed(what, lambda: process == 0 and write_manifest(manifest, evals, parts))
    remove_old_parts(folder, lo, hi, process, keep_evals=evals)
