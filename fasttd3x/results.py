"""The results of a sweep: their format (this module is its one owner), writing and reading them,
rliable-style statistics and the printed summary.

The results format (loads with NumPy alone; `load_sweep` does it for you):

    OUT/sweep.json            the sweep: env, seeds, seed, grid, static values, combos
    OUT/combo_XXX/config.json the resolved config of static combination XXX
    OUT/combo_XXX/calls.json  agents per device call (a resumed sweep keeps it)
    OUT/combo_XXX/agents_AAAAAA-BBBBBB.npz   agents A..B-1 of that combination:
        agent, grid_index, seed_index          int64 [A]; agent = grid_index * seeds + seed_index
        hparam_<KEY>                           float32 [A], every traced setting at the end
        pbt_parent, pbt_fitness, pbt_<KEY>     with --pbt, [A, generations + 1]: the lineage
                                               (search.lineage_arrays)
        metric_<NAME>                          [A, num_evals]: env_steps, eval_return,
                                               train_return, critic_loss, actor_loss, q_mean
        meta                                   JSON string: device, versions, compile and run
                                               seconds, agents with non-finite values
    OUT/summary.csv           final eval return per grid point: mean, IQM, 95% bootstrap CI, worst
                              seed; with a solved threshold also the fraction of seeds solved
                              and the env steps and run seconds at which the mean reaches it
    OUT/plots/*.png           learning curves and the grid plot


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
chunk_XXXX.npz, the sweep agents_AAAAAA-BBBBBB.npz); half-written "*.npz.tmp" files and the
mid-run state of `--checkpoint-every` (checkpoint_*.npz) are not.
"arrays" is {} for a combination without finished chunks. Statistics follow rliable
(Agarwal et al. 2021): the interquartile mean and percentile-bootstrap confidence intervals
that resample seeds with replacement. A seed is "solved" when its final eval return reaches the
task's threshold (SOLVED_THRESHOLDS, or one given on the command line).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from fasttd3x import checkpoints, distributed, search
from fasttd3x.configs import HPARAM_DEFAULTS, SOLVED_THRESHOLDS

FORMAT = "fasttd3x-sweep/1"
METRICS = ("env_steps", "eval_return", "train_return", "critic_loss", "actor_loss", "q_mean")
# Agents with a non-finite value in any of these are counted as diverged and left out of stats.
FINITE_METRICS = ("eval_return", "critic_loss", "actor_loss", "q_mean")
# Loss means are 0/0 = NaN in eval chunks that end before the first update (LEARNING_STARTS);
# such leading NaNs are bookkeeping, not divergence.
LOSS_METRICS = ("critic_loss", "actor_loss", "q_mean")


# -------------------------------------------------------------------------------------- WRITING
def agents_path(folder: Path, lo: int, hi: int) -> Path:
    """The results file of agents lo..hi-1 of a combination."""
    return folder / f"agents_{lo:06d}-{hi:06d}.npz"


def agents_arrays(
    lo: int, hi: int, seeds: int, hparams: dict, metrics: dict, searched: dict, meta: dict, policies=None
) -> dict[str, np.ndarray]:
    """The arrays of the results file of agents lo..hi-1 (the format above): `hparams` and
    `metrics` hold their rows, `searched` any PBT lineage, `policies` the final actors and
    normalizers if they are kept."""
    agents = np.arange(lo, hi)
    arrays = {
        "agent": agents,
        "grid_index": agents // seeds,
        "seed_index": agents % seeds,
        **{f"hparam_{key}": hparams[key] for key in HPARAM_DEFAULTS},
        **{f"metric_{name}": metrics[name] for name in METRICS},
        **searched,
        "meta": np.array(json.dumps(meta)),
    }
    if policies is not None:
        arrays.update(_flatten(policies, "policy_"))
    return arrays


def _flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        flat[f"{prefix}{name}"] = leaf
    return flat


def finished_agents(combo_dir: Path) -> set[int]:
    """Agents whose results file is on disk. An unreadable one stops the sweep: it is neither
    trusted nor silently recomputed over."""
    done: set[int] = set()
    for path in sorted(combo_dir.glob("agents_*.npz")):
        try:
            with np.load(path) as data:
                agents = data["agent"]
                for name in METRICS:  # reads every array: a damaged member fails its CRC here
                    data[f"metric_{name}"]
        except Exception as error:
            raise checkpoints.CorruptFileError(
                f"results file {path} is unreadable ({type(error).__name__}: {error}). Sweeps write "
                "results atomically, so it was damaged afterwards. Delete it to train those agents "
                "again, or restore it from a copy, then rerun the same command."
            ) from None
        done.update(int(a) for a in agents)
    return done


def agreed_finished_agents(folder: Path, total: int) -> set[int]:
    """The agents of a combination (of `total`) whose results process 0 finds in `folder`."""

    def read() -> np.ndarray:
        finished = finished_agents(folder) if jax.process_index() == 0 else set()
        return np.isin(np.arange(total), list(finished)).astype(np.int32)

    what = f"reading the results in {folder}"
    return set(np.flatnonzero(distributed.process_0_view(distributed.agreed(what, read), what)).tolist())


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
    """Grid points in the sweep's order (itertools.product over keys and values as listed)."""
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


