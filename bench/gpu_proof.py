"""FastTD3X on a GPU in one budgeted command: throughput, scaling, learning and a profile.

Written for a device lent for minutes (15 minutes in all, at most 10 per call, start-up
included, no network): everything it does is decided here, each result is written as JSON to
$OUT (bench/results/ when OUT is unset) as soon as it exists, and a call cut short still returns
every stage and row it finished. On the device, through the wrapper that installs the wheels:

    bash bench/gpu_proof.sh                              # stages a,b,c1,d within 540 s
    bash bench/gpu_proof.sh --stages c2 --budget-s 570   # the 10.24M-step curve, its own call
    python bench/gpu_proof.py --smoke                    # every stage on CPU, tiny (~1-2 min)

Stages (`--stages`, comma-separated, run in this order; the letters or the names):

a  iterations  Single-agent iterations/s at the reference settings (1024 envs, batch 32768,
               2 critic updates per iteration): T1JoystickFlatTerrain and CheetahRun in bfloat16,
               then both in float32. One iteration = one step of all envs, its buffer write and
               its updates, what the PyTorch reference times.
b  scaling     Agent scaling on CheetahRun, 128 envs and batch 4096 per agent, 3-step: 1, 32, 128
               and 256 vmapped agents, then the largest count that the device memory holds
               (estimated from the compiled memory of the last count, tried once more at 3/4 on
               out-of-memory).
c1 learn1      T1JoystickFlatTerrain learning at the reference settings to 5.12M env steps
               (5,000 iterations of 1024 envs), evaluating every 1,250 iterations (1,024 eval
               episodes each), compared with the published 17.50. One seed, or 4 vmapped seeds
               when the measured iteration rate says 4 fit in the time left (`--learn-seeds`).
c2 learn2      The same run to 10.24M env steps (published 23.36 there), from the start,
               evaluating every 2,500 iterations.
d  profile     One T1 iteration taken apart: the whole iteration and the warm-up iteration (act,
               simulator step, buffer write, no updates) from the stage-a program, the learner as
               their difference, buffer add and sample, the simulator step with random actions
               and the evaluation step, each jitted and timed on its own.

Timing method. Each measured program is one eval chunk of `TrainLoop.run` (the project's
resumable loop: `make_train_loop(config)`), compiled once and called again and again on the
state it returns (donated), so compilation is never inside a timed call, and the chunks before
the first timed one absorb warm-up. `bench_iterations.py` cancels compilation instead by
compiling two runs of different lengths; one compile per setting is half the device time, which
is what a 15-minute budget is short of. Reported rates are timed iterations over the summed wall
time of the timed calls. In stage a, LEARNING_STARTS is 2 chunks - 1: chunks 0 and 1 are pure
warm-up (chunk 1 times it), later chunks learn on every iteration; that changes no per-iteration
cost and lets stage d reuse the program.

Budgets. `--budget-s` (default 540, leaving 60 s of the 600 s call for the wheel install and the
transfers) counts from the start of the driver. Before each step (a task and dtype in a, an
agent count in b, an eval chunk in c, a component in d) the driver estimates the step's time
(compile + runs) from what this call measured so far, else from priors sized on the H200 figures
in shared/device/MEASURED.md, and skips the step, printing why, when it does not fit in what is
left. A stage whose first step does not fit is recorded as skipped. Every stage file says
`status`: complete, partial (a step skipped or stopped), skipped or error (traceback kept; the
next stage still runs).

Stage c across calls: not resumed. The project's checkpoints (`sweep.py --checkpoint-every`) save
complete states, and one T1 state holds its 8.6 GB replay buffer: it cannot come back from $OUT
(a call returns small files only) nor be carried into the next call (64 MiB). So c1 writes the
5.12M curve, and c2 trains 10.24M in one call from the start: before starting it estimates its
time from the iteration rate measured in this call, in $OUT, or in bench/results/ (an earlier
call's committed files for the same device), and when that exceeds the time left it trains
nothing and records the time it would need. Both learn stages write the curve after every
evaluation, so a cut call keeps the evaluations it reached. At 22.5 ms per iteration (the H200
bound of MEASURED.md) c2 is 225 s of training, 4 evaluations (up to 16 s each) and about two
minutes of compilation: it fits one call, alone, unless our iteration is much slower than that
bound (at 30 ms it needs about 560 s; `--learn2-anyway` starts it regardless, and it then stops
at the last evaluation that fits).

Not everything fits one call. Measured on the first two calls (2026-11-28, logs in
bench/results/logs/): stage a in bfloat16 took 294 s on an H100 (T1 190 s, of which 69 s compiled
the chunk and 92 s compiled and ran init, before init reset its envs in one call and compiled
beside the chunk; CheetahRun 104 s); b took 150 s for 128 agents on an H200 (108 s of it compiling
both programs); c1 reached 1 of its 4 evaluations in the time left (compile 103 s, init 98 s,
56 s per 1,250-iteration chunk with its evaluation) and needs about 430 s alone at those costs.
With 15 minutes of device time in all (start-up included), the plan that keeps what is still
missing:

    call 1: bash bench/gpu_proof.sh --stages c1,d --budget-s 550                (timeout 600)
    call 2: --stages a,b --dtypes bfloat16 --agents 1,32,256 on an H200 (same card as the
            reference's figures); later --stages c2 --budget-s 570

`--dtypes`, `--agents 1,32,128,256` and `--no-largest` narrow stages a and b.

Results: $OUT/gpu_proof_<stage>_<device>.json, each with `schema`, `stage`, `status`, `smoke`,
the provenance of common.environment() (`device`, `versions`, ...), `settings` (what was asked),
`numbers` (one row per measured step), `notes`, and the call's clock (`budget_s`,
`stage_started_at_s`, `stage_seconds`). `bench/benchmarks_table.py` turns committed files into
the README's Benchmarks section. `--smoke` runs every stage on CPU with Pendulum-v1 and tiny
networks (same code paths, same schema; $OUT defaults to a new temporary folder) and checks that
the GPU stages' configs validate.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import gc
import json
import os
import pathlib
import sys
import tempfile
import time
import traceback

# The memory pool is 0.9 of the device unless set (JAX's default is 0.75), as in bench_scaling, so
# the largest agent count is found. Read when JAX starts its backend, after this point.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")

import jax
import jax.numpy as jnp
import numpy as np

import envs
import purejax_fasttd3 as ft
from bench_parity import REFERENCE_RETURNS
from bench_scaling import compiled_memory, is_out_of_memory, peak_memory
from common import RESULTS, compile_and_run, environment, write

SCHEMA = "fasttd3x-gpu-proof/1"
STAGES = ("iterations", "scaling", "learn1", "learn2", "profile")
ALIASES = {"a": "iterations", "b": "scaling", "c": "learn1", "c1": "learn1", "c2": "learn2", "d": "profile"}
DEFAULT_STAGES = "a,b,c1,d"
SMOKE_STAGES = "a,b,c1,c2,d"
DEFAULT_BUDGET_S = 540.0
DEFAULT_CACHE = "/tmp/fasttd3x-jax-cache"  # kept while the device stays warm between calls

T1, CHEETAH = "T1JoystickFlatTerrain", "CheetahRun"

# What each stage runs on the GPU.
GPU_SETTINGS = {
    "iterations": {
        "tasks": [T1, CHEETAH],
        "dtypes": ["bfloat16", "float32"],
        "overrides": {"NUM_ENVS": 1024},  # batch 32768 and 2 updates are the reference defaults
        "chunk_iterations": {T1: 100, CHEETAH: 200},
        "timed_chunks": 3,
    },
    "scaling": {
        "task": CHEETAH,
        "overrides": {"NUM_ENVS": 128, "BATCH_SIZE": 4096},
        "agents": [1, 32, 128, 256],
        "largest": True,
        "round_to": 32,
        "chunk_iterations": 100,
        "timed_chunks": 2,
    },
    "learn": {
        "task": T1,
        "overrides": {},
        # 4 evaluations each (one is up to 1000 steps of 1024 envs, ~16 s on an H200)
        "eval_interval": {"learn1": 1250, "learn2": 2500},
        "env_steps": {"learn1": 5_120_000, "learn2": 10_240_000},
        "max_seeds": 4,
    },
    "profile": {"task": T1, "dtype": "bfloat16", "overrides": {"NUM_ENVS": 1024}, "chunk_iterations": 50},
}

# Tiny CPU stand-ins: same code paths, seconds of compilation each.
_TINY = {
    "NUM_ENVS": 8,
    "NUM_EVAL_ENVS": 4,
    "BATCH_SIZE": 32,
    "BUFFER_SIZE": 64,
    "CRITIC_HIDDEN_DIM": 32,
    "ACTOR_HIDDEN_DIM": 16,
    "NUM_ATOMS": 11,
}
SMOKE_TASK = "Pendulum-v1"
SMOKE_SETTINGS = {
    "iterations": {
        "tasks": [SMOKE_TASK],
        "dtypes": ["float32"],  # bfloat16 is the same code (tests/test_settings.py runs it)
        "overrides": _TINY,
        "chunk_iterations": {SMOKE_TASK: 10},
        "timed_chunks": 1,
    },
    "scaling": {
        "task": SMOKE_TASK,
        # One agent is then stage a's float32 program, which the compilation cache returns.
        "overrides": {**_TINY, "LEARNING_STARTS": 19},
        "agents": [1],
        "largest": True,
        "round_to": 1,
        "chunk_iterations": 10,
        "timed_chunks": 1,
    },
    "learn": {
        "task": SMOKE_TASK,
        "overrides": {**_TINY, "LEARNING_STARTS": 4, "EPISODE_LENGTH": 40},
        "eval_interval": {"learn1": 10, "learn2": 10},  # one program: compiled once
        "env_steps": {"learn1": 160, "learn2": 320},
        "max_seeds": 2,
    },
    "profile": {"task": SMOKE_TASK, "dtype": "float32", "overrides": _TINY, "chunk_iterations": 10},
}

# Priors for the step estimates, used until this call has measured the real thing. GPU values come
# from the first calls' results (bench/results/gpu_proof_*_NVIDIA_*.json: T1 33 and CheetahRun 133
# iterations/s at 1024 envs on an H100; compiles of 69-108 s), rounded towards caution.
PRIORS = {
    "gpu": {
        "compile_s": {T1: 120.0, CHEETAH: 90.0},  # init and chunk, compiled side by side
        "iterations_per_s": {(T1, 1024): 33.0, (CHEETAH, 1024): 130.0, (CHEETAH, 128): 150.0},
        "eval_s": {T1: 20.0, CHEETAH: 10.0},  # one evaluation, 1024 envs, up to 1000 steps
        "component_compile_s": 60.0,  # one MJX function (reset, step, eval step) on its own
    },
    "cpu": {
        "compile_s": {},
        "iterations_per_s": {},
        "eval_s": {},
        "component_compile_s": 10.0,
        "default_compile_s": 15.0,
        "default_iterations_per_s": 50.0,
        "default_eval_s": 2.0,
    },
}


# ==================================================================================================
# CLOCK AND RECORDS
# ==================================================================================================
class Clock:
    """The call's time budget and the estimates that decide whether a step runs."""

    def __init__(self, budget_s: float, priors: dict):
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.priors = priors
        self.compile_measured: dict[str, float] = {}
        self.rate_measured: dict[tuple, float] = {}  # (task, num_envs, dtype) -> iterations/s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        return self.budget_s - self.elapsed()

    def compile_s(self, task: str) -> float:
        if task in self.compile_measured:
            return self.compile_measured[task] * 1.2
        return self.priors["compile_s"].get(task, self.priors.get("default_compile_s", 60.0))

    def note_compile(self, task: str, seconds: float) -> None:
        self.compile_measured[task] = max(seconds, self.compile_measured.get(task, 0.0))

    def rate(self, task: str, num_envs: int, dtype: str | None = None) -> float:
        """Iterations/s of one agent: measured in this call (any dtype if none given), else prior."""
        for (t, n, d), value in self.rate_measured.items():
            if t == task and n == num_envs and (dtype is None or d == dtype):
                return value
        return self.priors["iterations_per_s"].get(
            (task, num_envs), self.priors.get("default_iterations_per_s", 20.0)
        )

    def fits(self, need_s: float, what: str, record: StageRecord | None = None) -> bool:
        left = self.remaining()
        if need_s <= left:
            print(
                f"[{self.elapsed():5.0f} s] {what}: estimated {need_s:.0f} s, {left:.0f} s left", flush=True
            )
            return True
        message = (
            f"skipped {what}: estimated {need_s:.0f} s, {left:.0f} s left of the {self.budget_s:.0f} s budget"
        )
        if record is not None:
            record.note(message, skipped=True)
        else:
            print(message, flush=True)
        return False


