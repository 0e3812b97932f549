"""Search (search.py): what one PBT exploit/explore step costs, and the equal-compute study.

Overhead (the default): `agents` agents of the default Pendulum-v1 config; one eval chunk (the
compiled `run(state, 1)` sweeps call) against one PBT step as a sweep call does it between two
chunks (`search.Search.after_eval`: fitness on the host, the jitted gather and explore on the
device, the lineage record back to the host), alternating, `--repeats` of each; the fastest and
the median of each. Writes bench/results/search_overhead_<device>.json.

    python bench/bench_search.py --agents 16 --repeats 20

Study (`--study`): grid search, random search and PBT over one space on a gymnax or Playground
task, each tuned on master seed 0 and judged on `--heldout-seeds` seeds of master seed 1 (the
best grid point, the best random point, PBT's best schedule replayed with sweep.py --schedule),
and the config's own settings on the same held-out seeds as the baseline ("defaults"). Every
step is a sweep.py command (printed as it runs; results under --out), and the summary goes to
bench/results/search_study_<task>.json after each method ("complete": false until the last):
per method the tuning compute (agent-iterations, and its share of the grid's), the pick, and on
the held-out seeds the share solved, mean and worst final return and every seed's final return.
The space is the wide six-setting one of issue #23 (`SPACE`) unless `--space KEY=DIST:ARGS` is
given (repeatable, as sweep.py --sample takes it); the grid takes `--grid-values` values of each
range (log-spaced for log ranges, end points included). `--set KEY=V` passes a config override
to every sweep (a smoke run: tiny networks and runs). Every sweep saves checkpoints every
`--checkpoint-every` evaluations, so rerunning the same command after a kill resumes: finished
sweeps are skipped by sweep.py, a killed one goes on from its last checkpoint.

    python bench/bench_search.py --study --task Pendulum-v1 --grid-values 3 --samples 72
    # the committed Pendulum-v1 study: three settings, a 4 x 4 x 4 grid against 6 random points
    # and a PBT population of 6 (each 9.4% of the grid's agent-iterations)
    python bench/bench_search.py --study --task Pendulum-v1 --space CRITIC_LEARNING_RATE=log:1e-5,1e-2 \
        --space ACTOR_LEARNING_RATE=log:1e-5,1e-2 --space TAU=log:0.005,0.5 --grid-values 4 \
        --samples 6 --pbt-fraction 0.34 --out /tmp/search_study
    # the committed CartpoleBalance study: the same space and sizes, on a CPU-sized agent
    python bench/bench_search.py --study --task CartpoleBalance --space CRITIC_LEARNING_RATE=log:1e-5,1e-2 \
        --space ACTOR_LEARNING_RATE=log:1e-5,1e-2 --space TAU=log:0.005,0.5 --grid-values 4 \
        --samples 6 --pbt-fraction 0.34 --pbt-every 2 --solved-at 500 --set NUM_ENVS=16 \
        --set NUM_EVAL_ENVS=8 --set BATCH_SIZE=256 --set CRITIC_HIDDEN_DIM=128 --set ACTOR_HIDDEN_DIM=64 \
        --set TOTAL_TIMESTEPS=2000 --set EVAL_INTERVAL=250 --set BUFFER_SIZE=2048 \
        --set COMPUTE_DTYPE=float32 --out /tmp/search_cartpole

Experience check (`--experience-check`): whether a replaced PBT agent should take its parent's
replay buffer and envs with its learner (the default) or keep its own (`--pbt-keep-experience`):
`--master-seeds` independent PBT sweeps of each, from the same starting points. Writes
bench/results/search_experience_<task>.json.

    python bench/bench_search.py --experience-check --task MountainCarContinuous-v0 \
        --space CRITIC_LEARNING_RATE=log:1e-5,1e-2 --space STD_MAX=lin:0.2,1 \
        --space PRE_TANH_PENALTY=log:1e-5,1e-1 --samples 8 --tuning-seeds 2 --pbt-every 2 \
        --set EVAL_INTERVAL=100 --master-seeds 4 --out /tmp/search_experience

Fitness check (`--fitness-check RESULTS_DIR`): on a finished sweep's curves, how well candidate
PBT fitnesses at an evaluation part-way (the last eval return, the mean of the last k) rank the
agents by their final return (the mean of the last 4 evaluations): Spearman rank correlation
over all agents. Writes bench/results/search_fitness_<name>.json.

    python bench/bench_search.py --fitness-check bench/results/tuning_pendulum --name pendulum
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

import purejax_fasttd3 as ft
from common import ROOT, Chunks, environment, write
from fasttd3x import configs, search

# The wide space of issue #23: a grid takes `--grid-values` points of each range (log-spaced for log).
SPACE = [
    "CRITIC_LEARNING_RATE=log:1e-5,1e-2",
    "ACTOR_LEARNING_RATE=log:1e-5,1e-2",
    "TAU=log:0.005,0.5",
    "STD_MAX=lin:0.05,1",
    "PRE_TANH_PENALTY=log:1e-5,1e-1",
    "GAMMA=lin:0.9,0.999",
]


# ==================================================================================================
# OVERHEAD
# ==================================================================================================
def overhead(agents: int, repeats: int) -> dict:
    config = ft.make_config("Pendulum-v1")
    chunks = Chunks(config, agents)
    space = search.parse_space(SPACE)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("agents",))
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
    shared = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    sharding = jax.tree.map(lambda a: rows if a == 0 else shared, ft.RUNNER_AXES, is_leaf=lambda x: x is None)
    pbt = search.PBTConfig(every=1, population=agents)
    between = search.Search(0, sharding, search.Plan(space, pbt))
    points = search.sample_points(space, agents, seed=0)
    hparams = {k: np.asarray(v) for k, v in chunks.runner.hparams.items()}
    hparams.update({dim.key: np.float32([p[dim.key] for p in points]) for dim in space})
    between.start(hparams)
    returns = np.asarray(chunks.metrics["eval_return"])
    start = time.perf_counter()
    chunks.runner = jax.block_until_ready(between.after_eval(chunks.runner, 1, returns))  # compiles
    compile_seconds = time.perf_counter() - start
    chunk_s, step_s = [], []
    for evals in range(2, repeats + 2):
        chunk_s.append(chunks.step())
        returns = np.concatenate([returns, np.asarray(chunks.metrics["eval_return"])], axis=1)
        start = time.perf_counter()
        chunks.runner = jax.block_until_ready(between.after_eval(chunks.runner, evals, returns))
        step_s.append(time.perf_counter() - start)
    return {
        "task": "Pendulum-v1",
        "agents": agents,
        "eval_interval": config["EVAL_INTERVAL"],
        "num_envs": config["NUM_ENVS"],
        "searched_settings": len(space),
        "repeats": repeats,
        "pbt_step_compile_seconds": compile_seconds,
        "eval_chunk_seconds": {"min": min(chunk_s), "median": statistics.median(chunk_s)},
        "pbt_step_seconds": {"min": min(step_s), "median": statistics.median(step_s)},
        "pbt_step_share_of_chunk": {
            "min": min(step_s) / min(chunk_s),
            "median": statistics.median(step_s) / statistics.median(chunk_s),
        },
        "replaced_per_step": pbt.replaced,
        "generations_run": len(between.lineage) - 1,
        "environment": environment(),
    }


# ==================================================================================================
# FITNESS
# ==================================================================================================
def fitness_check(results_dir: pathlib.Path, windows=(1, 2, 4)) -> dict:
    from scipy import stats

    from fasttd3x.results import finite_agents, load_sweep

    arrays = load_sweep(results_dir)["combos"][0]["arrays"]
    returns = np.asarray(arrays["metric_eval_return"], float)[finite_agents(arrays)]
    evals = returns.shape[1]
    final = returns[:, -4:].mean(axis=1)
    at = {}
    for t in sorted({evals // 5, evals // 4, evals // 3, evals // 2}):
        rho = lambda k: float(stats.spearmanr(returns[:, t - k : t].mean(axis=1), final).statistic)  # noqa: E731
        at[t] = {f"mean_of_last_{k}": rho(k) for k in windows if k <= t}
    return {
        "results": str(results_dir.relative_to(ROOT) if results_dir.is_relative_to(ROOT) else results_dir),
        "agents": len(returns),
        "evals": evals,
        "target": "mean of the last 4 eval returns",
        "spearman_at_eval": at,
    }


# ==================================================================================================
# STUDY
# ==================================================================================================
def sweep_command(out: pathlib.Path, task: str, seed: int, seeds: int, flags: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "sweep.py"), "--env", task, "--seed", str(seed), "--seeds", str(seeds),
            "--out", str(out), "--no-plots", "--quiet", *flags]  # fmt: skip


def sweep_flags(args: argparse.Namespace, space: list[str]) -> tuple[list[str], list[str], list[str]]:
    """sweep.py flags of the bench's arguments: every sweep's (config overrides, checkpoints, the
    solved threshold), a random search's over `space`, and PBT's."""
    base = [f"--set={item}" for item in args.set] + ["--checkpoint-every", str(args.checkpoint_every)]
    if args.solved_at is not None:
        base += ["--solved-at", str(args.solved_at)]
    sampled = [f for s in space for f in ("--sample", s)] + ["--samples", str(args.samples)]
    pbt = ["--pbt", "--pbt-every", str(args.pbt_every), "--pbt-fraction", str(args.pbt_fraction)]
    return base, sampled, pbt


def run(command: list[str]) -> float:
    """Runs a sweep command; its wall seconds (a resumed or skipped sweep: this run's only)."""
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - start


def best_row(out: pathlib.Path) -> dict:
    """The top row of a finished sweep's summary.csv (ranked by solved share, then IQM)."""
    return summary_rows(out)[0]


def summary_rows(out: pathlib.Path) -> list[dict]:
    import csv

    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def sweep_seconds(out: pathlib.Path) -> dict:
    """Compile and run seconds of a finished sweep, summed over its device calls."""
    from fasttd3x.results import load_sweep

    metas = [meta for combo in load_sweep(out)["combos"] for meta in combo["meta"]]
    return {key: sum(float(m.get(key, 0.0)) for m in metas) for key in ("compile_seconds", "run_seconds")}


def heldout(out: pathlib.Path) -> dict:
    """Share solved, mean and worst final return of a held-out sweep's single point, and every
    seed's final return (seed order; a non-finite seed as None)."""
    from fasttd3x.results import load_sweep

    row = best_row(out)
    returns = np.asarray(load_sweep(out)["combos"][0]["arrays"]["metric_eval_return"], float)
    finals = [float(v) if np.isfinite(v) else None for v in returns[:, -1]]
    return {"seeds": int(row["seeds"]), "solved": float(row["solved"]), "mean": float(row["mean"]),
            "worst": float(row["min"]), "iqm": float(row["iqm"]), "finals": finals}  # fmt: skip


def tuning_summary(out: pathlib.Path) -> dict:
    """How the tuning sweep's points fared on the tuning seed(s): points, points whose every
    seed solved, the best point's mean final return."""
    rows = summary_rows(out)
    return {
        "points": len(rows),
        "points_solved": sum(float(r["solved"]) == 1.0 for r in rows),
        "best_mean": float(rows[0]["mean"]),
    }


def study(args: argparse.Namespace) -> dict:
    items = args.space or SPACE
    space = search.parse_space(items, flag="--space")
    config = ft.make_config(args.task, **configs.parse_set(args.set)[0])  # what every sweep runs
    iterations = config["TOTAL_TIMESTEPS"]
    base, sampled, pbt = sweep_flags(args, items)
    out = pathlib.Path(args.out)
    grid = [f"{dim.key}={','.join(f'{v:.6g}' for v in grid_values(dim, args.grid_values))}" for dim in space]
    grid_points = args.grid_values ** len(space)
    pbt_config = search.PBTConfig(args.pbt_every, args.samples * args.tuning_seeds, args.pbt_fraction)
    methods = {
        "grid": (grid_points, [f for g in grid for f in ("--grid", g)]),
        "random": (args.samples, sampled),
        "pbt": (args.samples, [*sampled, *pbt]),
    }
    result = {
        "task": args.task,
        "complete": False,
        "space": list(items),
        "grid_values": args.grid_values,
        "grid": {g.partition("=")[0]: [float(v) for v in g.partition("=")[2].split(",")] for g in grid},
        "samples": args.samples,
        "pbt": {"every": args.pbt_every, "fraction": args.pbt_fraction, "replaced": pbt_config.replaced},
        "overrides": list(args.set),
        "iterations_per_agent": iterations,
        "env_steps_per_agent": iterations * config["NUM_ENVS"],
        "solved_at": sweep_threshold(args.task, args.solved_at),
        "tuning_seed": 0,
        "tuning_seeds": args.tuning_seeds,
        "heldout_seed": 1,
        "heldout_seeds": args.heldout_seeds,
        "methods": {},
    }
    for name, (points, flags) in methods.items():
        tuned = out / f"{name}_tuning"
        tuning_wall = run(sweep_command(tuned, args.task, 0, args.tuning_seeds, base + flags))
        agents = points * args.tuning_seeds
        if name == "pbt":
            pick_flags = ["--schedule", str(tuned / "combo_000" / "schedule_best.json")]
            pick = json.loads((tuned / "combo_000" / "schedule_best.json").read_text())["settings"]
        else:
            row = best_row(tuned)
            pick = {dim.key: float(row[dim.key]) for dim in space}
            pick_flags = [f"--set={k}={v!r}" for k, v in pick.items()]
        judged = out / f"{name}_heldout"
        heldout_wall = run(sweep_command(judged, args.task, 1, args.heldout_seeds, base + pick_flags))
        result["methods"][name] = {
            "tuning_agents": agents,
            "tuning_agent_iterations": agents * iterations,
            "share_of_grid_compute": agents / (grid_points * args.tuning_seeds),
            "tuning": tuning_summary(tuned),
            "pick": pick,
            "heldout_agent_iterations": args.heldout_seeds * iterations,
            "heldout": heldout(judged),
            "seconds": {
                "tuning": {**sweep_seconds(tuned), "wall_this_run": tuning_wall},
                "heldout": {**sweep_seconds(judged), "wall_this_run": heldout_wall},
            },
        }
        result["complete"] = len(result["methods"]) == len(methods)
        write(f"search_study_{args.task}", {**result, "environment": environment()})
    # The baseline every method must beat to be worth its compute: the config's own settings.
    judged = out / "defaults_heldout"
    heldout_wall = run(sweep_command(judged, args.task, 1, args.heldout_seeds, base))
    result["defaults"] = {
        "pick": {dim.key: float(config[dim.key]) for dim in space},
        "heldout": heldout(judged),
        "seconds": {"heldout": {**sweep_seconds(judged), "wall_this_run": heldout_wall}},
    }
    result["comparison"] = compare_heldout(result)
    write(f"search_study_{args.task}", {**result, "environment": environment()})
    return result


def compare_heldout(result: dict, draws: int = 5000) -> dict:
    """On the held-out seeds: each pick's 95% bootstrap CI of the mean final return, and Welch's
    t-test p of each method against the grid's pick and against the defaults."""
    from scipy import stats

    finals = {name: method["heldout"]["finals"] for name, method in result["methods"].items()}
    finals["defaults"] = result["defaults"]["heldout"]["finals"]
    finals = {name: np.array([v for v in f if v is not None], float) for name, f in finals.items()}
    rng = np.random.default_rng(0)
    ci = {
        name: [float(q) for q in np.percentile(rng.choice(f, (draws, len(f))).mean(axis=1), [2.5, 97.5])]
        for name, f in finals.items()
    }
    welch = lambda a, b: float(stats.ttest_ind(finals[a], finals[b], equal_var=False).pvalue)  # noqa: E731
    methods = list(result["methods"])
    return {
        "mean_ci95": ci,
        "welch_p_vs_grid": {name: welch(name, "grid") for name in methods if name != "grid"},
        "welch_p_vs_defaults": {name: welch(name, "defaults") for name in methods},
    }


# ==================================================================================================
# EXPERIENCE: does a replaced PBT agent do better taking its parent's replay buffer and envs?
# ==================================================================================================
def experience_check(args: argparse.Namespace) -> dict:
    """`--master-seeds` independent PBT sweeps per variant on one task (the same starting points
    for both: `--samples` points x `--tuning-seeds` seeds from each master seed), one variant
    copying a parent's experience with its learner (the default), the other keeping its own
    (`--pbt-keep-experience`). Every agent's final eval return per run, and per variant the share
    solved, the mean, each run's mean and best agent; a paired t-test of the run means."""
    space = args.space or SPACE
    config = ft.make_config(args.task, **configs.parse_set(args.set)[0])
    threshold = sweep_threshold(args.task, args.solved_at)
    base, sampled, pbt = sweep_flags(args, space)
    variants = {"copy": [], "keep": ["--pbt-keep-experience"]}
    result = {
        "task": args.task,
        "space": list(space),
        "samples": args.samples,
        "seeds_per_point": args.tuning_seeds,
        "pbt": {"every": args.pbt_every, "fraction": args.pbt_fraction},
        "overrides": list(args.set),
        "iterations_per_agent": config["TOTAL_TIMESTEPS"],
        "solved_at": threshold,
        "master_seeds": list(range(args.master_seeds)),
        "variants": {},
    }
    from fasttd3x.results import load_sweep

    for name, flag in variants.items():
        runs = []
        for seed in range(args.master_seeds):
            out = pathlib.Path(args.out) / f"{name}_seed{seed}"
            run(sweep_command(out, args.task, seed, args.tuning_seeds, base + sampled + pbt + flag))
            returns = np.asarray(load_sweep(out)["combos"][0]["arrays"]["metric_eval_return"], float)
            runs.append([float(v) if np.isfinite(v) else None for v in returns[:, -1]])
        finals = np.array([v if v is not None else np.nan for r in runs for v in r])
        result["variants"][name] = {
            "finals_per_run": runs,
            "agents": int(finals.size),
            "solved": float(np.mean(finals >= threshold)) if threshold is not None else None,
            "mean": float(np.nanmean(finals)),
            "run_means": [float(np.nanmean(np.array(r, float))) for r in runs],
            "run_bests": [float(np.nanmax(np.array(r, float))) for r in runs],
        }
        write(f"search_experience_{args.task}", {**result, "environment": environment()})
    from scipy import stats

    copy, keep = (np.array(result["variants"][v]["run_means"]) for v in ("copy", "keep"))
    result["comparison"] = {  # the unit is a PBT run: agents of one population are not independent
        "runs_copy_mean_higher": int(np.sum(copy > keep)),
        "paired_t_p_of_run_means": float(stats.ttest_rel(copy, keep).pvalue),
    }
    write(f"search_experience_{args.task}", {**result, "environment": environment()})
    return result


def sweep_threshold(task: str, solved_at: float | None) -> float | None:
    from fasttd3x.results import solved_threshold

    return solved_threshold(task, solved_at)


def grid_values(dim: search.Dim, count: int) -> list[float]:
    """`count` points spread over the range, end points included (log-spaced for log ranges)."""
    if dim.kind == "log":
        return list(np.geomspace(dim.lo, dim.hi, count))
    return list(np.linspace(dim.lo, dim.hi, count))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--study", action="store_true")
    parser.add_argument("--task", default="Pendulum-v1")
    parser.add_argument("--grid-values", type=int, default=3, help="study: values per searched setting")
    parser.add_argument("--samples", type=int, default=72, help="study: random points and PBT population")
    parser.add_argument("--tuning-seeds", type=int, default=1)
    parser.add_argument("--heldout-seeds", type=int, default=32)
    parser.add_argument("--pbt-every", type=int, default=4)
    parser.add_argument(
        "--pbt-fraction", type=float, default=0.25, help="study: share of PBT's population replaced"
    )
    parser.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=DIST:ARGS",
        help="study: a searched setting as sweep.py --sample takes it (repeatable; default: the wide "
        "six-setting space of issue #23)",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=4, metavar="EVALS", help="study: every sweep's checkpoints"
    )
    parser.add_argument("--out", default=str(ROOT / "results" / "search_study"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=V", help="study: a config override of every sweep"
    )
    parser.add_argument(
        "--solved-at",
        type=float,
        default=None,
        metavar="RETURN",
        help="study: the final return that counts as solved, for tasks without a threshold (sweep.py's flag)",
    )
    parser.add_argument(
        "--experience-check", action="store_true", help="PBT copying a parent's experience or not"
    )
    parser.add_argument("--master-seeds", type=int, default=4, help="experience check: PBT runs per variant")
    parser.add_argument("--fitness-check", type=pathlib.Path, metavar="RESULTS_DIR")
    parser.add_argument("--name", default="pendulum", help="fitness check: the result file's suffix")
    args = parser.parse_args(argv)
    if args.fitness_check:
        result = fitness_check(args.fitness_check.resolve())
        print(json.dumps(result, indent=2))
        write(f"search_fitness_{args.name}", result)
        return
    if args.study:
        study(args)
        return
    if args.experience_check:
        experience_check(args)
        return
    result = overhead(args.agents, args.repeats)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))
    write(f"search_overhead_{jax.devices()[0].platform}", result)


if __name__ == "__main__":
    main()