# -------------------------------------------------------------------------------------- SUMMARY
def summarize(out: Path, solved_at: float | None = None) -> list[dict]:
    """Prints and writes (summary.csv) the ranked per-grid-point table of final eval returns.

    Ranked by the fraction of seeds that solve the task, then IQM, so a grid point that loses
    seeds never reads as the winner. `solved_at` overrides the task's SOLVED_THRESHOLDS entry;
    without either, the success columns are left out.
    """
    sweep = load_sweep(out)
    threshold = solved_threshold(sweep["env"], solved_at)
    if threshold is None:
        print(
            f"\n{sweep['env']} has no solved threshold (fasttd3x/configs.py SOLVED_THRESHOLDS): success "
            "columns left out; pass --solved-at RETURN to add them"
        )
    else:
        source = "--solved-at" if solved_at is not None else "SOLVED_THRESHOLDS"
        print(
            f"\nsolved: final eval return >= {threshold:g} ({source}); steps and run s to: the first eval "
            "at which the mean over seeds reaches it"
        )
    rows = []
    points = (sweep.get("search") or {}).get("points")
    for c, combo in enumerate(sweep["combos"]):
        table = rank_rows(grid_table(combo, threshold))
        for row in table if points else []:  # a drawn point's row names its values
            row["grid"] = {"point": row["grid"]["point"], **points[row["grid"]["point"]]}
        settings = combo.get("settings") or {}
        where = (
            f"combo {c} ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else f"combo {c}"
        )
        ranking = "solved fraction, then IQM" if threshold is not None else "IQM"
        print(f"\n{where}: final eval return over seeds, ranked by {ranking}")
        header = f"{'grid point':40s} {'seeds':>5s} {'mean':>9s} {'IQM':>9s} {'95% CI':>21s} {'min':>9s}"
        if threshold is not None:
            header += f" {'solved':>7s} {'steps to':>10s} {'run s to':>9s}"
        print(f"{header} {'non-finite':>10s}")
        for row in table:
            point = ", ".join(f"{k}={v:g}" for k, v in row["grid"].items()) or "(defaults)"
            ci = f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
            line = f"{point:40s} {row['seeds']:5d} {row['mean']:9.1f} {row['iqm']:9.1f} {ci:>21s}"
            line += f" {row['min']:9.1f}"
            if threshold is not None:
                solved = f"{round(row['solved'] * row['seeds'])}/{row['seeds']}" if row["seeds"] else "-"
                steps, seconds = row["steps_to_threshold"], row["seconds_to_threshold"]
                line += f" {solved:>7s} {_or_never(steps, 'd'):>10s} {_or_never(seconds, '.1f'):>9s}"
            print(f"{line} {row['nonfinite']:10d}")
            stats = {k: v for k, v in row.items() if k not in ("grid", "finals")}
            rows.append({"combo": c, **settings, **row["grid"], **stats})
        if (sweep.get("search") or {}).get("pbt") and combo["arrays"]:
            search.report_pbt(sweep, combo, out / f"combo_{c:03d}")
    _write_csv(out / "summary.csv", rows)
    return rows


def _or_never(value, spec: str) -> str:
    """A time to the threshold for the printed table; NaN means the mean never reached it."""
    return "never" if np.isnan(value) else format(value, spec)


def _write_csv(path: Path, rows: list[dict]) -> None:
    """Atomic, like the results; NaN (no data, or a threshold never reached) is written as "nan"."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


# jaxlib 0.10.x (the Python 3.11 pin) splits the batch of its CPU LAPACK kernels over XLA's CPU
# thread pool (one thread per core) and blocks until the pieces are done; 0.11.2 (the Python 3.12
# pin) runs them in the calling thread. MJX's constraint solver factorizes with those kernels, so
# every Brax and Playground task calls them, for every env at once.
