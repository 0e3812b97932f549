"""The per-card section of docs/benchmarks.md, generated from the GPU result files in bench/results/.

    python bench/benchmarks_table.py            # rewrite the block between the page's markers
    python bench/benchmarks_table.py --check    # exit 1 if the page's block is not what the files give
    python bench/benchmarks_table.py --print    # print the block

Reads the JSON files that bench/gpu_proof.py (gpu_proof_<stage>_<device>.json),
bench_iterations.py (iterations_*), bench_scaling.py (scaling_*) and bench_parity.py (parity_*)
write, keeps those measured on a GPU (smoke and CPU runs are left out), and reports, per card:
iterations/s against the PyTorch reference on the same card kind, agent scaling, the T1 learning
curve against the published points, and the profile of one T1 iteration against the simulator
and learner timed alone. Reference figures (bench/results/reference_h200.json, with their
provenance) exist for the H200 only; on another card the
reference column says "not measured on this card". With no GPU file the section says so and
gives the command to run on the device.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from fasttd3x.results import agent_curves, returns_at

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "docs" / "benchmarks.md"  # the page that holds the block (the README links to it)
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
DEVICE_COMMAND = "bash bench/gpu_proof.sh"

# The reference's speeds and our simulator and learner timed alone on the same card, with their
# provenance (bench/results/reference_h200.json); the published T1 returns (reference_published.json).
REFERENCE = json.loads((RESULTS / "reference_h200.json").read_text())
REFERENCE_CARD = REFERENCE["card"]
REFERENCE_ITERATIONS = {  # (task, num_envs, batch) -> iterations/s
    (row["task"], row["num_envs"], row["batch_size"]): row["iterations_per_second"]
    for row in REFERENCE["reference_iterations_per_second"]
}
_T1_SIM = next(row for row in REFERENCE["simulator_alone"] if row["task"] == "T1JoystickFlatTerrain")
ALONE_MS = {  # component -> {compute dtype or "any": ms}
    "simulator_step": {"any": 1000 / _T1_SIM["iterations_per_second"]},
    "learner": REFERENCE["learner_alone_ms_per_iteration"],
}
# One T1 iteration cannot beat the simulator step plus the bfloat16 learner timed alone.
T1_BOUND_ITERATIONS = 1000 / (ALONE_MS["simulator_step"]["any"] + ALONE_MS["learner"]["bfloat16"])
_PUBLISHED = json.loads((RESULTS / "reference_published.json").read_text())["mean_eval_return"]
PUBLISHED_T1 = {steps: _PUBLISHED["T1JoystickFlatTerrain"][str(steps)] for steps in (5_120_000, 10_240_000)}


def load(results: pathlib.Path, include_cpu: bool = False) -> list[tuple[str, dict]]:
    """(file name, record) of every result file measured on a GPU (or any device with include_cpu)."""
    records = []
    for path in sorted(results.glob("*.json")):
        if not path.name.startswith(("gpu_proof_", "iterations_", "scaling_", "parity_")):
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(record, dict) or "device" not in record:
            continue
        if not include_cpu and (record.get("platform") != "gpu" or record.get("smoke")):
            continue
        records.append((path.name, record))
    return records


def _ref_name(device: str) -> bool:
    return REFERENCE_CARD in device


def _f(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _file(name: str) -> str:
    return f"`bench/results/{name}`"


def throughput_rows(device: str, records) -> list[dict]:
    rows = []
    for name, record in records:
        if record.get("benchmark") == "gpu_proof_iterations":
            for row in record["numbers"]:
                rows.append({**row, "file": name})
        elif record.get("benchmark") == "iterations" and record.get("agents") == 1:
            rows.append(
                {
                    "task": record["env"],
                    "num_envs": record["num_envs"],
                    "batch_size": record["batch_size"],
                    "compute_dtype": record["compute_dtype"],
                    "iterations_per_second": record["iterations_per_second"],
                    "file": name,
                }
            )
    return rows


def throughput_table(device: str, rows: list[dict]) -> list[str]:
    on_card = _ref_name(device)
    lines = [
        "Iterations/s of one agent at the reference settings (an iteration steps every env once, "
        "writes the buffer and does its 2 critic and 1 actor updates):",
        "",
        "| task | envs | batch | dtype | ours, it/s | PyTorch reference, it/s | ours / reference | file |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        key = (row["task"], row["num_envs"], row["batch_size"])
        ours = row["iterations_per_second"]
        if not on_card:
            ref, ratio = "not measured on this card", "n/a"
        elif key in REFERENCE_ITERATIONS and row["compute_dtype"] == "bfloat16":
            ref, ratio = _f(REFERENCE_ITERATIONS[key]), f"{ours / REFERENCE_ITERATIONS[key]:.2f}x"
        elif key in REFERENCE_ITERATIONS:
            ref, ratio = f"{_f(REFERENCE_ITERATIONS[key])} (bf16 AMP)", "n/a"
        else:
            ref, ratio = "not measured", "n/a"
        lines.append(
            f"| {row['task']} | {row['num_envs']} | {row['batch_size']} | {row['compute_dtype']} | "
            f"{_f(ours, 2)} | {ref} | {ratio} | {_file(row['file'])} |"
        )
    if on_card:
        lines += [
            "",
            "Ours exclude evaluation. The reference's rates are figures recorded on "
            f"{REFERENCE['date']} with no raw timing log in the repository, and whether they include "
            "its evaluation is not recorded; read the ratios as indicative until both sides run from "
            "one script on one card.",
            "",
            f"On this card the simulator and the learner timed alone bound T1 at about "
            f"{T1_BOUND_ITERATIONS:.0f} iterations/s in bfloat16 (derived: the two times added). The "
            "reference's figures and these bounds, with their provenance: "
            "`bench/results/reference_h200.json`.",
        ]
    return lines


def scaling_section(device: str, records) -> list[str]:
    lines = []
    for name, record in records:
        if record.get("benchmark") != "scaling":
            continue
        rows = record.get("numbers") or record.get("rows") or []
        if not rows:
            continue
        env, envs_, batch = record.get("env"), record.get("num_envs"), record.get("batch_size")
        lines += [
            f"Agents trained at once (vmapped) on {env}, {envs_} envs and batch {batch} each "
            f"({record.get('compute_dtype')}), {_file(name)}:",
            "",
            "| agents | agent-iterations/s | env steps/s | peak memory, GiB | status |",
            "|---|---|---|---|---|",
        ]
        for row in rows:
            peak = row.get("peak_memory_bytes")
            lines.append(
                f"| {row['agents']} | {_f(row.get('agent_iterations_per_second'))} | "
                f"{_f(row.get('env_steps_per_second'), 0)} | {_f(peak / 2**30 if peak else None, 2)} | "
                f"{row.get('status', 'ok')} |"
            )
        key = (env, envs_, batch)
        if key in REFERENCE_ITERATIONS:
            ref = REFERENCE_ITERATIONS[key]
            lines += [
                "",
                f"The PyTorch reference trains one agent per process: recorded at {ref} iterations/s at "
                "these settings on an H200 (`bench/results/reference_h200.json`). One agent's FastTD3X "
                "rate at these settings is not in this table, so the two do not separate what vmapping "
                "buys from what the implementation buys."
                if _ref_name(device)
                else "The PyTorch reference at these settings: not measured on this card.",
            ]
        lines.append("")
    for plot in [
        ROOT / "plots" / "throughput.png",
        *sorted((ROOT / "plots" / "figures").glob("throughput*.png")),
    ]:
        if plot.exists() and lines:
            lines += [f"Plot: `{plot.relative_to(ROOT)}` (`python plots/plot_throughput.py`).", ""]
            break
    return lines[:-1] if lines and lines[-1] == "" else lines


def _episodes(record) -> str:
    """How many episodes each evaluation averaged (gpu_proof records say; older ones do not)."""
    episodes = record.get("num_eval_envs")
    return f", {episodes} evaluation episodes per point" if episodes else ""


def seed_table(env: str, files: list[tuple[str, dict]]) -> list[str]:
    """Every agent of every gpu_proof learning file of one task on one card, side by side, with
    the mean and, at each published point, how many agents reached it (mean, IQM, worst)."""
    labels, curves = zip(*(curve for _, record in files for curve in agent_curves(record)), strict=True)
    published = PUBLISHED_T1 if env == "T1JoystickFlatTerrain" else {}
    steps = sorted({s for curve in curves for s in curve})
    episodes = {record.get("num_eval_envs") for _, record in files} - {None}
    lines = [
        f"{env} learning at the reference settings: every agent's eval return (column sMaK: agent "
        f"K of master seed M; the agents of one master seed are vmapped in one program; none was tuned on "
        f"this task)"
        + (f", {'/'.join(map(str, sorted(episodes)))} evaluation episodes per point" if episodes else "")
        + ":",
        "",
        "| env steps | " + " | ".join(labels) + " | mean | published (PyTorch) |",
        "|---|" + "---|" * (len(curves) + 2),
    ]
    for step in steps:
        at = returns_at(curves, step)
        mean = f"{at['mean']:.2f}" + ("" if at["agents"] == len(curves) else f" ({at['agents']})")
        cells = " | ".join(f"{curve[step]:.2f}" if step in curve else "" for curve in curves)
        reference = _f(published[step], 2) if step in published else ""
        lines.append(f"| {step:,} | {cells} | {mean} | {reference} |")
    for step in (s for s in steps if s in published):
        at = returns_at(curves, step)
        above = sum(v >= published[step] for v in at["values"])
        lines += [
            "",
            f"At {step:,} env steps {above} of {at['agents']} agents reached the published "
            f"{published[step]:.2f}: mean {at['mean']:.2f}, IQM {at['iqm']:.2f}, worst {at['worst']:.2f}.",
        ]
    lines += [
        "",
        "Published returns: `bench/results/reference_published.json`. Files (status; wall time, compile "
        "included):",
        "",
    ]
    for name, record in files:
        lines.append(
            f"- {_file(name)}: {record.get('seeds')} agent(s) of master seed {record.get('master_seed', 0)}, "
            f"to {max(row['env_steps'] for row in record['numbers']):,} env steps ({record.get('status')}; "
            f"{_f(record.get('wall_seconds_compile_included'), 0)} s)"
        )
    return lines


def learning_section(records) -> list[str]:
    """gpu_proof learning files as one table per task; bench_parity files one table each."""
    by_env: dict[str, list] = {}
    lines = []
    for name, record in records:
        if record.get("benchmark") in ("gpu_proof_learn1", "gpu_proof_learn2") and record["numbers"]:
            by_env.setdefault(record.get("env"), []).append((name, record))
    for env, files in by_env.items():
        files = sorted(files, key=lambda file: file[1].get("master_seed", 0))
        lines += [*seed_table(env, files), ""]
    for name, record in records:
        if record.get("benchmark") != "parity":
            continue
        points = list(zip(record["env_steps"], record["mean_eval_return"]))
        published = PUBLISHED_T1 if record.get("env") == "T1JoystickFlatTerrain" else {}
        lines += [
            f"{record.get('env')} learning at the reference settings, mean eval return of "
            f"{record.get('seeds')} seed(s){_episodes(record)}, {_file(name)} (complete; "
            f"{_f(record.get('wall_seconds_compile_included'), 0)} s wall time, compile included):",
            "",
            "| env steps | ours | published (PyTorch) |",
            "|---|---|---|",
        ]
        for steps, value in points:
            lines.append(
                f"| {steps:,} | {_f(value, 2)} | {_f(published[steps], 2) if steps in published else ''} |"
            )
        lines.append("")
    return lines[:-1]


def profile_section(device: str, records) -> list[str]:
    lines = []
    for name, record in records:
        if record.get("benchmark") != "gpu_proof_profile" or not record["numbers"]:
            continue
        dtype = record.get("compute_dtype")
        comparable = (record.get("env"), record.get("num_envs")) == ("T1JoystickFlatTerrain", 1024)
        lines += [
            f"One {record.get('env')} iteration taken apart ({record.get('num_envs')} envs, {dtype}), "
            f"{_file(name)}:",
            "",
            f"| component | ours, ms | alone on an {REFERENCE_CARD}, ms (`reference_h200.json`) | how |",
            "|---|---|---|---|",
        ]
        for row in record["numbers"]:
            alone = ALONE_MS.get(row["component"], {}) if comparable else {}
            value = alone.get(dtype, alone.get("any"))
            ref = _f(value, 2) if value is not None else ""
            if value is not None and not _ref_name(device):
                ref += " (other card)"
            lines.append(f"| {row['component']} | {_f(row.get('ms'), 3)} | {ref} | {row.get('how', '')} |")
    return lines


def render(results: pathlib.Path = RESULTS, include_cpu: bool = False) -> str:
    """The README block, markers included."""
    records = load(results, include_cpu)
    lines = [
        START,
        "<!-- Generated from bench/results/*.json by `python bench/benchmarks_table.py`: "
        "edit the script, not this block. -->",
    ]
    devices = sorted({record["device"] for _, record in records})
    if not devices:
        lines += [
            "No GPU result is in `bench/results/` yet: nothing here has run on an H100 or H200.",
            "On the device, with `.whl/` and `.menag/` made by `shared/device/prepare_offline_gpu.sh`, run",
            "",
            f"    {DEVICE_COMMAND}",
            "",
            "(`bench/gpu_proof.py`: iterations/s, agent scaling, T1 learning to 5.12M env steps and a",
            "profile, within 540 s), copy the JSON files it writes to `$OUT` into `bench/results/` and",
            "run `python bench/benchmarks_table.py`. To compare with, on an H200",
            "(`bench/results/reference_h200.json`): the PyTorch reference runs T1JoystickFlatTerrain at "
            f"{REFERENCE_ITERATIONS[('T1JoystickFlatTerrain', 1024, 32768)]} iterations/s,",
            f"CheetahRun at {REFERENCE_ITERATIONS[('CheetahRun', 1024, 32768)]} (1024 envs) and "
            f"{REFERENCE_ITERATIONS[('CheetahRun', 128, 4096)]} (128 envs, batch 4096); the published",
            f"T1 returns are {PUBLISHED_T1[5_120_000]:.2f} at 5.12M and {PUBLISHED_T1[10_240_000]:.2f} "
            "at 10.24M env steps.",
        ]
    for device in devices:
        mine = [(name, record) for name, record in records if record["device"] == device]
        first = mine[0][1]
        versions = first.get("versions", {})
        lines += [
            "",
            f"### {device}",
            "",
            f"jax {versions.get('jax')}, mujoco-mjx {versions.get('mujoco-mjx')}, playground "
            f"{versions.get('playground')}; measured {first.get('date', 'n/a')}.",
        ]
        for section in (
            throughput_table(device, throughput_rows(device, mine)) if throughput_rows(device, mine) else [],
            scaling_section(device, mine),
            learning_section(mine),
            profile_section(device, mine),
        ):
            if section:
                lines += ["", *section]
    lines.append(END)
    return "\n".join(lines)


def readme_block(text: str) -> str:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"the page has no {START} ... {END} block")
    return text[start : end + len(END)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the README block differs")
    mode.add_argument("--print", action="store_true", help="print the block, change nothing")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS)
    parser.add_argument("--readme", type=pathlib.Path, default=README)
    parser.add_argument("--include-cpu", action="store_true", help="also CPU and smoke files (testing)")
    args = parser.parse_args(argv)
    block = render(args.results, args.include_cpu)
    if args.print:
        print(block)
        return 0
    text = args.readme.read_text()
    current = readme_block(text)
    if args.check:
        if current != block:
            print(
                f"{args.readme} Benchmarks block is stale: run python bench/benchmarks_table.py",
                file=sys.stderr,
            )
            return 1
        print(f"{args.readme} Benchmarks block matches bench/results/")
        return 0
    start = text.find(START)
    args.readme.write_text(text[:start] + block + text[start + len(current) :])
    print(f"rewrote the Benchmarks block of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
