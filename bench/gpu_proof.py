"""FastTD3X on a GPU in one budgeted command: throughput, scaling, learning and a profile.

For a device lent for minutes (15 in all, at most 10 per call, start-up included, no network): a
driver over the bench scripts' functions that decides what runs, times it on one Clock and
rewrites one record per stage after every row in $OUT (else bench/results/), so a call cut short
keeps what it finished. On the device (gpu_proof.sh installs the offline wheels first):

    bash bench/gpu_proof.sh                              # stages a,b,c1,d within 540 s
    bash bench/gpu_proof.sh --stages c2 --budget-s 570   # the 10.24M-step curve, its own call
    python bench/gpu_proof.py --smoke                    # every stage on CPU, tiny (minutes)

Stages (`--stages`, letters or names, run in this order; GPU_SETTINGS holds their sizes):
a iterations, b scaling, c1 learn1 (T1 to 5.12M env steps), c2 learn2 (to 10.24M, from the
start) and d profile; each stage function below says what it measures. Every program is one eval
chunk of the resumable loop (common.Chunks), compiled once and called on the state it returns.

Budget: `--budget-s` (default 540: 60 s of a 600 s call go to the wheel install and transfers)
counts from the start. Before each step (a task and dtype, an agent count, an evaluation, a
profile part) the Clock estimates its compile and run time from what this call measured, else
from PRIORS, and skips the step, saying why, when it does not fit. c2 starts only when its whole
run fits (`--learn2-anyway` starts it anyway), at the iteration rate of this call, else of a
stage-a file of this device in $OUT or bench/results/. Learning is not resumed across calls: a
T1 state holds an 8.6 GB buffer, more than a call returns or carries.

Device plan. The first calls (2026-11-28, bench/results/logs/) took 294 s for stage a in bfloat16
on an H100 (T1 190 s, CheetahRun 104 s) and 150 s for b at 128 agents on an H200 (108 s of it
compiling); c1 reached 1 of 4 evaluations. On 2026-11-30 one H200 call ran c2 whole in 449 s
(compile 102 s, init 0.1 s, 83 s per 2,500-iteration chunk with 128 evaluation episodes), a second
ran stage a in bfloat16 in 152 s, and b at 256 agents alone did not compile and run in 190 s.
A later session ran `--stages c1 --learn-seeds 2 --seed 1`
(336 s; 62 s per 1.28M-step chunk for both agents), the same with `--seed 2`, and `--stages a
--dtypes float32` (T1 only within 150 s). Still missing, each its own call: `--stages b --agents
256 --budget-s 400`, CheetahRun in float32, more seeds to 10.24M, then d.

Results: gpu_proof_<stage>_<device>.json (committed with a suffix, e.g. _seed1, when a stage ran in
several calls; StageRecord: `status` complete, partial, skipped, or
error with its traceback, the next stage still running; `numbers`, a row per step), read by
bench/benchmarks_table.py for the README. `--smoke` runs every stage on CPU with Pendulum-v1 and
tiny networks ($OUT defaults to a new temporary folder) and validates the GPU stages' configs.
"""

from __future__ import annotations

import argparse
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

import bench_profile
import purejax_fasttd3 as ft
from bench_iterations import chunked_config, chunked_rate
from bench_parity import REFERENCE_RETURNS, evaluation_row, reference_comparison
from bench_scaling import agent_count_row, agents_that_fit
from common import RESULTS, Chunks, chunk_config, environment, write
from fasttd3x import envs

# ==================================================================================================
# SETTINGS AND PRIORS
# ==================================================================================================
SCHEMA = "fasttd3x-gpu-proof/1"
STAGES = ("iterations", "scaling", "learn1", "learn2", "profile")
ALIASES = {"a": "iterations", "b": "scaling", "c": "learn1", "c1": "learn1", "c2": "learn2", "d": "profile"}
DEFAULT_STAGES, SMOKE_STAGES = "a,b,c1,d", "a,b,c1,c2,d"
DEFAULT_BUDGET_S = 540.0
DEFAULT_CACHE = "/tmp/fasttd3x-jax-cache"  # kept while the device stays warm between calls
T1, CHEETAH, PENDULUM = "T1JoystickFlatTerrain", "CheetahRun", "Pendulum-v1"

