"""The blog post, docs/post.md, rendered from docs/post_template.md and the committed results.

    python docs/render_post.py            # write docs/post.md and its figures in docs/figures/
    python docs/render_post.py --check    # exit 1 if docs/post.md is not what the results give
    python docs/render_post.py --print    # print the post, change nothing

Every number in the post is computed here from a file under bench/results/, and the post names
that file beside each figure and table. Results that other work is still producing
(reference_learning_cpu.json, reference_throughput_cpu.json, search_*.json) are optional: a
missing file gives a "not measured yet" sentence, a file that exists but cannot be read as
expected stops the render, naming the file. The figures are drawn by plots/plot_post.py;
--check compares the text only (PNG bytes depend on the matplotlib build) and requires that
every figure the post links exists.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import string
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `plots` importable from any folder
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"
TEMPLATE = DOCS / "post_template.md"
POST = DOCS / "post.md"
FIGURES = DOCS / "figures"

# The run length the wall-time figure charges every agent: CheetahRun's TOTAL_TIMESTEPS in
# configs.py, the reference's default for Playground tasks (iterations, not env steps).
CHEETAH_ITERATIONS = 150_000
# Result files other work is still producing: the post says "not measured yet" while they are missing.
SEARCH_GLOB = "search_*.json"
OPTIONAL = ("reference_learning_cpu.json", "reference_throughput_cpu.json", SEARCH_GLOB)
# T1's published returns (the paper's curves, spec §9.1), as gpu_proof records them.
T1_PUBLISHED_STEPS = (5_120_000, 10_240_000)
# The H200 T1 learning runs: the one to 10.24M env steps first (its settings head the section).
T1_FILES = (
    "gpu_proof_learn2_NVIDIA_H200.json",
    "gpu_proof_learn1_NVIDIA_H200_seed1.json",
    "gpu_proof_learn1_NVIDIA_H200_seed2.json",
)


# --------------------------------------------------------------------------------------- reading
def read_json(name: str):
    """A committed result file; a missing or unparsable one stops the render, naming it."""
    path = RESULTS / name
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"render_post: cannot read bench/results/{name}: {err}") from err


def read_optional(name: str) -> dict | None:
    """A result file that may not exist yet: None if missing, loud if it is not a JSON object."""
    if not (RESULTS / name).exists():
        return None
    record = read_json(name)
    if not isinstance(record, dict):
        raise SystemExit(f"render_post: bench/results/{name} is not a JSON object")
    return record


def require(record: dict, name: str, *keys):
    """record[k1][k2]...; a missing key stops the render, naming the file and the key path."""
    value = record
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise SystemExit(f"render_post: bench/results/{name} has no {'.'.join(map(str, keys))}")
        value = value[key]
    return value


def read_summary_csv(name: str) -> dict:
    """The single row of a sweep's summary.csv (one grid point), numbers as floats."""
    lines = (RESULTS / name).read_text().strip().splitlines()
    if len(lines) != 2:
        raise SystemExit(f"render_post: bench/results/{name} should hold one row, has {len(lines) - 1}")
    return {key: float(value) for key, value in zip(lines[0].split(","), lines[1].split(","))}