class StageRecord:
    """One stage's JSON file, rewritten after every row so a cut call keeps what finished."""

    def __init__(self, stage: str, ctx: Context, settings: dict):
        self.ctx = ctx
        device = ctx.info["device"].replace(" ", "_")
        self.name = f"gpu_proof_{stage}_{device}"
        self.skipped_steps = 0
        self.result = {
            "schema": SCHEMA,
            "benchmark": f"gpu_proof_{stage}",
            "stage": stage,
            "status": "running",
            "smoke": ctx.smoke,
            **ctx.info,
            "settings": settings,
            "numbers": [],
            "notes": [],
            "budget_s": ctx.clock.budget_s,
            "compile_cache": ctx.compile_cache,
            "stage_started_at_s": round(ctx.clock.elapsed(), 1),
            "stage_seconds": None,
        }

    def note(self, message: str, skipped: bool = False) -> None:
        print(message, flush=True)
        self.result["notes"].append(message)
        self.skipped_steps += skipped

    def add(self, row: dict) -> None:
        self.result["numbers"].append(row)
        self.save()

    def save(self) -> None:
        self.result["stage_seconds"] = round(self.ctx.clock.elapsed() - self.result["stage_started_at_s"], 1)
        write(self.name, self.result, self.ctx.out)

    def finish(self, error: str | None = None) -> str:
        if error is not None:
            status = "error"
            self.result["error"] = error[-4000:]
        elif not self.result["numbers"]:
            status = "skipped"
        elif self.skipped_steps:
            status = "partial"
        else:
            status = "complete"
        self.result["status"] = status
        self.save()
        return status


