"""Aggregate agent-iterations/s and peak memory of N vmapped FastTD3 agents on one device.

For every agent count N (in increasing order) we time N vmapped agents with the method of
`bench_iterations.py`, reusing its `timed_run`: two compiled runs that differ only in their number
of learning iterations (evaluation off, NUM_EVAL_ENVS=0), whose difference in run time divided
into the extra iterations gives iterations/s with compile, init, warm-up and the final sync
cancelled out. All N agents advance one iteration together, so agent-iterations/s is N times
that. An iteration is one step of all NUM_ENVS envs of an agent, the buffer write and its
NUM_UPDATES critic updates (with the delayed actor updates).

Memory, per agent count:

* `peak_memory_bytes`: on a GPU, `jax.devices()[0].memory_stats()["peak_bytes_in_use"]` read
  after that count's runs. JAX cannot reset it, so it is a running maximum over everything the
  process ran so far; counts run in increasing order, so it is that count's peak unless a smaller
  count needed more. Where the device reports no memory stats (CPU), it is the process's maximum
  resident set size (`resource.getrusage`), likewise a running maximum, and it includes Python,
  JAX and the compiler. `peak_memory_source` says which one a file holds.
* `compiled_memory_bytes`: XLA's own account of the longer run's executable,
  `memory_analysis()` temp + argument + output bytes (breakdown in `compiled_memory`); available
  on CPU and GPU, null where the backend gives none.
* `replay_bytes_per_agent`: one agent's replay buffer (`purejax_fasttd3.replay_bytes`).

An agent count whose compile or run fails with RESOURCE_EXHAUSTED / out of memory is recorded
with `"status": "out_of_memory"` and the larger counts are skipped. On a GPU, unless
XLA_PYTHON_CLIENT_MEM_FRACTION is already set, this script sets it to 0.9 (JAX's default pool is
0.75 of the device) so that the largest count that fits is found; the value is recorded. The
file is rewritten after every agent count, so a run cut short keeps the counts it finished.

GPU commands for the issue's settings (128 envs, batch 4096; CheetahRun uses 3-step returns by
default; bfloat16 matmuls by default on GPU; 2 compiles per agent count):

    python bench/bench_scaling.py --env CheetahRun
    python bench/bench_scaling.py --env CartpoleBalance

Target on one H100/H200: at 128 agents >= 1,300 agent-iterations/s on CheetahRun. Options:
`--agents 1,8,32` (agent counts), `--iterations 100` (timed iterations: one value for every count,
or one per count, e.g. `--iterations 200,50,20`), `--set KEY=VALUE` (config override, repeatable),
`--tag` (file name suffix). Every agent count compiles two programs (MJX tasks: 0.5-1.5 min each
on 2 CPU cores); where one command has a time limit, split the counts, e.g. `--agents 1,8,32
--tag _a` and `--agents 128,512 --tag _b` (each process then has its own running peak).

Small CPU runs as recorded in bench/results/ (timed iterations chosen for >= 2 s differences):

    python bench/bench_scaling.py --env CartpoleBalance --set NUM_ENVS=16 --set BATCH_SIZE=256 \\
        --set CRITIC_HIDDEN_DIM=128 --set ACTOR_HIDDEN_DIM=64 --agents 1,8,32 --iterations 800,80,20
    python bench/bench_scaling.py --env CheetahRun --set NUM_ENVS=16 --set BATCH_SIZE=256 \\
        --set CRITIC_HIDDEN_DIM=128 --set ACTOR_HIDDEN_DIM=64 --agents 1,4,8 --iterations 40,12,8

Writes bench/results/scaling_<env>_<device>_<num_envs>envs<tag>.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

from fasttd3x import capacity

if "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ:
    # Only read by the GPU client; JAX's backend is not initialised before this point.
    os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = "0.9"

import jax

import purejax_fasttd3 as ft
from bench_iterations import RATES, rates, timed_run
from common import environment, parse_overrides, write
from fasttd3x import envs

# Per-task defaults of this benchmark (the settings); --set overrides them.
TASK_DEFAULTS = {
    "CheetahRun": {"NUM_ENVS": 128, "BATCH_SIZE": 4096},  # NUM_STEPS=3 is CheetahRun's default
    "CartpoleBalance": {"NUM_ENVS": 128, "BATCH_SIZE": 4096},
}
DEFAULT_AGENTS = "1,8,32,128,512"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def compiled_memory(compiled) -> dict | None:
    """XLA's memory account of an executable, or None where the backend gives none."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not implemented on some backends
        return None
    if stats is None:
        return None
    fields = (
        "temp_size_in_bytes",
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "alias_size_in_bytes",
        "generated_code_size_in_bytes",
        "peak_memory_in_bytes",
    )
    out = {f: int(getattr(stats, f)) for f in fields if getattr(stats, f, None) is not None}
    out["total_bytes"] = sum(out.get(f, 0) for f in fields[:3])
    return out


