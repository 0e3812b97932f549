"""Figures of a random search or PBT sweep (sweep.py --sample / --pbt), one per static combination.

    python plots/plot_search.py RESULTS_DIR [--solved-at RETURN]

Random search (RESULTS_DIR/plots/search_combo_XXX.png): final eval return against each sampled
setting, every agent a dot (log axis for log ranges), red below the solved threshold.
PBT (RESULTS_DIR/plots/pbt_combo_XXX.png): the population's eval returns over the run (every
agent a thin line, the best and the median bold, generations dotted), and beside it the settings
schedule of the best final agents, traced back through the parents they copied.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

import search
from plots.figures import category_colors, draw_per_combo, message_figure, plt, results_dir_main
from plots.results import combo_title, load_sweep, solved_threshold

BEST_SCHEDULES = 3


def main(argv=None) -> list[Path]:
    return results_dir_main(argv, __doc__, draw_search_figures)


def draw_search(results_dir, solved_at: float | None = None) -> list[Path]:
    """The search figures of RESULTS_DIR (none for a sweep without --sample)."""
    return draw_search_figures(load_sweep(results_dir), results_dir, solved_at)


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
