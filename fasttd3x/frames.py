"""A sweep's curves as tidy pandas DataFrames: one row per agent and evaluation.

`load_sweep` (fasttd3x/results.py) returns dicts of [agents, evals] arrays, the shape the plots
want; pandas users want long rows to group and pivot. pandas is optional
(pip install "fasttd3x[pandas]"), imported only when a frame is asked for.

    frame = load_frame("results/Pendulum-v1")
    frame.groupby(["combo", "PRE_TANH_PENALTY", "env_steps"]).eval_return.mean()

Columns: combo, the combination's static settings, agent, grid_index, seed_index, the agent's
grid values (upper-case, as in the config; a --sample sweep's drawn values), eval (1-based),
env_steps, then every metric (eval_return, train_return, critic_loss, actor_loss, q_mean).
"""

from __future__ import annotations

import pathlib

import numpy as np

from fasttd3x.live import LIVE_FILE, read_records, require

ID_COLUMNS = ("combo", "agent", "grid_index", "seed_index", "eval")


def _pandas():
    return require("pandas", "pandas", "A sweep as a DataFrame")


def grid_values(sweep: dict) -> list[dict]:
    """The grid point values by grid index: the drawn points of a --sample sweep, else the
    cartesian product of sweep.json's grid in flag order."""
    from fasttd3x.results import grid_points

    points = (sweep.get("search") or {}).get("points")
    return points if points else grid_points(sweep["grid"])


def load_frame(results_dir):
    """Every finished agent's curves of a sweep folder, one row per agent and evaluation, sorted
    by combo, agent and eval (what `load_sweep` holds, long)."""
    from fasttd3x.results import load_sweep

    pd = _pandas()
    sweep = load_sweep(results_dir)
    points = grid_values(sweep)
    frames = []
    for combo in sweep["combos"]:
        arrays = combo["arrays"]
        if not arrays:
            continue
        agents, evals = arrays["metric_eval_return"].shape
        columns = {"combo": np.full(agents * evals, combo["index"])}
        for key, value in combo["settings"].items():
            columns[key] = np.full(agents * evals, value)
        for name in ("agent", "grid_index", "seed_index"):
            columns[name] = np.repeat(arrays[name], evals)
        for key in points[0] if points else {}:
            columns[key] = np.repeat([points[g][key] for g in arrays["grid_index"]], evals)
        columns["eval"] = np.tile(np.arange(1, evals + 1), agents)
        for name in sorted(k for k in arrays if k.startswith("metric_")):
            columns[name.removeprefix("metric_")] = arrays[name].reshape(-1)
        frames.append(pd.DataFrame(columns))
    if not frames:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    return pd.concat(frames, ignore_index=True).sort_values(["combo", "agent", "eval"], ignore_index=True)


def load_live_frame(results_dir):
    """The live log (OUT/live.jsonl) of a sweep, running or finished, as a DataFrame with the
    same identifying columns as `load_frame`, plus time and run_seconds; diverged values (null in
    the file) are NaN."""
    pd = _pandas()
    records = read_records(pathlib.Path(results_dir) / LIVE_FILE)
    if not records:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values(["combo", "agent", "eval"], ignore_index=True)
