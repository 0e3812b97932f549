"""Load sweep results written by sweep.py and compute rliable-style statistics.

A results directory (format "fasttd3x-sweep/1") holds `sweep.json` and one `combo_XXX/` folder
per static combination, each with `config.json` and one .npz file per finished chunk of agents.
`load_sweep` returns the sweep.json content with "combos" replaced by one dict per combination:

    {"index": 0,                      # position in sweep.json "combos" (folder combo_000)
     "settings": {"NUM_ENVS": 128},   # the static settings of this combination
     "config": {...},                 # combo_XXX/config.json ({} if not written yet)
     "grid": {"TAU": [...], ...},     # the sweep's traced grid (shared by all combinations)
     "arrays": {"agent": [A], "grid_index": [A], "seed_index": [A],
                "hparam_TAU": [A], "metric_eval_return": [A, E], ...,    # sorted by agent id
                "chunk_index": [A]},  # position in "meta" of the chunk holding the agent
     "meta": [{...}, ...]}            # the parsed "meta" JSON of each chunk, in file order

Every *.npz in a combo folder is a chunk, whatever its name (the format names them
chunk_XXXX.npz, sweep.py agents_AAAAAA-BBBBBB.npz); half-written "*.npz.tmp" files and the
mid-run state of `--checkpoint-every` (checkpoint_*.npz) are not.
"arrays" is {} for a combination without finished chunks. Statistics follow rliable
(Agarwal et al. 2021): the interquartile mean and percentile-bootstrap confidence intervals
that resample seeds with replacement. A seed is "solved" when its final eval return reaches the
task's threshold (SOLVED_THRESHOLDS, or one given on the command line).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMAT = "fasttd3x-sweep/1"
# Agents with a non-finite value in any of these are counted as diverged and left out of stats.
FINITE_METRICS = ("eval_return", "critic_loss", "actor_loss", "q_mean")
# Loss means are 0/0 = NaN in eval chunks that end before the first update (LEARNING_STARTS);
# such leading NaNs are bookkeeping, not divergence.
LOSS_METRICS = ("critic_loss", "actor_loss", "q_mean")
# A seed solves a task when its final eval return is at least the task's threshold.
# Pendulum-v1: a policy that never swings the pendulum up scores about -1200 to -1500 per
# episode, one that swings it up and balances it about -150 on average over starts, so -200
# separates the two. MountainCarContinuous-v0: gym's own reward_threshold, 90 (reaching the
# flag pays +100 minus the action cost; a car that never gets there ends near 0). Tasks without
# an entry get no success statistics unless a threshold is given (sweep.py --solved-at).
SOLVED_THRESHOLDS = {"Pendulum-v1": -200.0, "MountainCarContinuous-v0": 90.0}


# -------------------------------------------------------------------------------------- LOADING
def load_sweep(results_dir) -> dict:
    """The sweep.json content with per-combination configs and chunk arrays merged in."""
    results_dir = Path(results_dir)
    sweep = json.loads((results_dir / "sweep.json").read_text())
    if sweep.get("format") != FORMAT:
        raise ValueError(f"{results_dir}/sweep.json has format {sweep.get('format')!r}, expected {FORMAT!r}")
    settings_list = sweep["combos"] or [{}]  # no static axis still means one combination
    sweep["combos"] = [
        load_combo(results_dir / f"combo_{index:03d}", index, settings, sweep["grid"])
        for index, settings in enumerate(settings_list)
    ]
    return sweep


def load_combo(combo_dir: Path, index: int, settings: dict, grid: dict) -> dict:
    """One combination: its config and all finished chunks concatenated in agent order."""
    config_path = combo_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    paths = [p for p in sorted(combo_dir.glob("*.npz")) if not p.name.startswith("checkpoint_")]
    chunks = [read_chunk(path) for path in paths]
    tagged = [
        {**arrays, "chunk_index": np.full(len(arrays["agent"]), k)} for k, (arrays, _) in enumerate(chunks)
    ]
    return {
        "index": index,
        "settings": settings,
        "config": config,
        "grid": grid,
        "arrays": concatenate_chunks(tagged),
        "meta": [meta for _, meta in chunks],
    }


def read_chunk(path: Path) -> tuple[dict, dict]:
    """The arrays of one chunk file and its parsed meta JSON."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != "meta"}
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    return arrays, meta