GPU_SETTINGS = {
    "iterations": {  # batch 32768 and 2 updates are the reference defaults
        "tasks": [T1, CHEETAH], "dtypes": ["bfloat16", "float32"], "overrides": {"NUM_ENVS": 1024},
        "chunk_iterations": {T1: 100, CHEETAH: 200}, "timed_chunks": 3,
    },
    "scaling": {
        "task": CHEETAH, "overrides": {"NUM_ENVS": 128, "BATCH_SIZE": 4096}, "agents": [1, 32, 128, 256],
        "largest": True, "round_to": 32, "chunk_iterations": 100, "timed_chunks": 2,
    },
    "learn": {  # 4 evaluations each, of 128 episodes (1024 cost 18 s of each 56 s chunk on an H100)
        "task": T1, "overrides": {"NUM_EVAL_ENVS": 128}, "eval_interval": {"learn1": 1250, "learn2": 2500},
        "env_steps": {"learn1": 5_120_000, "learn2": 10_240_000}, "max_seeds": 4,
    },
    "profile": {"task": T1, "dtype": "bfloat16", "overrides": {"NUM_ENVS": 1024}, "chunk_iterations": 50},
}  # fmt: skip

# Tiny CPU stand-ins: same code paths, seconds of compilation each.
TINY = {"NUM_ENVS": 8, "NUM_EVAL_ENVS": 4, "BATCH_SIZE": 32, "BUFFER_SIZE": 64, "NUM_ATOMS": 11,
        "CRITIC_HIDDEN_DIM": 32, "ACTOR_HIDDEN_DIM": 16}  # fmt: skip
SMOKE_SETTINGS = {
    "iterations": {  # bfloat16 is the same code (tests/test_settings.py runs it)
        "tasks": [PENDULUM], "dtypes": ["float32"], "overrides": TINY,
        "chunk_iterations": {PENDULUM: 10}, "timed_chunks": 1,
    },
    "scaling": {  # one agent is then stage a's float32 program, which the compilation cache returns
        "task": PENDULUM, "overrides": {**TINY, "LEARNING_STARTS": 19}, "agents": [1],
        "largest": True, "round_to": 1, "chunk_iterations": 10, "timed_chunks": 1,
    },
    "learn": {  # one eval interval for both: one program, compiled once
        "task": PENDULUM, "overrides": {**TINY, "LEARNING_STARTS": 4, "EPISODE_LENGTH": 40},
        "eval_interval": {"learn1": 10, "learn2": 10}, "env_steps": {"learn1": 160, "learn2": 320},
        "max_seeds": 2,
    },
    "profile": {"task": PENDULUM, "dtype": "float32", "overrides": TINY, "chunk_iterations": 10},
}  # fmt: skip

# Step estimates until this call has measured the real thing ("default" where a table has no
# entry). GPU: the first calls' results (T1 33 and CheetahRun 133 iterations/s at 1024 envs on an
# H100; compiles of 69-108 s), rounded towards caution.
PRIORS = {
    "gpu": {
        "compile_s": {T1: 120.0, CHEETAH: 90.0, "default": 60.0},  # init and chunk, side by side
        "iterations_per_s": {(T1, 1024): 33.0, (CHEETAH, 1024): 130.0, (CHEETAH, 128): 150.0,
                             "default": 20.0},
        "eval_s": {T1: 20.0, CHEETAH: 10.0, "default": 20.0},  # one evaluation: up to 1000 steps
        "component_compile_s": {"default": 60.0},  # one MJX function (reset, step, eval step) alone
    },
    "cpu": {"compile_s": {"default": 15.0}, "iterations_per_s": {"default": 50.0}, "eval_s": {"default": 2.0},
            "component_compile_s": {"default": 10.0}},
}  # fmt: skip


