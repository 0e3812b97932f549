"""The figures a sweep draws into OUT/plots: learning curves, the grid figure and, for a search,
its samples or PBT figure, one of each per static combination. Also the matplotlib setup that
the report scripts in plots/ share.

    python -m fasttd3x.figures RESULTS_DIR [--solved-at RETURN]    # redraw a sweep's figures

Curves (curves_combo_XXX.png): one colour per grid point, the IQM over finite seeds with a 95%
percentile-bootstrap band (seeds resampled, one interval per eval point), thin per-seed lines
when seeds are few, a dashed line at the task's solved threshold when it has one.
Grid (grid_combo_XXX.png), made so that failing seeds stay visible: with a solved threshold one
panel shows the fraction of seeds whose final eval return reaches it, on a fixed 0..1 colour
scale and annotated "solved/seeds": a heatmap for a two-parameter grid, bars otherwise. The
other panel shows every grid point's mean final return over finite seeds with its 95%
percentile-bootstrap CI, and each seed's final return as a faint dot (red when it misses the
threshold). Grid points are listed in grid order for one or two parameters and ranked (solved
fraction, then IQM) otherwise. Without a threshold only the mean panel is drawn.
Random search (search_combo_XXX.png): final eval return against each sampled setting, every
agent a dot (log axis for log ranges), red below the solved threshold. PBT (pbt_combo_XXX.png):
the population's eval returns over the run (every agent a thin line, the best and the median
bold, generations dotted), and beside it the settings schedule of the best final agents, traced
back through the parents they copied.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import matplotlib
import numpy as np

from fasttd3x import search
from fasttd3x.results import (
    bootstrap_ci,
    combo_title,
    describe,
    finite_agents,
    format_value,
    grid_points,
    grid_table,
    iqm,
    load_sweep,
    rank_rows,
    solved_threshold,
)

matplotlib.use("Agg")  # plots are written on headless machines; never open a window
import matplotlib.pyplot as plt  # noqa: E402


def draw_all(results_dir, solved_at: float | None = None) -> list[Path]:
    """Every figure of the sweep in RESULTS_DIR (curves, grid, and search figures if it searched);
    returns the PNG paths. `solved_at` overrides the task's solved threshold (SOLVED_THRESHOLDS)."""
    sweep = load_sweep(results_dir)
    return (
        draw_curves(sweep, results_dir, solved_at)
        + draw_grid(sweep, results_dir, solved_at)
        + draw_search_figures(sweep, results_dir, solved_at)
    )


def main(argv=None) -> list[Path]:
    """`python -m fasttd3x.figures RESULTS_DIR [--solved-at RETURN]`: redraws every figure."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results_dir", type=Path)
    parser.add_argument(
        "--solved-at",
        type=float,
        default=None,
        metavar="RETURN",
        help="solved threshold on the final eval return (default: the task's SOLVED_THRESHOLDS entry)",
    )
    args = parser.parse_args(argv)
    paths = draw_all(args.results_dir, args.solved_at)
    print("\n".join(map(str, paths)))
    return paths


# ==================================================================================================
# SHARED SETUP
# ==================================================================================================
DPI = 120


def save_figure(fig, path) -> Path:
    """Write `fig` as a PNG (creating its folder) and free it, so long loops do not leak memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_per_combo(sweep: dict, results_dir, kind: str, figure) -> list[Path]:
    """`figure(sweep, combo)` for every static combination, saved as
    RESULTS_DIR/plots/<kind>_combo_XXX.png."""
    out_dir = Path(results_dir) / "plots"
    return [
        save_figure(figure(sweep, combo), out_dir / f"{kind}_combo_{combo['index']:03d}.png")
        for combo in sweep["combos"]
    ]


