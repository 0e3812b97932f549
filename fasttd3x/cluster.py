"""Running sweeps the way clusters run jobs: refuse processes a scheduler started without
joining them, lock a results folder against a second sweep, and split a sweep into independent
parts (a job array) that merge into exactly the unsharded results.

Parts. `--part I/N` trains the I-th of N contiguous blocks of every combination's agents into
its own folder, OUT/parts/I-of-N (a complete sweep folder of its own, resumable like any). The
blocks are cut at call boundaries of the call size (`--chunk`, which --part requires), so each
part runs exactly the device calls, padding included, that the unsharded sweep with the same
--chunk runs on the same number of devices: the same programs on the same rows, value for value.
No part waits for another; `merge_parts(OUT)` checks that the parts are of one sweep and
finished, then writes their files into OUT as the unsharded sweep would have.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import socket
import sys
import time
from typing import NamedTuple

# Environment variables that give the number of processes a launcher started for one job step.
# Slurm's SLURM_NTASKS is left out: a batch script sees it too, though only it runs (srun sets
# SLURM_STEP_NUM_TASKS in the tasks it starts).
SCHEDULER_SIZE_VARIABLES = {
    "SLURM_STEP_NUM_TASKS": "Slurm (srun)",
    "OMPI_COMM_WORLD_SIZE": "Open MPI (mpirun)",
    "PMI_SIZE": "MPICH / Intel MPI (mpiexec)",
    "MV2_COMM_WORLD_SIZE": "MVAPICH (mpirun)",
}
LOCK_FILE = ".sweep.lock"  # in the results folder; holds who has it
PARTS_FOLDER = "parts"  # OUT/parts/I-of-N
PART_FILE = "part.json"  # in a part's folder: which part, of how many, at which call size


# ------------------------------------------------------------------------------- schedulers
def scheduler_processes(environ=os.environ) -> tuple[int, str] | None:
    """(processes, launcher) when a launcher started this process as one of several, else None."""
    for variable, launcher in SCHEDULER_SIZE_VARIABLES.items():
        try:
            size = int(environ.get(variable, "1"))
        except ValueError:
            continue
        if size > 1:
            return size, f"{launcher}, {variable}={size}"
    return None


def refuse_unjoined_processes(joined: bool, environ=os.environ) -> None:
    """Raises when a launcher started several copies of this sweep and they are neither joined
    (--distributed) nor given parts (--part): each would train the whole sweep into one folder.
    Refused rather than joined silently: joining changes how results are computed and written,
    which the command should say."""
    found = scheduler_processes(environ)
    if found is None or joined:
        return
    size, launcher = found
    raise ValueError(
        f"this process is one of {size} that {launcher} started, and without --distributed each "
        "would run the whole sweep into the same folder. Add --distributed to run them as one sweep "
        f"(jax.distributed), or give each its own --part I/{size} (a job array needs neither), or "
        "start a single process"
    )


# ------------------------------------------------------------------------------- folder lock
class FolderLock:
    """An advisory lock on a results folder (flock on OUT/.sweep.lock), held while a sweep runs:
    a second sweep into the folder stops at once, naming the holder. The kernel drops it when the
    process ends, however it ends, so a killed sweep never leaves a stale lock. Advisory: it keeps
    out sweeps, not other programs; on NFS it needs the lock service (Linux maps flock to it)."""

    def __init__(self, folder: pathlib.Path):
        self.path = pathlib.Path(folder) / LOCK_FILE
        self._file = None

    def acquire(self) -> FolderLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+", encoding="utf-8")
        except OSError as error:
            raise ValueError(f"results folder {self.path.parent} cannot be written ({error})") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ValueError(
                f"{self.path.parent} is in use by another sweep ({holder}); wait for it to end, or "
                "choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        f.write(f"{holder}: {' '.join(sys.argv)}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------- parts
class Part(NamedTuple):
    """Part `index` (1-based) of `count`."""

    index: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"


def parse_part(text: str) -> Part:
    """`I/N` to a Part, refused with what is allowed."""
    index, sep, count = text.partition("/")
    try:
        part = Part(int(index), int(count))
    except ValueError:
        raise ValueError(f"--part expects I/N (this is part I of N, from 1), got {text!r}") from None
    if not sep or part.count < 1:
        raise ValueError(f"--part expects I/N with N >= 1, got {text!r}")
    if not 1 <= part.index <= part.count:
        raise ValueError(f"--part {text}: the part index must be in 1..{part.count}, got {part.index}")
    return part


def part_folder(out: pathlib.Path, part: Part) -> pathlib.Path:
    return pathlib.Path(out) / PARTS_FOLDER / part.name


def part_agents(part: Part, total: int, call_size: int) -> range:
    """The agents of a combination of `total` that `part` trains: a contiguous block of whole
    calls of `call_size` (the last call may be short), calls shared out as evenly as they go."""
    calls = -(-total // call_size)
    first = (part.index - 1) * calls // part.count
    last = part.index * calls // part.count
    return range(min(first * call_size, total), min(last * call_size, total))


def other_parts_agents(part: Part, total: int, call_size: int) -> set[int]:
    """The agents a part leaves to the others: the sweep counts them as done."""
    mine = part_agents(part, total, call_size)
    return set(range(total)) - set(mine)


def write_part_file(folder: pathlib.Path, part: Part, chunk: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PART_FILE).write_text(json.dumps({"part": part.index, "of": part.count, "chunk": chunk}) + "\n")


# ------------------------------------------------------------------------------- merge
def _read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} ({error})") from None


def find_parts(out: pathlib.Path) -> list[pathlib.Path]:
    """The part folders of OUT, in part order, checked to be all N parts of one split."""
    folders = sorted((pathlib.Path(out) / PARTS_FOLDER).glob("*-of-*"))
    if not folders:
        raise ValueError(f"{out / PARTS_FOLDER} holds no parts (folders I-of-N that --part writes)")
    counts = {f.name.split("-of-")[1] for f in folders}
    if len(counts) != 1:
        raise ValueError(
            f"{out / PARTS_FOLDER} holds parts of different splits (of {sorted(counts)}); keep one"
        )
    count = int(counts.pop())
    names = [f.name for f in folders]
    missing = [f"{i}-of-{count}" for i in range(1, count + 1) if f"{i}-of-{count}" not in names]
    if missing:
        raise ValueError(f"{out / PARTS_FOLDER}: parts {', '.join(missing)} are missing; run them first")
    return [pathlib.Path(out) / PARTS_FOLDER / f"{i}-of-{count}" for i in range(1, count + 1)]


def check_same_sweep(folders: list[pathlib.Path]) -> dict:
    """The shared sweep.json of the parts, refused when any part differs from the first: in the
    sweep (env, seeds, grid, settings), a combination's config, or the call size."""
    first = _read_json(folders[0] / "sweep.json")
    first_part = _read_json(folders[0] / PART_FILE)
    for folder in folders[1:]:
        spec = _read_json(folder / "sweep.json")
        for key in sorted(set(first) | set(spec)):
            if spec.get(key) != first.get(key):
                raise ValueError(
                    f"parts of different sweeps: {folder} has {key} {spec.get(key)!r}, "
                    f"{folders[0]} has {first.get(key)!r}; merge only parts of one command"
                )
        chunk = _read_json(folder / PART_FILE)["chunk"]
        if chunk != first_part["chunk"]:
            raise ValueError(
                f"parts of different sweeps: {folder} ran --chunk {chunk}, {folders[0]} --chunk "
                f"{first_part['chunk']}"
            )
        for c in range(len(first["combos"] or [{}])):
            for name, what in (("config.json", "config"), ("calls.json", "call size")):
                ours = folder / f"combo_{c:03d}" / name
                theirs = folders[0] / f"combo_{c:03d}" / name
                if _calls_or_config(ours, name) != _calls_or_config(theirs, name):
                    raise ValueError(
                        f"parts of different sweeps: the {what} in {ours} differs from {theirs} "
                        "(parts must run the same calls: the same --chunk on as many devices)"
                    )
    return first