def concatenate_chunks(chunks: list[dict]) -> dict:
    """Chunks joined along the agent axis and sorted by agent id, so rows follow agent order."""
    if not chunks:
        return {}
    arrays = {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}
    order = np.argsort(arrays["agent"], kind="stable")
    return {name: values[order] for name, values in arrays.items()}


# ----------------------------------------------------------------------------------- GRID INFO
def grid_points(grid: dict) -> list[dict]:
    """Grid points in sweep.py's order (itertools.product over keys and values as listed)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


def format_value(value) -> str:
    """Short, readable text for a setting in labels and titles."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def describe(settings: dict, empty: str = "default") -> str:
    """'KEY=value, ...' label for a grid point or a static combination."""
    return ", ".join(f"{key}={format_value(value)}" for key, value in settings.items()) or empty


def combo_title(sweep: dict, combo: dict) -> str:
    """Figure title naming the env and the combination's static settings."""
    return f"{sweep['env']}, combo {combo['index']:03d}: {describe(combo['settings'])}"


# ------------------------------------------------------------------------------- FINITE AGENTS
def finite_agents(arrays: dict) -> np.ndarray:
    """Per agent: True unless a tracked metric went NaN/inf (leading no-update loss NaNs excepted)."""
    finite = np.ones(len(arrays["agent"]), bool)
    for name in FINITE_METRICS:
        values = np.asarray(arrays[f"metric_{name}"], float)
        bad = ~np.isfinite(values)
        if name in LOSS_METRICS:
            bad &= ~(np.isnan(values) & (np.cumsum(np.isfinite(values), axis=1) == 0))
        finite &= ~bad.any(axis=1)
    return finite


def agent_curves(record: dict) -> list[tuple[str, dict[int, float]]]:
    """(label, {env steps: eval return}) per agent of a bench/gpu_proof.py learning record; the
    label sMaK is agent K of master seed M. Records written before gpu_proof saved `master_seed`
    ran with its default, 0."""
    master = record.get("master_seed", 0)
    curves = [(f"s{master}a{k}", {}) for k in range(record.get("seeds", 1))]
    for row in record["numbers"]:
        for (_, curve), value in zip(curves, row["eval_return_per_seed"], strict=True):
            curve[row["env_steps"]] = value
    return curves


# ---------------------------------------------------------------------------------- STATISTICS
def iqm(x, axis=None):
    """Interquartile mean (rliable): mean of the middle 50%, robust to outlier seeds.

    axis=None flattens all values, as rliable does over runs x tasks; an axis gives one IQM per
    remaining index (e.g. per eval point of a learning curve). Empty input gives NaN.
    """
    x = np.asarray(x, float)
    if x.size == 0:
        return np.nan
    x = np.sort(x.ravel() if axis is None else np.moveaxis(x, axis, -1), axis=-1)
    cut = int(0.25 * x.shape[-1])  # values dropped at each end (as scipy's trim_mean counts them)
    return x[..., cut : x.shape[-1] - cut].mean(-1)


def returns_at(curves: list[dict[int, float]], step: int) -> dict:
    """The eval returns at `step` of the agents whose curve ({env steps: return}) reaches it,
    sorted, with their count, mean, IQM, worst and best."""
    values = sorted(curve[step] for curve in curves if step in curve)
    mean = sum(values) / len(values)
    return {"values": values, "agents": len(values), "mean": mean, "iqm": float(iqm(values)),
            "worst": values[0], "best": values[-1]}  # fmt: skip


def bootstrap_ci(x, statistic: Callable = iqm, reps: int = 2000, alpha: float = 0.05, seed: int = 0):
    """Percentile-bootstrap (1 - alpha) interval of `statistic` over seeds (axis 0 of x).

    Seeds are the independent unit, so whole rows are drawn with replacement. All resamples are
    reduced at once by `statistic(samples, axis=1)` on a [reps, seeds, ...] array, so x of shape
    [seeds] gives scalar bounds and x of shape [seeds, evals] one interval per eval point.
    Returns (low, high); NaN without seeds.
    """
    x = np.asarray(x, float)
    if len(x) == 0:
        return np.nan, np.nan
    rows = np.random.default_rng(seed).integers(0, len(x), size=(reps, len(x)))
    samples = statistic(x[rows], axis=1)
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return low, high