def message_figure(title: str, message: str):
    """A figure that says why there is nothing to plot, so every expected PNG still exists."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_title(title)
    ax.set_axis_off()
    return fig


def category_colors(count: int) -> list:
    """Distinct colours for up to 10 categories, a sequential map beyond that."""
    if count <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(count)]
    return list(plt.get_cmap("viridis")(np.linspace(0.0, 0.95, count)))


# ==================================================================================================
# LEARNING CURVES
# ==================================================================================================
MAX_SEED_LINES = 8  # beyond this, per-seed lines clutter more than they inform


def draw_curves(sweep: dict, results_dir, solved_at: float | None = None) -> list[Path]:
    """One curves_combo_XXX.png per combination under RESULTS_DIR/plots."""
    threshold = solved_threshold(sweep["env"], solved_at)
    return draw_per_combo(sweep, results_dir, "curves", partial(curves_figure, threshold=threshold))


def curves_figure(sweep: dict, combo: dict, threshold: float | None = None):
    """Eval-return curves of every grid point of one combination."""
    if not combo["arrays"]:
        return message_figure(combo_title(sweep, combo), "no finished agents yet")
    arrays = combo["arrays"]
    finite = finite_agents(arrays)
    points = grid_points(combo["grid"])
    fig, ax = plt.subplots(figsize=(8, 5))
    for index, (point, color) in enumerate(zip(points, category_colors(len(points)))):
        present = arrays["grid_index"] == index
        returns = np.asarray(arrays["metric_eval_return"][present & finite], float)
        label = curve_label(point, len(returns), int((present & ~finite).sum()))
        if len(returns) == 0:  # keep the grid point in the legend so its absence is visible
            ax.plot([], [], color=color, label=label)
            continue
        steps = arrays["metric_env_steps"][present][0]  # identical for all agents of a combination
        draw_grid_point(ax, steps, returns, color, label)
    if threshold is not None:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"solved: >= {threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return (IQM over seeds, 95% bootstrap CI)")
    ax.set_title(combo_title(sweep, combo))
    ax.grid(alpha=0.3)
    ax.legend(
        title=" / ".join(combo["grid"]) or None,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
    )
    return fig


def draw_grid_point(ax, steps, returns, color, label) -> None:
    """IQM line with its bootstrap band, and per-seed lines when there are few seeds."""
    low, high = bootstrap_ci(returns)  # one interval per eval point
    ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    ax.plot(steps, iqm(returns, axis=0), color=color, linewidth=2, label=label)
    if len(returns) <= MAX_SEED_LINES:
        ax.plot(steps, returns.T, color=color, linewidth=0.6, alpha=0.4)


def curve_label(point: dict, seeds: int, nonfinite: int) -> str:
    """Legend text: grid values, seeds used, and how many diverged seeds were left out."""
    dropped = f", {nonfinite} non-finite" if nonfinite else ""
    return f"{describe(point)} (n={seeds}{dropped})"


# ==================================================================================================
# THE GRID FIGURE
# ==================================================================================================
VALUE_LABEL = "final eval return (mean over seeds, 95% bootstrap CI)"
SOLVED_LABEL = "fraction of seeds solved"
SOLVED_CMAP = plt.get_cmap("viridis").with_extremes(bad="lightgray")  # grey: no seeds yet


def draw_grid(sweep: dict, results_dir, solved_at: float | None = None) -> list[Path]:
    """One grid_combo_XXX.png per combination under RESULTS_DIR/plots."""
    threshold = solved_threshold(sweep["env"], solved_at)
    return draw_per_combo(sweep, results_dir, "grid", partial(grid_figure, threshold=threshold))


def grid_figure(sweep: dict, combo: dict, threshold: float | None = None):
    """Success rate (with a threshold) beside mean, CI and seeds, laid out for the grid's shape."""
    title = combo_title(sweep, combo)
    rows = grid_table(combo, threshold)
    if not any(row["seeds"] for row in rows):
        return message_figure(title, "no finished agents yet")
    keys = list(combo["grid"])
    listed = rows if len(keys) in (1, 2) else rank_rows(rows)
    if len(keys) == 1:
        labels = [f"{format_value(row['grid'][keys[0]])} ({seeds_note(row)})" for row in listed]
    else:
        labels = [f"{describe(row['grid'])} ({seeds_note(row)})" for row in listed]
    height = max(2.8, 1.2 + 0.4 * len(listed))
    if threshold is None:
        fig, means_ax = plt.subplots(figsize=(8, height), layout="constrained")
    elif len(keys) == 2:
        shape = [len(values) for values in combo["grid"].values()]
        fig, (solved_ax, means_ax) = plt.subplots(
            1,
            2,
            figsize=(1.3 * shape[1] + 11, max(height, 1.1 * shape[0] + 1.8)),
            width_ratios=[1.3 * shape[1] + 2, 7],
            layout="constrained",
        )
        solved_heatmap(solved_ax, rows, combo["grid"])
    else:
        fig, (solved_ax, means_ax) = plt.subplots(
            1, 2, sharey=True, figsize=(11, height), width_ratios=[1, 3], layout="constrained"
        )
        solved_bars(solved_ax, listed)
    means_panel(means_ax, listed, labels, threshold)
    if len(keys) == 1:
        fig.axes[0].set_ylabel(keys[0])  # the leftmost panel carries the shared labels
    fig.suptitle(title)
    return fig