def iteration_configs(s: dict) -> dict[tuple[str, str], dict]:
    """Stage a's programs by task and dtype, in the order they run."""

    def config(task, dtype):
        return chunked_config(task, {**s["overrides"], "COMPUTE_DTYPE": dtype}, s["chunk_iterations"][task])

    return {(task, dtype): config(task, dtype) for dtype in s["dtypes"] for task in s["tasks"]}


def profile_config(s: dict) -> dict:
    """Stage d's program: stage a's for its task and dtype, with chunks of its own length."""
    return chunked_config(s["task"], {**s["overrides"], "COMPUTE_DTYPE": s["dtype"]}, s["chunk_iterations"])


def learn_config(s: dict, which: str) -> tuple[dict, int]:
    """Stage c's config and its number of evaluations."""
    interval, target = s["eval_interval"][which], s["env_steps"][which]
    config = ft.make_config(s["task"], **{**s["overrides"], "EVAL_INTERVAL": interval})
    if target % (interval * config["NUM_ENVS"]):
        raise ValueError(f"{target} env steps are not a whole number of {interval}-iteration evaluations")
    return config, target // (interval * config["NUM_ENVS"])


def settings_of(config: dict) -> dict:
    keys = ("NUM_ENVS", "BATCH_SIZE", "NUM_UPDATES", "NUM_STEPS", "COMPUTE_DTYPE", "BUFFER_SIZE")
    return {key.lower(): config[key] for key in (*keys, "CRITIC_HIDDEN_DIM", "ACTOR_HIDDEN_DIM")}


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

    def prior(self, name: str, key=None) -> float:
        return self.priors[name].get(key, self.priors[name]["default"])

    def compile_s(self, program: str) -> float:
        if program in self.compile_measured:
            return self.compile_measured[program] * 1.2
        return self.prior("compile_s", program)

    def note_compile(self, program: str, seconds: float) -> None:
        self.compile_measured[program] = max(seconds, self.compile_measured.get(program, 0.0))

    def rate(self, task: str, num_envs: int, dtype: str | None = None) -> float:
        """Iterations/s of one agent: measured in this call (any dtype if none given), else prior."""
        for (t, n, d), value in self.rate_measured.items():
            if (t, n) == (task, num_envs) and dtype in (None, d):
                return value
        return self.prior("iterations_per_s", (task, num_envs))

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


class Call:
    """What the stages share: the options, the result folder, the device, the settings, the clock."""

    def __init__(self, args, out: pathlib.Path, compile_cache: str):
        self.args, self.out, self.compile_cache, self.info = args, out, compile_cache, environment()
        self.settings = json.loads(json.dumps(SMOKE_SETTINGS if args.smoke else GPU_SETTINGS))  # a copy
        if args.dtypes:
            self.settings["iterations"]["dtypes"] = [d.strip() for d in args.dtypes.split(",") if d.strip()]
        if args.agents:
            self.settings["scaling"]["agents"] = [int(n) for n in args.agents.split(",") if n.strip()]
        if args.no_largest:
            self.settings["scaling"]["largest"] = False
        self.clock = Clock(args.budget_s, PRIORS["cpu" if args.smoke else "gpu"])
        self.iteration_rows: list[dict] = []  # stage a's rows, for stage d