# ------------------------------------------------------------------------------------ formatting
def num(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def share(fraction: float, total: int) -> str:
    """'63/64' from a fraction of a known count."""
    return f"{round(fraction * total)}/{total}"


def src(name: str) -> str:
    return f"`bench/results/{name}`"


# ------------------------------------------------------------------------------------- sections
def design_values() -> dict:
    memory = read_json("memory.json")
    t1, cheetah = memory["tasks"]["T1JoystickFlatTerrain"], memory["tasks"]["CheetahRun"]
    compile_rows = {
        (r["env"], r["NUM_UPDATES"]): r for r in read_json("compile_num_updates_cpu.json")["rows"]
    }

    def compile_total(env, updates):
        row = compile_rows[env, updates]
        return row["lower_seconds"] + row["compile_seconds"]

    def program_growth(env):
        return compile_rows[env, 8]["program_chars"] / compile_rows[env, 2]["program_chars"] - 1

    heartbeat = read_json("heartbeat_cost_cpu.json")
    beat = {row["eval_interval"]: row for row in heartbeat["rows"]}
    deadlock = read_json("cpu_deadlock_cpu.json")
    layouts = {layout["host_devices"]: layout for layout in deadlock["layouts"]}
    one, two = layouts[1], layouts[2]
    return {
        "mem_t1": num(t1["bytes_per_transition"], 0),
        "mem_t1_ref": num(t1["reference_bytes_per_transition"], 0),
        "mem_t1_ratio": f"{t1['ratio_to_reference']:.2f}",
        "mem_t1_gib": num(t1["replay_bytes_per_agent"] / 2**30, 1),
        "mem_t1_slots": f"{t1['num_envs']:,} envs x {t1['buffer_size_per_env']:,} slots",
        "mem_cheetah": num(cheetah["bytes_per_transition"], 0),
        "mem_cheetah_ref": num(cheetah["reference_bytes_per_transition"], 0),
        "mem_cheetah_ratio": f"{cheetah['ratio_to_reference']:.2f}",
        "compile_pend_2": num(compile_total("Pendulum-v1", 2)),
        "compile_pend_8": num(compile_total("Pendulum-v1", 8)),
        "compile_cheetah_2": num(compile_total("CheetahRun", 2)),
        "compile_cheetah_8": num(compile_total("CheetahRun", 8)),
        "program_growth": f"{100 * program_growth('Pendulum-v1'):.1f}% (Pendulum-v1) and "
        f"{100 * program_growth('CheetahRun'):.1f}% (CheetahRun)",
        "beat_ms": f"{1000 * heartbeat['seconds_per_callback']:.2f}",
        "beat_100_measured": f"{beat[100]['overhead_percent_measured']:+.1f}%",
        "beat_100_derived": f"{beat[100]['overhead_percent_derived']:.2f}%",
        "beat_100_count": str(beat[100]["heartbeats"]),
        "beat_1000_measured": f"{beat[1000]['overhead_percent_measured']:+.1f}%",
        "beat_1000_count": str(beat[1000]["heartbeats"]),
        "deadlock_what": deadlock["what"],
        "deadlock_cores": str(deadlock["cores"]),
        "deadlock_one": f"{one['finished']}/{len(one['runs'])}",
        "deadlock_one_range": "-".join(str(f(r["seconds"] for r in one["runs"])) for f in (min, max)),
        "deadlock_two": f"{two['finished']}/{len(two['runs'])}",
        "deadlock_limit": num(deadlock["limit_seconds"], 0),
    }


def gpu_values() -> tuple[dict, dict]:
    """Text values and figure inputs of the GPU sections."""
    reference = read_json("reference_h200.json")
    ref_its = {
        (row["task"], row["num_envs"], row["batch_size"]): row["iterations_per_second"]
        for row in reference["reference_iterations_per_second"]
    }
    h200 = {row["task"]: row for row in read_json("gpu_proof_iterations_NVIDIA_H200.json")["numbers"]}
    h100 = {
        row["task"]: row for row in read_json("gpu_proof_iterations_NVIDIA_H100_80GB_HBM3.json")["numbers"]
    }

    def ratio(task):
        return h200[task]["iterations_per_second"] / ref_its[task, 1024, 32768]

    t1_sim = next(row for row in reference["simulator_alone"] if row["task"] == "T1JoystickFlatTerrain")
    t1_bound = 1000 / (
        1000 / t1_sim["iterations_per_second"] + reference["learner_alone_ms_per_iteration"]["bfloat16"]
    )

    scaling = read_json("gpu_proof_scaling_NVIDIA_H200.json")
    measured = [
        (row["agents"], row["agent_iterations_per_second"])
        for row in scaling["numbers"]
        if row.get("agent_iterations_per_second")
    ]
    biggest = max(measured)
    big_row = next(row for row in scaling["numbers"] if row["agents"] == biggest[0])
    ref_small = ref_its["CheetahRun", scaling["num_envs"], scaling["batch_size"]]
    ours_hours = biggest[0] * CHEETAH_ITERATIONS / biggest[1] / 3600
    ref_hours = biggest[0] * CHEETAH_ITERATIONS / ref_small / 3600

    values = {
        "ref_source": reference["source"],
        "h200_date": read_json("gpu_proof_iterations_NVIDIA_H200.json")["date"][:10],
        "h200_t1": num(h200["T1JoystickFlatTerrain"]["iterations_per_second"], 2),
        "h200_cheetah": num(h200["CheetahRun"]["iterations_per_second"], 2),
        "ref_t1": num(ref_its["T1JoystickFlatTerrain", 1024, 32768]),
        "ref_cheetah": num(ref_its["CheetahRun", 1024, 32768]),
        "ratio_t1": f"{ratio('T1JoystickFlatTerrain'):.2f}",
        "ratio_cheetah": f"{ratio('CheetahRun'):.2f}",
        "h100_t1": num(h100["T1JoystickFlatTerrain"]["iterations_per_second"], 2),
        "h100_cheetah": num(h100["CheetahRun"]["iterations_per_second"], 2),
        "t1_sim_alone": num(t1_sim["iterations_per_second"]),
        "t1_learner_alone": num(reference["learner_alone_ms_per_iteration"]["bfloat16"], 2),
        "t1_bound": num(t1_bound, 0),
        "t1_sim_ms": num(1000 / t1_sim["iterations_per_second"], 1),
        "t1_ref_ms": num(1000 / ref_its["T1JoystickFlatTerrain", 1024, 32768], 1),
        "t1_sim_share": num(
            100 * ref_its["T1JoystickFlatTerrain", 1024, 32768] / t1_sim["iterations_per_second"], 0
        ),
        "scale_agents": str(biggest[0]),
        "scale_envs": str(scaling["num_envs"]),
        "scale_batch": str(scaling["batch_size"]),
        "scale_rate": num(biggest[1]),
        "scale_per_agent": num(big_row["iterations_per_second"], 2),
        "scale_peak_gib": num(big_row["peak_memory_bytes"] / 2**30, 1),
        "scale_compile": num(big_row["compile_seconds"], 0),
        "scale_chunks": str(big_row["timed_chunks"]),
        "scale_chunk_iterations": str(big_row["chunk_iterations"]),
        "scale_notes": "; ".join(scaling.get("notes", [])) or "none",
        "ref_small": num(ref_small),
        "scale_ratio": num(biggest[1] / ref_small, 1),
        "cheetah_iterations": f"{CHEETAH_ITERATIONS:,}",
        "ours_hours": num(ours_hours, 1),
        "ref_hours": num(ref_hours, 0),
    }
    figures = {
        "throughput_h200.png": lambda plot: plot.throughput_bars_figure(
            [
                *(
                    {
                        "task": task,
                        "label": "FastTD3X, H200",
                        "value": h200[task]["iterations_per_second"],
                        "hatched": False,
                    }
                    for task in h200
                ),
                *(
                    {
                        "task": task,
                        "label": "PyTorch reference, H200",
                        "value": ref_its[task, 1024, 32768],
                        "hatched": False,
                    }
                    for task in h200
                ),
                *(
                    {
                        "task": task,
                        "label": "FastTD3X, H100 (other card)",
                        "value": h100[task]["iterations_per_second"],
                        "hatched": True,
                    }
                    for task in h100
                ),
            ]
        ),  # fmt: skip
        "agents_wall_time.png": lambda plot: plot.agents_wall_time_figure(
            measured, ref_small, CHEETAH_ITERATIONS, max(256, biggest[0])
        ),
    }
    return values, figures


def t1_values() -> tuple[dict, dict]:
    """The T1 learning section: every agent of the H200 learning files against the published
    points (the reference's published curve, spec §9.1)."""
    from fasttd3x.results import agent_curves, returns_at

    records = {name: read_json(name) for name in T1_FILES}
    longest = records[T1_FILES[0]]
    published = {steps: require(longest, T1_FILES[0], "reference_returns", str(steps))
                 for steps in T1_PUBLISHED_STEPS}  # fmt: skip
    curves = [curve for record in records.values() for _, curve in agent_curves(record)]
    steps = sorted({step for curve in curves for step in curve})

    def row(step):
        at = returns_at(curves, step)
        ref = num(published[step], 2) if step in published else ""
        return (
            f"| {step:,} | {at['agents']} | {at['mean']:.2f} | {at['worst']:.2f} | {at['best']:.2f} | {ref} |"
        )

    five, ten = (returns_at(curves, step) for step in T1_PUBLISHED_STEPS)
    two_agents = records[T1_FILES[1]]
    values = {
        "t1_agents": str(len(curves)),
        "t1_masters": ", ".join(str(record.get("master_seed", 0)) for record in records.values()),
        "t1_agents_5": str(five["agents"]),
        "t1_above_5": str(sum(value >= published[T1_PUBLISHED_STEPS[0]] for value in five["values"])),
        "t1_mean_5": num(five["mean"], 2),
        "t1_iqm_5": num(five["iqm"], 2),
        "t1_worst_5": num(five["worst"], 2),
        "t1_agents_10": str(ten["agents"]),
        "t1_ours_10": num(ten["mean"], 2),
        "t1_pub_5": num(published[T1_PUBLISHED_STEPS[0]], 2),
        "t1_pub_10": num(published[T1_PUBLISHED_STEPS[1]], 2),
        "t1_eval_episodes": str(longest["num_eval_envs"]),
        "t1_wall": num(longest["wall_seconds_compile_included"], 0),
        "t1_compile": num(longest["compile_seconds"], 0),
        "t1_chunk_one": num(longest["numbers"][-1]["chunk_seconds"], 0),
        "t1_chunk_two": num(two_agents["numbers"][-1]["chunk_seconds"], 0),
        "t1_wall_two": num(two_agents["wall_seconds_compile_included"], 0),
        "t1_table": "\n".join(row(step) for step in steps),
        "t1_sources": ", ".join(f"`bench/results/{name}`" for name in T1_FILES),
    }
    title = f"T1JoystickFlatTerrain on one H200, reference settings, {len(curves)} agents"
    figures = {"t1_learning.png": lambda plot: plot.learning_points_figure(curves, published, title)}
    return values, figures


PEER_FILES = {"own": "peer_pendulum_cpu.json", "ours": "peer_pendulum_our_settings_cpu.json"}
PEER_SETTINGS = {"own": "its own config", "ours": "our settings"}


def peer_reach(peer: dict, key: str) -> str:
    """How a rejax side reached the threshold, against ours in the same file."""
    threshold = num(peer["threshold"], 0)
    side, ours = peer[key]["pooled"], peer["ours"]["pooled"]
    if side["seconds_to_threshold"] is None:
        return f"never brought its mean to {threshold}"
    if ours["seconds_to_threshold"] is None:
        return f"brought its mean to {threshold}, which ours never did"
    ratio = peer["ratio_rejax_over_ours_seconds_to_threshold"][key]["pooled"]
    return f"took {num(ratio, 1)}x our time to bring its mean to {threshold}"


def peer_row(label: str, pooled: dict, seeds: int) -> str:
    reached = pooled["seconds_to_threshold"]
    to_threshold = (
        f"after {num(reached, 0)} s ({pooled['env_steps_to_threshold']:,} env steps)"
        if reached is not None
        else "never"
    )
    solved = share(pooled["share_final_at_threshold"], seeds)
    mean, worst = num(pooled["mean_final_return"]), num(pooled["min_final_return"])
    return f"| {label} | {solved} | {mean} | {worst} | {to_threshold} |"


def peer_values() -> tuple[dict, list[dict]]:
    """The two peer files (rejax at its own config and at our settings): table rows, the
    comparison's terms, a verdict, and the curves for the figure."""
    peers = {settings: read_json(name) for settings, name in PEER_FILES.items()}
    own = peers["own"]
    seeds = len(own["master_seeds"]) * own["seeds_per_master_seed"]
    for settings, peer in peers.items():
        same = (peer["master_seeds"], peer["seeds_per_master_seed"], peer["rejax_budget"], peer["threshold"])
        if same != (own["master_seeds"], own["seeds_per_master_seed"], own["rejax_budget"], own["threshold"]):
            raise SystemExit(f"render_post: {PEER_FILES[settings]} has other seeds, budget or threshold")
    budget, ours = own["rejax_budget"], own["ours"]
    rows = [peer_row("FastTD3X (default job)", ours["pooled"], seeds)]
    verdicts, updates, curves = [], [], [("FastTD3X", ours)]
    for settings, peer in peers.items():
        parts = []
        for key, name in (("rejax_td3", "TD3"), ("rejax_sac", "SAC")):
            label = f"rejax {name}, {PEER_SETTINGS[settings]}"
            version = peer["rejax_environment"]["versions"]["rejax"]
            rows.append(
                peer_row(f"rejax {version} {name}, {PEER_SETTINGS[settings]}", peer[key]["pooled"], seeds)
            )
            solved = share(peer[key]["pooled"]["share_final_at_threshold"], seeds)
            parts.append(f"rejax {name} {peer_reach(peer, key)} and solved {solved} seeds")
            config = peer[key]["config"]  # rejax: num_epochs updates per num_envs env steps
            count = config["total_timesteps"] // config["num_envs"] * config["num_epochs"]
            updates.append(f"{count:,} ({label})")
            curves.append((label, peer[key]))
        verdicts.append(f"At {PEER_SETTINGS[settings]}, {'; '.join(parts)}.")
    sides = [("ours", ours), ("rejax TD3", own["rejax_td3"]), ("rejax SAC", own["rejax_sac"])]
    ours_again = peers["ours"]["ours"]["pooled"]["run_seconds"]
    ours_solved = share(ours["pooled"]["share_final_at_threshold"], seeds)
    values = {
        "peer_seeds": str(seeds),
        "peer_masters": " and ".join(map(str, own["master_seeds"])),
        "peer_per_master": str(own["seeds_per_master_seed"]),
        "peer_threshold": num(own["threshold"], 0),
        "peer_rows": "\n".join(rows),
        "rejax_config_source": own["rejax_environment"]["config_source"],
        "ours_steps": f"{budget['total_timesteps']:,}",
        "ours_envs": str(ours["config"]["NUM_ENVS"]),
        "ours_evals": str(len(ours["env_steps"])),
        "ours_eval_episodes": str(ours["eval_episodes"]),
        "eval_every": f"{budget['eval_freq']:,}",
        "sac_eval_policy": own["rejax_sac"]["eval_policy"],
        "eval_costs": ", ".join(f"{label} {side['pooled']['eval_seconds']:.3f} s" for label, side in sides),
        "compile_costs": ", ".join(f"{label} {num(side['compile_seconds'], 0)} s" for label, side in sides),
        "ours_run": num(ours["pooled"]["run_seconds"], 0),
        "ours_run_again": num(ours_again, 0),
        "our_settings_overrides": ", ".join(
            f"`{key}` {value:g}" for key, value in peers["ours"]["rejax_overrides"]["td3"].items()
        ),
        "peer_verdict": f"{' '.join(verdicts)} Ours solved {ours_solved}.",
        "update_counts": ", ".join(updates),
        "ours_updates": f"{ours['config']['TOTAL_TIMESTEPS'] * ours['config']['NUM_UPDATES']:,}",
    }
    curves = [
        {"label": label, "env_steps": side["env_steps"], "seconds": side["pooled"]["seconds_at_eval"],
         "mean_eval_return": side["pooled"]["mean_eval_return"]}
        for label, side in curves
    ]  # fmt: skip
    return values, curves


def robustness_values() -> tuple[dict, dict]:
    values, curves = peer_values()
    threshold = read_json(PEER_FILES["own"])["threshold"]
    title = f"Pendulum-v1, {values['peer_seeds']} held-out seeds, {values['ours_steps']} env steps each"
    figures = {"peer_pendulum.png": lambda plot: plot.peer_curves_figure(curves, threshold, title)}

    for seed in (1, 2):
        row = read_summary_csv(f"report_mountaincar_seed{seed}/summary.csv")
        values[f"mc{seed}_solved"] = share(row["solved"], int(row["seeds"]))
        values[f"mc{seed}_mean"] = num(row["mean"], 1)
        values[f"mc{seed}_iqm"] = num(row["iqm"], 1)
        values[f"mc{seed}_worst"] = num(row["min"], 2)
        values[f"mc{seed}_steps"] = f"{int(row['steps_to_threshold']):,}"
        values[f"mc{seed}_seconds"] = num(row["seconds_to_threshold"], 0)
        values["mc_threshold"] = num(row["threshold"], 0)
        values["mc_seeds"] = str(int(row["seeds"]))

    for key, name in (("diag", "diagnose_pendulum.json"), ("diagp", "diagnose_pendulum_penalized.json")):
        record = read_json(name)
        agents = record["agents"]
        stuck = [a for a in agents if a["final_return"] < -500]
        solved = [a for a in agents if a["final_return"] >= record["solved_threshold"]]
        values[f"{key}_penalty"] = f"{record['config']['PRE_TANH_PENALTY']:g}"
        values[f"{key}_solved"] = share(record["solved_share"], record["seeds"])
        values[f"{key}_master"] = str(record["master_seed"])
        values[f"{key}_seeds"] = str(record["seeds"])
        values[f"{key}_stuck"] = str(len(stuck))

        def spread(group, field, scale=1.0, digits=0):
            low, high = min(a[field] for a in group), max(a[field] for a in group)
            return f"{num(scale * low, digits)}-{num(scale * high, digits)}"

        values[f"{key}_solved_pre_tanh"] = spread(solved, "median_abs_pre_tanh", digits=1)
        values[f"{key}_solved_stuck_share"] = spread(solved, "stuck_share", 100)
        if stuck:
            values[f"{key}_stuck_pre_tanh"] = spread(stuck, "median_abs_pre_tanh", digits=1)
            values[f"{key}_stuck_share"] = spread(stuck, "stuck_share", 100)
            values[f"{key}_floor_mass"] = f"{max(a['floor_mass'] for a in stuck):.0e}"

    return values, figures


def reference_cpu_text() -> str:
    """The reference's CPU speed beside ours, once bench_reference.py --throughput has run."""
    name = "reference_throughput_cpu.json"
    record = read_optional(name)
    if record is None:
        return (
            f"A committed, repeatable timing of the reference on CPU ({src(name)}) does not exist "
            "yet: not measured yet."
        )
    ref = require(record, name, "reference", "iterations_per_second")
    ours = require(record, name, "ours", "iterations_per_second")
    # The 1-minute load before each side: taken after it, it counts the side's own threads, and
    # before the second side it still carries the first one's run (up to about 1 on its own).
    measured = record.get("load_average_1_5_15", {})
    loads = [values[0] for when, values in measured.items() if when.startswith("before")]
    load = (
        f" The machine was not idle (1-minute load average {min(loads):.1f} to {max(loads):.1f} "
        f"before the runs, on {record.get('cpu_count', 'its')} cores), so read the ratio as rough."
        if loads and max(loads) > 1.5
        else ""
    )
    mode = record.get("reference", {}).get("mode")
    return (
        f"Since then the reference and FastTD3X have been timed one after the other on "
        f"{record.get('env', 'a Playground task')} on CPU, one agent each: the reference at "
        f"{num(ref, 2)} iterations/s{f' ({mode})' if mode else ''}, ours at {num(ours, 2)} "
        f"({num(ours / ref, 2)}x; {src(name)}).{load}"
    )


def reference_learning_text() -> str:
    """Learning curves of the reference and ours side by side on Playground, once measured."""
    name = "reference_learning_cpu.json"
    record = read_optional(name)
    if record is None:
        return (
            "Learning parity with the reference on the same machine, same tasks and same budget "
            f"is not measured yet: a side-by-side benchmark being built will write {src(name)}, and "
            "this section will show it when that file is committed. Until then the only comparison "
            "of learning is the T1 run above against the paper's published points."
        )
    tasks = require(record, name, "tasks")
    lines = [
        f"The reference and FastTD3X on the same CPU, same settings and budget ({src(name)}; "
        "mean final eval return over the seeds each side has finished):",
        "",
        "| task | seeds, reference / ours | reference | ours | Welch p | permutation p | complete |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, entry in tasks.items():
        runs = require(entry, name, "runs")
        finals = entry.get("final_returns", {})

        def mean(side, finals=finals):
            values = finals.get(side) or []
            return num(sum(values) / len(values), 2) if values else "n/a"

        complete = entry.get("status", {}).get("complete")
        comparison = entry.get("comparison", {})
        welch, permutation = (comparison.get(test, {}).get("p") for test in ("welch", "permutation"))
        p_values = " | ".join(num(p, 2) if p is not None else "n/a" for p in (welch, permutation))
        lines.append(
            f"| {task} | {len(runs.get('reference', {}))} / {len(runs.get('ours', {}))} | "
            f"{mean('reference')} | {mean('ours')} | {p_values} | {'yes' if complete else 'not yet'} |"
        )
    return "\n".join(lines)


def search_text() -> str:
    """Random search and population-based training: the step's cost, the fitness choice, and the
    equal-compute study once its file exists."""
    overhead = read_optional("search_overhead_cpu.json")
    fitness = read_optional("search_fitness_pendulum.json")
    studies = sorted(RESULTS.glob("search_study_*.json"))
    if not (overhead or fitness or studies):
        return "Random search and population-based training are not measured yet."
    lines = [
        "`sweep.py --sample KEY=log:LO,HI --samples N` draws quasi-random points of the traced settings "
        "as one more vmapped axis, and `--pbt` turns the same axis into a population: between "
        "evaluations the worst agents copy the whole state of a better one (networks, optimizers, "
        "normalizers, replay buffer) with one gather along the agent axis, and perturb its settings."
    ]
    if overhead:
        share = overhead["pbt_step_share_of_chunk"]
        lines += [
            "",
            f"One exploit-and-explore step over {overhead['agents']} {overhead['task']} agents with "
            f"{overhead['searched_settings']} searched settings cost {100 * share['min']:.1f}% of an "
            f"evaluation chunk (median {100 * share['median']:.1f}%; measured on a shared 2-core CPU, "
            f"{src('search_overhead_cpu.json')}).",
        ]
    if fitness:
        at = max(fitness["spearman_at_eval"], key=int)
        early = min(fitness["spearman_at_eval"], key=lambda k: abs(int(k) - 6))
        row = fitness["spearman_at_eval"][early]
        lines += [
            "",
            f"Fitness is the last evaluation's return: on the {fitness['agents']} agents of a committed "
            f"Pendulum-v1 tuning sweep, at evaluation {early} of {fitness['evals']} it ranks agents by "
            f"their final result (the {fitness['target']}) with a rank correlation of "
            f"{row['mean_of_last_1']:.2f}, against {row['mean_of_last_2']:.2f} and "
            f"{row['mean_of_last_4']:.2f} for means of the last 2 and 4 (by evaluation {at} all "
            f"three agree more closely; {src('search_fitness_pendulum.json')}). Young agents improve "
            "fast, so older evaluations are stale.",
        ]
    experience = read_optional("search_experience_MountainCarContinuous-v0.json")
    if experience and "comparison" in experience:
        copy, keep = experience["variants"]["copy"], experience["variants"]["keep"]
        runs, test = len(copy["run_means"]), experience["comparison"]
        lines += [
            "",
            f"A replaced agent takes its parent's replay buffer and envs too (`--pbt-keep-experience` "
            f"keeps its own): over {runs} PBT runs of each on {experience['task']}, copying gave the "
            f"higher population mean in {test['runs_copy_mean_higher']} of {runs} ({num(copy['mean'], 2)} "
            f"against {num(keep['mean'], 2)}; paired t-test p = {test['paired_t_p_of_run_means']:.3f}; "
            f"{src('search_experience_MountainCarContinuous-v0.json')}).",
        ]
    lines.append("")
    if studies:
        lines.append("\n\n".join(study_text(path) for path in studies))
    else:
        lines.append(
            "Whether random search or PBT match the best grid point on held-out seeds with a tenth of "
            "its compute is not measured yet: the study is scripted (`bench/bench_search.py --study`) "
            "but has not been run."
        )
    return "\n".join(lines)


def study_text(path) -> str:
    """One equal-compute study (bench/bench_search.py --study): its design and, per method, the
    tuning compute and the pick's held-out results."""
    study = read_optional(path.name)
    methods = study.get("methods") or {}
    if not methods:
        return f"The equal-compute comparison of grid, random search and PBT is in {src(path.name)}."
    settings = ", ".join(item.partition("=")[0] for item in require(study, path.name, "space"))
    seeds = require(study, path.name, "heldout_seeds")
    lines = [
        f"Equal compute on {study['task']} ({src(path.name)}"
        + ("" if study.get("complete") else "; partial: not every method has finished")
        + f"): grid, random search and PBT over {settings}, each tuned on master seed "
        f"{study['tuning_seed']}; each method's pick (PBT's best schedule replayed) trained on {seeds} "
        f"seeds of master seed {study['heldout_seed']}, which tuning never saw."
        + (
            f" Solved: a final eval return of at least {num(study['solved_at'])}."
            if study.get("solved_at") is not None
            else ""
        )
        + (
            f" Every run overrides {', '.join(f'`{item}`' for item in study['overrides'])}."
            if study.get("overrides")
            else ""
        ),
        "",
        "| method | tuning agent-iterations | of the grid's | held-out solved | mean | worst seed |",
        "|---|---|---|---|---|---|",
    ]
    for name, method in methods.items():
        held = require(method, path.name, "heldout")
        compute = f"{method['tuning_agent_iterations']:,} | {100 * method['share_of_grid_compute']:.1f}%"
        lines.append(
            f"| {name} | {compute} | {share(held['solved'], held['seeds'])} | {num(held['mean'])} | "
            f"{num(held['worst'])} |"
        )
    if "defaults" in study:
        held = study["defaults"]["heldout"]
        lines.append(
            f"| defaults (no search) | 0 | 0% | {share(held['solved'], held['seeds'])} | "
            f"{num(held['mean'])} | {num(held['worst'])} |"
        )
    tuned = methods.get("grid", {}).get("tuning")
    if tuned:
        solved, points = tuned["points_solved"], tuned["points"]
        lines += ["", f"On the tuning seed {solved} of the grid's {points} points solved the task."]
        if solved >= 0.9 * points:
            lines[-1] += (
                " Where nearly every point solves, matching the best grid point says little about the "
                "search methods; a space where most points fail is the harder test."
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- rendering
def collect() -> tuple[dict, dict]:
    """All template values and all figure builders."""
    gpu, gpu_figures = gpu_values()
    t1, t1_figures = t1_values()
    robust, robust_figures = robustness_values()
    values = {
        **design_values(),
        **gpu,
        **t1,
        **robust,
        "reference_cpu": reference_cpu_text(),
        "reference_learning": reference_learning_text(),
        "search": search_text(),
    }
    return values, {**gpu_figures, **t1_figures, **robust_figures}


def render() -> tuple[str, dict]:
    values, figures = collect()
    text = string.Template(TEMPLATE.read_text()).substitute(values)
    return text, figures


def linked_figures(text: str) -> list[str]:
    """Image paths the post links, relative to docs/."""
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


def draw(figures: dict) -> list[pathlib.Path]:
    from fasttd3x.figures import save_figure
    from plots import plot_post

    return [save_figure(build(plot_post), FIGURES / name) for name, build in figures.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/post.md differs from the render")
    mode.add_argument("--print", action="store_true", help="print the post, change nothing")
    args = parser.parse_args(argv)
    text, figures = render()
    if args.print:
        print(text, end="")
        return 0
    if args.check:
        missing = [link for link in linked_figures(text) if not (DOCS / link).exists()]
        if not POST.exists() or POST.read_text() != text or missing:
            print(
                "docs/post.md is stale or a figure is missing "
                f"({', '.join(missing) or 'text differs'}): run python docs/render_post.py",
                file=sys.stderr,
            )
            return 1
        print("docs/post.md matches bench/results/")
        return 0
    POST.write_text(text)
    for path in draw(figures):
        print(path.relative_to(ROOT))
    print(POST.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
