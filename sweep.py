"""Seed and hyperparameter sweeps of FastTD3X: many agents per compiled program.

    python sweep.py                                  # the default: Pendulum-v1, 16 seeds x 2 settings
    python sweep.py --env CheetahRun --seeds 64 --grid CRITIC_LEARNING_RATE=1e-4,3e-4,1e-3 \\
        --grid TAU=0.05,0.1 --set NUM_ENVS=128 --out results/cheetah

Traced settings (`--grid`) and seeds form one vmapped program per combination of static
settings (`--set KEY=V1,V2` loops over compilations). Agents run in chunks sized to the free
device memory and sharded over all local devices. Every finished chunk is written atomically,
so rerunning the same command resumes where a killed sweep stopped.

Results format (loads with numpy alone; `plots.results.load_sweep` does it for you):

    OUT/sweep.json            the sweep: env, seeds, seed, grid, static values, combos
    OUT/combo_XXX/config.json the resolved config of static combination XXX
    OUT/combo_XXX/calls.json  agents per device call (a resumed sweep keeps it)
    OUT/combo_XXX/agents_AAAAAA-BBBBBB.npz   agents A..B-1 of that combination:
        agent, grid_index, seed_index          int64 [A]; agent = grid_index * seeds + seed_index
        hparam_<KEY>                           float32 [A], every traced setting at the end
        pbt_parent, pbt_fitness, pbt_<KEY>     with --pbt, [A, generations + 1]: the lineage
                                               (search.lineage_arrays)
        metric_<NAME>                          [A, num_evals]: env_steps, eval_return,
                                               train_return, critic_loss, actor_loss, q_mean
        meta                                   JSON string: device, versions, compile and run
                                               seconds, agents with non-finite values
    OUT/summary.csv           final eval return per grid point: mean, IQM, 95% bootstrap CI, worst
                              seed; with a solved threshold also the fraction of seeds solved
                              and the env steps and run seconds at which the mean reaches it
    OUT/plots/*.png           learning curves and the grid plot
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import csv
import functools
import itertools
import json
import os
import pathlib
import shlex
import signal
import socket
import sys
import threading
import time
import traceback
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

import checkpoints
import envs
import provenance
import purejax_fasttd3 as ft
import search
import supervise
from plots.results import (
    SOLVED_THRESHOLDS,
    finite_agents,
    grid_table,
    load_sweep,
    rank_rows,
    solved_threshold,
)

ROOT = pathlib.Path(__file__).resolve().parent
FORMAT = "fasttd3x-sweep/1"
METRICS = ("env_steps", "eval_return", "train_return", "critic_loss", "actor_loss", "q_mean")
# The default job: 16 seeds at each of the two PRE_TANH_PENALTY values that solved at least 62 of
# 64 tuning seeds (bench/results/tuning_pendulum). The grid was tuned on Pendulum-v1 only, so it is
# the default there alone; any other task runs its config's settings unless --grid says otherwise.
DEFAULT_SEEDS = 16
DEFAULT_GRID_ENV = "Pendulum-v1"
DEFAULT_GRID = ["PRE_TANH_PENALTY=1e-3,1e-2"]
# Above these sizes a config is the reference's GPU setup, and a CPU run warns before compiling.
# The gymnax defaults (16 envs, batch 128, widths 128/64) run in minutes on two cores.
CPU_SIZE_LIMITS = {"NUM_ENVS": 128, "BATCH_SIZE": 8192, "CRITIC_HIDDEN_DIM": 512, "ACTOR_HIDDEN_DIM": 256}


# ==================================================================================================
# COMMAND LINE
# ==================================================================================================
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train many FastTD3 agents at once: seeds x a grid of traced settings, "
        "looping over static settings. Rerun the same command to resume.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--env", default="Pendulum-v1", help="task: gymnax or MuJoCo Playground name")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per grid point")
    parser.add_argument(
        "--seed", type=int, default=0, help="master PRNG seed; seed i uses split(PRNGKey(seed), seeds)[i]"
    )
    parser.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2,...",
        help="traced setting to sweep inside one program (repeatable; the grid is the cartesian "
        f"product). Keys: {', '.join(ft.HPARAM_DEFAULTS)}. Default for {DEFAULT_GRID_ENV}, where it was "
        f"tuned, when no --grid/--set is given: {' '.join(DEFAULT_GRID)}; other tasks: no grid",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V[,V2,...]",
        help="config override (repeatable). Several values of a static key loop over "
        "compilations; a traced key takes one value here (sweep it with --grid)",
    )
    parser.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="KEY=DIST:ARGS",
        help="traced setting to search (repeatable): KEY=log:LO,HI, KEY=lin:LO,HI or KEY=choice:V1,V2,...; "
        "--samples points are drawn quasi-randomly (scrambled Halton, from --seed), each crossed with "
        "--seeds and any --grid, in one program",
    )
    parser.add_argument("--samples", type=int, default=None, metavar="N", help="points drawn from --sample")
    parser.add_argument(
        "--pbt",
        action="store_true",
        help="population-based training over the --sample space: the --samples x --seeds agents start "
        "at the sampled points; every --pbt-every evaluations the worst --pbt-fraction take the complete "
        "state of one of the best and perturb or resample their settings",
    )
    parser.add_argument(
        "--pbt-every", type=int, default=1, metavar="E", help="evaluations per PBT generation"
    )
    parser.add_argument(
        "--pbt-fraction",
        type=float,
        default=0.25,
        metavar="Q",
        help="share of the population replaced, and parents",
    )
    parser.add_argument(
        "--pbt-factors",
        default="0.8,1.2",
        metavar="DOWN,UP",
        help="PBT perturbation factors, one drawn per setting",
    )
    parser.add_argument(
        "--pbt-resample",
        type=float,
        default=0.25,
        metavar="P",
        help="probability that PBT draws a setting anew from its range instead of perturbing it",
    )
    parser.add_argument(
        "--pbt-keep-experience",
        action="store_true",
        help="PBT: a replaced agent keeps its own replay buffer and envs and takes only its parent's "
        "learner (networks, optimizers, target critic, normalizers); default: it takes everything",
    )
    parser.add_argument(
        "--schedule",
        metavar="FILE",
        help="replay a schedule of settings (a PBT sweep's OUT/combo_XXX/schedule_best.json): plain agents "
        "whose settings change between evaluations as the file says",
    )
    parser.add_argument("--out", default=None, help="results folder (default: results/<env>)")
    parser.add_argument(
        "--chunk", type=int, default=None, help="agents per device call (default: from free memory)"
    )
    parser.add_argument(
        "--save-policies", action="store_true", help="also store every agent's final actor and normalizer"
    )
    parser.add_argument(
        "--solved-at",
        type=float,
        default=None,
        metavar="RETURN",
        help="final eval return at or above which a seed counts as solved, for the success columns "
        f"of the summary and the plots (default: the task's entry in {SOLVED_THRESHOLDS})",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="EVALS",
        help="save each running call's complete state (replay buffers, env states, RNG) every EVALS "
        "evaluations, so a killed sweep rerun with the same command loses at most EVALS evals of "
        "work (default: no checkpoints; a killed call restarts from its beginning)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip drawing the plots at the end")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines (per evaluation and inside long ones)"
    )
    parser.add_argument(
        "--watchdog",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="report (without stopping) when the sweep shows no progress for this long: what it "
        "waits on and where; 0 turns it off",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="one of several processes running this same command (many GPUs or hosts): joins them "
        "with jax.distributed.initialize(), which reads the three settings below from the cluster "
        "(SLURM, Open MPI, ...) unless they are given; process 0 writes the results",
    )
    parser.add_argument("--coordinator", metavar="HOST:PORT", help="--distributed: process 0's address")
    parser.add_argument("--num-processes", type=int, metavar="N", help="--distributed: processes in all")
    parser.add_argument("--process-id", type=int, metavar="I", help="--distributed: this one, 0..N-1")
    parser.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=HEARTBEAT_TIMEOUT_S,
        metavar="SECONDS",
        help="--distributed: a process silent this long counts as lost, and every other one stops "
        f"(default {HEARTBEAT_TIMEOUT_S})",
    )
    args = parser.parse_args(argv)
    if not args.distributed and (args.coordinator, args.num_processes, args.process_id) != (None,) * 3:
        parser.error("--coordinator, --num-processes and --process-id go with --distributed")
    if args.heartbeat_timeout < 1:
        parser.error(f"--heartbeat-timeout must be at least 1 second, got {args.heartbeat_timeout}")
    if args.num_processes is not None and args.num_processes < 1:
        parser.error(f"--num-processes must be at least 1, got {args.num_processes}")
    if args.process_id is not None and not 0 <= args.process_id < (args.num_processes or 2**31):
        parser.error(f"--process-id must be in 0..{(args.num_processes or 2**31) - 1}, got {args.process_id}")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be at least 1 evaluation, got {args.checkpoint_every}")
    if args.chunk is not None and args.chunk < 1:
        parser.error(f"--chunk must be at least 1, got {args.chunk}")
    if not np.isfinite(args.watchdog) or args.watchdog < 0:
        parser.error(f"--watchdog must be a number of seconds >= 0 (0: off), got {args.watchdog}")
    if args.solved_at is not None and not np.isfinite(args.solved_at):
        parser.error(f"--solved-at must be a finite return, got {args.solved_at}")
    if bool(args.sample) != (args.samples is not None):
        parser.error("--sample and --samples go together: the space and how many points to draw from it")
    if args.samples is not None and args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    if args.pbt and not args.sample:
        parser.error("--pbt needs a search space: give the settings to explore with --sample and --samples")
    if args.schedule and (args.pbt or args.sample):
        parser.error(
            f"--schedule {args.schedule} replays fixed settings; it does not combine with --pbt or --sample"
        )
    try:
        args.pbt_factors = tuple(float(f) for f in args.pbt_factors.split(","))
    except ValueError:
        parser.error(f"--pbt-factors expects DOWN,UP, got {args.pbt_factors!r}")
    if len(args.pbt_factors) != 2:
        parser.error(f"--pbt-factors expects DOWN,UP, got {args.pbt_factors}")
    if args.grid is None:
        searched = args.set or args.sample or args.schedule
        args.grid = list(DEFAULT_GRID) if args.env == DEFAULT_GRID_ENV and not searched else []
    return args


def _split_assignment(flag: str, item: str) -> tuple[str, list[str]]:
    key, sep, values = item.partition("=")
    if not sep or not key or not values:
        raise ValueError(f"{flag} expects KEY=V1,V2,..., got {item!r}")
    return key.strip(), [v.strip() for v in values.split(",")]


def parse_grid(items: list[str]) -> dict[str, list[float]]:
    """`KEY=V1,V2` items to {KEY: [floats]}; only traced settings can be grid axes."""
    grid: dict[str, list[float]] = {}
    for item in items:
        key, raw_values = _split_assignment("--grid", item)
        if key in ft.STATIC_DEFAULTS:
            raise ValueError(
                f"--grid {key}: {key} is a static setting (it changes shapes or loop counts); "
                f"sweep it with --set {key}={','.join(raw_values)}"
            )
        if key not in ft.HPARAM_DEFAULTS:
            raise ValueError(f"--grid {key}: unknown traced setting; allowed: {sorted(ft.HPARAM_DEFAULTS)}")
        if key in grid:
            raise ValueError(f"--grid {key} is given twice; list all its values in one flag")
        values = []
        for raw in raw_values:
            try:
                values.append(float(raw))
            except ValueError:
                raise ValueError(f"--grid {key}: value {raw!r} is not a number") from None
        grid[key] = values
    return grid


def parse_set(items: list[str]) -> tuple[dict, dict[str, list]]:
    """`--set` items to (single-value overrides, {static key: [values]} to loop over)."""
    fixed: dict = {}
    looped: dict[str, list] = {}
    for item in items:
        key, raw_values = _split_assignment("--set", item)
        if key in ft.HPARAM_DEFAULTS and len(raw_values) > 1:
            raise ValueError(f"--set {item}: {key} is traced; sweep it inside one program with --grid {item}")
        values = [ft.check_setting(key, _typed(key, raw)) for raw in raw_values]
        if len(values) == 1:
            fixed[key] = values[0]
        else:
            looped[key] = values
    return fixed, looped


def _typed(key: str, raw: str):
    """Converts a command-line value to the type of the setting's default."""
    if key not in ft.HPARAM_DEFAULTS and key not in ft.STATIC_DEFAULTS:
        return raw  # check_setting names the unknown key and suggests close ones
    default = ft.HPARAM_DEFAULTS.get(key, ft.STATIC_DEFAULTS.get(key))
    if isinstance(default, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
    elif isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            pass
    elif isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            pass
    else:
        return raw
    raise ValueError(f"--set {key}={raw}: expected a {type(default).__name__}")


# ==================================================================================================
# AGENTS, MEMORY AND CHUNKS
# ==================================================================================================
def grid_points(grid: dict[str, list[float]]) -> list[dict[str, float]]:
    """The cartesian product of the grid, in flag order; [{}] when there is no grid."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


def agent_hparams(config: dict, points: list[dict], seeds: int) -> dict[str, np.ndarray]:
    """Every traced setting per agent (agent = grid_index * seeds + seed_index)."""
    per_point = [{**{k: config[k] for k in ft.HPARAM_DEFAULTS}, **point} for point in points]
    for point in per_point:
        ft.validate_hparams(point)
    return {
        key: np.repeat(np.array([p[key] for p in per_point], np.float32), seeds) for key in ft.HPARAM_DEFAULTS
    }


def bytes_per_agent(config: dict, env: envs.Env) -> dict[str, int]:
    """Estimated device memory of one agent: state that lives through the run plus the
    working set of one update. Shapes only; nothing is compiled or allocated."""
    num_envs = config["NUM_ENVS"]
    obs_in = env.obs_dim + env.privileged_dim
    nets = ft.make_networks(config, env.action_dim)  # the architecture the run trains (AGENT, SIM_TYPE)
    key = jax.random.PRNGKey(0)
    actor_params = jax.eval_shape(nets.actor.init, key, jnp.zeros((1, env.obs_dim)))
    critic_inputs = jnp.zeros((1, obs_in)), jnp.zeros((1, env.action_dim))
    critic_params = jax.eval_shape(nets.critic.init, key, *critic_inputs)
    size = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))  # noqa: E731
    # Actor: params + 2 Adam moments; twin critics: params, target and 2 moments.
    networks = 3 * size(actor_params) + 2 * 4 * size(critic_params)
    one_env_state = size(jax.eval_shape(env.reset, key))  # traced once: an MJX reset traces for seconds
    env_state = num_envs * one_env_state
    eval_state = max(config["NUM_EVAL_ENVS"], 1) * one_env_state
    h = config["CRITIC_HIDDEN_DIM"]
    batch = config["BATCH_SIZE"]
    sample = config["NUM_UPDATES"] * batch * (2 * obs_in + env.action_dim + 4) * 4
    # Twin critics forward and backward plus the target pass: activations of each layer.
    activations = 3 * 2 * batch * (h + h // 2 + h // 4 + 3 * config["NUM_ATOMS"]) * 4
    return {
        "replay": ft.replay_bytes(config, env),
        "networks": networks,
        "env_states": 2 * env_state + 2 * eval_state,  # the auto-reset builds a fresh state too
        "update": sample + activations,
    }


def free_device_memory(devices) -> int:
    """Bytes free for new buffers on the first device (host RAM on CPU)."""
    stats = devices[0].memory_stats() if devices[0].platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_chunk(per_agent: int, free: int, num_devices: int, total: int, requested: int | None) -> int:
    """Agents per device call: what fits in 70% of each device's free memory (or `requested`),
    rounded up to a multiple of the devices so every device gets the same share."""
    if requested is None:
        fits = int(0.7 * free) // per_agent
        if fits < 1:
            raise MemoryError(
                f"one agent needs about {per_agent / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB "
                "is free on the device; lower NUM_ENVS, BUFFER_SIZE or BATCH_SIZE with --set"
            )
        per_device = min(fits, -(-total // num_devices))
    else:
        per_device = -(-min(requested, total) // num_devices)
    return per_device * num_devices


def pending_ranges(done: set[int], total: int, chunk: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges of at most `chunk` agents not yet finished."""
    todo = [a for a in range(total) if a not in done]
    ranges = []
    for agent in todo:
        if ranges and agent == ranges[-1][1] and agent - ranges[-1][0] < chunk:
            ranges[-1] = (ranges[-1][0], agent + 1)
        else:
            ranges.append((agent, agent + 1))
    return ranges


def finished_agents(combo_dir: pathlib.Path) -> set[int]:
    """Agents whose results file is on disk. An unreadable one stops the sweep: it is neither
    trusted nor silently recomputed over."""
    done: set[int] = set()
    for path in sorted(combo_dir.glob("agents_*.npz")):
        try:
            with np.load(path) as data:
                agents = data["agent"]
                for name in METRICS:  # reads every array: a damaged member fails its CRC here
                    data[f"metric_{name}"]
        except Exception as error:
            raise checkpoints.CorruptFileError(
                f"results file {path} is unreadable ({type(error).__name__}: {error}). Sweeps write "
                "results atomically, so it was damaged afterwards. Delete it to train those agents "
                "again, or restore it from a copy, then rerun the same command."
            ) from None
        done.update(int(a) for a in agents)
    return done


# ==================================================================================================
# RUN
# ==================================================================================================
def init_distributed(args: argparse.Namespace) -> None:
    """With --distributed, joins the other processes before JAX starts a backend. Unset
    --coordinator/--num-processes/--process-id are detected from the cluster environment."""
    if not args.distributed or jax.distributed.is_initialized():
        return
    if jax.config.jax_cpu_collectives_implementation != "mpi":
        # CPU processes exchange arrays over gloo; GPU and TPU backends ignore this setting.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        heartbeat_timeout_seconds=args.heartbeat_timeout,
    )


