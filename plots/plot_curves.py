"""Learning curves of a sweep: eval return vs env steps, one figure per static combination.

    python plots/plot_curves.py RESULTS_DIR [--solved-at RETURN]   # RESULTS_DIR/plots/curves_combo_XXX.png

One colour per grid point: the IQM over finite seeds with a 95% percentile-bootstrap band
(seeds resampled, one interval per eval point), plus thin per-seed lines when seeds are few,
and a dashed line at the task's solved threshold when it has one.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from plots.figures import category_colors, draw_per_combo, message_figure, plt, results_dir_main
from plots.results import (
    bootstrap_ci,
    combo_title,
    describe,
    finite_agents,
    grid_points,
    iqm,
    solved_threshold,
)

MAX_SEED_LINES = 8  # beyond this, per-seed lines clutter more than they inform


def main(argv=None) -> list[Path]:
    """Draw the curves of every combination in RESULTS_DIR; returns the PNG paths."""
    return results_dir_main(argv, __doc__, draw_curves)


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


if __name__ == "__main__":
    main()