class StageRecord:
    """One stage's JSON file, rewritten after every row so a cut call keeps what finished."""

    def __init__(self, stage: str, call: Call):
        self.call, self.skipped_steps = call, 0
        self.name = f"gpu_proof_{stage}_{call.info['device'].replace(' ', '_')}"
        self.result = {
            "schema": SCHEMA,
            "benchmark": f"gpu_proof_{stage}",
            "stage": stage,
            "status": "running",
            "smoke": call.args.smoke,
            **call.info,
            "settings": call.settings["learn" if stage.startswith("learn") else stage],
            "numbers": [],
            "notes": [],
            "budget_s": call.clock.budget_s,
            "compile_cache": call.compile_cache,
            "stage_started_at_s": round(call.clock.elapsed(), 1),
            "stage_seconds": None,
        }
        self.save()

    def note(self, message: str, skipped: bool = False) -> None:
        print(message, flush=True)
        self.result["notes"].append(message)
        self.skipped_steps += skipped

    def add(self, row: dict) -> None:
        self.result["numbers"].append(row)
        self.save()

    def save(self) -> None:
        self.result["stage_seconds"] = round(self.call.clock.elapsed() - self.result["stage_started_at_s"], 1)
        write(self.name, self.result, self.call.out)

    def finish(self, error: str | None = None) -> str:
        """Status: error (traceback kept), skipped (no row), partial (a step skipped) or complete."""
        if error is not None:
            status = "error"
            self.result["error"] = error[-4000:]
        elif not self.result["numbers"]:
            status = "skipped"
        else:
            status = "partial" if self.skipped_steps else "complete"
        self.result["status"] = status
        self.save()
        return status


# ==================================================================================================
# STAGES
# ==================================================================================================
def stage_iterations(call: Call, record: StageRecord) -> None:
    """a: one agent's iterations/s at the reference settings (1024 envs, batch 32768, 2 critic
    updates) by bench_iterations.chunked_rate, per task and compute dtype (`--dtypes`)."""
    s, clock = call.settings["iterations"], call.clock
    timed = s["timed_chunks"]
    for (task, dtype), config in iteration_configs(s).items():
        k, num_envs = config["EVAL_INTERVAL"], config["NUM_ENVS"]
        need = clock.compile_s(task) + (2 + timed) * k / clock.rate(task, num_envs, dtype) * 1.2  # 2 warm-up
        if not clock.fits(need, f"iterations {task} {dtype}", record):
            continue
        row = {"task": task, **settings_of(config), **chunked_rate(config, timed)}
        clock.note_compile(task, row["compile_seconds"])
        clock.rate_measured[(task, num_envs, dtype)] = row["iterations_per_second"]
        call.iteration_rows.append(row)
        record.add(row)
        gc.collect()


def stage_scaling(call: Call, record: StageRecord) -> None:
    """b: bench_scaling's row of each count of vmapped agents (`--agents`), then of the count that
    the device memory should hold (bench_scaling.agents_that_fit), once more at 3/4 when out of
    memory (`--no-largest`: not searched)."""
    s, clock = call.settings["scaling"], call.clock
    task, k, timed = s["task"], s["chunk_iterations"], s["timed_chunks"]
    config = chunk_config(task, s["overrides"], k)
    num_envs = config["NUM_ENVS"]
    record.result.update(benchmark="scaling", env=task, **settings_of(config))
    rate_1 = clock.rate(task, num_envs)

    def need(agents: int) -> float:
        # Agents at 1/8 of one agent's time each (vmapped agents share a device that one agent
        # leaves idle: the H200 steps 16 x 128 CheetahRun envs as fast as 1024), plus the compile.
        return clock.compile_s(f"{task}@scaling") + (1 + timed) * k * agents / rate_1 / 8 + 5

    def measure_and_add(agents: int, **fields) -> dict:
        def measure():
            run = Chunks(config, agents)
            seconds = [run.step() for _ in range(timed)]
            return timed * k / sum(seconds), run.compile_seconds, run.compiled, {"chunk_seconds": seconds}

        row = agent_count_row(agents, num_envs, measure, chunk_iterations=k, timed_chunks=timed, **fields)
        gc.collect()
        if row["status"] == "ok":
            clock.note_compile(f"{task}@scaling", row["compile_seconds"])
            per_s, compile_s = row["iterations_per_second"], row["compile_seconds"]
            print(
                f"  {agents:>5} agents: {per_s:8.2f} it/s, {per_s * agents:9.1f} agent-it/s, "
                f"compile {compile_s:.0f} s",
                flush=True,
            )
        record.add(row)
        return row

    largest_ok, last_memory = 0, None
    for agents in sorted(set(s["agents"])):
        if not clock.fits(need(agents), f"scaling {agents} agents", record):
            break
        row = measure_and_add(agents)
        if row["status"] != "ok":
            record.note(f"{agents} agents do not fit; larger counts skipped")
            return
        rate_1 = max(rate_1, row["iterations_per_second"])
        largest_ok, last_memory = agents, row["compiled_memory"]
    if not s["largest"] or not largest_ok:
        return
    candidate, how = agents_that_fit(last_memory, largest_ok)
    for attempt in (1, 2):
        candidate = candidate // s["round_to"] * s["round_to"]
        if candidate <= largest_ok:
            record.note(f"the largest count that fits is at most {largest_ok} ({how})")
            return
        if not clock.fits(need(candidate), f"scaling, largest: {candidate} agents", record):
            return
        if measure_and_add(candidate, largest_attempt=attempt, estimated_from=how)["status"] == "ok":
            return
        candidate = candidate * 3 // 4


