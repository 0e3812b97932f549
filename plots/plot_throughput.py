"""Throughput vs number of vmapped agents, from the benchmark JSON files (log-log).

    python plots/plot_throughput.py [BENCH_RESULTS_DIR=bench/results] [OUT_PNG=plots/throughput.png]

"scaling" files ({"rows": [{"agents", "agent_iterations_per_second", ...}]}) are drawn as solid
lines, single-size "iterations" files as markers joined by dashed lines per setting; one colour
per (env, device). Defaults are relative to the repository root.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fasttd3x.figures import category_colors, message_figure, plt, save_figure

REPO = Path(__file__).resolve().parents[1]
TITLE = "FastTD3X throughput: agent-iterations per second"


def main(argv=None) -> Path:
    """Draw the throughput figure; returns the PNG path."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench_dir", nargs="?", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("out_png", nargs="?", type=Path, default=REPO / "plots" / "throughput.png")
    args = parser.parse_args(argv)
    scaling, iterations = load_benchmarks(args.bench_dir)
    path = save_figure(throughput_figure(scaling, iterations, args.bench_dir), args.out_png)
    print(path)
    return path


def load_benchmarks(bench_dir: Path) -> tuple[list[dict], list[dict]]:
    """The "scaling" and "iterations" records among the JSON files in `bench_dir`."""
    records = [json.loads(path.read_text()) for path in sorted(Path(bench_dir).glob("*.json"))]
    records = [record for record in records if isinstance(record, dict)]
    return (
        [record for record in records if record.get("benchmark") == "scaling"],
        [record for record in records if record.get("benchmark") == "iterations"],
    )


def series_label(record: dict) -> str:
    """Env and device, plus the settings that change throughput when the file records them."""
    parts = [record["env"], record["device"]]
    if "compute_dtype" in record:
        parts.append(record["compute_dtype"])
    if "num_envs" in record:
        parts.append(f"{record['num_envs']} envs")
    return ", ".join(parts)


def throughput_figure(scaling: list[dict], iterations: list[dict], bench_dir: Path):
    """Log-log agent-iterations/s vs agents, or a note when there are no benchmarks."""
    if not scaling and not iterations:
        return message_figure(TITLE, f"no 'scaling' or 'iterations' benchmarks in {bench_dir}")
    groups = sorted({(record["env"], record["device"]) for record in scaling + iterations})
    colors = dict(zip(groups, category_colors(len(groups))))
    fig, ax = plt.subplots(figsize=(8, 5))
    for record in scaling:
        rows = sorted(measured_rows(record), key=lambda row: row["agents"])
        ax.plot(
            [row["agents"] for row in rows],
            [row["agent_iterations_per_second"] for row in rows],
            "o-",
            color=colors[record["env"], record["device"]],
            label=f"{series_label(record)} (scaling)",
        )
    for label, records in group_iterations(iterations).items():
        throughput = [record["agent_iterations_per_second"] for record in records]
        color = colors[records[0]["env"], records[0]["device"]]
        agents = [record["agents"] for record in records]
        ax.plot(agents, throughput, "s--", color=color, label=f"{label} (iterations)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    counts = sorted(
        {row["agents"] for record in scaling for row in measured_rows(record)}
        | {record["agents"] for record in iterations}
    )
    ax.set_xticks(counts, [str(count) for count in counts])  # agent counts, not 2x10^0
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("agents trained at once (vmapped on one device)")
    ax.set_ylabel("agent-iterations / s")
    ax.set_title(TITLE)
    ax.grid(which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


def measured_rows(record: dict) -> list[dict]:
    """Rows of a scaling file that have a throughput (a failed size, e.g. out of memory, has none);
    bench/gpu_proof.py's scaling file keeps them under "numbers"."""
    rows = record.get("rows") or record.get("numbers") or []
    return [row for row in rows if row.get("agent_iterations_per_second")]


def group_iterations(iterations: list[dict]) -> dict[str, list[dict]]:
    """Single-size runs with the same settings, ordered by agents, so they read as one series."""
    groups: dict[str, list[dict]] = {}
    for record in sorted(iterations, key=lambda record: record["agents"]):
        groups.setdefault(series_label(record), []).append(record)
    return groups


if __name__ == "__main__":
    main()
