"""Plots and statistics for FastTD3X sweep results (see plots/results.py for the format)."""

from __future__ import annotations

from pathlib import Path


def draw_all(results_dir, solved_at: float | None = None) -> list[Path]:
    """Draw the learning curves and the grid figure of every combination; returns the PNG paths.
    `solved_at` overrides the task's solved threshold (plots.results.SOLVED_THRESHOLDS)."""
    # Imported here so `plots.results` can be used (e.g. by sweep.py) without loading matplotlib.
    from plots.plot_curves import draw_curves
    from plots.plot_grid import draw_grid
    from plots.results import load_sweep

    sweep = load_sweep(results_dir)
    return draw_curves(sweep, results_dir, solved_at) + draw_grid(sweep, results_dir, solved_at)