def known_rate(call: Call, task: str, num_envs: int, dtype: str) -> tuple[float, str]:
    """One agent's iterations/s without evaluation, and where it comes from: this call, else a
    stage-a file of this device in $OUT or bench/results/, else the prior."""
    if (task, num_envs, dtype) in call.clock.rate_measured:
        return call.clock.rate_measured[(task, num_envs, dtype)], "measured in this call"
    device = call.info["device"].replace(" ", "_")
    for folder in dict.fromkeys([call.out, RESULTS]):
        path = folder / f"gpu_proof_iterations_{device}.json"
        for row in json.loads(path.read_text()).get("numbers", []) if path.exists() else []:
            if (row.get("task"), row.get("num_envs"), row.get("compute_dtype")) == (task, num_envs, dtype):
                return row["iterations_per_second"], str(path)
    return call.clock.prior("iterations_per_s", (task, num_envs)), "prior (no measurement on this device)"


def stage_learn(call: Call, record: StageRecord, which: str) -> None:
    """c1, c2: T1 learning at the reference settings, a bench_parity row per evaluation against
    the published returns; 4 vmapped seeds when they fit, else 1 (`--learn-seeds`)."""
    s, clock = call.settings["learn"], call.clock
    task, interval = s["task"], s["eval_interval"][which]
    config, num_chunks = learn_config(s, which)
    num_envs = config["NUM_ENVS"]
    rate, source = known_rate(call, task, num_envs, config["COMPUTE_DTYPE"])
    eval_s = clock.prior("eval_s", task)
    compile_s = clock.compile_s(task) + clock.prior("component_compile_s")  # + the eval step

    def estimate(seeds: int) -> float:  # time linear in seeds: an upper bound once the device is busy
        return compile_s + num_chunks * seeds * (interval / rate + eval_s)

    seeds = call.args.learn_seeds
    if seeds is None:
        seeds = s["max_seeds"] if estimate(s["max_seeds"]) <= clock.remaining() else 1
    reference = REFERENCE_RETURNS.get(task, {})
    record.result.update(
        env=task,
        seeds=seeds,
        master_seed=call.args.seed,  # the agents' keys are split from PRNGKey(master_seed)
        **settings_of(config),
        eval_interval=interval,
        num_eval_envs=config["NUM_EVAL_ENVS"],
        target_env_steps=s["env_steps"][which],
        estimated_seconds=estimate(seeds),
        estimate_from={"iterations_per_second": rate, "source": source, "eval_seconds": eval_s},
        reference_returns={str(k): v for k, v in reference.items()},
        reference_comparison={},
        wall_seconds_compile_included=None,
    )
    # c2 exists to reach 10.24M: it starts only when the whole run is expected to fit. c1 trains
    # what fits, evaluation by evaluation (a part of the 5.12M curve is still a result).
    first = compile_s + seeds * (interval / rate + eval_s)
    whole_needed = which == "learn2" and not call.args.learn2_anyway
    if not clock.fits(estimate(seeds) if whole_needed else first, f"{which} ({seeds} seeds)", record):
        record.result["needed_seconds_estimate"] = estimate(seeds)
        return
    start = time.perf_counter()
    run = Chunks(config, seeds, seed=call.args.seed)
    record.result.update(compile_seconds=run.compile_seconds, init_seconds=run.init_seconds)
    chunk_s, means = run.first_chunk_seconds, {}
    while True:
        row = evaluation_row(run.metrics, run.chunks_done, interval, num_envs)
        row.update(
            chunk_seconds=chunk_s, wall_seconds_compile_included=time.perf_counter() - start, status="ok"
        )
        steps = row["env_steps"]
        means[steps] = row["eval_return_mean"]
        record.result["reference_comparison"] = reference_comparison(task, means)
        record.result["wall_seconds_compile_included"] = row["wall_seconds_compile_included"]
        published = f" (published {reference[steps]:.2f})" if steps in reference else ""
        print(f"  {steps:>12,} env steps: eval return {means[steps]:8.2f}{published}, chunk {chunk_s:.1f} s")
        record.add(row)
        if run.chunks_done >= num_chunks:
            break
        if not clock.fits(chunk_s * 1.1, f"{which} evaluation {run.chunks_done + 1}/{num_chunks}", record):
            left = (num_chunks - run.chunks_done) * chunk_s
            record.result["needed_seconds_estimate"] = row["wall_seconds_compile_included"] + left
            break
        chunk_s = run.step()
    del run
    gc.collect()