class Context:
    def __init__(self, args, out: pathlib.Path, info: dict):
        self.smoke = args.smoke
        self.args = args
        self.out = out
        self.info = info
        self.settings = SMOKE_SETTINGS if args.smoke else GPU_SETTINGS
        self.clock = Clock(args.budget_s, PRIORS["cpu" if args.smoke else "gpu"])
        self.compile_cache = ""  # the persistent compilation cache folder, "" for none
        self.iteration_rows: list[dict] = []  # stage a's rows, for the later stages


# ==================================================================================================
# ONE COMPILED EVAL CHUNK, CALLED AGAIN AND AGAIN
# ==================================================================================================
def chunk_config(task: str, overrides: dict, chunk: int, **extra) -> dict:
    """The task's reference config with `overrides`, one eval chunk of `chunk` iterations, no
    evaluation unless `extra` asks for one, and TOTAL_TIMESTEPS a multiple of the chunk (it only
    sets the horizon of the learning-rate schedule, constant by default)."""
    base = ft.make_config(task, **overrides)
    total = max(base["TOTAL_TIMESTEPS"] // chunk, 4) * chunk
    settings = {"EVAL_INTERVAL": chunk, "NUM_EVAL_ENVS": 0, "TOTAL_TIMESTEPS": total, **extra}
    return ft.make_config(task, **{**overrides, **settings})


class Chunks:
    """`agents` vmapped agents of `config`: init, then one compiled eval chunk run on the state it
    returns (donated). Construction compiles both programs at once (XLA compiles outside the
    GIL, so the simulator's reset and step compile side by side), then runs init and the first
    chunk."""

    def __init__(self, config: dict, agents: int, seed: int = 0):
        self.config = config
        self.agents = agents
        loop = ft.make_train_loop(config)
        init = jax.jit(jax.vmap(loop.init, out_axes=ft.RUNNER_AXES))
        run = jax.vmap(
            functools.partial(loop.run, num_evals=1), in_axes=(ft.RUNNER_AXES,), out_axes=(ft.RUNNER_AXES, 0)
        )
        rngs = jax.random.split(jax.random.PRNGKey(seed), agents)
        start = time.perf_counter()
        init_lowered = init.lower(rngs)
        run_lowered = jax.jit(run, donate_argnums=0).lower(init_lowered.out_info)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            init_compiled = pool.submit(init_lowered.compile)
            self.compiled = run_lowered.compile()
            init_compiled = init_compiled.result()
        self.compile_seconds = time.perf_counter() - start  # both programs, traced and compiled
        start = time.perf_counter()
        self.runner = jax.block_until_ready(init_compiled(rngs))
        self.init_seconds = time.perf_counter() - start
        start = time.perf_counter()
        self.runner, self.metrics = jax.block_until_ready(self.compiled(self.runner))
        self.first_chunk_seconds = time.perf_counter() - start
        self.chunks_done = 1

    def step(self) -> float:
        """Runs one more chunk; its wall seconds."""
        start = time.perf_counter()
        self.runner, self.metrics = jax.block_until_ready(self.compiled(self.runner))
        self.chunks_done += 1
        return time.perf_counter() - start

    def memory(self) -> dict | None:
        return compiled_memory(self.compiled)


def _settings_of(config: dict) -> dict:
    keys = ("NUM_ENVS", "BATCH_SIZE", "NUM_UPDATES", "NUM_STEPS", "COMPUTE_DTYPE", "BUFFER_SIZE")
    return {key.lower(): config[key] for key in keys} | {
        "critic_hidden_dim": config["CRITIC_HIDDEN_DIM"],
        "actor_hidden_dim": config["ACTOR_HIDDEN_DIM"],
    }


# ==================================================================================================
# STAGE A: ITERATIONS/S
# ==================================================================================================
def stage_iterations(ctx: Context, record: StageRecord) -> None:
    s = ctx.settings["iterations"]
    timed = s["timed_chunks"]
    for dtype in s["dtypes"]:
        for task in s["tasks"]:
            k = s["chunk_iterations"][task]
            num_envs = s["overrides"]["NUM_ENVS"]
            chunks = 2 + timed  # two warm-up chunks (one timed), then the learning ones
            need = ctx.clock.compile_s(task) + chunks * k / ctx.clock.rate(task, num_envs, dtype) * 1.2
            if not ctx.clock.fits(need, f"iterations {task} {dtype}", record):
                continue
            config = chunk_config(
                task, {**s["overrides"], "COMPUTE_DTYPE": dtype}, k, LEARNING_STARTS=2 * k - 1
            )
            run = Chunks(config, agents=1)
            warmup_s = run.step()  # chunk 1: iterations k..2k-1, all warm-up
            learn_s = [run.step() for _ in range(timed)]  # every iteration learns
            ctx.clock.note_compile(task, run.compile_seconds)
            per_s = timed * k / sum(learn_s)
            ctx.clock.rate_measured[(task, num_envs, dtype)] = per_s
            row = {
                "task": task,
                **_settings_of(config),
                "agents": 1,
                "chunk_iterations": k,
                "timed_chunks": timed,
                "chunk_seconds": learn_s,
                "iterations_per_second": per_s,
                "env_steps_per_second": per_s * config["NUM_ENVS"],
                "iteration_ms": 1000 / per_s,
                "warmup_iteration_ms": 1000 * warmup_s / k,
                "compile_seconds": run.compile_seconds,
                "init_seconds": run.init_seconds,
                "status": "ok",
            }
            ctx.iteration_rows.append(row)
            print(
                f"  {task} {dtype}: {per_s:.2f} iterations/s ({row['iteration_ms']:.2f} ms; warm-up "
                f"{row['warmup_iteration_ms']:.2f} ms), compile {run.compile_seconds:.0f} s",
                flush=True,
            )
            record.add(row)
            del run
            gc.collect()


# ==================================================================================================
# STAGE B: AGENT SCALING
# ==================================================================================================
def _scaling_row(ctx, record, config, task, agents, k, timed) -> tuple[dict, dict | None]:
    """One agent count: its row and its compiled memory (None when it did not fit)."""
    row = {"agents": agents, "chunk_iterations": k, "timed_chunks": timed, "status": "ok"}
    try:
        run = Chunks(config, agents)
        seconds = [run.step() for _ in range(timed)]
        memory = run.memory()
    except Exception as error:  # noqa: BLE001 - only out-of-memory is recorded, the rest re-raised
        if not is_out_of_memory(error):
            raise
        row.update(status="out_of_memory", error=str(error).splitlines()[0][:500])
        row["peak_memory_bytes"], row["peak_memory_source"] = peak_memory()
        gc.collect()
        return row, None
    ctx.clock.note_compile(task, run.compile_seconds)
    per_s = timed * k / sum(seconds)
    row.update(
        chunk_seconds=seconds,
        iterations_per_second=per_s,
        agent_iterations_per_second=per_s * agents,
        env_steps_per_second=per_s * agents * config["NUM_ENVS"],
        compile_seconds=run.compile_seconds,
        compiled_memory_bytes=memory["total_bytes"] if memory else None,
        compiled_memory=memory,
    )
    row["peak_memory_bytes"], row["peak_memory_source"] = peak_memory()
    print(
        f"  {agents:>5} agents: {per_s:8.2f} it/s, {per_s * agents:9.1f} agent-it/s, "
        f"compile {run.compile_seconds:.0f} s",
        flush=True,
    )
    del run
    gc.collect()
    return row, memory


def _agent_bytes(memory: dict | None, agents: int) -> float | None:
    """Device bytes per agent of a compiled chunk: temporaries, arguments and outputs, less the
    outputs that alias the donated state."""
    if not memory:
        return None
    used = memory["total_bytes"] - memory.get("alias_size_in_bytes", 0)
    return used / agents if used > 0 else None


def stage_scaling(ctx: Context, record: StageRecord) -> None:
    s = ctx.settings["scaling"]
    task, k, timed = s["task"], s["chunk_iterations"], s["timed_chunks"]
    config = chunk_config(task, s["overrides"], k)
    record.result.update(benchmark="scaling", env=task, **_settings_of(config))
    rate_1 = ctx.clock.rate(task, config["NUM_ENVS"])

    def need(agents: int) -> float:
        # Agents at 1/8 of one agent's time each (vmapped agents share a device that one agent
        # leaves idle: the H200 steps 16 x 128 CheetahRun envs as fast as 1024), plus the compile.
        return ctx.clock.compile_s(f"{task}@scaling") + (1 + timed) * k * agents / rate_1 / 8 + 5

    largest_ok, last_memory = 0, None
    for agents in sorted(set(s["agents"])):
        if not ctx.clock.fits(need(agents), f"scaling {agents} agents", record):
            break
        row, memory = _scaling_row(ctx, record, config, task, agents, k, timed)
        if row["status"] == "ok":
            ctx.clock.note_compile(f"{task}@scaling", row["compile_seconds"])
            rate_1 = max(rate_1, row["iterations_per_second"])
            largest_ok, last_memory = agents, memory
        record.add(row)
        if row["status"] != "ok":
            record.note(f"{agents} agents do not fit; larger counts skipped")
            return
    if not s["largest"] or not largest_ok:
        return

    per_agent = _agent_bytes(last_memory, largest_ok)
    stats = jax.devices()[0].memory_stats() or {}
    if per_agent and stats.get("bytes_limit"):
        candidate = int(0.92 * stats["bytes_limit"] / per_agent)
        how = f"0.92 x bytes_limit {stats['bytes_limit']} / {per_agent:.0f} bytes per agent"
    else:  # no device memory figures (CPU): a doubling shows the search runs
        candidate, how = 2 * largest_ok, "twice the largest count (no device memory figures)"
    round_to = s["round_to"]
    for attempt in range(2):
        candidate = candidate // round_to * round_to
        if candidate <= largest_ok:
            record.note(f"the largest count that fits is at most {largest_ok} ({how})")
            return
        if not ctx.clock.fits(need(candidate), f"scaling, largest: {candidate} agents", record):
            return
        row, _ = _scaling_row(ctx, record, config, task, candidate, k, timed)
        row.update(largest_attempt=attempt + 1, estimated_from=how)
        record.add(row)
        if row["status"] == "ok":
            return
        candidate = candidate * 3 // 4


# ==================================================================================================
# STAGE C: LEARNING (T1 AT THE REFERENCE SETTINGS)
# ==================================================================================================
def _known_rate(ctx: Context, task: str, num_envs: int, dtype: str) -> tuple[float, str]:
    """Iterations/s of one agent with evaluation excluded, and where the figure comes from: this
    call, else a stage-a file in $OUT or bench/results/ for the same device, else the prior."""
    for (t, n, d), value in ctx.clock.rate_measured.items():
        if (t, n, d) == (task, num_envs, dtype):
            return value, "measured in this call"
    device = ctx.info["device"].replace(" ", "_")
    for folder in dict.fromkeys([ctx.out, RESULTS]):
        path = folder / f"gpu_proof_iterations_{device}.json"
        if not path.exists():
            continue
        for row in json.loads(path.read_text()).get("numbers", []):
            if (row.get("task"), row.get("num_envs"), row.get("compute_dtype")) == (task, num_envs, dtype):
                return row["iterations_per_second"], str(path)
    return ctx.clock.rate(task, num_envs, dtype), "prior (no measurement on this device)"


def _nanmean(x) -> float | None:
    """Mean of the finite values (a chunk where no episode ended has none), None if none."""
    x = np.asarray(x, float)
    return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else None


def stage_learn(ctx: Context, record: StageRecord, which: str) -> None:
    s = ctx.settings["learn"]
    task, interval = s["task"], s["eval_interval"][which]
    config = ft.make_config(task, **{**s["overrides"], "EVAL_INTERVAL": interval})
    num_envs, dtype = config["NUM_ENVS"], config["COMPUTE_DTYPE"]
    target = s["env_steps"][which]
    if target % (interval * num_envs):
        raise ValueError(f"{target} env steps are not a whole number of {interval}-iteration evaluations")
    num_chunks = target // (interval * num_envs)
    rate, source = _known_rate(ctx, task, num_envs, dtype)
    eval_s = ctx.clock.priors["eval_s"].get(task, ctx.clock.priors.get("default_eval_s", 20.0))
    compile_s = ctx.clock.compile_s(task) + ctx.clock.priors["component_compile_s"]  # + the eval step

    def estimate(seeds: int) -> float:  # time linear in seeds: an upper bound once the device is busy
        return compile_s + num_chunks * seeds * (interval / rate + eval_s)

    seeds = ctx.args.learn_seeds
    if seeds is None:
        seeds = s["max_seeds"] if estimate(s["max_seeds"]) <= ctx.clock.remaining() else 1
    reference = REFERENCE_RETURNS.get(task, {})
    record.result.update(
        env=task,
        seeds=seeds,
        **_settings_of(config),
        eval_interval=interval,
        num_eval_envs=config["NUM_EVAL_ENVS"],
        target_env_steps=target,
        estimated_seconds=estimate(seeds),
        estimate_from={"iterations_per_second": rate, "source": source, "eval_seconds": eval_s},
        reference_returns={str(k): v for k, v in reference.items()},
        reference_comparison={},
        wall_seconds_compile_included=None,
    )
    # c2 exists to reach 10.24M: it starts only when the whole run is expected to fit. c1 trains
    # what fits, evaluation by evaluation (a part of the 5.12M curve is still a result).
    first = compile_s + seeds * (interval / rate + eval_s)
    whole_needed = which == "learn2" and not ctx.args.learn2_anyway
    if not ctx.clock.fits(estimate(seeds) if whole_needed else first, f"{which} ({seeds} seeds)", record):
        record.result["needed_seconds_estimate"] = estimate(seeds)
        return
    start = time.perf_counter()
    run = Chunks(config, seeds, seed=ctx.args.seed)
    ctx.clock.note_compile(f"{task}@learn", run.compile_seconds)
    record.result.update(compile_seconds=run.compile_seconds, init_seconds=run.init_seconds)
    chunk_s = run.first_chunk_seconds
    while True:
        metrics = jax.tree.map(lambda x: np.asarray(x)[:, -1], run.metrics)  # [seeds] of this eval
        steps = run.chunks_done * interval * num_envs
        returns = metrics["eval_return"].astype(float)
        row = {
            "eval": run.chunks_done,
            "iteration": run.chunks_done * interval,
            "env_steps": steps,
            "eval_return_mean": float(returns.mean()),
            "eval_return_per_seed": returns.tolist(),
            "train_return_mean": _nanmean(metrics["train_return"]),
            "critic_loss_mean": float(metrics["critic_loss"].mean()),
            "q_mean_mean": float(metrics["q_mean"].mean()),
            "chunk_seconds": chunk_s,
            "wall_seconds_compile_included": time.perf_counter() - start,
            "status": "ok",
        }
        if steps in reference:
            record.result["reference_comparison"][str(steps)] = {
                "ours": row["eval_return_mean"],
                "reference": reference[steps],
                "ratio": row["eval_return_mean"] / reference[steps],
            }
        record.result["wall_seconds_compile_included"] = row["wall_seconds_compile_included"]
        print(
            f"  {steps:>12,} env steps: eval return {row['eval_return_mean']:8.2f}"
            + (f" (published {reference[steps]:.2f})" if steps in reference else "")
            + f", chunk {chunk_s:.1f} s",
            flush=True,
        )
        record.add(row)
        if run.chunks_done >= num_chunks:
            break
        if not ctx.clock.fits(
            chunk_s * 1.1, f"{which} evaluation {run.chunks_done + 1}/{num_chunks}", record
        ):
            left = (num_chunks - run.chunks_done) * chunk_s
            record.result["needed_seconds_estimate"] = row["wall_seconds_compile_included"] + left
            break
        chunk_s = run.step()
    del run
    gc.collect()


# ==================================================================================================
# STAGE D: PROFILE OF ONE ITERATION
# ==================================================================================================
def _time_calls(compiled, args, calls: int = 2, donate_first: bool = False) -> float:
    """Seconds of the fastest of `calls` calls of a compiled function (after the compile call)."""
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
        if donate_first:
            args = (out[0], *args[1:])
    return best


def stage_profile(ctx: Context, record: StageRecord) -> None:
    s = ctx.settings["profile"]
    task, dtype, k = s["task"], s["dtype"], s["chunk_iterations"]
    config = chunk_config(task, {**s["overrides"], "COMPUTE_DTYPE": dtype}, k, LEARNING_STARTS=2 * k - 1)
    env = envs.make_env(config)
    num_envs = config["NUM_ENVS"]
    record.result.update(env=task, **_settings_of(config))

    def add(component: str, ms: float | None, how: str, **extra) -> None:
        row = {"component": component, "ms": ms, "how": how, "status": "ok" if ms is not None else "n/a"}
        record.add({**row, **extra})
        if ms is not None:
            print(f"  {component:<26} {ms:9.3f} ms", flush=True)

    # 1. The whole iteration and the warm-up iteration: stage a's figures when it ran this setting.
    same = [
        row
        for row in ctx.iteration_rows
        if (row["task"], row["num_envs"], row["compute_dtype"]) == (task, num_envs, dtype)
    ]
    if same:
        full, warmup, source = same[0]["iteration_ms"], same[0]["warmup_iteration_ms"], "stage a (this call)"
    elif ctx.clock.fits(
        ctx.clock.compile_s(task) + 6 * k / ctx.clock.rate(task, num_envs), "profile chunks", record
    ):
        run = Chunks(config, agents=1)
        ctx.clock.note_compile(task, run.compile_seconds)
        warmup = 1000 * run.step() / k
        full = 1000 * min(run.step(), run.step()) / k
        source = f"own chunk program (compile {run.compile_seconds:.0f} s)"
        del run
        gc.collect()
    else:
        full = warmup = None
        source = "skipped"
    if full is not None:
        add("iteration", full, f"one learning iteration, from a {k}-iteration chunk; {source}")
        add("warmup_iteration", warmup, "act + simulator step + buffer add + normalizer, no updates")
        add("learner", full - warmup, "iteration - warm-up: buffer sample, 2 critic updates, 1 actor update")

    # 2. Buffer add and sample on a full buffer of this size (zeros: the gathers cost the same).
    n, updates = k, config["NUM_UPDATES"]
    per_env = config["BATCH_SIZE"] // num_envs
    if ctx.clock.fits(ctx.clock.priors["component_compile_s"] / 3, "profile buffer add and sample", record):
        buf = ft.buffer_for(config, env)._replace(ptr=jnp.int32(config["BUFFER_SIZE"]))
        obs = jnp.zeros((num_envs, env.obs_dim))
        privileged = jnp.zeros((num_envs, env.privileged_dim))
        action = jnp.zeros((num_envs, env.action_dim))
        out = envs.StepOutput(
            reward=jnp.zeros(num_envs),
            done=jnp.zeros(num_envs, bool),
            truncated=jnp.ones(num_envs, bool),  # the final-observation ring is written too
            final_obs=obs,
            final_privileged=privileged,
        )

        def adds(buf):
            buf = jax.lax.scan(
                lambda b, _: (ft.buffer_add(b, obs, privileged, action, out), None), buf, None, n
            )[0]
            return buf, buf.ptr

        def samples(buf, key):
            def one(total, key):
                batch = ft.buffer_sample(
                    buf, key, updates * per_env, config["NUM_STEPS"], 0.99, config["DISABLE_BOOTSTRAP"]
                )
                return total + sum(x.astype(jnp.float32).sum() for x in jax.tree.leaves(batch)), None

            return jax.lax.scan(one, jnp.float32(0.0), jax.random.split(key, n))[0]

        timed = compile_and_run(jax.jit(adds, donate_argnums=0), buf)
        add_s = _time_calls(timed.compiled, (timed.out[0],), donate_first=True)
        add(
            "buffer_add",
            1000 * add_s / n,
            f"scan of {n} writes of {num_envs} envs",
            compile_seconds=timed.compile_seconds,
        )
        del buf, timed
        gc.collect()
        buf = ft.buffer_for(config, env)._replace(ptr=jnp.int32(config["BUFFER_SIZE"]))
        timed = compile_and_run(jax.jit(samples), buf, jax.random.PRNGKey(0))
        sample_s = _time_calls(timed.compiled, (buf, jax.random.PRNGKey(1)))
        add(
            "buffer_sample",
            1000 * sample_s / n,
            f"one iteration's {updates} x {config['BATCH_SIZE']} {config['NUM_STEPS']}-step transitions",
            compile_seconds=timed.compile_seconds,
        )
        if full is not None:
            add("learner_without_sample", full - warmup - 1000 * sample_s / n, "learner - buffer_sample")
        del buf, timed
        gc.collect()

    # 3. The simulator step alone, random actions (what MEASURED.md times), and 4. the
    # evaluation step with the actor (one of up to episode_iterations steps of an evaluation).
    actor = ft.Actor(env.action_dim, config["ACTOR_HIDDEN_DIM"], jnp.dtype(dtype))
    params = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, env.obs_dim)))
    component_s = ctx.clock.priors["component_compile_s"]
    states = None
    if ctx.clock.fits(2 * component_s, "profile simulator step", record):
        reset = compile_and_run(
            jax.jit(jax.vmap(env.reset)), jax.random.split(jax.random.PRNGKey(0), num_envs)
        )
        states = reset.out

        def sim(states, key):
            def one(states, key):
                k_act, k_step = jax.random.split(key)
                action = jax.random.uniform(k_act, (num_envs, env.action_dim), minval=-1.0, maxval=1.0)
                states, out = jax.vmap(env.step)(states, action, jax.random.split(k_step, num_envs))
                return states, out.reward.sum()

            return jax.lax.scan(one, states, jax.random.split(key, n))

        timed = compile_and_run(jax.jit(sim), states, jax.random.PRNGKey(1))
        sim_s = _time_calls(timed.compiled, (timed.out[0], jax.random.PRNGKey(2)), donate_first=True)
        add(
            "simulator_step",
            1000 * sim_s / n,
            f"scan of {n} vmapped env.step of {num_envs} envs, random actions",
            compile_seconds=timed.compile_seconds,
            reset_compile_seconds=reset.compile_seconds,
        )
        del timed, reset
        gc.collect()
    if states is not None and ctx.clock.fits(component_s, "profile evaluation step", record):

        def evaluate(states):
            def one(states, _):
                action = actor.apply(params, states.obs)
                states, reward, _ = jax.vmap(env.eval_step)(states, action)
                return states, reward.sum()

            return jax.lax.scan(one, states, None, n)

        timed = compile_and_run(jax.jit(evaluate), states)
        eval_s = _time_calls(timed.compiled, (timed.out[0],), donate_first=True)
        step_ms = 1000 * eval_s / n
        add(
            "eval_step",
            step_ms,
            f"actor + vmapped env.eval_step of {num_envs} envs (NUM_EVAL_ENVS is 1024 at the reference)",
            compile_seconds=timed.compile_seconds,
            evaluation_upper_bound_seconds=step_ms * env.episode_iterations / 1000,
            episode_iterations=env.episode_iterations,
        )
        del timed
        gc.collect()