def seeds_note(row: dict) -> str:
    """Seeds behind a statistic, and how many diverged seeds were left out."""
    used = row["seeds"] - row["nonfinite"]
    return f"n={used}" + (f", {row['nonfinite']} non-finite" if row["nonfinite"] else "")


def solved_text(row: dict) -> str:
    """'solved/seeds' for one grid point; diverged seeds count as unsolved and are named."""
    if not row["seeds"]:
        return "no data"
    text = f"{round(row['solved'] * row['seeds'])}/{row['seeds']}"
    return text + (f"\n{row['nonfinite']} non-finite" if row["nonfinite"] else "")


def solved_heatmap(ax, rows: list[dict], grid: dict) -> None:
    """Solved fraction per (first, second) parameter cell on a fixed 0..1 scale."""
    (row_key, row_values), (col_key, col_values) = grid.items()
    shape = (len(row_values), len(col_values))  # product order: the second key varies fastest
    solved = np.array([row["solved"] for row in rows]).reshape(shape)
    image = ax.imshow(np.ma.masked_invalid(solved), cmap=SOLVED_CMAP, vmin=0.0, vmax=1.0, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label=SOLVED_LABEL)
    for row, (i, j) in zip(rows, np.ndindex(shape)):
        color = "white" if solved[i, j] < 0.5 else "black"  # readable on viridis; NaN cells are grey
        ax.text(j, i, solved_text(row), ha="center", va="center", color=color)
    ax.set_xticks(range(shape[1]), [format_value(value) for value in col_values])
    ax.set_yticks(range(shape[0]), [format_value(value) for value in row_values])
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)


def solved_bars(ax, rows: list[dict]) -> None:
    """Solved fraction per listed grid point as bars on a fixed 0..1 axis, coloured as the heatmap."""
    solved = np.array([row["solved"] for row in rows])
    positions = np.arange(len(rows))
    ax.barh(positions, np.nan_to_num(solved), color=SOLVED_CMAP(np.ma.masked_invalid(solved)))
    for position, row in zip(positions, rows):
        ax.text(0.98, position, solved_text(row), ha="right", va="center", fontsize="small")
    ax.set_xlim(0.0, 1.0)
    ax.set_xticks([0.0, 0.5, 1.0])
    ax.set_xlabel(SOLVED_LABEL)


def means_panel(ax, rows: list[dict], labels: list[str], threshold: float | None) -> None:
    """Mean with bootstrap CI per listed grid point, first on top, over faint per-seed dots."""
    positions = np.arange(len(rows))
    finals = np.concatenate([row["finals"] for row in rows])
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(finals))  # fixed: redraws are identical
    offsets = np.repeat(positions, [len(row["finals"]) for row in rows]) + jitter
    solved = np.ones(len(finals), bool) if threshold is None else finals >= threshold
    dots = {"seed": solved, "unsolved seed": ~solved}
    for (label, chosen), color in zip(dots.items(), ("tab:blue", "tab:red")):
        if chosen.any():
            ax.scatter(finals[chosen], offsets[chosen], s=14, color=color, alpha=0.4, lw=0, label=label)
    means = np.array([row["mean"] for row in rows])
    bounds = np.array([bootstrap_ci(row["finals"], np.mean) for row in rows]).T
    # Clipped at 0: the mean can sit an ulp outside a degenerate interval (all seeds equal).
    errors = np.clip([means - bounds[0], bounds[1] - means], 0.0, None)
    ax.errorbar(means, positions, xerr=errors, fmt="D", color="black", capsize=4, label="mean, 95% CI")
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"solved: >= {threshold:g}")
    ax.set_yticks(positions, labels)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first grid point on top
    ax.set_xlabel(VALUE_LABEL)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="best")


