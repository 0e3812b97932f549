"""Shared matplotlib setup for the plot scripts: headless Agg backend and PNG saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # plots are written on headless machines; never open a window
import matplotlib.pyplot as plt  # noqa: E402

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


def results_dir_main(argv, description: str, draw) -> list[Path]:
    """The command line of a per-sweep plot script: `script.py RESULTS_DIR [--solved-at RETURN]`,
    which calls draw(sweep, RESULTS_DIR, solved_at)."""
    import argparse

    from plots.results import load_sweep

    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
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
    paths = draw(load_sweep(args.results_dir), args.results_dir, args.solved_at)
    print("\n".join(map(str, paths)))
    return paths


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