def stage_profile(call: Call, record: StageRecord) -> None:
    """d: one T1 iteration taken apart: the whole and the warm-up iteration (stage a's, else from
    its own chunks), the learner as their difference, and bench_profile's parts timed alone."""
    s, clock = call.settings["profile"], call.clock
    task, dtype, k = s["task"], s["dtype"], s["chunk_iterations"]
    config = profile_config(s)
    env, num_envs = envs.make_env(config), config["NUM_ENVS"]
    record.result.update(env=task, **settings_of(config))

    def add(component: str, ms: float, how: str, **extra) -> None:
        record.add({"component": component, "ms": ms, "how": how, "status": "ok", **extra})
        print(f"  {component:<26} {ms:9.3f} ms", flush=True)
        gc.collect()

    # The whole iteration and the warm-up iteration: stage a's when it ran this setting.
    setting, source = (task, num_envs, dtype), "stage a (this call)"
    rows = [r for r in call.iteration_rows if (r["task"], r["num_envs"], r["compute_dtype"]) == setting]
    need = clock.compile_s(task) + 6 * k / clock.rate(task, num_envs)
    if not rows and clock.fits(need, "profile chunks", record):
        rows = [chunked_rate(config, timed_chunks=2)]
        clock.note_compile(task, rows[0]["compile_seconds"])
        source = f"own chunk program (compile {rows[0]['compile_seconds']:.0f} s)"
    if rows:
        full, warmup = rows[0]["iteration_ms"], rows[0]["warmup_iteration_ms"]
        chunk = rows[0]["chunk_iterations"]
        add("iteration", full, f"one learning iteration, from a {chunk}-iteration chunk; {source}")
        add("warmup_iteration", warmup, "act + simulator step + buffer add + normalizer, no updates")
        add("learner", full - warmup, "iteration - warm-up: buffer sample, 2 critic updates, 1 actor update")

    # The parts alone (bench_profile), each a jitted scan of k steps.
    component_s = clock.prior("component_compile_s")
    if clock.fits(component_s / 3, "profile buffer add and sample", record):
        add(**bench_profile.buffer_add(config, env, k))
        sample = bench_profile.buffer_sample(config, env, k)
        add(**sample)
        if rows:
            add("learner_without_sample", full - warmup - sample["ms"], "learner - buffer_sample")
    if clock.fits(2 * component_s, "profile simulator step", record):
        simulator, states = bench_profile.simulator_step(config, env, k)
        add(**simulator)
        if clock.fits(component_s, "profile evaluation step", record):
            add(**bench_profile.eval_step(config, env, states, k))