def grid_table(
    combo: dict, threshold: float | None = None, reps: int = 2000, alpha: float = 0.05, seed: int = 0
) -> list[dict]:
    """One row per grid point (product order) with final-return statistics over finite seeds.

    Row keys: "grid_index", "grid" ({KEY: value} of the point), "seeds" (agents present),
    "nonfinite" (of those, agents with NaN/inf metrics), "finals" (the other seeds' last eval
    return, in agent order) and over those "mean", "iqm", "ci_low", "ci_high" and "min" (the
    worst seed). Without finite seeds the statistics are NaN. With a threshold, also the keys of
    `success_stats`.
    """
    arrays = combo["arrays"]
    if arrays:
        grid_index, finite = arrays["grid_index"], finite_agents(arrays)
        returns = np.asarray(arrays["metric_eval_return"], float)
    else:  # no finished chunks yet: every grid point is empty
        grid_index, finite, returns = np.zeros(0, int), np.zeros(0, bool), np.zeros((0, 1))
    rows = []
    for index, point in enumerate(grid_points(combo["grid"])):
        present = grid_index == index
        curves = returns[present & finite]
        finals = curves[:, -1]
        low, high = bootstrap_ci(finals, iqm, reps, alpha, seed)
        row = {
            "grid_index": index,
            "grid": point,
            "seeds": int(present.sum()),
            "nonfinite": int((present & ~finite).sum()),
            "finals": finals,
            "mean": float(finals.mean()) if len(finals) else np.nan,
            "iqm": float(iqm(finals)),
            "ci_low": float(low),
            "ci_high": float(high),
            "min": float(finals.min()) if len(finals) else np.nan,
        }
        if threshold is not None:
            row.update(success_stats(combo, present, curves, threshold))
        rows.append(row)
    return rows


def success_stats(combo: dict, present: np.ndarray, curves: np.ndarray, threshold: float) -> dict:
    """How reliably and how fast one grid point reaches the threshold.

    present: [A] mask of the point's agents; curves: the eval returns of its finite seeds
    [seeds, E]. Keys: "threshold"; "solved", the fraction of the point's seeds whose final eval
    return is >= threshold (a non-finite seed counts as unsolved: it failed); "steps_to_threshold"
    and "seconds_to_threshold", the env steps and run seconds at the first eval where the mean over
    finite seeds reaches the threshold (NaN if it never does).
    """
    seeds = int(present.sum())
    row = {
        "threshold": float(threshold),
        "solved": float((curves[:, -1] >= threshold).sum() / seeds) if seeds else np.nan,
        "steps_to_threshold": np.nan,
        "seconds_to_threshold": np.nan,
    }
    reached = np.flatnonzero(curves.mean(axis=0) >= threshold) if len(curves) else []
    if len(reached):
        arrays, first = combo["arrays"], int(reached[0])
        row["steps_to_threshold"] = int(arrays["metric_env_steps"][present][0, first])  # same for all seeds
        # All agents of a device call run together and every eval chunk runs the same number of
        # iterations, so eval k of E ends at about run_seconds * (k + 1) / E (an estimate: warm-up
        # iterations before LEARNING_STARTS skip their updates and run faster). A grid point whose
        # agents span several calls takes the slowest of those calls' run_seconds.
        chunks = np.unique(arrays["chunk_index"][present])
        run_seconds = np.max([combo["meta"][k].get("run_seconds", np.nan) for k in chunks])
        row["seconds_to_threshold"] = float(run_seconds * (first + 1) / curves.shape[1])
    return row


def solved_threshold(env: str, solved_at: float | None = None) -> float | None:
    """The threshold a seed's final eval return must reach: `solved_at` if given, else the
    task's SOLVED_THRESHOLDS entry; None when the task has neither."""
    return solved_at if solved_at is not None else SOLVED_THRESHOLDS.get(env)


def rank_rows(rows: list[dict]) -> list[dict]:
    """Best first: by solved fraction, then IQM, so a high IQM cannot hide lost seeds; grid points
    without data last. Without success statistics, by IQM alone."""

    def key(row):
        solved = np.nan_to_num(row.get("solved", 0.0), nan=-np.inf)
        return -solved, -np.nan_to_num(row["iqm"], nan=-np.inf)

    return sorted(rows, key=key)
