"""Final return across the hyperparameter grid, one figure per static combination.

    python plots/plot_grid.py RESULTS_DIR [--solved-at RETURN]   # RESULTS_DIR/plots/grid_combo_XXX.png

Made so that failing seeds stay visible. With a solved threshold (the task's SOLVED_THRESHOLDS
entry, or --solved-at) one panel shows the fraction of seeds whose final eval return reaches
it, on a fixed 0..1 colour scale and annotated "solved/seeds": a heatmap for a two-parameter
grid, bars otherwise. The other panel shows every grid point's mean final return over finite
seeds with its 95% percentile-bootstrap CI, and each seed's final return as a faint dot (red
when it misses the threshold). Grid points are listed in grid order for one or two parameters
and ranked (solved fraction, then IQM) otherwise. Without a threshold only the mean panel is drawn.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from plots.figures import draw_per_combo, message_figure, plt, results_dir_main
from plots.results import (
    bootstrap_ci,
    combo_title,
    describe,
    format_value,
    grid_table,
    rank_rows,
    solved_threshold,
)

VALUE_LABEL = "final eval return (mean over seeds, 95% bootstrap CI)"
SOLVED_LABEL = "fraction of seeds solved"
SOLVED_CMAP = plt.get_cmap("viridis").with_extremes(bad="lightgray")  # grey: no seeds yet


def main(argv=None) -> list[Path]:
    """Draw the grid figure of every combination in RESULTS_DIR; returns the PNG paths."""
    return results_dir_main(argv, __doc__, draw_grid)


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


if __name__ == "__main__":
    main()
