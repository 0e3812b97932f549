"""Figures of a random search or PBT sweep (sweep.py --sample / --pbt), one per static combination,
and of an equal-compute study (bench/bench_search.py --study).

    python plots/plot_search.py RESULTS_DIR [--solved-at RETURN]
    python plots/plot_search.py bench/results/search_study_Pendulum-v1.json [--out PNG]

Random search (RESULTS_DIR/plots/search_combo_XXX.png): final eval return against each sampled
setting, every agent a dot (log axis for log ranges), red below the solved threshold.
PBT (RESULTS_DIR/plots/pbt_combo_XXX.png): the population's eval returns over the run (every
agent a thin line, the best and the median bold, generations dotted), and beside it the settings
schedule of the best final agents, traced back through the parents they copied.
Study (beside the JSON, same name, .png): per method (grid, random search, PBT) every held-out
seed's final eval return with the mean and the solved threshold, labelled with the share solved
and the tuning compute; beside it the tuning compute of each method as a share of the grid's.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np

import search
from plots.figures import category_colors, draw_per_combo, message_figure, plt, results_dir_main, save_figure
from plots.results import combo_title, load_sweep, solved_threshold

BEST_SCHEDULES = 3


METHOD_NAMES = {
    "grid": "grid search",
    "random": "random search",
    "pbt": "PBT (schedule replayed)",
    "defaults": "defaults (no search)",
}


def main(argv=None) -> list[Path]:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0].endswith(".json"):
        parser = argparse.ArgumentParser(description="the equal-compute study's figure")
        parser.add_argument("study", type=Path)
        parser.add_argument("--out", type=Path, help="PNG path (default: beside the JSON, same name)")
        parsed = parser.parse_args(args)
        path = draw_study(parsed.study, parsed.out)
        print(f"wrote {path}")
        return [path]
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


def draw_study(study_json, out=None) -> Path:
    """The study's figure, saved as `out` (default: the JSON's path with .png)."""
    study_json = Path(study_json)
    study = json.loads(study_json.read_text())
    return save_figure(study_figure(study), Path(out) if out else study_json.with_suffix(".png"))


def study_figure(study: dict):
    """Held-out final returns per method (every seed a dot, the mean a bar, the threshold dashed;
    the config's defaults beside them when the study judged them) and each method's tuning compute
    as a share of the grid's."""
    methods = study["methods"]
    names = list(methods)
    heldout = {name: methods[name]["heldout"] for name in names}
    if "defaults" in study:
        heldout["defaults"] = study["defaults"]["heldout"]
    threshold = study.get("solved_at")
    colors = category_colors(max(len(names), 1)) + ["gray"]
    fig, (ax, cost) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    jitter = np.random.default_rng(0)
    for i, (name, color) in enumerate(zip(heldout, colors)):
        held = heldout[name]
        finals = np.array([np.nan if v is None else v for v in held.get("finals", [])], float)
        x = i + jitter.uniform(-0.18, 0.18, len(finals))
        ax.scatter(x, finals, s=14, alpha=0.7, color=color)
        ax.hlines(held["mean"], i - 0.3, i + 0.3, color="black", linewidth=2)
        solved = round(held["solved"] * held["seeds"])
        ax.annotate(
            f"{solved}/{held['seeds']} solved\nmean {held['mean']:.0f}, worst {held['worst']:.0f}",
            (i, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, -4),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
        )
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"solved at {threshold:g}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(len(heldout)), [METHOD_NAMES.get(n, n) for n in heldout], fontsize=9)
    ax.set_xlim(-0.6, len(heldout) - 0.4)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.25 * (high - low))  # room for the labels
    ax.set_ylabel(f"final eval return, master seed {study['heldout_seed']}")
    ax.set_title(f"{study['heldout_seeds']} held-out seeds of each method's pick", fontsize=10)
    shares = [100 * methods[n]["share_of_grid_compute"] for n in names]
    cost.bar(range(len(names)), shares, color=colors[: len(names)])
    for i, name in enumerate(names):
        agents = methods[name]["tuning_agents"]
        cost.annotate(f"{agents} agent runs", (i, shares[i]), xytext=(0, 2), textcoords="offset points",
                      ha="center", fontsize=8)  # fmt: skip
    cost.set_xticks(range(len(names)), [n for n in names], fontsize=9)
    cost.set_ylabel("tuning agent-iterations, % of the grid's")
    cost.set_ylim(0, 115)
    cost.set_title(f"tuning on master seed {study['tuning_seed']}", fontsize=10)
    settings = ", ".join(item.partition("=")[0] for item in study["space"])
    partial_note = "" if study.get("complete", True) else " (PARTIAL: not every method has finished)"
    fig.suptitle(f"{study['task']}: grid vs random search vs PBT over {settings}{partial_note}", fontsize=10)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
