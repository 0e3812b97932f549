"""Seed and hyperparameter sweeps of FastTD3X: many agents per compiled program.

    python sweep.py                                  # the default: Pendulum-v1, 16 seeds x 2 settings
    fasttd3x-sweep --help                            # the same command, installed
    python sweep.py --env CheetahRun --seeds 64 --grid CRITIC_LEARNING_RATE=1e-4,3e-4,1e-3 \\
        --grid TAU=0.05,0.1 --set NUM_ENVS=128 --out results/cheetah

Traced settings (`--grid`) and seeds form one vmapped program per combination of static
settings (`--set KEY=V1,V2` loops over compilations). Agents run in chunks sized to the free
device memory and sharded over all local devices. Every finished chunk is written atomically,
so rerunning the same command resumes where a killed sweep stopped.

The CLI -> plan -> run path reads top to bottom: `parse_args` (the argument table and its
checks, in cli.py), `plan_sweep` (every combination, validated), `plan_calls` (agents per device
call), `run_call` (one call, evaluation by evaluation), `run_combination` and `run_sweep`, then
`main`. The jobs they lean on have their own modules: memory and chunks (capacity.py), compiled
programs (programs.py), stop requests and the watchdog (interrupts.py), agreement across
processes (distributed.py), checkpoints (checkpoints.py), the results format and summary
(results.py), the figures (figures.py), the live metrics log and its TensorBoard/W&B sinks
(live.py, sinks.py), parts, merging and the folder lock (cluster.py) and the persistent
compilation cache (compile_cache.py).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import pathlib
import shlex
import socket
import sys
import time
from typing import NamedTuple

import jax
import numpy as np

import purejax_fasttd3 as ft
from fasttd3x import (
    checkpoints,
    cluster,
    compile_cache,
    distributed,
    envs,
    live,
    provenance,
    results,
    search,
    sinks,
    supervise,
)
from fasttd3x.capacity import (
    CpuLayout,
    agreed_call_size,
    bytes_per_agent,
    choose_chunk,
    choose_cpu_devices,
    cpu_size_warning,
    free_device_memory,
    pending_ranges,
)
from fasttd3x.cli import parse_args
from fasttd3x.configs import (
    HPARAM_DEFAULTS,
    env_steps_at_evals,
    make_config,
    parse_grid,
    parse_set,
    validate_hparams,
)
from fasttd3x.distributed import VERDICT_MARGIN_S, ProcessLost, agreed
from fasttd3x.interrupts import STOP, WATCHDOG, Interrupted
from fasttd3x.programs import CallPrograms
from fasttd3x.progress import ProgressPrinter, heartbeat_segments


# ==================================================================================================
# THE SWEEP, STEP BY STEP
# ==================================================================================================
def agent_hparams(config: dict, points: list[dict], seeds: int) -> dict[str, np.ndarray]:
    """Every traced setting per agent (agent = grid_index * seeds + seed_index)."""
    per_point = [{**{k: config[k] for k in HPARAM_DEFAULTS}, **point} for point in points]
    for point in per_point:
        validate_hparams(point)
    return {
        key: np.repeat(np.array([p[key] for p in per_point], np.float32), seeds) for key in HPARAM_DEFAULTS
    }


class Combination(NamedTuple):
    """One static combination of a sweep: one config, one pair of compiled programs. Agent
    `grid_index * seeds + seed_index` trains with row `agent` of `rngs` and `hparams`."""

    index: int  # in the order of sweep.json's combos
    label: str  # how printed lines name it: combo 2/3 {'BATCH_SIZE': 16}
    folder: pathlib.Path  # OUT/combo_XXX
    config: dict  # the resolved config
    rngs: np.ndarray  # every agent's PRNG key: split(PRNGKey(seed), seeds)[seed_index]
    hparams: dict[str, np.ndarray]  # every agent's traced settings at the start (`agent_hparams`)
    plan: search.Plan = search.Plan()  # PBT or a schedule between evaluations (search.py)

    @property
    def num_agents(self) -> int:
        return len(self.rngs)


class Sweep(NamedTuple):
    """What the command line asks for, every combination and grid point validated."""

    out: pathlib.Path  # the results folder
    spec: dict  # what sweep.json records
    points: list[dict]  # the grid points, in flag order
    combinations: list[Combination]


def _check_same_sweep(out: pathlib.Path, spec: dict) -> None:
    path = out / "sweep.json"
    if not path.exists():
        return
    stored = json.loads(path.read_text())
    for key in ("format", "env", "seeds", "seed", "grid", "static", "fixed", "search"):
        if stored.get(key) != spec.get(key):
            raise ValueError(
                f"{out} holds results of another sweep: its {key} is {stored.get(key)!r}, this "
                f"command asks for {spec.get(key)!r}. Rerun the original command to resume it, "
                "or choose a new --out."
            )


def plan_sweep(args: argparse.Namespace) -> Sweep:
    """The sweep `args` describe, validated before any compilation; refuses a results folder that
    holds another sweep."""
    grid = parse_grid(args.grid)
    fixed, looped = parse_set(args.set)
    space = search.parse_space(args.sample)
    both = [dim.key for dim in space if dim.key in grid]
    if both:
        raise ValueError(f"--sample {both[0]}: {both[0]} is also a --grid axis; search it one way")
    combos = results.grid_points(looped)
    points = [
        {**point, **drawn}
        for point in results.grid_points(grid)
        for drawn in search.sample_points(space, args.samples or 1, args.seed)
    ]
    out = pathlib.Path(args.out or f"results/{args.env}")
    configs = [make_config(args.env, **{**fixed, **combo}) for combo in combos]
    plans = [_search_plan(args, space, config, len(points) * args.seeds) for config in configs]
    hparams = [agent_hparams(config, points, args.seeds) for config in configs]
    for hp, plan in zip(hparams, plans):  # a replayed schedule starts at its first entry
        for key, value in (plan.schedule["settings"][0] if plan.schedule else {}).items():
            hp[key] = np.full_like(hp[key], value)
    spec = {
        "format": results.FORMAT,
        "env": args.env,
        "seeds": args.seeds,
        "seed": args.seed,
        # With --sample the summary and plots rank the drawn points: "search" records them.
        "grid": {"point": list(range(len(points)))} if space else grid,
        "static": looped,
        "fixed": fixed,
        "combos": combos,
    }
    if space or args.schedule:
        spec["search"] = {
            "grid": grid,
            "sample": args.sample,
            "points": points if space else None,
            "pbt": {**plans[0].pbt._asdict(), "factors": list(args.pbt_factors)} if args.pbt else None,
            "schedule": plans[0].schedule,
        }
    _check_same_sweep(out, spec)
    seed_rngs = np.asarray(jax.random.split(jax.random.PRNGKey(args.seed), args.seeds))
    rngs = seed_rngs[np.arange(len(points) * args.seeds) % args.seeds]
    combinations = []
    for c, (combo, config, hp) in enumerate(zip(combos, configs, hparams)):
        label = f"combo {c + 1}/{len(combos)} {combo or ''}".rstrip()
        combinations.append(Combination(c, label, out / f"combo_{c:03d}", config, rngs, hp, plans[c]))
    return Sweep(out, spec, points, combinations)


def _search_plan(args: argparse.Namespace, space: tuple, config: dict, agents: int) -> search.Plan:
    """A combination's PBT or schedule, refused before anything compiles when it cannot run."""
    num_evals = config["TOTAL_TIMESTEPS"] // config["EVAL_INTERVAL"]
    if args.schedule:
        return search.Plan(schedule=search.load_schedule(args.schedule, num_evals))
    if not args.pbt:
        return search.Plan(space)
    pbt = search.PBTConfig(args.pbt_every, agents, args.pbt_fraction, args.pbt_factors, args.pbt_resample)
    pbt = pbt._replace(copy_experience=not args.pbt_keep_experience)
    search.check_pbt(pbt, space, num_evals)
    search.check_space_corners(space, config)
    return search.Plan(space, pbt)


