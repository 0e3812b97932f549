"""Live metrics of a running sweep: one JSON line per agent and evaluation, as soon as the
evaluation reaches the host, and the same records fed to optional sinks (TensorBoard, W&B).

Results files are written only when a whole device call finishes, which on a GPU can be hours;
this log is what `tail -f` and a notebook read in the meantime. Nothing here touches the XLA
program: the sweep hands over the metrics it already brings to the host after every evaluation.

    OUT/live.jsonl   one record per line (LIVE_FILE), appended and flushed after each evaluation:
        combo, agent, grid_index, seed_index   which agent (agent = grid_index * seeds + seed_index)
        eval                                   evaluation number, 1-based
        iterations, env_steps                  training progress at that evaluation (per agent)
        time                                   Unix time the record was written (wall clock)
        run_seconds                            device time of the agent's call so far
        <SETTING>                              the combination's static values and the agent's grid
                                               values (upper-case keys, as in the config)
        <metric>                               every metric of the evaluation (lower-case keys)

A resumed sweep appends to the same file: records already in it (same combo, agent and eval)
are skipped, and a line cut short by a kill is dropped, so every (combo, agent, eval) appears
once. Only the process that writes results (process 0) keeps the log.
"""

from __future__ import annotations

import atexit
import json
import math
import pathlib
import time
from collections.abc import Iterable
from typing import Protocol

import numpy as np

LIVE_FILE = "live.jsonl"  # in the results folder
KEY = ("combo", "agent", "eval")  # what makes a record unique: a resume never repeats one


class OptionalDependencyError(ImportError):
    """An optional feature was asked for and its package is missing: names the extra to install."""


def require(module: str, extra: str, feature: str):
    """Imports `module` for `feature`, or raises an error naming the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise OptionalDependencyError(
            f"{feature} needs the optional package {module.split('.')[0]!r}, which is not installed "
            f'({error}). Install it with: pip install "fasttd3x[{extra}]"'
        ) from None


class Sink(Protocol):
    """Where live records go besides the JSONL file (TensorBoard, W&B). `write` receives each
    evaluation's new records (never a duplicate); `close` is called once, with the final summary
    rows (or None when the sweep stopped early)."""

    def write(self, records: list[dict]) -> None: ...

    def close(self, summary: list[dict] | None = None) -> None: ...


def eval_records(
    *,
    combo: int,
    agents: np.ndarray,
    seeds: int,
    settings: dict,
    points: list[dict],
    eval_number: int,
    iterations: int,
    env_steps: int,
    run_seconds: float,
    metrics: dict[str, np.ndarray],
) -> list[dict]:
    """The records of one evaluation of a call: one per agent in `agents` (row i of each metric,
    a [rows] or [rows, 1] array, belongs to agents[i]). `points` are the grid points in order,
    `settings` the combination's static values."""
    now = time.time()
    records = []
    for row, agent in enumerate(int(a) for a in agents):
        grid_index, seed_index = divmod(agent, seeds)
        record = {
            "combo": combo,
            "agent": agent,
            "grid_index": grid_index,
            "seed_index": seed_index,
            "eval": eval_number,
            "iterations": int(iterations),
            "env_steps": int(env_steps),
            "time": now,
            "run_seconds": float(run_seconds),
            **settings,
            **points[grid_index],
        }
        for name, values in metrics.items():
            record[name] = _number(np.asarray(values)[row].reshape(-1)[-1])
        records.append(record)
    return records


def _number(value) -> float | int | None:
    """A JSON-safe scalar: NaN and infinities (a diverged agent) as null, the JSON way."""
    value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class LiveLog:
    """The append-only JSONL log of a sweep (format in the module docstring), plus its sinks.

    Opening it reads what an earlier run of the same sweep wrote, so `append` skips those
    records, and drops a last line a kill cut short. A folder the log cannot be written to is
    refused at once, naming it, before any training."""

    def __init__(self, folder: pathlib.Path, sinks: Iterable[Sink] = ()):
        self.path = pathlib.Path(folder) / LIVE_FILE
        self.sinks = list(sinks)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_cut_line()
            self.existing = read_records(self.path)  # what an earlier run of the sweep logged
            self.seen = {tuple(r[k] for k in KEY) for r in self.existing}
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as error:
            raise ValueError(
                f"the live metrics log {self.path} cannot be written ({error.strerror or error}); "
                "make its folder writable or choose another --out"
            ) from None

    def _drop_cut_line(self) -> None:
        """Truncates the file after its last complete line (a kill can stop a write midway)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)

    def append(self, records: list[dict]) -> int:
        """Writes the records not logged before, flushed to the OS, then hands them to the sinks.
        Returns how many were new."""
        new = [r for r in records if tuple(r[k] for k in KEY) not in self.seen]
        if not new:
            return 0
        self._file.write("".join(json.dumps(r, allow_nan=False) + "\n" for r in new))
        self._file.flush()
        self.seen.update(tuple(r[k] for k in KEY) for r in new)
        for sink in self.sinks:
            sink.write(new)
        return len(new)

    def close(self, summary: list[dict] | None = None) -> None:
        """Closes the file and the sinks; `summary` (the final table) goes to the sinks."""
        self._file.close()
        for sink in self.sinks:
            sink.close(summary)


def read_records(path) -> list[dict]:
    """Every complete record of a live log (a line still being written is left out)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # being written, or cut short by a kill
            records.append(json.loads(line))
    return records


class SweepLog:
    """A sweep's live log with what turns a call's metrics into records: the grid points, the
    seeds and each combination's static values (sweep.json's "combos"). Closed at exit if the
    sweep does not close it with its summary (a stop or an error)."""

    def __init__(self, folder, *, seeds: int, points: list[dict], combos: list[dict], sinks=()):
        self.log = LiveLog(folder, sinks)
        self.seeds, self.points, self.combos = seeds, points, combos or [{}]
        self.closed = False
        atexit.register(self.close)

    def evaluation(
        self, combo: int, config: dict, lo: int, hi: int, eval_number: int, metrics: dict, run_seconds: float
    ) -> int:
        """Logs evaluation `eval_number` (1-based) of agents lo..hi-1 of a combination; `metrics`
        holds one row per agent of the call (padding rows past hi - lo are left out)."""
        per_agent = {k: np.asarray(v)[: hi - lo] for k, v in metrics.items() if k != "env_steps"}
        records = eval_records(
            combo=combo,
            agents=np.arange(lo, hi),
            seeds=self.seeds,
            settings=self.combos[combo],
            points=self.points,
            eval_number=eval_number,
            iterations=eval_number * config["EVAL_INTERVAL"],
            env_steps=eval_number * config["EVAL_INTERVAL"] * config["NUM_ENVS"],
            run_seconds=run_seconds,
            metrics=per_agent,
        )
        return self.log.append(records)

    def close(self, summary: list[dict] | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.log.close(summary)
