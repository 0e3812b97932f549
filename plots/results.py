"""Load sweep results written by sweep.py and compute rliable-style statistics.

A results directory (format "fasttd3x-sweep/1") holds `sweep.json` and one `combo_XXX/` folder
per static combination, each with `config.json` and one .npz file per finished chunk of agents.
`load_sweep` returns the sweep.json content with "combos" replaced by one dict per combination:

    {"index": 0,                      # position in sweep.json "combos" (folder combo_000)
     "settings": {"NUM_ENVS": 128},   # the static settings of this combination
     "config": {...},                 # combo_XXX/config.json ({} if not written yet)
     "grid": {"TAU": [...], ...},     # the sweep's traced grid (shared by all combinations)
     "arrays": {"agent": [A], "grid_index": [A], "seed_index": [A],
                "hparam_TAU": [A], "metric_eval_return": [A, E], ...},   # sorted by agent id
     "meta": [{...}, ...]}            # the parsed "meta" JSON of each chunk, in file order

Every *.npz in a combo folder is a chunk, whatever its name (the format names them
chunk_XXXX.npz, sweep.py agents_AAAAAA-BBBBBB.npz); half-written "*.npz.tmp" files are not.
"arrays" is {} for a combination without finished chunks. Statistics follow rliable
(Agarwal et al. 2021): the interquartile mean and percentile-bootstrap confidence intervals
that resample seeds with replacement.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import stats

FORMAT = "fasttd3x-sweep/1"
# Agents with a non-finite value in any of these are counted as diverged and left out of stats.
FINITE_METRICS = ("eval_return", "critic_loss", "actor_loss", "q_mean")
# Loss means are 0/0 = NaN in eval chunks that end before the first update (LEARNING_STARTS);
# such leading NaNs are bookkeeping, not divergence.
LOSS_METRICS = ("critic_loss", "actor_loss", "q_mean")


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
    chunks = [read_chunk(path) for path in sorted(combo_dir.glob("*.npz"))]
    return {
        "index": index,
        "settings": settings,
        "config": config,
        "grid": grid,
        "arrays": concatenate_chunks([arrays for arrays, _ in chunks]),
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


# ---------------------------------------------------------------------------------- STATISTICS
def iqm(x, axis=None):
    """Interquartile mean (rliable): mean of the middle 50%, robust to outlier seeds.

    axis=None flattens all values, as rliable does over runs x tasks; an axis gives one IQM per
    remaining index (e.g. per eval point of a learning curve). Empty input gives NaN.
    """
    x = np.asarray(x, float)
    if x.size == 0:
        return np.nan
    return stats.trim_mean(x.ravel(), 0.25) if axis is None else stats.trim_mean(x, 0.25, axis=axis)


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


def grid_table(combo: dict, reps: int = 2000, alpha: float = 0.05, seed: int = 0) -> list[dict]:
    """One row per grid point (product order) with final-return statistics over finite seeds.

    Row keys: "grid_index", "grid" ({KEY: value} of the point), "seeds" (agents present),
    "nonfinite" (of those, agents with NaN/inf metrics), and over the other seeds' last eval
    return "mean", "iqm", "ci_low", "ci_high". Without finite seeds the statistics are NaN.
    """
    arrays = combo["arrays"]
    if arrays:
        grid_index, finite = arrays["grid_index"], finite_agents(arrays)
        final = np.asarray(arrays["metric_eval_return"], float)[:, -1]
    else:  # no finished chunks yet: every grid point is empty
        grid_index, finite, final = np.zeros(0, int), np.zeros(0, bool), np.zeros(0)
    rows = []
    for index, point in enumerate(grid_points(combo["grid"])):
        present = grid_index == index
        values = final[present & finite]
        low, high = bootstrap_ci(values, iqm, reps, alpha, seed)
        rows.append(
            {
                "grid_index": index,
                "grid": point,
                "seeds": int(present.sum()),
                "nonfinite": int((present & ~finite).sum()),
                "mean": float(values.mean()) if len(values) else np.nan,
                "iqm": float(iqm(values)),
                "ci_low": float(low),
                "ci_high": float(high),
            }
        )
    return rows
