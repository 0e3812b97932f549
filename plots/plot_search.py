"""The figure of an equal-compute search study (bench/bench_search.py --study).

    python plots/plot_search.py bench/results/search_study_Pendulum-v1.json [--out PNG]

Beside the JSON (same name, .png): per method (grid, random search, PBT) every held-out seed's
final eval return with the mean and the solved threshold, labelled with the share solved and
the tuning compute; beside it the tuning compute of each method as a share of the grid's. The
figures of a single search sweep are fasttd3x/figures.py's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fasttd3x.figures import category_colors, plt, save_figure

METHOD_NAMES = {
    "grid": "grid search",
    "random": "random search",
    "pbt": "PBT (schedule replayed)",
    "defaults": "defaults (no search)",
}


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description="the equal-compute study's figure")
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, help="PNG path (default: beside the JSON, same name)")
    parsed = parser.parse_args(argv)
    path = draw_study(parsed.study, parsed.out)
    print(f"wrote {path}")
    return [path]


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