class Call(NamedTuple):
    """One device call: agents lo..hi-1 of a combination, in `rows` padded to the call size by
    repeating the last agent."""

    lo: int
    hi: int
    rows: np.ndarray  # the agent of each row

    @property
    def name(self) -> str:
        return checkpoints.agents_name(self.lo, self.hi)


def plan_calls(args: argparse.Namespace, combo: Combination, done: set[int], mine: range) -> list[Call]:
    """The calls that train a combination's unfinished agents: as many agents per call as fit in
    the least free memory of any process, or as asked for (`agreed_call_size`), over every device
    of every process. Records the call size in calls.json and prints the plan. `mine`: the agents
    this part trains (--part; every agent otherwise), `done` holds the other parts' agents."""
    devices, total = jax.devices(), combo.num_agents
    memory = bytes_per_agent(combo.config, envs.make_env(combo.config))
    per_agent = sum(memory.values())
    free = distributed.least_free_memory(free_device_memory(jax.local_devices()))
    calls_file = combo.folder / "calls.json"
    chunk = choose_chunk(per_agent, free, len(devices), total, agreed_call_size(args.chunk, calls_file))
    if combo.plan.pbt and chunk < total:
        raise ValueError(
            f"--pbt: the population of {total} agents must run in one call, but {chunk} agents per call "
            "fit (or --chunk asks for that many); use fewer --samples or --seeds, or smaller agents"
        )
    calls_json = {"agents_per_call": chunk, "devices": len(devices)}
    agreed(
        f"writing {calls_file}",
        lambda: jax.process_index() == 0 and checkpoints.write_json(calls_file, calls_json),
    )
    parts = ", ".join(f"{k} {v / 2**20:.1f}" for k, v in memory.items())
    print(
        f"{combo.label}: about {per_agent / 2**20:.1f} MiB per agent ({parts} MiB); "
        f"{free / 2**30:.1f} GiB free -> {chunk} agents per call"
    )
    finished = len(done.intersection(mine))
    if args.part:
        print(
            f"{combo.label}: {_part_name(args.part)}: agents {mine.start}-{mine.stop - 1} of {total}"
            + (f", resuming: {finished} of them already finished" if finished else "")
        )
    elif done:
        print(f"{combo.label}: resuming, {len(done)} of {total} agents already finished")
    warning = cpu_size_warning(combo.config, devices[0].platform)
    if warning:
        print(f"{combo.label}: WARNING: {warning}", flush=True)
    calls = []
    for lo, hi in pending_ranges(done, total, chunk):
        agents = np.arange(lo, hi)
        rows = np.concatenate([agents, np.full(chunk - len(agents), agents[-1])])
        calls.append(Call(lo, hi, rows))
    return calls