def peak_memory() -> tuple[int, str]:
    """(bytes, source): the device's peak bytes in use, else the process's max RSS."""
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device_peak_bytes_in_use"
    max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return int(max_rss_kib) * 1024, "process_max_rss"


def is_out_of_memory(error: BaseException) -> bool:
    text = f"{type(error).__name__}: {error}".lower()
    return "resource_exhausted" in text or "out of memory" in text or "outofmemory" in text


def agent_count_row(agents: int, num_envs: int, measure, **fields) -> dict:
    """One agent count's throughput and memory, `fields` after its count. `measure()` runs the
    count and returns (iterations/s, compile seconds, the executable, more fields); out of memory
    there is recorded as `"status": "out_of_memory"` with null figures, any other error is raised.
    The peak memory is read last, after the count's programs ran (or failed)."""
    memory_keys = ("peak_memory_bytes", "compiled_memory_bytes", "compiled_memory")
    row = {"agents": agents, **fields, "status": "ok"}
    row.update(dict.fromkeys((*RATES, "compile_seconds", *memory_keys)))
    try:
        per_second, compile_seconds, compiled, more = measure()
    except Exception as error:  # noqa: BLE001 - only out-of-memory is recorded, the rest re-raised
        if not is_out_of_memory(error):
            raise
        row.update(status="out_of_memory", error=str(error).splitlines()[0][:500])
    else:
        memory = compiled_memory(compiled)
        row.update(
            rates(per_second, agents, num_envs),
            compile_seconds=compile_seconds,
            compiled_memory_bytes=memory["total_bytes"] if memory else None,
            compiled_memory=memory,
            **more,
        )
    row["peak_memory_bytes"], row["peak_memory_source"] = peak_memory()
    return row