def _global_arrays(tree, mesh):
    """Numpy arrays, identical on every process, as jax.Arrays sharded over the agent axis of
    `mesh`: each process places only the rows of its own devices (jit refuses numpy inputs with
    a non-trivial sharding when devices belong to several processes)."""
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
    place = lambda x: jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])  # noqa: E731
    return jax.tree.map(place, tree)


class CallPrograms:
    """The two compiled programs of one static combination, vmapped over calls of `num_agents`
    agents and sharded over all devices: `init` starts new agents, `run(state)` trains them one
    more evaluation. Construction traces `init` once, which gives the state's shapes (what a
    checkpoint holds, how one is placed back); `compile` builds both side by side before the first
    call (init only when some call starts from scratch). Every call advances one evaluation at a
    time with the same `run` program, checkpointed or not, stopped and resumed or not, so a resumed
    call equals an uninterrupted one bit for bit, and a stop request is honoured at the next
    evaluation. `progress` and `heartbeat` are host callbacks (see `ft.make_train_loop`)."""

    def __init__(self, config: dict, mesh, num_agents: int, progress=None, heartbeat=None):
        self.loop = ft.make_train_loop(config, progress, heartbeat)
        agents = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
        shared = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        self.state_sharding = jax.tree.map(
            lambda axis: agents if axis == 0 else shared, ft.RUNNER_AXES, is_leaf=lambda x: x is None
        )
        init = jax.jit(
            jax.vmap(self.loop.init, out_axes=ft.RUNNER_AXES),
            in_shardings=(agents, agents),
            out_shardings=self.state_sharding,
        )
        start = time.perf_counter()
        per_agent = functools.partial(jax.ShapeDtypeStruct, sharding=agents)
        rngs = per_agent((num_agents, 2), jnp.uint32)
        hp = {key: per_agent((num_agents,), jnp.float32) for key in ft.HPARAM_DEFAULTS}
        self._lowered_init = init.lower(rngs, hp)  # tracing init traces the env reset: done once
        self._state_template = self._lowered_init.out_info
        self._init = self._run = None  # compiled by `compile`
        self._agents, self._shared = agents, shared
        self.compile_seconds = time.perf_counter() - start

    def _run_jit(self):
        run = jax.vmap(
            functools.partial(self.loop.run, num_evals=1),
            in_axes=(ft.RUNNER_AXES,),
            out_axes=(ft.RUNNER_AXES, 0),
        )
        return jax.jit(
            run,
            in_shardings=(self.state_sharding,),
            out_shardings=(self.state_sharding, self._agents),
            donate_argnums=0,  # the state is replaced, never read again: reuse its memory
        )

    def compile(self, with_init: bool = True) -> None:
        """Compiles `run`, and `init` if `with_init` (a sweep whose calls all resume from
        checkpoints never starts an agent), at once. XLA compiles outside the GIL, so the env's
        reset (in init) and its step (in run), tens of seconds each for an MJX robot, compile
        side by side."""
        start = time.perf_counter()
        lowered = {"run": self._run_jit().lower(self._state_template)}
        if with_init:
            lowered["init"] = self._lowered_init
        with concurrent.futures.ThreadPoolExecutor(len(lowered)) as pool:
            compiled = dict(zip(lowered, pool.map(lambda program: program.compile(), lowered.values())))
        self._run, self._init = compiled["run"], compiled.get("init")
        self.compile_seconds += time.perf_counter() - start

    def init(self, rngs: np.ndarray, hparams: dict[str, np.ndarray]):
        """New agents from every row's PRNG key and traced settings (NumPy, whole on every process)."""
        return self._init(*_global_arrays((rngs, hparams), self._agents.mesh))  # compiled by `compile`

    def run(self, state):
        """One more evaluation of every agent of the call: (state, that evaluation's metrics)."""
        return self._run(state)

    def state_bytes(self) -> int:
        """Bytes of a call's complete state: what one checkpoint holds."""
        return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(self._state_template))

    def place_state(self, leaves: list[np.ndarray]):
        """The sharded state of a call from this process's rows of every leaf (what
        `checkpoints.save_checkpoint` saved), refused when they do not fit this config's state.
        The eval counter is the only unbatched (scalar) leaf."""
        specs, treedef = jax.tree.flatten(self._state_template)
        checkpoints.check_state_fits(leaves, specs)
        placed = []
        for leaf, spec in zip(leaves, specs):
            sharding = self._agents if spec.ndim else self._shared
            placed.append(
                jax.make_array_from_process_local_data(sharding, leaf.astype(spec.dtype), spec.shape)
            )
        return jax.tree.unflatten(treedef, placed)