def sends_heartbeats(args: argparse.Namespace, config: dict) -> bool:
    """Whether the training program reports from inside its evaluation intervals (a host callback,
    which keeps it out of JAX's compilation cache): intervals long enough, and no --no-heartbeats."""
    return not args.no_heartbeats and heartbeat_segments(config["EVAL_INTERVAL"]) > 0


def compile_calls(
    args: argparse.Namespace, combo: Combination, mesh: jax.sharding.Mesh, calls: list[Call]
) -> tuple[CallPrograms, list[pathlib.Path | None]]:
    """(the combination's programs, compiled; the checkpoint file each call resumes from, on this
    process, or None). With --checkpoint-every, first refuses a disk (any process's) without room
    for two checkpoints."""
    chunk = len(calls[0].rows)
    printer = None if args.quiet else ProgressPrinter(combo.config)
    WATCHDOG.doing(f"tracing and compiling {combo.label}")
    resumes = [checkpoints.agreed_resume_point(combo.folder, call.lo, call.hi) for call in calls]
    progress, heartbeat = WATCHDOG.reporters(printer)
    beats = sends_heartbeats(args, combo.config)
    if beats and not (args.no_compile_cache or args.quiet):
        print(
            f"{combo.label}: its evaluation intervals report progress from inside the program, which "
            "JAX's compilation cache cannot store; --no-heartbeats lets a resume load it instead",
            flush=True,
        )
    programs = CallPrograms(combo.config, mesh, chunk, progress, heartbeat if beats else None)
    if args.checkpoint_every:
        processes = jax.process_count()

        def check_disk():
            combo.folder.mkdir(parents=True, exist_ok=True)  # each process writes its own parts
            checkpoints.check_disk(combo.folder, programs.state_bytes() // processes, chunk // processes)

        agreed(f"checking the disk of {combo.folder}", check_disk)
    programs.compile(with_init=None in resumes)
    print(f"{combo.label}: compiled in {programs.compile_seconds:.1f} s", flush=True)
    return programs, resumes


class CallOutcome(NamedTuple):
    """A call trained to its last evaluation."""

    state: ft.Runner  # every row's final state, sharded over the devices
    metrics: dict[str, np.ndarray]  # [rows, evals] of each metric the run reports
    searched: dict[str, np.ndarray]  # the PBT lineage of the call's agents (search.lineage_arrays)
    run_seconds: float  # device time of its evaluations, over every run that trained it
    resumed_at: int | None  # the evaluation it resumed from a checkpoint at, if it did


def run_call(
    args: argparse.Namespace,
    combo: Combination,
    programs: CallPrograms,
    call: Call,
    resume_from: pathlib.Path | None,
    log: live.SweepLog | None = None,
) -> CallOutcome:
    """Trains a call's agents one evaluation at a time, from the start or from its checkpoint,
    each evaluation into `log` (the live metrics; None on processes other than 0).
    Saves a checkpoint every --checkpoint-every evaluations, and when asked to stop (then raises
    `Interrupted`). Run seconds leave compilation out and carry over a resume (they time the
    learning curve)."""
    num_evals = programs.loop.num_evals
    t0 = time.perf_counter()
    resumed_at, run_before = None, 0.0
    between = search.Search(args.seed, programs.state_sharding, combo.plan)
    if resume_from is not None:

        def load():
            leaves, saved, meta = checkpoints.load_checkpoint(resume_from)
            try:
                return programs.place_state(leaves), saved, meta
            except checkpoints.CorruptFileError as error:
                raise checkpoints.CorruptFileError(
                    f"checkpoint {resume_from} does not fit this sweep ({error}). Delete it to train "
                    "its agents from the start."
                ) from None

        state, saved, meta = agreed(f"reading the checkpoint of {call.name}", load)
        between.restore(meta)
        evals, resumed_at, run_before = meta["evals_done"], meta["evals_done"], meta["run_seconds"]
        history = [saved]
        print(f"{combo.label}: {call.name} resume from their checkpoint at eval {evals}/{num_evals}")
    else:
        hparams = {k: v[call.rows] for k, v in combo.hparams.items()}
        state = programs.init(combo.rngs[call.rows], hparams)
        between.start(hparams)
        history, evals = [], 0
    while evals < num_evals:
        WATCHDOG.doing(f"running {call.name}, eval {evals + 1}/{num_evals}")
        state, metrics = agreed(
            f"running {call.name}, eval {evals + 1}", functools.partial(_evaluate, programs, state)
        )
        history.append(distributed.to_host(metrics))
        programs.report(evals)
        evals += 1
        run_s = run_before + time.perf_counter() - t0
        if log is not None:  # one flushed line per agent in OUT/live.jsonl, and the sinks
            log.evaluation(combo.index, combo.config, call.lo, call.hi, evals, history[-1], run_s)
        if evals == num_evals:
            break
        returns = np.concatenate([h["eval_return"] for h in history], axis=1)
        state = between.after_eval(state, evals, returns)  # PBT step or a schedule's next settings
        stop = STOP.requested()
        if stop or (args.checkpoint_every and evals % args.checkpoint_every == 0):
            history = [_concat_metrics(history)]
            meta = {"evals_done": evals, "run_seconds": run_s, **between.checkpoint_meta()}
            checkpoints.save_call_checkpoint(combo.folder, call.lo, call.hi, state, history[0], meta)
        if stop:
            raise Interrupted(f"stopped at eval {evals}/{num_evals} of {call.name}, checkpoint saved")
    return CallOutcome(state, _concat_metrics(history), between.results(call.hi - call.lo), run_s, resumed_at)


def _evaluate(programs: CallPrograms, state):
    """One more evaluation, computed (a device error, out of memory say, is raised here)."""
    state, metrics = programs.run(state)
    return state, jax.block_until_ready(_wait(metrics))


def _concat_metrics(history: list[dict]) -> dict:
    return {name: np.concatenate([h[name] for h in history], axis=1) for name in history[0]}


def _wait(tree):
    """Blocks until `tree` is computed. On an accelerator a call returns at once and the main
    thread waits here, polling, where the watchdog sees it; on the CPU the call itself computes."""
    for leaf in jax.tree.leaves(tree):
        while not leaf.is_ready():
            time.sleep(0.05)
    return tree


def write_call_results(
    args: argparse.Namespace, combo: Combination, call: Call, outcome: CallOutcome, compile_seconds: float
) -> list[int]:
    """Writes a finished call's results file (process 0; the format: results.py), then, once it is
    written, removes its checkpoint (each process its own files). Returns the agents with
    non-finite losses or returns."""
    WATCHDOG.doing(f"writing the results of {call.name}")
    agents = np.arange(call.lo, call.hi)
    n = len(agents)
    metrics = {name: values[:n] for name, values in outcome.metrics.items()}
    metrics["env_steps"] = np.tile(env_steps_at_evals(combo.config), (n, 1))  # int64, exact
    flagged = agents[
        ~results.finite_agents({"agent": agents, **{f"metric_{k}": v for k, v in metrics.items()}})
    ].tolist()
    meta = {
        **provenance.run_environment(),
        "compile_seconds": compile_seconds,
        "run_seconds": outcome.run_seconds,
        "resumed_at_eval": outcome.resumed_at,
        "nonfinite_agents": flagged,
    }
    final_hparams = distributed.to_host(outcome.state.hparams)  # PBT and schedules change them as they go
    policies = None
    if args.save_policies:
        ts = outcome.state.train_state
        kept = distributed.to_host({"actor_params": ts.actor_params, "obs_norm": ts.obs_norm._asdict()})
        policies = jax.tree.map(lambda x: x[:n], kept)
    hparams = {key: values[:n] for key, values in final_hparams.items()}
    arrays = results.agents_arrays(
        call.lo, call.hi, args.seeds, hparams, metrics, outcome.searched, meta, policies
    )
    path = results.agents_path(combo.folder, call.lo, call.hi)
    agreed(f"writing {path}", lambda: jax.process_index() == 0 and checkpoints.write_npz(path, arrays))
    this_call = lambda lo, hi: (lo, hi) == (call.lo, call.hi)  # noqa: E731
    checkpoints.remove_checkpoints(combo.folder, jax.process_index(), this_call)  # its results are on disk
    return flagged


def run_combination(
    args: argparse.Namespace,
    combo: Combination,
    mesh: jax.sharding.Mesh,
    started: float,
    log: live.SweepLog | None,
) -> None:
    """Trains and writes a combination's unfinished agents, call by call; `started` is when the
    sweep started, for the elapsed time; `log` takes every evaluation (process 0)."""
    process = jax.process_index()

    def write_config():
        if process == 0:
            combo.folder.mkdir(exist_ok=True)
            checkpoints.write_json(combo.folder / "config.json", combo.config)

    agreed(f"writing {combo.folder / 'config.json'}", write_config)
    done = results.agreed_finished_agents(combo.folder, combo.num_agents)
    mine = _agents_of_this_part(args, combo)
    done |= set(range(combo.num_agents)) - set(mine)  # the other parts' agents count as done here
    # What a kill left: partial writes, and checkpoints of calls whose results were written.
    finished = lambda lo, hi: done.issuperset(range(lo, hi))  # noqa: E731
    removed = checkpoints.remove_partial_writes(combo.folder, process)
    removed += checkpoints.remove_checkpoints(combo.folder, process, finished)
    if removed:
        print(
            f"{combo.label}: removed {', '.join(removed)} (partial writes, or checkpoints of finished calls)"
        )
    if len(done) == combo.num_agents:
        total = combo.num_agents
        whose = f"{_part_name(args.part)}: its {len(mine)} of {total}" if args.part else f"all {total}"
        print(f"{combo.label}: {whose} agents already finished, skipped")
        return
    calls = plan_calls(args, combo, done, mine)
    programs, resumes = compile_calls(args, combo, mesh, calls)
    for k, (call, resume_from) in enumerate(zip(calls, resumes)):
        outcome = run_call(args, combo, programs, call, resume_from, log)
        flagged = write_call_results(args, combo, call, outcome, programs.compile_seconds)
        remaining = sum(later.hi - later.lo for later in calls[k + 1 :])
        eta = outcome.run_seconds / (call.hi - call.lo) * remaining
        print(
            f"{combo.label}: {call.name} done in {outcome.run_seconds:.1f} s "
            f"({k + 1}/{len(calls)} calls; elapsed {time.perf_counter() - started:.0f} s, "
            f"ETA for this combination {eta:.0f} s)"
        )
        if flagged:
            print(f"  WARNING: non-finite losses or returns in agents {flagged}; kept going")
        if k + 1 < len(calls) and STOP.requested():
            raise Interrupted(f"stopped after {call.name} of combination {combo.index + 1}")


def _agents_of_this_part(args: argparse.Namespace, combo: Combination) -> range:
    """The agents a --part trains (whole calls of --chunk agents), every agent without --part."""
    if not args.part:
        return range(combo.num_agents)
    call_size = choose_chunk(1, 1, len(jax.devices()), combo.num_agents, args.chunk)
    return cluster.part_agents(args.part, combo.num_agents, call_size)


def _part_name(part: cluster.Part) -> str:
    return f"part {part.index}/{part.count}"


def run_sweep(args: argparse.Namespace, cpu_layout: CpuLayout | None = None) -> pathlib.Path:
    """The sweep `args` describe; `cpu_layout` is the host device count main chose (reported on CPU)."""
    distributed.init_distributed(args)
    if jax.process_count() > 1:
        supervise.report(jax.process_index(), jax.process_count(), distributed.agreed_hosts())
    # Heartbeats come from the first device, which process 0 holds: only it watches.
    watch = jax.process_index() == 0 and args.watchdog
    # Process 0 holds an advisory lock on the results folder while the sweep runs: a second sweep
    # into it stops at once, naming the holder.
    out = pathlib.Path(args.out or f"results/{args.env}")
    lock = cluster.FolderLock(out) if jax.process_index() == 0 else contextlib.nullcontext()
    with lock, WATCHDOG.watching(args.watchdog) if watch else contextlib.nullcontext():
        return _sweep(args, cpu_layout)


@contextlib.contextmanager
def live_log(args: argparse.Namespace, sweep: Sweep):
    """OUT/live.jsonl, started or (resuming) continued, with the TensorBoard and W&B sinks asked
    for (live.py, sinks.py), on process 0 (None on the others). Closed when the sweep ends; a
    finished sweep closes it first with its summary."""
    log = None
    if jax.process_index() == 0:
        log = live.SweepLog(sweep.out, seeds=args.seeds, points=sweep.points, combos=sweep.spec["combos"])
        log.log.sinks += sinks.make_sinks(
            sweep.out, sweep.spec, log.log.existing, args.tensorboard, args.wandb, args.log_agents
        )
    try:
        yield log
    finally:
        if log is not None:
            log.close()  # a stop or an error: what was logged stays


def _sweep(args: argparse.Namespace, cpu_layout: CpuLayout | None) -> pathlib.Path:
    sweep = agreed("planning the sweep", functools.partial(plan_sweep, args))

    def write_spec():
        if jax.process_index() == 0:  # the other processes compute and write nothing
            sweep.out.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_partial_writes(sweep.out, 0)
            checkpoints.write_json(sweep.out / "sweep.json", sweep.spec)

    agreed(f"writing {sweep.out / 'sweep.json'}", write_spec)
    if args.part and jax.process_index() == 0:  # a part's folder says which part it holds
        cluster.write_part_file(sweep.out, args.part, args.chunk)
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("agents",))
    num_combos = len(sweep.combinations)
    agents = sum(combo.num_agents for combo in sweep.combinations)
    print(
        f"{args.env}: {num_combos} static combination(s) x {len(sweep.points)} grid point(s) x "
        f"{args.seeds} seeds = {agents} agents on {len(devices)} {devices[0].device_kind}"
        + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
    )
    if cpu_layout and devices[0].platform == "cpu":
        print(f"  {cpu_layout.report(jax.local_device_count())}")
    if jax.process_count() > 1:
        print(
            f"  process {jax.process_index()} on {socket.gethostname()}; if a process dies, the others "
            f"end within {args.heartbeat_timeout + VERDICT_MARGIN_S} s, naming it; then, in every "
            f"process, {STOP.resume_hint}",
            flush=True,
        )
    started = time.perf_counter()
    with live_log(args, sweep) as log:
        for combo in sweep.combinations:
            if combo.index > 0 and STOP.requested():
                raise Interrupted(f"stopped before static combination {combo.index + 1}/{num_combos}")
            run_combination(args, combo, mesh, started, log)
        if jax.process_index() == 0:  # process 0 writes the summary, and sends it to the live sinks
            rows = results.summarize(sweep.out, args.solved_at)
            log.close(rows)
    return sweep.out