# ==================================================================================================
# DRIVER
# ==================================================================================================
def check_gpu_configs() -> list[str]:
    """Builds (validates) every config the GPU stages use, without building an environment, so a
    typo in a task name or a setting shows up in the smoke run, not on the device."""
    checked = []
    g = GPU_SETTINGS
    for task in g["iterations"]["tasks"]:
        for dtype in g["iterations"]["dtypes"]:
            k = g["iterations"]["chunk_iterations"][task]
            chunk_config(
                task, {**g["iterations"]["overrides"], "COMPUTE_DTYPE": dtype}, k, LEARNING_STARTS=2 * k - 1
            )
            checked.append(f"iterations {task} {dtype}")
    chunk_config(g["scaling"]["task"], g["scaling"]["overrides"], g["scaling"]["chunk_iterations"])
    checked.append(f"scaling {g['scaling']['task']}")
    learn = g["learn"]
    for which, steps in learn["env_steps"].items():
        interval = learn["eval_interval"][which]
        config = ft.make_config(learn["task"], **{**learn["overrides"], "EVAL_INTERVAL": interval})
        assert steps % (interval * config["NUM_ENVS"]) == 0, which
        assert steps in REFERENCE_RETURNS[learn["task"]], which
        checked.append(f"{which} {learn['task']} to {steps:,} env steps")
    p = g["profile"]
    k = p["chunk_iterations"]
    chunk_config(p["task"], {**p["overrides"], "COMPUTE_DTYPE": p["dtype"]}, k, LEARNING_STARTS=2 * k - 1)
    checked.append(f"profile {p['task']}")
    return checked


