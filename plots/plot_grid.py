"""Final return across the hyperparameter grid, one figure per static combination.

    python plots/plot_grid.py RESULTS_DIR      # writes RESULTS_DIR/plots/grid_combo_XXX.png

Shows the IQM over finite seeds of the last eval return with 95% percentile-bootstrap CIs:
points vs the value for a one-parameter grid, a heatmap for two parameters, and a ranked bar
chart of grid points otherwise (no grid, or more than two parameters).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: make the `plots` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from plots.figures import draw_per_combo, results_dir_main, message_figure, plt  # noqa: E402
from plots.results import combo_title, describe, format_value, grid_table  # noqa: E402

VALUE_LABEL = "final eval return (IQM, 95% CI)"
LOG_SPAN = 10.0  # positive values spanning more than this factor get a log axis


def main(argv=None) -> list[Path]:
    """Draw the grid figure of every combination in RESULTS_DIR; returns the PNG paths."""
    return results_dir_main(argv, __doc__, draw_grid)


def draw_grid(sweep: dict, results_dir) -> list[Path]:
    """One grid_combo_XXX.png per combination under RESULTS_DIR/plots."""
    return draw_per_combo(sweep, results_dir, "grid", grid_figure)


def grid_figure(sweep: dict, combo: dict):
    """The figure kind that suits the number of grid parameters."""
    title = combo_title(sweep, combo)
    rows = grid_table(combo)
    if all(np.isnan(row["iqm"]) for row in rows):
        return message_figure(title, "no finished agents with finite metrics yet")
    keys = list(combo["grid"])
    if len(keys) == 1:
        fig = line_figure(rows, keys[0])
    elif len(keys) == 2:
        fig = heatmap_figure(rows, combo["grid"])
    else:
        fig = ranked_figure(rows)
    fig.axes[0].set_title(title)
    return fig


def seeds_note(row: dict) -> str:
    """Seeds behind a statistic, and how many diverged seeds were left out."""
    used = row["seeds"] - row["nonfinite"]
    return f"n={used}" + (f", {row['nonfinite']} non-finite" if row["nonfinite"] else "")


def error_bars(rows: list[dict]) -> np.ndarray:
    """[2, N] distances from the IQM to the CI bounds, as matplotlib's errorbar wants."""
    center = np.array([row["iqm"] for row in rows])
    return np.array([center - [row["ci_low"] for row in rows], [row["ci_high"] for row in rows] - center])


def line_figure(rows: list[dict], key: str):
    """IQM with CI error bars against the value of the single grid parameter."""
    x = np.array([row["grid"][key] for row in rows], float)
    y = np.array([row["iqm"] for row in rows])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(x, y, yerr=error_bars(rows), fmt="o-", capsize=4)
    if (x > 0).all() and x.max() > LOG_SPAN * x.min():
        ax.set_xscale("log")
    ax.set_xticks(x, [format_value(value) for value in x])
    ax.minorticks_off()
    for row, x_value, y_value in zip(rows, x, y):
        if np.isfinite(y_value):
            ax.annotate(
                seeds_note(row),
                (x_value, y_value),
                textcoords="offset points",
                xytext=(6, 6),
                fontsize="small",
            )
    ax.set_xlabel(key)
    ax.set_ylabel(VALUE_LABEL)
    ax.grid(alpha=0.3)
    return fig


def heatmap_figure(rows: list[dict], grid: dict):
    """IQM per (first, second) parameter cell, annotated with the CI and seed count."""
    (row_key, row_values), (col_key, col_values) = grid.items()
    shape = (len(row_values), len(col_values))  # product order: the second key varies fastest
    iqms = np.array([row["iqm"] for row in rows]).reshape(shape)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.9 * shape[1] + 2.5), max(3.5, 1.1 * shape[0] + 1.5)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")
    image = ax.imshow(np.ma.masked_invalid(iqms), cmap=cmap, aspect="auto")
    fig.colorbar(image, ax=ax, label=VALUE_LABEL)
    midpoint = np.nanmean([np.nanmin(iqms), np.nanmax(iqms)])
    for row, (i, j) in zip(rows, np.ndindex(shape)):
        ax.text(
            j,
            i,
            cell_text(row),
            ha="center",
            va="center",
            fontsize="small",
            color="white" if iqms[i, j] < midpoint else "black",
        )
    ax.set_xticks(range(shape[1]), [format_value(value) for value in col_values])
    ax.set_yticks(range(shape[0]), [format_value(value) for value in row_values])
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    return fig


def cell_text(row: dict) -> str:
    """Heatmap annotation: IQM, CI and seeds, or why the cell is empty."""
    if np.isnan(row["iqm"]):
        return f"no data\n{seeds_note(row)}"
    return f"{row['iqm']:.3g}\n[{row['ci_low']:.3g}, {row['ci_high']:.3g}]\n{seeds_note(row)}"


def ranked_figure(rows: list[dict]):
    """Grid points as horizontal bars, best IQM on top, grid points without data at the bottom."""
    ranked = sorted(rows, key=lambda row: -row["iqm"] if np.isfinite(row["iqm"]) else np.inf)
    labels = [f"{describe(row['grid'])} ({seeds_note(row)})" for row in ranked]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.4 * len(ranked)))
    positions = np.arange(len(ranked))
    ax.barh(
        positions,
        [row["iqm"] for row in ranked],
        xerr=error_bars(ranked),
        capsize=3,
        color="tab:blue",
        alpha=0.8,
    )
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(VALUE_LABEL)
    ax.grid(axis="x", alpha=0.3)
    return fig


if __name__ == "__main__":
    main()
