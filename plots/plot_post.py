"""The figures of the blog post (docs/post.md), drawn from committed result records.

Each function takes plain numbers or a parsed result record and returns a matplotlib figure;
docs/render_post.py reads the files, calls these and saves the PNGs beside the post. Measured
values are drawn as markers, values derived from a measured rate as dashed lines.
"""

from __future__ import annotations

import numpy as np

from fasttd3x.figures import category_colors, plt


def throughput_bars_figure(rows: list[dict]):
    """Grouped bars of one agent's iterations/s per task. rows: {"task", "label", "value",
    "hatched"}; a hatched bar is a number that is not a same-card comparison."""
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    labels = list(dict.fromkeys(row["label"] for row in rows))
    colors = dict(zip(labels, category_colors(len(labels))))
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, label in enumerate(labels):
        for row in (row for row in rows if row["label"] == label):
            x = tasks.index(row["task"]) + (k - (len(labels) - 1) / 2) * width
            bar = ax.bar(x, row["value"], width, color=colors[label], hatch="//" if row["hatched"] else None)
            ax.bar_label(bar, [f"{row['value']:.1f}"], fontsize="small")
    for label in labels:
        ax.bar(np.nan, np.nan, color=colors[label], label=label)  # one legend entry per series
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("iterations / s (one agent, 1024 envs, batch 32768)")
    ax.set_title("One agent at the reference settings, bfloat16")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def agents_wall_time_figure(
    measured: list[tuple[int, float]], reference_its: float, iterations: int, max_agents: int
):
    """Hours to train N agents for `iterations` iterations each (log-log), PureJaxRL style.

    measured: (agents, agent-iterations/s) of our vmapped program, drawn as markers at those
    counts only; the reference runs one agent per process, so N runs back to back take
    N * iterations / reference_its, a line derived from its measured rate."""
    agents = np.unique(np.geomspace(1, max_agents, 64).round().astype(int))
    ours_color, reference_color = category_colors(2)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(
        agents,
        agents * iterations / reference_its / 3600,
        "--",
        color=reference_color,
        label=f"PyTorch reference, N runs in sequence (derived: N x {iterations:,} / {reference_its} it/s)",
    )
    for count, rate in measured:
        hours = count * iterations / rate / 3600
        ax.plot(count, hours, "o", color=ours_color, markersize=9)
        ax.annotate(f"{hours:.1f} h", (count, hours), xytext=(8, -4), textcoords="offset points")
        reference_hours = count * iterations / reference_its / 3600
        ax.annotate(
            f"{reference_hours:.0f} h", (count, reference_hours), xytext=(8, -12), textcoords="offset points"
        )
    ax.plot([], [], "o", color=ours_color, label="FastTD3X, N agents vmapped in one program (measured rate)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [2**k for k in range(int(np.log2(max_agents)) + 1)]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("agents N")
    ax.set_ylabel(f"hours for {iterations:,} iterations per agent")
    ax.set_title("CheetahRun, 128 envs and batch 4096 per agent, one H200")
    ax.grid(which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize="small")
    return fig


def _return_axes(fig, ax, xlabel: str, ylabel: str, title: str):
    """Labels, grid and legend of an eval-return-against-env-steps figure; returns the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def learning_points_figure(agents: list[dict[int, float]], published: dict[int, float], title: str):
    """Eval return against env steps: each agent's measured points joined, the published points
    as markers."""
    ours_color, published_color = category_colors(2)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, curve in enumerate(agents):
        steps = sorted(curve)
        label = f"FastTD3X, {len(agents)} agents (measured)" if k == 0 else None
        ax.plot(
            np.array(steps) / 1e6, [curve[s] for s in steps], "o-", color=ours_color, alpha=0.6, label=label
        )
    ax.plot(
        np.array(list(published)) / 1e6,
        list(published.values()),
        "s",
        color=published_color,
        markersize=8,
        label="PyTorch reference (published)",
    )
    return _return_axes(fig, ax, "env steps (millions)", "mean eval return", title)


def peer_curves_figure(curves: list[dict], threshold: float, title: str):
    """Mean eval return over seeds, one line per algorithm, against env steps per agent (left) and
    against the measured seconds since init (right). curves: {"label", "env_steps", "seconds",
    "mean_eval_return"}; the threshold is drawn dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, x_key in zip(axes, ("env_steps", "seconds")):
        for curve, color in zip(curves, category_colors(len(curves))):
            ax.plot(curve[x_key], curve["mean_eval_return"], color=color, marker=".", label=curve["label"])
        ax.axhline(threshold, color="k", linestyle=":", linewidth=1, label=f"solved at {threshold:g}")
    _return_axes(fig, axes[0], "env steps per agent", "mean eval return over seeds", "by env steps")
    _return_axes(fig, axes[1], "seconds since init (measured)", "", "by wall time")
    axes[1].get_legend().remove()  # the left panel's legend serves both
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def t1_learning_figure(ours: list[dict], published: dict[str, dict], title: str):
    """T1 eval return against env steps (left) and seconds (right): each of our agents as
    measured points joined, and the reference repository's published curves (mean with its
    min-max band) drawn as the file gives them.

    ours: {"label", "env_steps", "seconds", "returns"} per agent (seconds: the program's measured
    time since its first iteration, compilation excluded); published: {name: {"env_step", "time",
    "return", "return_min", "return_max"}}."""
    colors = category_colors(1 + len(published))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, ours_key, ref_key, scale in zip(axes, ("env_steps", "seconds"), ("env_step", "time"), (1e6, 60)):
        for k, agent in enumerate(ours):
            label = f"FastTD3X, {len(ours)} agents, H200 (measured)" if k == 0 else None
            x = np.asarray(agent[ours_key], float) / scale
            ax.plot(x, agent["returns"], "o-", color=colors[0], alpha=0.6, markersize=4, label=label)
        for (name, curve), color in zip(published.items(), colors[1:]):
            x = np.asarray(curve[ref_key], float) / scale
            ax.plot(x, curve["return"], "s--", color=color, markersize=3, label=f"{name}, A100 (published)")
            ax.fill_between(x, curve["return_min"], curve["return_max"], color=color, alpha=0.15)
    limit = max(max(agent["env_steps"]) for agent in ours) * 2.2
    axes[0].set_xlim(0, limit / 1e6)
    axes[1].set_xlim(0, max(max(agent["seconds"]) for agent in ours) * 2.2 / 60)
    _return_axes(fig, axes[0], "env steps (millions)", "mean eval return", "by env steps")
    _return_axes(fig, axes[1], "minutes of training (compilation excluded)", "", "by wall-clock time")
    axes[1].get_legend().remove()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