def parse_stages(text: str) -> list[str]:
    stages = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name = ALIASES.get(item, item)
        if name not in STAGES:
            raise argparse.ArgumentTypeError(
                f"unknown stage {item!r}: use {sorted(ALIASES)} or {list(STAGES)}"
            )
        stages.append(name)
    return sorted(set(stages), key=STAGES.index)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", type=parse_stages, default=None, help=f"default {DEFAULT_STAGES}")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="seconds for all stages")
    parser.add_argument("--smoke", action="store_true", help="every stage on CPU, tiny settings")
    parser.add_argument(
        "--learn-seeds", type=int, default=None, help="seeds of c1/c2 (default: 4 if they fit, else 1)"
    )
    parser.add_argument("--dtypes", default=None, help="stage a's compute dtypes (default bfloat16,float32)")
    parser.add_argument("--agents", default=None, help="stage b's agent counts (default 1,32,128,256)")
    parser.add_argument("--no-largest", action="store_true", help="stage b: do not search the largest count")
    parser.add_argument(
        "--learn2-anyway", action="store_true", help="start c2 even when its estimate exceeds the budget"
    )
    parser.add_argument("--seed", type=int, default=0, help="master PRNG seed of the learning run")
    parser.add_argument(
        "--out", type=pathlib.Path, default=None, help="result folder (default $OUT, else bench/results)"
    )
    parser.add_argument(
        "--compile-cache",
        default=None,
        help=f"JAX compilation cache folder ('' for none; default {DEFAULT_CACHE}; --smoke: a new one)",
    )
    args = parser.parse_args(argv)
    stages = args.stages or parse_stages(SMOKE_STAGES if args.smoke else DEFAULT_STAGES)

    if args.out is not None:
        out = args.out
    elif os.environ.get("OUT"):
        out = pathlib.Path(os.environ["OUT"])
    elif args.smoke:
        out = pathlib.Path(tempfile.mkdtemp(prefix="gpu_proof_smoke_"))
    else:
        out = RESULTS
    out.mkdir(parents=True, exist_ok=True)
    if args.compile_cache is not None:
        cache = args.compile_cache
    elif args.smoke:  # a fresh cache: programs built twice in the call compile once
        cache = tempfile.mkdtemp(prefix="gpu_proof_smoke_cache_")
    else:
        cache = DEFAULT_CACHE
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)

    info = environment()
    ctx = Context(args, out.resolve(), info)
    ctx.settings = json.loads(json.dumps(ctx.settings))  # our copy, edited by the options below
    if args.dtypes:
        ctx.settings["iterations"]["dtypes"] = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if args.agents:
        ctx.settings["scaling"]["agents"] = [int(n) for n in args.agents.split(",") if n.strip()]
    if args.no_largest:
        ctx.settings["scaling"]["largest"] = False
    ctx.compile_cache = cache
    print(
        f"gpu_proof: stages {stages} on {info['device']} ({info['platform']}), "
        f"jax {info['versions']['jax']}, budget {args.budget_s:.0f} s, results in {ctx.out}, "
        f"compile cache {cache or 'off'}",
        flush=True,
    )
    if info["platform"] != "gpu" and not args.smoke:
        print("warning: no GPU; the GPU settings on this device will be slow (use --smoke)", flush=True)
    if args.smoke:
        for line in check_gpu_configs():
            print(f"  GPU config ok: {line}")

    runners = {
        "iterations": stage_iterations,
        "scaling": stage_scaling,
        "learn1": functools.partial(stage_learn, which="learn1"),
        "learn2": functools.partial(stage_learn, which="learn2"),
        "profile": stage_profile,
    }
    settings = {
        "iterations": ctx.settings["iterations"],
        "scaling": ctx.settings["scaling"],
        "learn1": ctx.settings["learn"],
        "learn2": ctx.settings["learn"],
        "profile": ctx.settings["profile"],
    }
    statuses = {}
    for stage in stages:
        print(f"\n[{ctx.clock.elapsed():5.0f} s] stage {stage}", flush=True)
        record = StageRecord(stage, ctx, json.loads(json.dumps(settings[stage], default=str)))
        record.save()
        try:
            runners[stage](ctx, record)
            statuses[stage] = record.finish()
        except Exception:  # noqa: BLE001 - recorded; the next stage still runs
            text = traceback.format_exc()
            print(text, flush=True)
            statuses[stage] = record.finish(error=text)
        gc.collect()
    print(f"\n[{ctx.clock.elapsed():5.0f} s] done: " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    return 1 if "error" in statuses.values() else 0


if __name__ == "__main__":
    sys.exit(main())
