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


def median(values) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def share(fraction: float, total: int) -> str:
    """'63/64' from a fraction of a known count."""
    return f"{round(fraction * total)}/{total}"


def src(name: str) -> str:
    return f"`bench/results/{name}`"


# ------------------------------------------------------------------------------------- sections
def design_values() -> dict:
    memory = read_json("memory.json")
    t1 = memory["tasks"]["T1JoystickFlatTerrain"]
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
    runs = {len(runs) for row in heartbeat["rows"] for runs in row["all_seconds"].values()}
    beat_cis = [row["overhead_percent_ci95"] for row in heartbeat["rows"]]
    if all(low <= 0 <= high for low, high in beat_cis):
        beat_verdict = (
            "neither interval excludes zero. These runs bound the cost below "
            f"{max(high for _, high in beat_cis):.1f}%, and cannot resolve one of the size the "
            "callback predicts."
        )
    else:
        beat_verdict = "at least one interval excludes zero, so these runs measure a cost."
    deadlock = read_json("cpu_deadlock_cpu.json")
    layouts = {layout["host_devices"]: layout for layout in deadlock["layouts"]}
    one, two = layouts[1], layouts[2]
    return {
        "mem_t1": num(t1["bytes_per_transition"], 0),
        "mem_t1_ref": num(t1["reference_bytes_per_transition"], 0),
        "mem_t1_gib": num(t1["replay_bytes_per_agent"] / 2**30, 1),
        "compile_pend_2": num(compile_total("Pendulum-v1", 2)),
        "compile_pend_8": num(compile_total("Pendulum-v1", 8)),
        "compile_cheetah_2": num(compile_total("CheetahRun", 2)),
        "compile_cheetah_8": num(compile_total("CheetahRun", 8)),
        "program_growth": f"{100 * program_growth('Pendulum-v1'):.1f}% (Pendulum-v1) and "
        f"{100 * program_growth('CheetahRun'):.1f}% (CheetahRun)",
        "beat_ms": f"{1000 * heartbeat['seconds_per_callback']:.2f}",
        "beat_100_derived": f"{beat[100]['overhead_percent_derived']:.2f}%",
        "beat_100_count": str(beat[100]["heartbeats"]),
        "beat_100_iterations": f"{beat[100]['iterations']:,}",
        "beat_100_with": num(median(beat[100]["all_seconds"]["with"]), 2),
        "beat_100_without": num(median(beat[100]["all_seconds"]["without"]), 2),
        "beat_1000_with": num(median(beat[1000]["all_seconds"]["with"]), 2),
        "beat_1000_without": num(median(beat[1000]["all_seconds"]["without"]), 2),
        "beat_1000_count": str(beat[1000]["heartbeats"]),
        "beat_runs": " or ".join(map(str, sorted(runs))),
        "beat_100_diff": f"{beat[100]['overhead_percent_median_of_pairs']:+.2f}%",
        "beat_100_ci": "[{:+.2f}%, {:+.2f}%]".format(*beat[100]["overhead_percent_ci95"]),
        "beat_1000_diff": f"{beat[1000]['overhead_percent_median_of_pairs']:+.2f}%",
        "beat_1000_ci": "[{:+.2f}%, {:+.2f}%]".format(*beat[1000]["overhead_percent_ci95"]),
        "beat_verdict": beat_verdict,
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
    h200_record = read_json("gpu_proof_iterations_NVIDIA_H200.json")
    h200 = {row["task"]: row for row in h200_record["numbers"]}
    h100 = {
        row["task"]: row for row in read_json("gpu_proof_iterations_NVIDIA_H100_80GB_HBM3.json")["numbers"]
    }

    def ratio(task):
        return h200[task]["iterations_per_second"] / ref_its[task, 1024, 32768]

    t1_sim = next(row for row in reference["simulator_alone"] if row["task"] == "T1JoystickFlatTerrain")
    t1_bound = 1000 / (
        1000 / t1_sim["iterations_per_second"] + reference["learner_alone_ms_per_iteration"]["bfloat16"]
    )

    scaling = read_json(SCALING_FILE)
    measured = [
        (row["agents"], row["agent_iterations_per_second"])
        for row in scaling["numbers"]
        if row.get("agent_iterations_per_second")
    ]
    biggest = max(measured)
    big_row = next(row for row in scaling["numbers"] if row["agents"] == biggest[0])
    ref_small = ref_its["CheetahRun", scaling["num_envs"], scaling["batch_size"]]
    versions = reference["versions"]
    chunks = {row["timed_chunks"] for row in h200.values()}

    values = {
        "ref_date": reference["date"],
        "ref_versions": f"torch {versions['torch']}",
        "h200_date": h200_record["date"][:10],
        "h200_chunks": " or ".join(map(str, sorted(chunks))),
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
        "scale_agents": str(biggest[0]),
        "scale_envs": str(scaling["num_envs"]),
        "scale_batch": str(scaling["batch_size"]),
        "scale_rate": num(biggest[1]),
        "scale_per_agent": num(big_row["iterations_per_second"], 2),
        "scale_peak_gib": num(big_row["peak_memory_bytes"] / 2**30, 1),
        "scale_compile": num(big_row["compile_seconds"], 0),
        "scale_chunks": str(big_row["timed_chunks"]),
        "scale_chunk_iterations": str(big_row["chunk_iterations"]),
        "scale_next": str(max(scaling["settings"]["agents"])),
        "ref_small": num(ref_small),
    }
    figures = {
        "throughput_h200.png": lambda plot: plot.throughput_bars_figure(
            [
                *(
                    {
                        "task": task,
                        "label": "FastTD3X, H200 (measured)",
                        "value": h200[task]["iterations_per_second"],
                        "hatched": False,
                    }
                    for task in h200
                ),
                *(
                    {
                        "task": task,
                        "label": "PyTorch reference, H200 (recorded rate, no raw log)",
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
    }
    return values, figures


# Card memory as nvidia-smi reported it at the start of a committed GPU log (first line: name, MiB).
CARD_LOGS = {"h100": "logs/gpu_proof_call1_H100.txt", "h200": "logs/gpu_proof_call2_H200.txt"}
SCALING_FILE = "gpu_proof_scaling_NVIDIA_H200.json"
# Rows of the agents-per-GPU table: (task in memory.json, label).
FIT_TASKS = (
    ("T1JoystickFlatTerrain", "T1JoystickFlatTerrain, reference settings"),
    ("CheetahRun", "CheetahRun (DM Control), reference settings"),
    ("Pendulum-v1", "Pendulum-v1 (gymnax), config defaults"),
)


def card_mib(name: str) -> int:
    """The card's memory in MiB from the first line of a committed GPU log ("NAME, N MiB, driver")."""
    first = (RESULTS / name).read_text().splitlines()[0]
    match = re.search(r",\s*(\d+)\s*MiB", first)
    if not match:
        raise SystemExit(f"render_post: bench/results/{name} does not start with the card's memory")
    return int(match.group(1))


def fit_values() -> dict:
    """The agents-per-GPU table: each task's per-agent state from the memory model (shapes), the
    agents that fit on each card by state alone and at the measured point's peak/state factor, and
    the measured runs beside them."""
    memory = read_json("memory.json")
    point = require(memory, "memory.json", "scaling_point")
    scaling = read_json(SCALING_FILE)
    row = next(r for r in scaling["numbers"] if r.get("agent_iterations_per_second"))
    if (point["task"], point["overrides"]) != (scaling["settings"]["task"], scaling["settings"]["overrides"]):
        raise SystemExit("render_post: memory.json's scaling_point is not the settings of " + SCALING_FILE)
    factor = row["peak_memory_bytes"] / (row["agents"] * point["state_bytes_per_agent"])
    cards = {card: card_mib(name) * 2**20 for card, name in CARD_LOGS.items()}
    t1_agents = {
        record["seeds"] if "seeds" in record else 1 for record in (read_json(name) for name in T1_FILES)
    }
    measured = {
        "T1JoystickFlatTerrain": f"{' and '.join(map(str, sorted(t1_agents | {1})))} agents ran "
        "(peak not recorded)",
        "CheetahRun": "1 agent ran (peak not recorded)",
        "Pendulum-v1": "none (CPU only)",
    }

    def gib(value):
        return f"{value / 2**30:,.2f} GiB" if value >= 2**30 else f"{value / 2**20:,.1f} MiB"

    def fits(per_agent):
        return " / ".join(f"{int(cards[card] // per_agent):,}" for card in ("h100", "h200"))

    rows = []
    for task, label in FIT_TASKS:
        entry = require(memory, "memory.json", "tasks", task)
        state = entry["state_bytes_per_agent"]
        settings = f"{entry['num_envs']:,} envs x {entry['buffer_size_per_env']:,} slots"
        rows.append(
            f"| {label} ({settings}) | {gib(state)} | {100 * entry['replay_bytes_per_agent'] / state:.0f}% | "
            f"{fits(state)} | {fits(state * factor)} | {measured[task]} |"
        )
    state = point["state_bytes_per_agent"]
    overrides = ", ".join(f"{k} {v:,}" for k, v in point["overrides"].items())
    rows.append(
        f"| {point['task']} at {overrides} | {gib(state)} | | {fits(state)} | {fits(state * factor)} | "
        f"**{row['agents']} agents: {row['peak_memory_bytes'] / 2**30:.1f} GiB peak** |"
    )
    return {
        "fit_rows": "\n".join(rows),
        "peak_factor": f"{factor:.2f}",
        "scale_args_gib": num(row["compiled_memory"]["argument_size_in_bytes"] / 2**30, 1),
        "scale_model_gib": num(row["agents"] * state / 2**30, 1),
        "h100_mib": f"{card_mib(CARD_LOGS['h100']):,}",
        "h200_mib": f"{card_mib(CARD_LOGS['h200']):,}",
    }


PUBLISHED_CURVES = "reference_published_curves_T1.json"


def t1_values() -> tuple[dict, dict]:
    """The T1 learning section: every agent of the H200 learning files, by env steps and by the
    program's measured time, beside the reference repository's published curves."""
    from fasttd3x.results import agent_curves, returns_at

    records = {name: read_json(name) for name in T1_FILES}
    longest = records[T1_FILES[0]]
    published_file = read_json(PUBLISHED_CURVES)
    fasttd3 = require(published_file, PUBLISHED_CURVES, "curves", "FastTD3")
    published_at = dict(zip(fasttd3["env_step"], fasttd3["return"]))
    seconds_at = dict(zip(fasttd3["env_step"], fasttd3["time"]))
    published = {steps: published_at[steps] for steps in T1_PUBLISHED_STEPS}
    reference_eval_envs = require(published_file, PUBLISHED_CURVES, "reference_code_eval_envs", "value")
    curves, timed = [], []
    for record in records.values():
        seconds, elapsed = {}, 0.0
        for row in record["numbers"]:  # the program's time: its chunks, compilation excluded
            elapsed += row["chunk_seconds"]
            seconds[row["env_steps"]] = elapsed
        for label, curve in agent_curves(record):
            curves.append(curve)
            steps = sorted(curve)
            timed.append({"label": label, "env_steps": steps, "seconds": [seconds[s] for s in steps],
                          "returns": [curve[s] for s in steps]})  # fmt: skip
    steps = sorted({step for curve in curves for step in curve})

    def row(step):
        at = returns_at(curves, step)
        ref = num(published_at[step], 2) if step in published_at else ""
        return (
            f"| {step:,} | {at['agents']} | {at['mean']:.2f} | {at['worst']:.2f} | {at['best']:.2f} | {ref} |"
        )

    def program_seconds(record, steps):
        return num(sum(r["chunk_seconds"] for r in record["numbers"] if r["env_steps"] <= steps), 0)

    five, ten = (returns_at(curves, step) for step in T1_PUBLISHED_STEPS)
    two_agent_files = [record for record in records.values() if record.get("seeds", 1) == 2]
    eval_envs = {record["num_eval_envs"] for record in records.values()}
    values = {
        "t1_agents": str(len(curves)),
        "t1_masters": ", ".join(str(record.get("master_seed", 0)) for record in records.values()),
        "t1_agents_5": str(five["agents"]),
        "t1_above_5": str(sum(value >= published[T1_PUBLISHED_STEPS[0]] for value in five["values"])),
        "t1_mean_5": num(five["mean"], 2),
        "t1_iqm_5": num(five["iqm"], 2),
        "t1_worst_5": num(five["worst"], 2),
        "t1_best_5": num(five["best"], 2),
        "t1_agents_10": str(ten["agents"]),
        "t1_ours_10": num(ten["mean"], 2),
        "t1_pub_5": num(published[T1_PUBLISHED_STEPS[0]], 2),
        "t1_pub_10": num(published[T1_PUBLISHED_STEPS[1]], 2),
        "t1_eval_episodes": " or ".join(map(str, sorted(eval_envs))),
        "t1_compiles": " to ".join(
            num(f(record["compile_seconds"] for record in records.values()), 0) for f in (min, max)
        ),
        "t1_seconds_one_5": program_seconds(longest, T1_PUBLISHED_STEPS[0]),
        "t1_seconds_one_10": program_seconds(longest, T1_PUBLISHED_STEPS[1]),
        "t1_seconds_two_5": " and ".join(
            program_seconds(record, T1_PUBLISHED_STEPS[0]) for record in two_agent_files
        ),
        "pub_source": published_file["source"].split(" (")[0],
        "pub_device": published_file["device"].split(" (")[0],
        "pub_seconds_5": num(seconds_at[T1_PUBLISHED_STEPS[0]], 0),
        "pub_seconds_10": num(seconds_at[T1_PUBLISHED_STEPS[1]], 0),
        "ref_eval_episodes": f"{reference_eval_envs:,}",
        "t1_table": "\n".join(row(step) for step in steps),
        "t1_sources": ", ".join(f"`bench/results/{name}`" for name in T1_FILES),
    }
    title = f"T1JoystickFlatTerrain, reference settings: FastTD3X on one H200, {len(curves)} agents"
    reference_curves = {f"reference {name}": require(published_file, PUBLISHED_CURVES, "curves", name)
                        for name in ("FastTD3", "PPO")}  # fmt: skip
    figures = {"t1_learning.png": lambda plot: plot.t1_learning_figure(timed, reference_curves, title)}
    return values, figures


PEER_FILES = {
    "own": "peer_pendulum_cpu.json",
    "own16": "peer_pendulum_own16_cpu.json",
    "ours": "peer_pendulum_our_settings_cpu.json",
}
PEER_SETTINGS = {"own": "its own config", "own16": "its own config at 16 envs", "ours": "our settings"}


def peer_row(label: str, side: dict, envs: int, updates: int, seeds: int) -> str:
    pooled = side["pooled"]
    reached = pooled["seconds_to_threshold"]
    to_threshold = (
        f"after {num(reached, 0)} s ({pooled['env_steps_to_threshold']:,} env steps)"
        if reached is not None
        else "never"
    )
    solved = share(pooled["share_final_at_threshold"], seeds)
    mean, worst = num(pooled["mean_final_return"]), num(pooled["min_final_return"])
    return (
        f"| {label} | {envs} | {updates:,} | {solved} | {mean} | {worst} | {to_threshold} | "
        f"{num(pooled['run_seconds'], 0)} s |"
    )


def rejax_updates(config: dict) -> int:
    """rejax: num_epochs updates per step of its num_envs envs."""
    return config["total_timesteps"] // config["num_envs"] * config["num_epochs"]


def peer_values() -> tuple[dict, list[dict]]:
    """The two peer files (rejax at its own config and at our settings): table rows with each
    side's env parallelism, updates and run time, the comparison's terms, a verdict, and the
    curves for the figure."""
    peers = {settings: read_json(name) for settings, name in PEER_FILES.items()}
    own = peers["own"]
    seeds = len(own["master_seeds"]) * own["seeds_per_master_seed"]
    for settings, peer in peers.items():
        same = (peer["master_seeds"], peer["seeds_per_master_seed"], peer["rejax_budget"], peer["threshold"])
        if same != (own["master_seeds"], own["seeds_per_master_seed"], own["rejax_budget"], own["threshold"]):
            raise SystemExit(f"render_post: {PEER_FILES[settings]} has other seeds, budget or threshold")
    budget, ours = own["rejax_budget"], own["ours"]
    ours_updates = ours["config"]["TOTAL_TIMESTEPS"] * ours["config"]["NUM_UPDATES"]
    label = f"FastTD3X, {own['env']} config defaults"
    rows = [peer_row(f"{label} (run beside rejax's own config)", ours, ours["config"]["NUM_ENVS"],
                     ours_updates, seeds),
            peer_row(f"{label} (run beside rejax at 16 envs)", peers["own16"]["ours"],
                     peers["own16"]["ours"]["config"]["NUM_ENVS"], ours_updates, seeds),
            peer_row(f"{label} (run beside rejax at our settings)", peers["ours"]["ours"],
                     peers["ours"]["ours"]["config"]["NUM_ENVS"], ours_updates, seeds)]  # fmt: skip
    curves = [("FastTD3X", ours)]
    for settings, peer in peers.items():
        version = peer["rejax_environment"]["versions"]["rejax"]
        for key, name in (("rejax_td3", "TD3"), ("rejax_sac", "SAC")):
            config = peer[key]["config"]
            rows.append(
                peer_row(
                    f"rejax {version} {name}, {PEER_SETTINGS[settings]}",
                    peer[key],
                    config["num_envs"],
                    rejax_updates(config),
                    seeds,
                )  # fmt: skip
            )
            curves.append((f"rejax {name}, {PEER_SETTINGS[settings]}", peer[key]))
    own_sac, own_td3 = own["rejax_sac"]["pooled"], own["rejax_td3"]["pooled"]
    at_ours, at16 = peers["ours"], peers["own16"]
    td3_16, sac_16 = at16["rejax_td3"]["pooled"], at16["rejax_sac"]["pooled"]

    def reached(pooled):
        if pooled["seconds_to_threshold"] is None:
            return f"its mean never reached {num(own['threshold'], 0)}"
        return (
            f"its mean reached {num(own['threshold'], 0)} after {pooled['env_steps_to_threshold']:,} "
            f"env steps in {num(pooled['seconds_to_threshold'], 0)} s"
        )

    config_source = own["rejax_environment"]["config_source"].replace(" (", ", ").rstrip(")")
    update_ratio = rejax_updates(own["rejax_sac"]["config"]) / ours_updates
    ours_pooled = ours["pooled"]
    verdict = (
        f"At its own tuned config ({config_source}) "
        f"rejax steps {own['rejax_sac']['config']['num_envs']} environment per agent and updates after "
        f"every step: {rejax_updates(own['rejax_sac']['config']):,} critic updates against our "
        f"{ours_updates:,}. There SAC solved {share(own_sac['share_final_at_threshold'], seeds)} seeds "
        f"and brought its mean to {num(own['threshold'], 0)} in fewer env steps than ours "
        f"({own_sac['env_steps_to_threshold']:,} against {ours_pooled['env_steps_to_threshold']:,}) and "
        f"more time ({num(own_sac['seconds_to_threshold'], 0)} s against "
        f"{num(ours_pooled['seconds_to_threshold'], 0)} s); TD3 solved "
        f"{share(own_td3['share_final_at_threshold'], seeds)}. rejax's SAC evaluates its stochastic "
        "policy, ours and its TD3 the deterministic one. With one environment against our "
        f"{ours['config']['NUM_ENVS']} and {update_ratio:g} times "
        "the updates, these times compare two ways of "
        "spending compute, not two implementations."
        f" At our settings ({at_ours['rejax_overrides']['td3']['num_envs']} environments per agent, "
        f"{at_ours['rejax_overrides']['td3']['num_epochs']} updates per iteration, and our batch, learning "
        "rate, discount, target rate, buffer, warm-up and noise where rejax has a key for them; its "
        f"networks and losses stay its own), rejax ran the {budget['total_timesteps']:,} env "
        f"steps in {num(at_ours['rejax_td3']['pooled']['run_seconds'], 0)} s (TD3) and "
        f"{num(at_ours['rejax_sac']['pooled']['run_seconds'], 0)} s (SAC) against our "
        f"{num(at_ours['ours']['pooled']['run_seconds'], 0)} s: at equal parallelism, faster "
        f"than ours. But it solved "
        f"{share(at_ours['rejax_td3']['pooled']['share_final_at_threshold'], seeds)} (TD3) and "
        f"{share(at_ours['rejax_sac']['pooled']['share_final_at_threshold'], seeds)} (SAC) seeds there: "
        f"values tuned for FastTD3 are no fair test of TD3 or SAC. So the third pair holds the "
        f"parallelism equal and leaves rejax its own values: its tuned configs at "
        f"{at16['rejax_num_envs']} environments, with updates per iteration scaled by the same factor so "
        f"each keeps its own updates per env step ({rejax_updates(at16['rejax_td3']['config']):,} "
        "critic updates, as at one environment; no values tuned for rejax at 16 environments exist). "
        f"There TD3 solved {share(td3_16['share_final_at_threshold'], seeds)} seeds and "
        f"{reached(td3_16)}, SAC solved {share(sac_16['share_final_at_threshold'], seeds)} and "
        f"{reached(sac_16)}; ours, run beside them, solved "
        f"{share(at16['ours']['pooled']['share_final_at_threshold'], seeds)} and "
        f"{reached(at16['ours']['pooled'])}. Their runs took {num(td3_16['run_seconds'], 0)} s and "
        f"{num(sac_16['run_seconds'], 0)} s, ours {num(at16['ours']['pooled']['run_seconds'], 0)} s. "
        f"rejax still makes {update_ratio:g} times our critic updates there, so this pair too compares "
        "settings as much as implementations. Times compare within one file, whose sides ran one "
        f"after the other on one machine: ours took {num(at16['ours']['pooled']['run_seconds'], 0)} s "
        f"in this file and {num(ours_pooled['run_seconds'], 0)} s in the first. Ours solved "
        f"{share(ours_pooled['share_final_at_threshold'], seeds)} beside rejax's own config."
    )
    values = {
        "peer_seeds": str(seeds),
        "peer_masters": " and ".join(map(str, own["master_seeds"])),
        "peer_per_master": str(own["seeds_per_master_seed"]),
        "peer_threshold": num(own["threshold"], 0),
        "peer_rows": "\n".join(rows),
        "peer_cores": str(own["cpu_count"]),
        "ours_steps": f"{budget['total_timesteps']:,}",
        "ours_eval_episodes": str(ours["eval_episodes"]),
        "eval_every": f"{budget['eval_freq']:,}",
        "peer_verdict": verdict,
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
    """The reference's CPU speed beside ours, once bench_reference.py --throughput has run: the
    median of each side's timed runs, and the conditions the file records."""
    name = "reference_throughput_cpu.json"
    record = read_optional(name)
    if record is None:
        return (
            f"A committed, repeatable timing of the reference on CPU ({src(name)}) does not exist "
            "yet: not measured yet."
        )
    ref_side = require(record, name, "reference")
    ours_side = require(record, name, "ours")
    ref_runs = ref_side.get("iterations_per_second_each") or [
        require(ref_side, name, "iterations_per_second")
    ]
    ours_runs = ours_side.get("iterations_per_second_each") or [
        require(ours_side, name, "iterations_per_second")
    ]
    ref, ours = median(ref_runs), median(ours_runs)
    # Only the load before the first runs tells of other work: later readings include the
    # benchmark's own earlier runs (one side runs right after the other).
    measured = record.get("load_average_1_5_15", {})
    before = [values[0] for when, values in measured.items() if when.startswith("before")][:1]
    load = (
        f" The machine was not idle (1-minute load average {before[0]:.1f} before the first runs), "
        "so read the ratio as rough."
        if before and before[0] > 1.5
        else ""
    )
    sizes = record.get("settings", {}).get("sizes", {})
    size_text = (
        f", {sizes['num_envs']} environments and batch {sizes['batch_size']}"
        if {"num_envs", "batch_size"} <= sizes.keys()
        else ""
    )

    def runs(values):
        return f"{len(values)} run" + ("s, median" if len(values) > 1 else "")

    text = (
        f"**The reference on a CPU.** On {record.get('env', 'a Playground task')}{size_text}, one agent "
        f"each, timed one after the other on the {record.get('cpu_count', 2)}-core CPU: the reference at "
        f"{num(ref, 2)} iterations/s ({runs(ref_runs)}; {ref_side.get('mode', 'its defaults')}), ours at "
        f"{num(ours, 2)} ({runs(ours_runs)}), {num(ours / ref, 2)}x ({src(name)})."
    )
    more_threads = {
        int(threads): side
        for threads, side in record.get("reference_by_torch_threads", {}).items()
        if int(threads) > 1
    }
    if not more_threads:
        return (
            text + " The reference's `train.py` sets `OMP_NUM_THREADS=1`, so torch computed on one thread "
            "while XLA used both cores; part of the ratio is that second core, and how much is not "
            "measured." + load
        )

    def at(threads, each):
        speed = median(each)
        rate = f"{num(speed, 2)} iterations/s ({runs(each)})"
        return f"on {threads} torch threads {rate}, ours {num(ours / speed, 2)}x that"

    given = "; ".join(
        at(threads, side["iterations_per_second_each"]) for threads, side in sorted(more_threads.items())
    )
    return (
        text + " The reference's `train.py` sets `OMP_NUM_THREADS=1`, so torch computes on one thread "
        f"while XLA uses both cores. Given both cores as well, the reference ran {given}." + load
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
        welch, permutation = ((comparison.get(test) or {}).get("p") for test in ("welch", "permutation"))
        p_values = " | ".join(num(p, 2) if p is not None else "n/a" for p in (welch, permutation))
        seeds = f"{len(runs.get('reference', {}))} / {len(runs.get('ours', {}))}"
        if entry.get("settings", {}).get("equivalence") and not complete:
            # A pre-registered study is judged on all its seeds: no partial means.
            lines.append(f"| {task} | {seeds} | running | running | n/a | n/a | not yet |")
            continue
        lines.append(
            f"| {task} | {seeds} | {mean('reference')} | {mean('ours')} | {p_values} | "
            f"{'yes' if complete else 'not yet'} |"
        )
    return "\n".join(lines)


def search_text() -> str:
    """Random search and population-based training: the step's cost, the fitness choice, and the
    search studies (a grid against random search and PBT at a fraction of its compute)."""
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
    """One search study (bench/bench_search.py --study): its design and, per method, the tuning
    compute and the pick's held-out results; says so when PBT's replayed schedule is the random
    search's pick throughout (then their held-out rows are the same runs)."""
    study = read_optional(path.name)
    methods = study.get("methods") or {}
    if not methods:
        return f"The comparison of grid, random search and PBT is in {src(path.name)}."
    settings = ", ".join(item.partition("=")[0] for item in require(study, path.name, "space"))
    seeds = require(study, path.name, "heldout_seeds")
    shares = sorted({m["share_of_grid_compute"] for name, m in methods.items() if name != "grid"})
    fraction = " and ".join(f"{100 * x:.1f}%" for x in shares) or "a fraction"
    lines = [
        f"**{study['task']}: a grid against random search and PBT at {fraction} of its compute** "
        f"({src(path.name)}"
        + ("" if study.get("complete") else "; partial: not every method has finished")
        + f"). Searched: {settings}, each method tuned on master seed {study['tuning_seed']}; each "
        f"method's pick (PBT's best schedule replayed) trained on {seeds} seeds of master seed "
        f"{study['heldout_seed']}, which tuning never saw."
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
    notes = []
    random_pick = methods.get("random", {}).get("pick")
    schedule = methods.get("pbt", {}).get("pick")
    if random_pick and isinstance(schedule, list) and schedule and all(p == random_pick for p in schedule):
        notes.append(
            "PBT's best agent kept the random search's pick through every exploit step (both start from "
            "the same quasi-random points), so its replayed schedule is that pick unchanged and its "
            "held-out row is the random search's, run for run."
        )
    tuned = methods.get("grid", {}).get("tuning")
    if tuned:
        solved, points = tuned["points_solved"], tuned["points"]
        notes.append(f"On the tuning seed {solved} of the grid's {points} points solved the task.")
        if solved >= 0.9 * points:
            notes[-1] += (
                " Where nearly every point solves, matching the best grid point says little about the "
                "search methods; a space where most points fail is the harder test."
            )
    if notes:
        lines += ["", " ".join(notes)]
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
        **fit_values(),
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
