"""Iterations/s of the full FastTD3 training step (env step of all envs + its updates).

An iteration is what the reference times: one step of all NUM_ENVS envs, the buffer write and
NUM_UPDATES critic updates with their actor update. We compile two runs that differ only in
their number of learning iterations (one chunk each, evaluation off) and divide the extra
iterations by the extra wall time, so compile, init, warm-up and the final sync cancel out.
`chunked_rate` is the one-compile alternative that bench/gpu_proof.py uses: one eval chunk
compiled once and timed on later calls.

    python bench/bench_iterations.py --env CheetahRun --num-envs 1024 --iterations 300
    python bench/bench_iterations.py --env T1JoystickFlatTerrain --agents 1 --set COMPUTE_DTYPE=float32

Writes bench/results/iterations_<env>_<device>_<agents>x<envs>_<dtype>.json.
"""

from __future__ import annotations

import argparse

import jax

import purejax_fasttd3 as ft
from common import Chunks, Timed, chunk_config, compile_and_run, environment, parse_overrides, write
from fasttd3x import capacity, envs

RATES = ("iterations_per_second", "agent_iterations_per_second", "env_steps_per_second")


def rates(per_second: float, agents: int, num_envs: int) -> dict:
    """The throughput figures (RATES) of every result from the iterations per second of a run of
    `agents` vmapped agents, which advance one iteration together, each stepping `num_envs` envs."""
    return dict(zip(RATES, (per_second, per_second * agents, per_second * agents * num_envs)))


def timed_run(config: dict, agents: int, seed: int = 0) -> Timed:
    """Compile and run times (and the executable) of `agents` vmapped agents; output dropped."""
    train = jax.jit(jax.vmap(ft.make_train(config)))
    rngs = jax.random.split(jax.random.PRNGKey(seed), agents)
    return compile_and_run(train, rngs)._replace(out=None)


def chunked_config(task: str, overrides: dict, chunk: int) -> dict:
    """A config for `chunked_rate`: eval chunks of `chunk` iterations without evaluation, chunks 0
    and 1 all warm-up (LEARNING_STARTS is 2 chunks - 1), later chunks learning on every iteration."""
    return chunk_config(task, overrides, chunk, LEARNING_STARTS=2 * chunk - 1)


def chunked_rate(config: dict, timed_chunks: int) -> dict:
    """One agent's iterations/s by `common.Chunks` (one compile), `config` from `chunked_config`:
    chunk 0 runs with the compile and init, chunk 1 is timed as the warm-up, then `timed_chunks`
    chunks learn on every iteration and their summed wall time gives the rate."""
    k = config["EVAL_INTERVAL"]
    run = Chunks(config, agents=1)
    warmup_s = run.step()
    learn_s = [run.step() for _ in range(timed_chunks)]
    per_s = timed_chunks * k / sum(learn_s)
    print(
        f"  {config['ENV_NAME']} {config['COMPUTE_DTYPE']}: {per_s:.2f} iterations/s ({1000 / per_s:.2f} ms; "
        f"warm-up {1000 * warmup_s / k:.2f} ms), compile {run.compile_seconds:.0f} s",
        flush=True,
    )
    return {
        "agents": 1,
        "chunk_iterations": k,
        "timed_chunks": timed_chunks,
        "chunk_seconds": learn_s,
        **rates(per_s, 1, config["NUM_ENVS"]),
        "iteration_ms": 1000 / per_s,
        "warmup_iteration_ms": 1000 * warmup_s / k,
        "compile_seconds": run.compile_seconds,
        "init_seconds": run.init_seconds,
        "status": "ok",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CheetahRun")
    parser.add_argument("--num-envs", type=int, default=None, help="NUM_ENVS (task default if unset)")
    parser.add_argument("--agents", type=int, default=1, help="vmapped agents")
    parser.add_argument("--iterations", type=int, default=200, help="timed learning iterations")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--tag", default="", help="suffix for the result file name")
    args = parser.parse_args()

    overrides = parse_overrides(args.set)
    if args.num_envs is not None:
        overrides["NUM_ENVS"] = args.num_envs
    base = ft.make_config(args.env, **overrides)
    # Warm-up plus a few learning iterations; the longer run adds `iterations` more.
    short_total = base["LEARNING_STARTS"] + 1 + 5
    runs = {}
    for total in (short_total, short_total + args.iterations):
        timing = {"TOTAL_TIMESTEPS": total, "EVAL_INTERVAL": total, "NUM_EVAL_ENVS": 0}
        config = ft.make_config(args.env, **{**overrides, **timing})
        runs[total] = timed_run(config, args.agents)
        print(
            f"{total} iterations: compile {runs[total].compile_seconds:.1f} s, "
            f"run {runs[total].run_seconds:.2f} s"
        )

    extra_time = runs[short_total + args.iterations].run_seconds - runs[short_total].run_seconds
    per_second = args.iterations / extra_time
    env = envs.make_env(base)
    info = environment()
    result = {
        "benchmark": "iterations",
        "env": args.env,
        "agents": args.agents,
        "num_envs": base["NUM_ENVS"],
        "batch_size": base["BATCH_SIZE"],
        "num_updates": base["NUM_UPDATES"],
        "num_steps": base["NUM_STEPS"],
        "compute_dtype": base["COMPUTE_DTYPE"],
        "timed_iterations": args.iterations,
        **rates(per_second, args.agents, base["NUM_ENVS"]),
        "compile_seconds": runs[short_total + args.iterations].compile_seconds,
        "replay_bytes_per_agent": capacity.replay_bytes(base, env),
        "overrides": overrides,
        **info,
    }
    device = info["device"].replace(" ", "_")
    name = (
        f"iterations_{args.env}_{device}_{args.agents}x{base['NUM_ENVS']}_{base['COMPUTE_DTYPE']}{args.tag}"
    )
    print(
        f"{per_second:.2f} iterations/s ({per_second * args.agents:.2f} agent-iterations/s) "
        f"on {info['device']}"
    )
    write(name, result)


if __name__ == "__main__":
    main()
