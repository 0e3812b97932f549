"""TensorBoard and Weights & Biases sinks of the live log (fasttd3x/live.py), both optional.

Per grid point and evaluation, once every seed of the point has reported it, each metric's mean,
IQM and interquartile band (25th and 75th percentiles) over the finite seeds, at the env step of
the evaluation; per agent as well where asked (`per_agent`). The sweep's spec (config and grid)
goes in as hyperparameters at the start and the final summary table at the end.

    TensorBoard  OUT/tensorboard/combo_XXX/grid_YYY, one run per grid point, tags
                 <metric>/mean, /iqm, /p25, /p75 (and seed_S/<metric> per agent); the sweep's spec
                 as text; at the end the summary as text and as hparams of each grid point.
                 pip install "fasttd3x[tensorboard]" (tensorboardX writes, no TensorFlow).
    W&B          one run per sweep process, in OUT/wandb: keys combo_XXX/grid_YYY/<metric>/mean...
                 with env_steps beside them; the spec as the run config; the summary as a table.
                 pip install "fasttd3x[wandb]"; WANDB_MODE=offline keeps it off the network.

A resumed sweep reports only what its groups complete from then on: a group the earlier run
completed is not written twice (sinks are built with the records already in the log).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from fasttd3x.live import require

ID_KEYS = {
    "combo",
    "agent",
    "grid_index",
    "seed_index",
    "eval",
    "iterations",
    "env_steps",
    "time",
    "run_seconds",
}


def metric_names(record: dict) -> list[str]:
    """The metrics of a record: lower-case keys that do not identify it (settings are upper-case)."""
    return [k for k in record if k not in ID_KEYS and not k.isupper()]


def seed_stats(values: list) -> dict[str, float]:
    """mean, IQM and the 25th/75th percentiles of the finite values (NaN when none is)."""
    x = np.sort(np.asarray([v for v in values if v is not None], float))
    x = x[np.isfinite(x)]
    if not len(x):
        return dict.fromkeys(("mean", "iqm", "p25", "p75"), float("nan"))
    cut = int(np.floor(0.25 * len(x)))  # fasttd3x.results.iqm: the middle half, trimmed by count
    return {
        "mean": float(x.mean()),
        "iqm": float(x[cut : len(x) - cut].mean()),
        "p25": float(np.percentile(x, 25)),
        "p75": float(np.percentile(x, 75)),
    }


class GroupedSink:
    """Collects records into groups (combo, grid point, eval) and emits a group's statistics
    once all of its seeds are in. Subclasses write `emit_group` and `emit_agent`."""

    def __init__(self, seeds: int, per_agent: bool = False, existing: list[dict] = ()):
        self.seeds, self.per_agent = seeds, per_agent
        self.groups: dict[tuple, dict[int, dict]] = {}
        self.emitted: set[tuple] = set()
        for record in existing:
            self._add(record)
        self.emitted = {key for key, seeds in self.groups.items() if len(seeds) == self.seeds}

    def _add(self, record: dict) -> tuple:
        key = (record["combo"], record["grid_index"], record["eval"])
        self.groups.setdefault(key, {})[record["seed_index"]] = record
        return key

    def write(self, records: list[dict]) -> None:
        touched = []
        for record in records:
            touched.append(self._add(record))
            if self.per_agent:
                self.emit_agent(record)
        for key in dict.fromkeys(touched):
            group = self.groups[key]
            if key not in self.emitted and len(group) == self.seeds:
                self.emitted.add(key)
                first = next(iter(group.values()))
                stats = {m: seed_stats([r[m] for r in group.values()]) for m in metric_names(first)}
                self.emit_group(first, stats)

    def emit_group(self, first: dict, stats: dict[str, dict[str, float]]) -> None:
        raise NotImplementedError

    def emit_agent(self, record: dict) -> None:
        raise NotImplementedError

    def close(self, summary: list[dict] | None = None) -> None:
        raise NotImplementedError


def _run_name(record: dict) -> str:
    return f"combo_{record['combo']:03d}/grid_{record['grid_index']:03d}"


def _settings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k.isupper()}


def _summary_text(summary: list[dict]) -> str:
    """The summary rows as a Markdown table (TensorBoard renders text as Markdown)."""
    columns = list(dict.fromkeys(k for row in summary for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in summary]
    return "\n".join(lines)


class TensorBoardSink(GroupedSink):
    """Event files under OUT/tensorboard (layout in the module docstring)."""

    def __init__(self, folder, spec: dict, seeds: int, per_agent: bool = False, existing=()):
        super().__init__(seeds, per_agent, existing)
        self._tbx = require("tensorboardX", "tensorboard", "--tensorboard")
        self.folder = pathlib.Path(folder) / "tensorboard"
        self.writers: dict[str, object] = {}
        self.settings: dict[str, dict] = {}
        self._writer("sweep").add_text("sweep", f"```\n{json.dumps(spec, indent=2)}\n```")

    def _writer(self, name: str):
        if name not in self.writers:
            self.writers[name] = self._tbx.SummaryWriter(str(self.folder / name))
        return self.writers[name]

    def emit_group(self, first: dict, stats: dict) -> None:
        name = _run_name(first)
        self.settings[name] = _settings(first)
        writer = self._writer(name)
        for metric, values in stats.items():
            for stat, value in values.items():
                writer.add_scalar(f"{metric}/{stat}", value, first["env_steps"])
        writer.flush()

    def emit_agent(self, record: dict) -> None:
        writer = self._writer(_run_name(record))
        for metric in metric_names(record):
            value = record[metric]
            writer.add_scalar(
                f"seed_{record['seed_index']}/{metric}",
                np.nan if value is None else value,
                record["env_steps"],
            )

    def close(self, summary: list[dict] | None = None) -> None:
        if summary:
            self._writer("sweep").add_text("summary", _summary_text(summary))
            for row in summary:
                name = f"combo_{row['combo']:03d}/grid_{row['grid_index']:03d}"
                hparams = {k: v for k, v in row.items() if k.isupper()}
                finals = {f"final/{k}": float(row[k]) for k in ("mean", "iqm", "min") if k in row}
                if hparams:
                    self._writer(name).add_hparams(hparams, finals, name="hparams")
        for writer in self.writers.values():
            writer.close()


class WandbSink(GroupedSink):
    """One W&B run per sweep process, files in OUT/wandb (layout in the module docstring)."""

    def __init__(self, folder, project: str, spec: dict, seeds: int, per_agent: bool = False, existing=()):
        super().__init__(seeds, per_agent, existing)
        wandb = require("wandb", "wandb", "--wandb")
        self.run = wandb.init(
            project=project, dir=str(folder), name=pathlib.Path(folder).resolve().name, config={"sweep": spec}
        )
        self._wandb = wandb

    def emit_group(self, first: dict, stats: dict) -> None:
        prefix = _run_name(first)
        values = {f"{prefix}/{m}/{s}": v for m, row in stats.items() for s, v in row.items()}
        self.run.log({**values, "env_steps": first["env_steps"], "eval": first["eval"]})

    def emit_agent(self, record: dict) -> None:
        prefix = f"{_run_name(record)}/seed_{record['seed_index']}"
        values = {f"{prefix}/{m}": record[m] for m in metric_names(record) if record[m] is not None}
        self.run.log({**values, "env_steps": record["env_steps"], "eval": record["eval"]})

    def close(self, summary: list[dict] | None = None) -> None:
        if summary:
            columns = list(dict.fromkeys(k for row in summary for k in row))
            data = [[_plain(row.get(c)) for c in columns] for row in summary]
            self.run.log({"summary": self._wandb.Table(columns=columns, data=data)})
        self.run.finish()


def _plain(value):
    """A table cell W&B accepts: NumPy scalars as Python numbers, anything else as text."""
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, (int, float, str, type(None))) else str(value)


def make_sinks(
    folder, spec: dict, existing: list[dict], tensorboard: bool = False, wandb_project=None, per_agent=False
) -> list[GroupedSink]:
    """The sinks a sweep's flags ask for (--tensorboard, --wandb PROJECT, --log-agents); `existing`
    are the records already in its live log (a resume)."""
    sinks: list[GroupedSink] = []
    seeds = spec["seeds"]
    if tensorboard:
        sinks.append(TensorBoardSink(folder, spec, seeds, per_agent, existing))
    if wandb_project:
        sinks.append(WandbSink(folder, wandb_project, spec, seeds, per_agent, existing))
    return sinks