# ==================================================================================================
# SEARCH FIGURES
# ==================================================================================================
BEST_SCHEDULES = 3


def draw_search_figures(sweep: dict, results_dir, solved_at: float | None = None) -> list[Path]:
    found = sweep.get("search") or {}
    if not found.get("points"):
        return []
    space = search.parse_space(found["sample"])
    if found.get("pbt"):
        return draw_per_combo(sweep, results_dir, "pbt", partial(pbt_figure, space=space))
    threshold = solved_threshold(sweep["env"], solved_at)
    return draw_per_combo(
        sweep, results_dir, "search", partial(samples_figure, space=space, threshold=threshold)
    )


def samples_figure(sweep: dict, combo: dict, space, threshold: float | None):
    """One panel per sampled setting: each agent's final eval return against its value."""
    title = combo_title(sweep, combo)
    arrays = combo["arrays"]
    if not arrays:
        return message_figure(title, "no finished agents yet")
    finals = np.asarray(arrays["metric_eval_return"], float)[:, -1]
    fig, axes = plt.subplots(1, len(space), figsize=(3.6 * len(space), 3.2), squeeze=False, sharey=True)
    for ax, dim in zip(axes[0], space):
        values = np.asarray(arrays[f"hparam_{dim.key}"], float)
        missed = finals < threshold if threshold is not None else np.zeros(len(finals), bool)
        ax.scatter(values[~missed], finals[~missed], s=14, alpha=0.7, color="tab:blue")
        ax.scatter(values[missed], finals[missed], s=14, alpha=0.7, color="tab:red")
        if threshold is not None:
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1)
        if dim.kind == "log":
            ax.set_xscale("log")
        ax.set_xlabel(dim.key)
    axes[0][0].set_ylabel(
        "final eval return (red: unsolved)" if threshold is not None else "final eval return"
    )
    fig.suptitle(f"{title}: {len(finals)} agents")
    fig.tight_layout()
    return fig


def pbt_figure(sweep: dict, combo: dict, space):
    """Population eval returns over evaluations, and the best agents' settings schedules."""
    title = combo_title(sweep, combo)
    arrays = combo["arrays"]
    if not arrays:
        return message_figure(title, "no finished agents yet")
    every = sweep["search"]["pbt"]["every"]
    returns = np.asarray(arrays["metric_eval_return"], float)
    evals = np.arange(1, returns.shape[1] + 1)
    fig, axes = plt.subplots(1, 1 + len(space), figsize=(4.2 * (1 + len(space)), 3.4), squeeze=False)
    ax = axes[0][0]
    for curve in returns:
        ax.plot(evals, curve, color="gray", alpha=0.25, linewidth=0.7)
    ax.plot(evals, np.nanmax(returns, axis=0), color="tab:green", label="best")
    ax.plot(evals, np.nanmedian(returns, axis=0), color="black", label="median")
    for g in range(every, returns.shape[1], every):
        ax.axvline(g + 0.5, color="gray", linestyle=":", linewidth=0.6)
    ax.set_xlabel("evaluation")
    ax.set_ylabel("eval return")
    ax.legend(fontsize=8)
    best = search.best_agents(arrays, BEST_SCHEDULES)
    colors = category_colors(len(best))
    for ax, dim in zip(axes[0][1:], space):
        for agent, color in zip(best, colors):
            line = search.agent_schedule(arrays, agent, [dim.key])
            values = [entry[dim.key] for entry in line] + [line[-1][dim.key]]
            starts = [g * every for g in range(len(line))] + [returns.shape[1]]
            ax.step(starts, values, where="post", color=color, label=f"agent {agent}")
        if dim.kind == "log":
            ax.set_yscale("log")
        ax.set_ylim(dim.lo, dim.hi)
        ax.set_xlabel("evaluation")
        ax.set_ylabel(dim.key)
    axes[0][1].legend(fontsize=8, title="best final agents")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