def agents_that_fit(memory: dict | None, agents: int) -> tuple[int, str]:
    """The agent count that the device memory should hold, from the compiled memory of `agents`
    agents (temporaries, arguments and outputs, less the outputs that alias the donated state,
    as bytes per agent into 0.92 of the device's limit), and how it was found. Without device
    memory figures (CPU) it is twice `agents`, so a search still runs."""
    stats = jax.devices()[0].memory_stats() or {}
    used = memory["total_bytes"] - memory.get("alias_size_in_bytes", 0) if memory else 0
    if used > 0 and stats.get("bytes_limit"):
        per_agent = used / agents
        how = f"0.92 x bytes_limit {stats['bytes_limit']} / {per_agent:.0f} bytes per agent"
        return int(0.92 * stats["bytes_limit"] / per_agent), how
    return 2 * agents, "twice the largest count (no device memory figures)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CheetahRun")
    parser.add_argument(
        "--agents",
        type=_int_list,
        default=_int_list(DEFAULT_AGENTS),
        help=f"comma-separated vmapped agent counts (default {DEFAULT_AGENTS})",
    )
    parser.add_argument(
        "--iterations",
        type=_int_list,
        default=[100],
        help="timed learning iterations: one value, or one per agent count",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--tag", default="", help="suffix for the result file name")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    agents_list = sorted(set(args.agents))
    if len(args.iterations) == 1:
        iterations = {n: args.iterations[0] for n in agents_list}
    elif len(args.iterations) == len(args.agents):
        iterations = dict(zip(args.agents, args.iterations))
    else:
        parser.error("--iterations takes one value or one per agent count")

    overrides = {**TASK_DEFAULTS.get(args.env, {}), **parse_overrides(args.set)}
    base = ft.make_config(args.env, **overrides)
    env = envs.make_env(base)
    info = environment()
    device = info["device"].replace(" ", "_")
    name = f"scaling_{args.env}_{device}_{base['NUM_ENVS']}envs{args.tag}"
    # Warm-up plus a few learning iterations; the longer run adds the timed iterations.
    short_total = base["LEARNING_STARTS"] + 1 + 5

    result = {
        "benchmark": "scaling",
        "env": args.env,
        **info,
        "num_envs": base["NUM_ENVS"],
        "batch_size": base["BATCH_SIZE"],
        "num_updates": base["NUM_UPDATES"],
        "num_steps": base["NUM_STEPS"],
        "critic_hidden_dim": base["CRITIC_HIDDEN_DIM"],
        "actor_hidden_dim": base["ACTOR_HIDDEN_DIM"],
        "buffer_size_per_env": base["BUFFER_SIZE"],
        "compute_dtype": base["COMPUTE_DTYPE"],
        "timed_iterations": args.iterations[0] if len(set(iterations.values())) == 1 else iterations,
        "replay_bytes_per_agent": capacity.replay_bytes(base, env),
        "overrides": overrides,
        "peak_memory_source": None,
        "peak_memory_note": "running maximum over the process: agent counts run in increasing order",
        "xla_python_client_mem_fraction": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION"),
        "rows": [],
    }
    print(
        f"{args.env}: {base['NUM_ENVS']} envs, batch {base['BATCH_SIZE']}, {base['NUM_STEPS']}-step, "
        f"{base['COMPUTE_DTYPE']} on {info['device']}; agents {agents_list}",
        flush=True,
    )

    for agents in agents_list:
        timed = iterations[agents]

        def measure():
            runs = {}
            for total in (short_total, short_total + timed):
                timing = {"TOTAL_TIMESTEPS": total, "EVAL_INTERVAL": total, "NUM_EVAL_ENVS": 0}
                config = ft.make_config(args.env, **{**overrides, **timing})
                runs[total] = timed_run(config, agents, seed=args.seed)
                print(
                    f"  {agents} agents, {total} iterations: compile {runs[total].compile_seconds:.1f} s, "
                    f"run {runs[total].run_seconds:.2f} s",
                    flush=True,
                )
            longer = runs[short_total + timed]
            extra_time = longer.run_seconds - runs[short_total].run_seconds
            return timed / extra_time, longer.compile_seconds, longer.compiled, {"run_seconds": extra_time}

        row = agent_count_row(agents, base["NUM_ENVS"], measure, timed_iterations=timed, run_seconds=None)
        result["peak_memory_source"] = row.pop("peak_memory_source")
        if row["status"] == "out_of_memory":
            result["rows"].append(row)
            print(
                f"  {agents} agents: out of memory; skipping {[n for n in agents_list if n > agents]}",
                flush=True,
            )
            write(name, result)
            break
        row["load_average_1min"] = os.getloadavg()[0]  # host load at the end (shared machines)
        result["rows"].append(row)
        memory = row["compiled_memory"]
        compiled_gib = f"{memory['total_bytes'] / 2**30:.2f} GiB" if memory else "n/a"
        print(
            f"{agents:>5} agents: {row['iterations_per_second']:8.2f} it/s, "
            f"{row['agent_iterations_per_second']:9.1f} agent-it/s, "
            f"peak {row['peak_memory_bytes'] / 2**30:.2f} GiB ({result['peak_memory_source']}), "
            f"compiled {compiled_gib}",
            flush=True,
        )
        write(name, result)


if __name__ == "__main__":
    sys.exit(main())