def _concat_metrics(history: list[dict]) -> dict:
    return {name: np.concatenate([h[name] for h in history], axis=1) for name in history[0]}


def _wait(tree):
    """Blocks until `tree` is computed. On an accelerator a call returns at once and the main
    thread waits here, polling, where the watchdog sees it; on the CPU the call itself computes."""
    for leaf in jax.tree.leaves(tree):
        while not leaf.is_ready():
            time.sleep(0.05)
    return tree


class Interrupted(Exception):
    """A sweep stopped at a safe point after SIGINT or SIGTERM."""


class StopRequest:
    """SIGINT/SIGTERM that act whatever the main thread is doing.

    Python runs signal handlers in the main thread between bytecodes, so while that thread waits
    inside XLA (compiling, or in a device call) a handler would wait too. Here the C-level
    handler only writes the signal to a socket (`signal.set_wakeup_fd`) and a daemon thread acts
    on it at once: the first signal asks the sweep to stop at the next evaluation, with a
    checkpoint of the running call and every finished result written; a second ends the process
    at once (exit 130, or 143 for SIGTERM), losing only the running call's work since its last
    checkpoint (writes are atomic, so no file is left half-written). Under a supervisor
    (supervise.py) the signals come from it, through a pipe, and this process ignores its own."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal_name: str | None = None
        self.resume_hint = ""
        self._sockets = None

    def install(self, resume_hint: str) -> None:
        """From the main thread, before the sweep starts. Where the process already has a wakeup
        fd (an event loop's: sweep.main called from a notebook kernel), signals stay the host's."""
        self.resume_hint = resume_hint
        if threading.current_thread() is not threading.main_thread():
            return
        if supervise.is_child():
            for sig in self.SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            forwarded = supervise.forwarded_signals()
            self._start_listening(lambda: os.read(forwarded, 64))
            return
        receiver, sender = socket.socketpair()
        sender.setblocking(False)
        previous = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
        if previous != -1:
            signal.set_wakeup_fd(previous)
            receiver.close()
            sender.close()
            return
        self._sockets = (receiver, sender)
        for sig in self.SIGNALS:
            signal.signal(sig, lambda signum, frame: None)  # acted on by the thread below
        self._start_listening(lambda: receiver.recv(64))

    def _start_listening(self, read) -> None:
        """A daemon thread acts on each signal number that `read()` returns, until it returns none."""
        threading.Thread(target=self._listen, args=(read,), daemon=True, name="stop-request").start()

    def _listen(self, read) -> None:
        while signums := read():
            for signum in signums:
                if signum in self.SIGNALS:
                    self._on_signal(signal.Signals(signum).name)

    def _on_signal(self, name: str) -> None:
        if self.signal_name is None:
            self.signal_name = name
            print(
                f"\n{name}: stopping after the running evaluation, with a checkpoint of the running "
                "call and every finished result written. Send it again to stop at once.",
                flush=True,
            )
            return
        print(
            f"\n{name} again: stopped at once; finished agents and the last checkpoints are kept, "
            f"the running call's later work is lost; {self.resume_hint}",
            flush=True,
        )
        os._exit(143 if name == "SIGTERM" else 130)

    def requested(self) -> bool:
        """Whether any process was asked to stop (all processes must stop at the same call)."""
        asked = np.array([self.signal_name is not None], np.int32)
        if jax.process_count() > 1:
            asked = _allgather(asked, "agreeing whether to stop")
        return bool(np.max(asked))


class Watchdog:
    """Speaks up when a sweep shows no sign of life for `seconds`: what it is doing, for how
    long, and where its main thread is. Signs of life are heartbeats from inside device calls,
    finished evaluations and each new stage (`doing`). It only reports; it stops nothing."""

    def __init__(self):
        self.seconds: float | None = None
        self.what = "starting"
        self.last = time.monotonic()
        self._main = threading.main_thread()

    @contextlib.contextmanager
    def watching(self, seconds: float):
        """Watches while the block runs; the thread ends with it (a notebook that called
        `sweep.main` goes on without a watchdog reporting its idle kernel)."""
        self.seconds = seconds
        self.beat()
        stopped = threading.Event()
        thread = threading.Thread(target=self._watch, args=(stopped,), daemon=True, name="watchdog")
        thread.start()
        try:
            yield self
        finally:
            stopped.set()
            thread.join()
            self.seconds = None

    def doing(self, what: str) -> None:
        self.what = what
        self.beat()

    def beat(self) -> None:
        self.last = time.monotonic()

    def silence(self) -> str | None:
        """The report to print now, if the sweep has been silent for `seconds` or more."""
        quiet = time.monotonic() - self.last
        if self.seconds is None or quiet < self.seconds:
            return None
        frame = sys._current_frames().get(self._main.ident)
        stack = traceback.extract_stack(frame) if frame is not None else []
        ours = [f for f in stack if _is_ours(f.filename)]
        places = [f"{pathlib.Path(f.filename).name}:{f.lineno} {f.name}" for f in (ours[-1:] + stack[-1:])]
        return (
            f"watchdog: no progress for {quiet:.0f} s while {self.what}; the main thread is at "
            f"{', inside '.join(dict.fromkeys(places)) or 'an unknown place'}. Still waiting (--watchdog "
            "sets this interval)."
        )

    def _watch(self, stopped: threading.Event) -> None:
        while not stopped.wait(min(self.seconds, 5.0)):
            report = self.silence()
            if report:
                print(report, flush=True)
                self.beat()  # the next report comes after another silent interval


def _is_ours(filename: str) -> bool:
    """A file of this project (not of an installed package, even in a venv inside it)."""
    return pathlib.Path(filename).is_relative_to(ROOT) and "site-packages" not in filename


def _reporters(printer: ft.ProgressPrinter | None):
    """(progress, heartbeat) callbacks for the train loop: each beats the watchdog, and prints
    through `printer` unless the sweep is --quiet."""

    def progress(chunk):
        WATCHDOG.beat()
        if printer is not None:
            printer(chunk)

    def heartbeat(done):
        WATCHDOG.beat()
        if printer is not None:
            printer.heartbeat(done)

    return progress, heartbeat


def cpu_size_warning(config: dict, platform: str) -> str | None:
    """A warning when a config sized for a GPU is about to run on a CPU, naming what to shrink."""
    big = {key: config[key] for key, limit in CPU_SIZE_LIMITS.items() if config[key] > limit}
    if platform != "cpu" or not big:
        return None
    sizes = ", ".join(f"{key}={value}" for key, value in big.items())
    smaller = " ".join(f"--set {key}={CPU_SIZE_LIMITS[key]}" for key in big)
    return (
        f"{sizes} {'is' if len(big) == 1 else 'are'} GPU-sized: on a CPU one evaluation interval "
        f"(EVAL_INTERVAL={config['EVAL_INTERVAL']} iterations) can take hours. The progress lines "
        f"below give the measured rate and an estimate. For a CPU run, shrink them, e.g. {smaller} "
        "(smaller, not tuned for learning), and EVAL_INTERVAL."
    )


STOP = StopRequest()
WATCHDOG = Watchdog()


def _to_host(tree):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        try:
            tree = multihost_utils.process_allgather(tree, tiled=True)
        except (jax.errors.JaxRuntimeError, ValueError) as error:
            raise _lost("gathering results", error) from None
    return jax.tree.map(np.asarray, tree)


def _flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        flat[f"{prefix}{name}"] = leaf
    return flat


def _environment() -> dict:
    return provenance.run_environment()


# ==================================================================================================
# AGREEING ACROSS PROCESSES
# ==================================================================================================
# What a process reads from disk or measures can differ from another's (hosts need not share the
# results folder), so every decision that shapes the programs or the collectives is taken once,
# the same on every process. A step that can fail on one process only (a file it reads, its disk,
# its device memory) runs inside `agreed`, whose all-gather every process reaches, failed or not:
# all processes stop together, with the same message, instead of the others waiting forever in
# the next collective. A process that dies outright is the distributed runtime's to notice: a
# process silent for --heartbeat-timeout seconds (a lost host) ends every other one with the
# runtime's message, which names it; a peer's closed connection fails the next all-gather at once
# (`ProcessLost`), and the survivor then waits for that message (VERDICT_MARGIN_S more at most).
# The supervisor (supervise.py) turns either into the final message: who was lost, how to resume.
HEARTBEAT_TIMEOUT_S = 60
VERDICT_MARGIN_S = 15  # past the heartbeat timeout: the runtime's detection and error propagation
CAUSE_BYTES = 2048  # of each process's error message, shared by `agreed`
HOST_BYTES = 256  # of each process's host name, shared by `agreed_hosts`


class ProcessLost(RuntimeError):
    """A collective failed: another process died, or its host was lost."""


def _allgather(values: np.ndarray, what: str) -> np.ndarray:
    """[processes, ...]: `values` (int32 or uint8, the same shape everywhere) of every process."""
    from jax.experimental import multihost_utils

    try:
        return np.asarray(multihost_utils.process_allgather(values))
    except (jax.errors.JaxRuntimeError, ValueError) as error:  # gloo raises either, by stage
        raise _lost(what, error) from None


def _lost(what: str, error: Exception) -> ProcessLost:
    return ProcessLost(
        f"lost contact with another process while {what} ({str(error).splitlines()[0]}): it died or "
        "its host was lost"
    )


def agreed(what: str, step, advice: str = ""):
    """`step()`'s result on this process, once every process has run its own `step()`. If it
    failed on any process, every process raises the same ValueError: `what`, each failed
    process and its error, then `advice`. A single process raises its own error unchanged."""
    if jax.process_count() == 1:
        return step()
    result, cause = None, ""
    try:
        result = step()
    except Exception as error:  # shared, never swallowed: every process raises it below
        if not isinstance(error, (ValueError, MemoryError, OSError)):
            traceback.print_exc()  # a bug: its traceback, here
        cause = str(error) or type(error).__name__
    causes = _allgather_texts(cause, CAUSE_BYTES, what)
    failed = [f"process {k} of {len(causes)}: {c}" for k, c in enumerate(causes) if c]
    if not failed:
        return result
    if len(failed) == len(causes) and len(set(causes)) == 1 and not advice:
        raise ValueError(causes[0])  # the same on every process (a bad flag): as one process says it
    raise ValueError(f"{what} failed on {'; '.join(failed)}" + (f". {advice}" if advice else ""))


def _allgather_texts(text: str, size: int, what: str) -> list[str]:
    """Every process's `text`, its first `size` bytes."""
    encoded = np.frombuffer(text.encode()[:size], np.uint8)
    buffer = np.zeros(size, np.uint8)
    buffer[: len(encoded)] = encoded
    return [bytes(row).rstrip(b"\0").decode(errors="replace") for row in _allgather(buffer, what)]


def agreed_hosts() -> list[str]:
    """Every process's host name, by process index: how a lost process is named."""
    return _allgather_texts(socket.gethostname(), HOST_BYTES, "sharing host names")


def _process_0_view(values: np.ndarray, what: str) -> np.ndarray:
    """Process 0's copy of an int32 array that every process holds in the same shape: what it
    reads from the results folder, which other hosts may not share."""
    return values if jax.process_count() == 1 else _allgather(values, what)[0]


def _process_0_int64(values: list[int], what: str) -> np.ndarray:
    """Process 0's copy of int64 `values` (sizes and checksums that int32 cannot hold)."""
    return _process_0_view(np.array(values, np.int64).view(np.int32), what).view(np.int64)


def _least_free_memory(free: int) -> int:
    """The smallest free memory of any process, so that every process picks the same chunk."""
    if jax.process_count() == 1:
        return free
    mib = _allgather(np.array([min(free >> 20, 2**31 - 1)], np.int32), "measuring free memory")
    return int(np.min(mib)) << 20


def agreed_finished_agents(folder: pathlib.Path, total: int) -> set[int]:
    """The agents of a combination (of `total`) whose results process 0 finds in `folder`."""

    def read() -> np.ndarray:
        finished = finished_agents(folder) if jax.process_index() == 0 else set()
        return np.isin(np.arange(total), list(finished)).astype(np.int32)

    what = f"reading the results in {folder}"
    return set(np.flatnonzero(_process_0_view(agreed(what, read), what)).tolist())


def agreed_call_size(requested: int | None, calls_file: pathlib.Path) -> int | None:
    """Agents per call: the size the combination started with, as process 0 reads it from
    calls.json, else `requested` (--chunk); None to size calls by free memory. A resumed sweep
    keeps its call size (vmapped batches of another size round differently, and rounding
    differences grow over a long run), so a --chunk that differs from calls.json is refused."""

    def read() -> int:
        if jax.process_index() != 0 or not calls_file.exists():
            return 0
        return json.loads(calls_file.read_text())["agents_per_call"]

    what = f"reading {calls_file}"
    stored = int(_process_0_view(np.array([agreed(what, read)], np.int32), what)[0])
    if requested is not None and stored and requested != stored:
        raise ValueError(
            f"--chunk {requested}: this combination started with {stored} agents per call "
            f"({calls_file}), and a resumed sweep keeps its call size so that it trains as an "
            f"uninterrupted one. Drop --chunk (or pass --chunk {stored}) to resume, or choose a new "
            f"--out to start over with {requested} agents per call."
        )
    return stored or requested


# ==================================================================================================
# THE SWEEP, STEP BY STEP
# ==================================================================================================
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
    combos = grid_points(looped)
    points = [
        {**point, **drawn}
        for point in grid_points(grid)
        for drawn in search.sample_points(space, args.samples or 1, args.seed)
    ]
    out = pathlib.Path(args.out or f"results/{args.env}")
    configs = [ft.make_config(args.env, **{**fixed, **combo}) for combo in combos]
    plans = [_search_plan(args, space, config, len(points) * args.seeds) for config in configs]
    hparams = [agent_hparams(config, points, args.seeds) for config in configs]
    for hp, plan in zip(hparams, plans):  # a replayed schedule starts at its first entry
        for key, value in (plan.schedule["settings"][0] if plan.schedule else {}).items():
            hp[key] = np.full_like(hp[key], value)
    spec = {
        "format": FORMAT,
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
    checkpoint: pathlib.Path  # this process's checkpoint of the call

    @property
    def name(self) -> str:
        return f"agents {self.lo}-{self.hi - 1}"


def plan_calls(args: argparse.Namespace, combo: Combination, done: set[int]) -> list[Call]:
    """The calls that train a combination's unfinished agents: as many agents per call as fit in
    the least free memory of any process, or as asked for (`agreed_call_size`), over every device
    of every process. Records the call size in calls.json and prints the plan."""
    devices, total = jax.devices(), combo.num_agents
    memory = bytes_per_agent(combo.config, envs.make_env(combo.config))
    per_agent = sum(memory.values())
    free = _least_free_memory(free_device_memory(jax.local_devices()))
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
    if done:
        print(f"{combo.label}: resuming, {len(done)} of {total} agents already finished")
    warning = cpu_size_warning(combo.config, devices[0].platform)
    if warning:
        print(f"{combo.label}: WARNING: {warning}", flush=True)
    calls = []
    for lo, hi in pending_ranges(done, total, chunk):
        agents = np.arange(lo, hi)
        rows = np.concatenate([agents, np.full(chunk - len(agents), agents[-1])])
        calls.append(Call(lo, hi, rows, checkpoints.checkpoint_path(combo.folder, lo, hi)))
    return calls


def compile_calls(
    args: argparse.Namespace, combo: Combination, mesh: jax.sharding.Mesh, calls: list[Call]
) -> tuple[CallPrograms, list[pathlib.Path | None]]:
    """(the combination's programs, compiled; the checkpoint file each call resumes from, on this
    process, or None). With --checkpoint-every, first refuses a disk (any process's) without room
    for two checkpoints."""
    chunk = len(calls[0].rows)
    printer = None if args.quiet else ft.ProgressPrinter(combo.config)
    WATCHDOG.doing(f"tracing and compiling {combo.label}")
    resumes = [agreed_resume_point(combo, call) for call in calls]
    programs = CallPrograms(combo.config, mesh, chunk, *_reporters(printer))
    if args.checkpoint_every:
        processes = jax.process_count()

        def check_disk():
            combo.folder.mkdir(parents=True, exist_ok=True)  # each process writes its own parts
            checkpoints.check_disk(combo.folder, programs.state_bytes() // processes, chunk // processes)

        agreed(f"checking the disk of {combo.folder}", check_disk)
    programs.compile(with_init=None in resumes)
    print(f"{combo.label}: compiled in {programs.compile_seconds:.1f} s", flush=True)
    return programs, resumes


def agreed_resume_point(combo: Combination, call: Call) -> pathlib.Path | None:
    """The checkpoint file this process resumes `call` from, or None to start it anew. A single
    process resumes from its file if there is one. Several resume from the checkpoint process 0's
    manifest names, once every process has found its part of it whole (bytes and CRC-32 as the
    manifest says); a missing or damaged part stops every process with the same message. Parts
    no manifest names (a kill before the manifest was written) are ignored. A checkpoint written
    by another number of processes is refused (`_written_by_others`)."""
    manifest = checkpoints.manifest_path(combo.folder, call.lo, call.hi)
    processes, process = jax.process_count(), jax.process_index()
    if processes == 1:
        if manifest.exists():
            written = checkpoints.read_manifest(manifest)
            raise _written_by_others(call, manifest, len(written["parts"]), written["evals_done"])
        return call.checkpoint if call.checkpoint.exists() else None

    def read() -> list[int]:  # evals, then the bytes and CRC-32 of each process's part
        if process != 0 or not manifest.exists():
            if process == 0 and call.checkpoint.exists():
                raise _written_by_others(call, call.checkpoint, 1)
            return [0] * (1 + 2 * processes)
        written = checkpoints.read_manifest(manifest)
        if len(written["parts"]) != processes:
            raise _written_by_others(call, manifest, len(written["parts"]), written["evals_done"])
        return [written["evals_done"], *(v for p in written["parts"] for v in (p["bytes"], p["crc32"]))]

    what = f"reading the checkpoint manifest of {call.name}"
    row = _process_0_int64(agreed(what, read), what)
    evals = int(row[0])
    if not evals:
        return None
    part = checkpoints.part_path(combo.folder, call.lo, call.hi, evals, process)

    def check() -> None:
        expected = {"bytes": int(row[1 + 2 * process]), "crc32": int(row[2 + 2 * process])}
        cause = checkpoints.check_part(part, expected)
        if cause:
            raise checkpoints.CorruptFileError(cause)

    agreed(
        f"resuming {call.name} from their checkpoint at eval {evals} ({manifest.name})",
        check,
        advice="Every process needs its part of the checkpoint its manifest names: restore the part, "
        f"or delete the call's checkpoint files ({manifest.stem}*) on every host to train its agents "
        "from the start, then rerun the same command",
    )
    return part


def _written_by_others(call: Call, path: pathlib.Path, writers: int, evals: int | None = None) -> ValueError:
    """The refusal of a checkpoint (`path`: its manifest, or one process's file) that `writers`
    processes wrote: each wrote its own rows of the call's state, so only as many resume it."""
    count = lambda n: "one process" if n == 1 else f"{n} processes"
    how = "without --distributed" if writers == 1 else f"with --distributed in {writers} processes"
    at = f" at eval {evals}" if evals else ""
    return ValueError(
        f"{call.name} have a checkpoint{at} written by {count(writers)} ({path}), and this sweep "
        f"runs {count(jax.process_count())}: a checkpoint resumes only in as many processes as wrote "
        f"it. Run the same command {how} to resume it, or delete the call's checkpoint files "
        f"({path.stem}*) on every host to train its agents from the start"
    )


def save_call_checkpoint(combo: Combination, call: Call, state, metrics: dict, meta: dict) -> None:
    """The running call's checkpoint at eval `meta["evals_done"]`: one file from a single
    process. With several, each process writes its part; once all have, process 0 writes the
    manifest that commits them; then each process deletes its parts of the previous checkpoint
    (see checkpoints.py)."""
    if jax.process_count() == 1:
        checkpoints.save_checkpoint(call.checkpoint, state, metrics, meta)
        return
    evals, process, folder = meta["evals_done"], jax.process_index(), combo.folder
    names = [
        checkpoints.part_path(folder, call.lo, call.hi, evals, k).name for k in range(jax.process_count())
    ]

    def write_part() -> np.ndarray:
        part = folder / names[process]
        checkpoints.save_checkpoint(part, state, metrics, meta)
        checkpoints.kill_if_asked(process, evals)
        return np.array(checkpoints.checksum(part), np.int64)

    what = f"writing the checkpoint of {call.name} at eval {evals}"
    written = _allgather(agreed(what, write_part).view(np.int32), what).view(np.int64)
    parts = [{"name": n, "bytes": int(b), "crc32": int(c)} for n, (b, c) in zip(names, written)]
    manifest = checkpoints.manifest_path(folder, call.lo, call.hi)
    agreed(what, lambda: process == 0 and checkpoints.write_manifest(manifest, evals, parts))
    checkpoints.remove_old_parts(folder, call.lo, call.hi, process, keep_evals=evals)


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
) -> CallOutcome:
    """Trains a call's agents one evaluation at a time, from the start or from its checkpoint.
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
        history.append(_to_host(metrics))
        evals += 1
        run_s = run_before + time.perf_counter() - t0
        if evals == num_evals:
            break
        returns = np.concatenate([h["eval_return"] for h in history], axis=1)
        state = between.after_eval(state, evals, returns)  # PBT step or a schedule's next settings
        stop = STOP.requested()
        if stop or (args.checkpoint_every and evals % args.checkpoint_every == 0):
            history = [_concat_metrics(history)]
            meta = {"evals_done": evals, "run_seconds": run_s, **between.checkpoint_meta()}
            save_call_checkpoint(combo, call, state, history[0], meta)
        if stop:
            raise Interrupted(f"stopped at eval {evals}/{num_evals} of {call.name}, checkpoint saved")
    return CallOutcome(state, _concat_metrics(history), between.results(call.hi - call.lo), run_s, resumed_at)


def _evaluate(programs: CallPrograms, state):
    """One more evaluation, computed (a device error, out of memory say, is raised here)."""
    state, metrics = programs.run(state)
    return state, jax.block_until_ready(_wait(metrics))


def write_call_results(
    args: argparse.Namespace, combo: Combination, call: Call, outcome: CallOutcome, compile_seconds: float
) -> list[int]:
    """Writes a finished call's results file (process 0; the format is in this module's
    docstring), then, once it is written, removes its checkpoint (each process its own files).
    Returns the agents with non-finite losses or returns."""
    WATCHDOG.doing(f"writing the results of {call.name}")
    agents = np.arange(call.lo, call.hi)
    n = len(agents)
    metrics = {name: values[:n] for name, values in outcome.metrics.items()}
    metrics["env_steps"] = np.tile(ft.env_steps_at_evals(combo.config), (n, 1))  # int64, exact
    flagged = agents[
        ~finite_agents({"agent": agents, **{f"metric_{k}": v for k, v in metrics.items()}})
    ].tolist()
    meta = {
        **_environment(),
        "compile_seconds": compile_seconds,
        "run_seconds": outcome.run_seconds,
        "resumed_at_eval": outcome.resumed_at,
        "nonfinite_agents": flagged,
    }
    final_hparams = _to_host(outcome.state.hparams)  # PBT and schedules change them as they go
    arrays = {
        "agent": agents,
        "grid_index": agents // args.seeds,
        "seed_index": agents % args.seeds,
        **{f"hparam_{key}": final_hparams[key][:n] for key in ft.HPARAM_DEFAULTS},
        **{f"metric_{name}": metrics[name] for name in METRICS},
        **outcome.searched,
        "meta": np.array(json.dumps(meta)),
    }
    if args.save_policies:
        ts = outcome.state.train_state
        policies = _to_host({"actor_params": ts.actor_params, "obs_norm": ts.obs_norm._asdict()})
        arrays.update(_flatten(jax.tree.map(lambda x: x[:n], policies), "policy_"))
    results = combo.folder / f"agents_{call.lo:06d}-{call.hi:06d}.npz"
    agreed(f"writing {results}", lambda: jax.process_index() == 0 and checkpoints.write_npz(results, arrays))
    this_call = lambda lo, hi: (lo, hi) == (call.lo, call.hi)  # noqa: E731
    checkpoints.remove_checkpoints(combo.folder, jax.process_index(), this_call)  # its results are on disk
    return flagged


def run_combination(
    args: argparse.Namespace, combo: Combination, mesh: jax.sharding.Mesh, started: float
) -> None:
    """Trains and writes a combination's unfinished agents, call by call; `started` is when the
    sweep started, for the elapsed time."""
    process = jax.process_index()

    def write_config():
        if process == 0:
            combo.folder.mkdir(exist_ok=True)
            checkpoints.write_json(combo.folder / "config.json", combo.config)

    agreed(f"writing {combo.folder / 'config.json'}", write_config)
    done = agreed_finished_agents(combo.folder, combo.num_agents)
    # What a kill left: partial writes, and checkpoints of calls whose results were written.
    finished = lambda lo, hi: done.issuperset(range(lo, hi))  # noqa: E731
    removed = checkpoints.remove_partial_writes(combo.folder, process)
    removed += checkpoints.remove_checkpoints(combo.folder, process, finished)
    if removed:
        print(
            f"{combo.label}: removed {', '.join(removed)} (partial writes, or checkpoints of finished calls)"
        )
    if len(done) == combo.num_agents:
        print(f"{combo.label}: all {combo.num_agents} agents already finished, skipped")
        return
    calls = plan_calls(args, combo, done)
    programs, resumes = compile_calls(args, combo, mesh, calls)
    for k, (call, resume_from) in enumerate(zip(calls, resumes)):
        outcome = run_call(args, combo, programs, call, resume_from)
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


def run_sweep(args: argparse.Namespace, cpu_layout: CpuLayout | None = None) -> pathlib.Path:
    """The sweep `args` describe; `cpu_layout` is the host device count main chose (reported on CPU)."""
    init_distributed(args)
    if jax.process_count() > 1:
        supervise.report(jax.process_index(), jax.process_count(), agreed_hosts())
    # Heartbeats come from the first device, which process 0 holds: only it watches.
    watch = jax.process_index() == 0 and args.watchdog
    with WATCHDOG.watching(args.watchdog) if watch else contextlib.nullcontext():
        return _sweep(args, cpu_layout)


def _sweep(args: argparse.Namespace, cpu_layout: CpuLayout | None) -> pathlib.Path:
    sweep = agreed("planning the sweep", functools.partial(plan_sweep, args))

    def write_spec():
        if jax.process_index() == 0:  # the other processes compute and write nothing
            sweep.out.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_partial_writes(sweep.out, 0)
            checkpoints.write_json(sweep.out / "sweep.json", sweep.spec)

    agreed(f"writing {sweep.out / 'sweep.json'}", write_spec)
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
    for combo in sweep.combinations:
        if combo.index > 0 and STOP.requested():
            raise Interrupted(f"stopped before static combination {combo.index + 1}/{num_combos}")
        run_combination(args, combo, mesh, started)
    return sweep.out


# ==================================================================================================
# SUMMARY
# ==================================================================================================
def summarize(out: pathlib.Path, solved_at: float | None = None) -> list[dict]:
    """Prints and writes (summary.csv) the ranked per-grid-point table of final eval returns.

    Ranked by the fraction of seeds that solve the task, then IQM, so a grid point that loses
    seeds never reads as the winner. `solved_at` overrides the task's SOLVED_THRESHOLDS entry;
    without either, the success columns are left out.
    """
    sweep = load_sweep(out)
    threshold = solved_threshold(sweep["env"], solved_at)
    if threshold is None:
        print(
            f"\n{sweep['env']} has no solved threshold (plots/results.py SOLVED_THRESHOLDS): success "
            "columns left out; pass --solved-at RETURN to add them"
        )
    else:
        source = "--solved-at" if solved_at is not None else "SOLVED_THRESHOLDS"
        print(
            f"\nsolved: final eval return >= {threshold:g} ({source}); steps and run s to: the first eval "
            "at which the mean over seeds reaches it"
        )
    rows = []
    points = (sweep.get("search") or {}).get("points")
    for c, combo in enumerate(sweep["combos"]):
        table = rank_rows(grid_table(combo, threshold))
        for row in table if points else []:  # a drawn point's row names its values
            row["grid"] = {"point": row["grid"]["point"], **points[row["grid"]["point"]]}
        settings = combo.get("settings") or {}
        where = (
            f"combo {c} ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else f"combo {c}"
        )
        ranking = "solved fraction, then IQM" if threshold is not None else "IQM"
        print(f"\n{where}: final eval return over seeds, ranked by {ranking}")
        header = f"{'grid point':40s} {'seeds':>5s} {'mean':>9s} {'IQM':>9s} {'95% CI':>21s} {'min':>9s}"
        if threshold is not None:
            header += f" {'solved':>7s} {'steps to':>10s} {'run s to':>9s}"
        print(f"{header} {'non-finite':>10s}")
        for row in table:
            point = ", ".join(f"{k}={v:g}" for k, v in row["grid"].items()) or "(defaults)"
            ci = f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
            line = f"{point:40s} {row['seeds']:5d} {row['mean']:9.1f} {row['iqm']:9.1f} {ci:>21s}"
            line += f" {row['min']:9.1f}"
            if threshold is not None:
                solved = f"{round(row['solved'] * row['seeds'])}/{row['seeds']}" if row["seeds"] else "-"
                steps, seconds = row["steps_to_threshold"], row["seconds_to_threshold"]
                line += f" {solved:>7s} {_or_never(steps, 'd'):>10s} {_or_never(seconds, '.1f'):>9s}"
            print(f"{line} {row['nonfinite']:10d}")
            stats = {k: v for k, v in row.items() if k not in ("grid", "finals")}
            rows.append({"combo": c, **settings, **row["grid"], **stats})
        if (sweep.get("search") or {}).get("pbt") and combo["arrays"]:
            search.report_pbt(sweep, combo, out / f"combo_{c:03d}")
    _write_csv(out / "summary.csv", rows)
    return rows


def _or_never(value, spec: str) -> str:
    """A time to the threshold for the printed table; NaN means the mean never reached it."""
    return "never" if np.isnan(value) else format(value, spec)


def _write_csv(path: pathlib.Path, rows: list[dict]) -> None:
    """Atomic, like the results; NaN (no data, or a threshold never reached) is written as "nan"."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


# jaxlib 0.10.x (the Python 3.11 pin) splits the batch of its CPU LAPACK kernels over XLA's CPU
# thread pool (one thread per core) and blocks until the pieces are done; 0.11.2 (the Python 3.12
# pin) runs them in the calling thread. MJX's constraint solver factorizes with those kernels, so
# every Brax and Playground task calls them, for every env at once.
LAPACK_BLOCKS_POOL = tuple(int(part) for part in jaxlib.__version__.split(".")[:3]) < (0, 11, 1)


def cpu_device_count(env_name: str, cores: int) -> tuple[int, str]:
    """Host devices for a sweep on `cores` CPU cores, and why.

    One device per core spreads the agents over every core (one host device runs these small
    kernels on about one core). But each device's computation occupies a thread of the same
    pool, so on a jaxlib whose LAPACK kernels block that pool (`LAPACK_BLOCKS_POOL`) an MJX task
    with a device on every core can leave no thread to do the kernels' work: every device waits
    for it and the sweep sits at 0% CPU forever (seen with CheetahRun at the reference's sizes on
    2 cores). Those tasks leave one core's thread free. Decided by name alone (importing gymnax
    would start JAX's backends before the device count is set)."""
    if not LAPACK_BLOCKS_POOL or env_name in envs.GYMNAX_CONTINUOUS:
        return cores, "one per core"
    return max(cores - 1, 1), (
        f"one per core but one: MJX tasks on jaxlib {jaxlib.__version__} need a free CPU thread for "
        "its batched LAPACK kernels, or every device waits on them forever"
    )


class CpuLayout(NamedTuple):
    """The host device count chosen for a sweep, and why."""

    count: int
    why: str

    def report(self, devices: int) -> str:
        """What the sweep runs on: the chosen count, or the count JAX had started with before
        the sweep could set it (sweep.main called from a running Python, e.g. a notebook)."""
        if devices == self.count:
            return f"{self.count} CPU device(s), {self.why}"
        return (
            f"{devices} CPU device(s): JAX started before the sweep could choose {self.count} "
            f"({self.why}); set XLA_FLAGS=--xla_force_host_platform_device_count={self.count} "
            "before JAX starts to use them"
        )


def choose_cpu_devices(env_name: str) -> CpuLayout | None:
    """Sets XLA_FLAGS' host device count for `env_name` (`cpu_device_count`); takes effect only
    before JAX starts its backends, as in `python sweep.py`. A device count already in XLA_FLAGS
    wins (None)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return None
    layout = CpuLayout(*cpu_device_count(env_name, os.cpu_count() or 1))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={layout.count}".strip()
    return layout


def main(argv=None) -> None:
    """The command line (argv None; with --distributed under a supervisor, see supervise.py), or
    the sweep `argv` describes, in this process."""
    args = parse_args(argv)
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
        wait = args.heartbeat_timeout + VERDICT_MARGIN_S
        print(f"sweep.py: {lost}; waiting up to {wait} s for the runtime to name it", file=sys.stderr)
        supervise.await_verdict(wait)  # no shutdown barrier: it would wait for the lost process
    except Interrupted as stop:
        print(f"{STOP.signal_name}: {stop}; every finished agent is written; {resume}", flush=True)
        sys.exit(143 if STOP.signal_name == "SIGTERM" else 130)
    if jax.process_index() != 0:
        return  # process 0 writes the summary and the plots
    summarize(out, args.solved_at)
    if not args.no_plots:
        from plots import draw_all
        from plots.plot_search import draw_search

        for png in draw_all(out, args.solved_at) + draw_search(out):
            print(f"wrote {png}")


if __name__ == "__main__":
    main()
