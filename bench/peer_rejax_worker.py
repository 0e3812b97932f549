"""Trains rejax 0.1.3 TD3 and SAC on gymnax Pendulum-v1, vmapped over seeds, and reports JSON.

Runs inside the throwaway rejax virtualenv that `bench/bench_peer.py` builds (rejax==0.1.3, six,
gymnax==0.0.9); it imports nothing from this repository. Seeds are
`jax.random.split(jax.random.PRNGKey(master), seeds)` for every master seed, the same keys our
side trains on. Each algorithm is compiled once (lower + compile, timed) and the compiled program
then runs once per master seed (timed with block_until_ready, compile excluded).

    python peer_rejax_worker.py --master-seeds 1,2 --seeds 32 [--total-timesteps N] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import math
import platform
import sys
import time

import jax
import numpy as np
import rejax

# rejax's own Pendulum settings: configs/gymnax/pendulum.yaml in the keraJLi/rejax repository
# (the file is not shipped in the wheel; its `sac` and `td3` entries are the same at commits
# 4954fbf6a765ca5fe17b3037fc20a6f217291271 and b33bab417060219a5ff6bdf21f92cf0ca183bd34).
# Written out here as dicts, key for key.
REJAX_PENDULUM = {
    "td3": {
        "env": "Pendulum-v1",
        "actor_kwargs": {"activation": "swish"},
        "critic_kwargs": {"activation": "swish"},
        "num_envs": 1,
        "buffer_size": 10_000,
        "fill_buffer": 1000,
        "batch_size": 100,
        "learning_rate": 0.001,
        "num_epochs": 1,
        "total_timesteps": 10_000,
        "eval_freq": 100,
        "gamma": 0.99,
        "polyak": 0.95,
        "max_grad_norm": 100,
        "exploration_noise": 0.3,
        "target_noise": 0.2,
        "target_noise_clip": 0.5,
        "policy_delay": 2,
        "normalize_observations": True,
    },
    "sac": {
        "env": "Pendulum-v1",
        "agent_kwargs": {"activation": "swish"},
        "num_envs": 1,
        "buffer_size": 10_000,
        "fill_buffer": 256,
        "batch_size": 256,
        "learning_rate": 0.01,
        "num_epochs": 1,
        "total_timesteps": 10_000,
        "eval_freq": 100,
        "gamma": 0.99,
        "polyak": 0.98,
        "target_entropy_ratio": None,
        "normalize_observations": True,
    },
}
CONFIG_SOURCE = "keraJLi/rejax configs/gymnax/pendulum.yaml (td3 and sac entries)"

# rejax 0.1.3's Algorithm.create installs an eval callback that runs
# rejax.evaluate.evaluate(act, rng, env, env_params, 128, env_params.max_steps_in_episode):
# 128 episodes (one per split of the rng), each until done or the step limit.
EVAL_EPISODES = 128
EVAL_POLICY = {
    # TD3.make_act applies the deterministic actor.
    "td3": "deterministic actor output",
    # SAC.make_act calls the actor's `act`, which in 0.1.3 *samples* the squashed Gaussian.
    "sac": "stochastic: samples the squashed Gaussian (SAC.make_act -> actor.act)",
}
_VERSIONS = ("jax", "jaxlib", "rejax", "gymnax", "flax", "optax", "distrax", "numpy")


def log(msg: str) -> None:
    print(f"[rejax worker] {msg}", file=sys.stderr, flush=True)


def versions() -> dict:
    out = {}
    for name in _VERSIONS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def eval_env_steps(name: str, algo, num_evals: int) -> list[int]:
    """Env steps per agent at each of rejax's evaluations.

    rejax 0.1.3 evaluates once before training (unless skip_initial_evaluation) and then after
    each of ceil(total_timesteps / eval_freq) chunks. A chunk is a fori_loop of
    ceil(eval_freq / num_envs) iterations of num_envs env steps (SAC: ReplayBufferMixin.train),
    or ceil(eval_freq / (num_envs * policy_delay)) iterations of num_envs * policy_delay env steps
    (TD3.train)."""
    if name == "td3":
        per_iteration = algo.num_envs * algo.policy_delay
    else:
        per_iteration = algo.num_envs
    per_chunk = math.ceil(algo.eval_freq / per_iteration) * per_iteration
    chunks = math.ceil(algo.total_timesteps / algo.eval_freq)
    steps = [k * per_chunk for k in range(1, chunks + 1)]
    if not algo.skip_initial_evaluation:
        steps = [0] + steps
    if len(steps) != num_evals:
        raise RuntimeError(f"{name}: expected {len(steps)} evaluations, rejax returned {num_evals}")
    return steps


def run_algo(name: str, config: dict, master_seeds: list[int], seeds: int) -> dict:
    algo_cls = rejax.get_algo(name)
    algo = algo_cls.create(**copy.deepcopy(config))  # create pops keys from its argument
    train = jax.jit(jax.vmap(algo.train))

    keys = {m: jax.random.split(jax.random.PRNGKey(m), seeds) for m in master_seeds}
    first = keys[master_seeds[0]]
    log(f"{name}: compiling for {seeds} seeds")
    start = time.perf_counter()
    compiled = train.lower(first).compile()
    compile_s = time.perf_counter() - start
    log(f"{name}: compiled in {compile_s:.1f} s")

    runs = []
    for m in master_seeds:
        start = time.perf_counter()
        ts, (lengths, returns) = jax.block_until_ready(compiled(keys[m]))
        run_s = time.perf_counter() - start
        lengths = np.asarray(lengths)  # [seeds, evals, episodes]
        returns = np.asarray(returns)
        log(f"{name}: master seed {m}: run {run_s:.1f} s, final mean {returns[:, -1].mean():.1f}")
        runs.append(
            {
                "master_seed": m,
                "run_seconds": run_s,
                # Mean over rejax's EVAL_EPISODES episodes, per seed and evaluation.
                "eval_return": returns.mean(-1).tolist(),
                "eval_episode_length_mean": float(lengths.mean()),
                "final_global_step": np.asarray(ts.global_step).tolist(),
            }
        )

    num_evals = len(runs[0]["eval_return"][0])
    episodes = int(np.asarray(lengths).shape[-1])
    if episodes != EVAL_EPISODES:
        raise RuntimeError(f"{name}: expected {EVAL_EPISODES} eval episodes, got {episodes}")
    env_steps = eval_env_steps(name, algo, num_evals)
    for run in runs:
        if any(g != env_steps[-1] for g in run["final_global_step"]):
            raise RuntimeError(f"{name}: global_step {run['final_global_step']} != {env_steps[-1]}")
    return {
        "config": config,
        "compile_seconds": compile_s,
        "env_steps": env_steps,
        "initial_evaluation": not algo.skip_initial_evaluation,
        "eval_episodes": episodes,
        "eval_max_steps": int(algo.env_params.max_steps_in_episode),
        "eval_policy": EVAL_POLICY[name],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--master-seeds", default="1,2", help="comma-separated master seeds")
    parser.add_argument("--seeds", type=int, default=32, help="seeds per master seed (vmapped)")
    parser.add_argument("--algos", default="td3,sac")
    parser.add_argument(
        "--total-timesteps",
        type=int,
        default=None,
        help="override the config's total_timesteps (for smoke runs)",
    )
    parser.add_argument("--out", default=None, help="JSON path (default: stdout)")
    args = parser.parse_args()
    master_seeds = [int(s) for s in args.master_seeds.split(",") if s.strip()]

    device = jax.devices()[0]
    result = {
        "config_source": CONFIG_SOURCE,
        "versions": versions(),
        "python": platform.python_version(),
        "device": device.device_kind,
        "platform": device.platform,
        "master_seeds": master_seeds,
        "seeds": args.seeds,
        "algos": {},
    }
    for name in args.algos.split(","):
        config = copy.deepcopy(REJAX_PENDULUM[name])
        if args.total_timesteps is not None:
            config["total_timesteps"] = args.total_timesteps
        result["algos"][name] = run_algo(name, config, master_seeds, args.seeds)

    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