def _calls_or_config(path: pathlib.Path, name: str):
    """What must match between parts: the whole config; of calls.json, the agents per call."""
    if not path.exists():
        return None
    data = _read_json(path)
    return data.get("agents_per_call") if name == "calls.json" else data


def _result_agents(path: pathlib.Path) -> range:
    lo, hi = path.stem.removeprefix("agents_").split("-")
    return range(int(lo), int(hi))


def merge_parts(out) -> list[pathlib.Path]:
    """Writes the results of OUT/parts/*-of-N into OUT as one sweep: sweep.json, every
    combination's config.json, calls.json and agents files, and the live logs joined. Refuses,
    writing nothing, parts of different sweeps and unfinished parts. Returns the files written."""
    out = pathlib.Path(out)
    folders = find_parts(out)
    spec = check_same_sweep(folders)
    if (out / "sweep.json").exists() and _read_json(out / "sweep.json") != spec:
        raise ValueError(f"{out} holds results of another sweep than its parts; merge into a new folder")
    seeds, combos = spec["seeds"], spec["combos"] or [{}]
    chunk = _read_json(folders[0] / PART_FILE)["chunk"]
    copies: list[tuple[pathlib.Path, pathlib.Path]] = []
    for c in range(len(combos)):
        combo = f"combo_{c:03d}"
        covered: list[int] = []
        for folder in folders:
            files = sorted((folder / combo).glob("agents_*.npz"))
            covered += [a for f in files for a in _result_agents(f)]
            copies += [(f, out / combo / f.name) for f in files]
        total = _combo_agents(spec, seeds)
        if sorted(covered) != list(range(total)):
            lacking = sorted(set(range(total)) - set(covered))
            raise ValueError(
                f"{combo}: agents {_ranges(lacking)} are not finished in any part; rerun their --part "
                f"command(s) (call size {chunk}) before merging"
            )
        for name in ("config.json", "calls.json"):
            copies.append((folders[0] / combo / name, out / combo / name))
    copies.append((folders[0] / "sweep.json", out / "sweep.json"))
    for source, target in copies:  # every check passed: nothing was written before this
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    _join_live_logs(folders, out)
    return [target for _, target in copies]


def _combo_agents(spec: dict, seeds: int) -> int:
    """Agents per combination: grid points (or drawn points) x seeds."""
    points = 1
    for values in spec["grid"].values():
        points *= len(values)
    return points * seeds


def _ranges(agents: list[int]) -> str:
    if not agents:
        return "none"
    return f"{agents[0]}..{agents[-1]}" if agents == list(range(agents[0], agents[-1] + 1)) else str(agents)


def _join_live_logs(folders: list[pathlib.Path], out: pathlib.Path) -> None:
    """OUT/live.jsonl from the parts' logs, sorted by combination, agent and evaluation."""
    from fasttd3x.live import LIVE_FILE, read_records

    records = [r for folder in folders for r in read_records(folder / LIVE_FILE)]
    if not records:
        return
    records.sort(key=lambda r: (r["combo"], r["agent"], r["eval"]))
    tmp = out / (LIVE_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, out / LIVE_FILE)