def merge_parts(args: argparse.Namespace) -> str | None:
    """`--merge-parts OUT`: the parts in OUT/parts merged into OUT (cluster.merge_parts), then the
    summary and plots, as at the end of a sweep. Returns the error, if any."""
    out = pathlib.Path(args.merge_parts)
    try:
        with cluster.FolderLock(out):
            written = cluster.merge_parts(out)
    except ValueError as error:
        return f"sweep.py: error: {error}"
    parts = len(list((out / cluster.PARTS_FOLDER).iterdir()))
    print(f"merged {parts} parts into {out} ({len(written)} files)")
    results.summarize(out, args.solved_at)
    _draw_figures(out, args)
    return None


def _draw_figures(out: pathlib.Path, args: argparse.Namespace) -> None:
    if not args.no_plots:
        from fasttd3x.figures import draw_all  # matplotlib: imported only to draw

        for png in draw_all(out, args.solved_at):
            print(f"wrote {png}")


def main(argv=None) -> None:
    """The command line (argv None; with --distributed under a supervisor, see supervise.py), or
    the sweep `argv` describes, in this process."""
    args = parse_args(argv)
    if args.merge_parts:  # merges the parts of a sweep and summarizes; trains nothing
        failed = merge_parts(args)
        if failed:
            sys.exit(failed)
        return
    try:  # processes a launcher started without joining them are refused; the compile cache
        cluster.refuse_unjoined_processes(args.distributed or args.part is not None)
        if not args.no_compile_cache:
            compile_cache.enable(args.compile_cache)
    except ValueError as error:
        sys.exit(f"sweep.py: error: {error}")
    command = shlex.join(["python", *sys.argv])
    if args.distributed and argv is None and not supervise.is_child():
        sys.exit(supervise.supervise(command, args.process_id, args.num_processes))
    if supervise.is_child():
        supervise.attach()
    layout = choose_cpu_devices(args.env)
    resume = f"rerun the same command to resume: {command}"
    STOP.install(resume)
    try:
        out = run_sweep(args, layout)
    except (ValueError, MemoryError) as error:
        sys.exit(f"sweep.py: error: {error}")
    except ProcessLost as lost:
        patience = args.heartbeat_timeout + VERDICT_MARGIN_S
        print(f"sweep.py: {lost}; waiting up to {patience} s for the runtime to name it", file=sys.stderr)
        supervise.await_verdict(patience)  # no shutdown barrier: it would wait for the lost process
    except Interrupted as stop:
        print(f"{STOP.signal_name}: {stop}; every finished agent is written; {resume}", flush=True)
        sys.exit(143 if STOP.signal_name == "SIGTERM" else 130)
    if jax.process_index() == 0:  # process 0 draws the plots (run_sweep wrote the summary)
        _draw_figures(out, args)


if __name__ == "__main__":
    main()
