"""Learning curves of FastTD3X and the PyTorch reference side by side, one panel per task.

    python plots/plot_reference.py [bench/results/reference_learning_cpu.json] [--out PNG]

Each implementation is drawn as its mean eval return over the seeds it has finished, with a 95%
percentile-bootstrap band of that mean (seeds resampled, one interval per eval point); the legend
says how many seeds each curve has, so a partial run reads as one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fasttd3x.figures import category_colors, plt, save_figure
from fasttd3x.results import bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "bench" / "results" / "reference_learning_cpu.json"
NAMES = {"reference": "PyTorch reference (229ed59)", "ours": "FastTD3X (ours)"}


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default=str(DEFAULT_RESULTS))
    parser.add_argument("--out", help="PNG path (default: beside the JSON, same name)")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    out = Path(args.out) if args.out else Path(args.results).with_suffix(".png")
    path = save_figure(reference_figure(results), out)
    print(f"wrote {path}")
    return path


def reference_figure(results: dict):
    tasks = results["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, (task, entry) in zip(axes[0], sorted(tasks.items())):
        for (name, runs), color in zip(entry["runs"].items(), category_colors(len(NAMES))):
            if not runs:
                ax.plot([], [], color=color, label=f"{NAMES[name]}: no seeds yet")
                continue
            returns = np.array([run["eval_return"] for run in runs.values()], float)  # [seeds, evals]
            steps = np.asarray(next(iter(runs.values()))["env_steps"])
            low, high = bootstrap_ci(returns, statistic=np.mean, reps=4000)
            ax.plot(steps, returns.mean(0), color=color, label=f"{NAMES[name]}: mean of {len(returns)} seeds")
            ax.fill_between(steps, low, high, color=color, alpha=0.25, linewidth=0)
        sizes = entry["settings"]["sizes"]
        ax.set_title(f"{task} ({sizes['num_envs']} envs, batch {sizes['batch_size']})")
        ax.set_xlabel("env steps per agent")
        ax.set_ylabel("eval return (deterministic actor)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("FastTD3X vs the PyTorch reference on CPU: mean with 95% bootstrap band", fontsize=11)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