# ==================================================================================================
# DRIVER
# ==================================================================================================
def check_gpu_configs() -> list[str]:
    """Builds (validates) every config the GPU stages use, without building an environment, so a
    typo in a task name or a setting shows up in the smoke run, not on the device."""
    scaling, learn, profile = GPU_SETTINGS["scaling"], GPU_SETTINGS["learn"], GPU_SETTINGS["profile"]
    checked = [f"iterations {task} {dtype}" for task, dtype in iteration_configs(GPU_SETTINGS["iterations"])]
    chunk_config(scaling["task"], scaling["overrides"], scaling["chunk_iterations"])
    checked.append(f"scaling {scaling['task']}")
    for which, steps in learn["env_steps"].items():
        learn_config(learn, which)
        assert steps in REFERENCE_RETURNS[learn["task"]], which
        checked.append(f"{which} {learn['task']} to {steps:,} env steps")
    profile_config(profile)
    return [*checked, f"profile {profile['task']}"]


def parse_stages(text: str) -> list[str]:
    stages = [ALIASES.get(item.strip(), item.strip()) for item in text.split(",") if item.strip()]
    for name in stages:
        if name not in STAGES:
            raise argparse.ArgumentTypeError(
                f"unknown stage {name!r}: use {sorted(ALIASES)} or {list(STAGES)}"
            )
    return sorted(set(stages), key=STAGES.index)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    option = parser.add_argument
    option("--stages", type=parse_stages, default=None, help=f"default {DEFAULT_STAGES}")
    option("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="seconds for all stages")
    option("--smoke", action="store_true", help="every stage on CPU, tiny settings")
    option("--learn-seeds", type=int, default=None, help="seeds of c1/c2 (default: 4 if they fit, else 1)")
    option("--dtypes", default=None, help="stage a's compute dtypes (default bfloat16,float32)")
    option("--agents", default=None, help="stage b's agent counts (default 1,32,128,256)")
    option("--no-largest", action="store_true", help="stage b: do not search the largest count")
    option("--learn2-anyway", action="store_true", help="start c2 even when its estimate exceeds the budget")
    option("--seed", type=int, default=0, help="master PRNG seed of the learning run")
    option("--out", type=pathlib.Path, default=None, help="result folder (default $OUT, else bench/results)")
    option(
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
    else:
        out = pathlib.Path(tempfile.mkdtemp(prefix="gpu_proof_smoke_")) if args.smoke else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    cache = args.compile_cache
    if cache is None:  # --smoke: a fresh cache, so programs built twice in the call compile once
        cache = tempfile.mkdtemp(prefix="gpu_proof_smoke_cache_") if args.smoke else DEFAULT_CACHE
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)

    call = Call(args, out.resolve(), cache)
    info = call.info
    print(
        f"gpu_proof: stages {stages} on {info['device']} ({info['platform']}), "
        f"jax {info['versions']['jax']}, budget {args.budget_s:.0f} s, results in {call.out}, "
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
    statuses = {}
    for stage in stages:
        print(f"\n[{call.clock.elapsed():5.0f} s] stage {stage}", flush=True)
        record = StageRecord(stage, call)
        try:
            runners[stage](call, record)
            statuses[stage] = record.finish()
        except Exception:  # noqa: BLE001 - recorded; the next stage still runs
            text = traceback.format_exc()
            print(text, flush=True)
            statuses[stage] = record.finish(error=text)
        gc.collect()
    print(f"\n[{call.clock.elapsed():5.0f} s] done: " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    return 1 if "error" in statuses.values() else 0


if __name__ == "__main__":
    sys.exit(main())
