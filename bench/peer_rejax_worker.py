"""Trains rejax 0.1.3 TD3 and SAC on gymnax Pendulum-v1, vmapped over seeds, and reports JSON.

Runs inside the throwaway rejax virtualenv that `bench/bench_peer.py` builds (rejax==0.1.3, six,
gymnax==0.0.9); it imports nothing from this repository. Seeds are
`jax.random.split(jax.random.PRNGKey(master), seeds)` for every master seed, the same keys our
side trains on. Each algorithm trains one eval chunk per call of a compiled program (rejax's
`train(train_state=...)` with total_timesteps == eval_freq), so the host takes a timestamp at
every evaluation; compilation is timed apart, and so is one evaluation alone.

    python peer_rejax_worker.py --master-seeds 1,2 --seeds 32 --total-timesteps N \
        --eval-freq F --eval-episodes E [--algos td3,sac] [--overrides JSON] [--num-envs N] [--out PATH]

`--num-envs N` steps N envs per iteration and scales `num_epochs` (updates per iteration) by the
same factor, so the tuned config keeps its own updates per env step: rejax's tuning moved only to
parallel envs.
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

# rejax 0.1.3's Algorithm.create installs an eval callback of 128 episodes (one per split of the
# rng, each until done or the step limit); --eval-episodes replaces the count, the policy stays.
REJAX_EVAL_EPISODES = 128
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


def env_steps_per_chunk(name: str, algo) -> int:
    """Env steps per agent in one call of `algo.train` with total_timesteps == eval_freq.

    A chunk is a fori_loop of ceil(eval_freq / num_envs) iterations of num_envs env steps
    (SAC: ReplayBufferMixin.train), or ceil(eval_freq / (num_envs * policy_delay)) iterations of
    num_envs * policy_delay env steps (TD3.train)."""
    per_iteration = algo.num_envs * (algo.policy_delay if name == "td3" else 1)
    return math.ceil(algo.eval_freq / per_iteration) * per_iteration


def make_eval_callback(env, env_params, episodes: int):
    """rejax's own evaluation (rejax.evaluate.evaluate with its policy, `algo.make_act`), with
    `episodes` episodes instead of the 128 that Algorithm.create fixes, so both sides of the
    comparison pay for the same number of evaluation episodes."""

    def eval_callback(algo, ts, rng):
        act = algo.make_act(ts)
        return rejax.evaluate.evaluate(act, rng, env, env_params, episodes, env_params.max_steps_in_episode)

    return eval_callback


def make_programs(name: str, config: dict, eval_episodes: int):
    """The algorithm set up to train one eval chunk per call, and its three vmapped programs:
    init (keys -> train states), chunk (train state -> train state, evaluation) and the
    evaluation alone (train state -> evaluation), so that the run is timed at every evaluation
    from the host and the cost of one evaluation is measured apart."""
    algo_cls = rejax.get_algo(name)
    chunk_config = {**config, "total_timesteps": config["eval_freq"], "skip_initial_evaluation": True}
    algo = algo_cls.create(**copy.deepcopy(chunk_config))  # create pops keys from its argument
    algo = algo.replace(eval_callback=make_eval_callback(algo.env, algo.env_params, eval_episodes))
    init = jax.jit(jax.vmap(algo.init_state))
    chunk = jax.jit(jax.vmap(lambda ts: algo.train(train_state=ts)), donate_argnums=0)
    evaluate = jax.jit(jax.vmap(lambda ts: algo.eval_callback(algo, ts, ts.rng)))
    return algo, init, chunk, evaluate


def run_algo(name: str, config: dict, master_seeds: list[int], seeds: int, eval_episodes: int) -> dict:
    algo, init, chunk, evaluate = make_programs(name, config, eval_episodes)
    per_chunk = env_steps_per_chunk(name, algo)
    num_evals = math.ceil(config["total_timesteps"] / per_chunk)
    env_steps = [per_chunk * (i + 1) for i in range(num_evals)]

    keys = {m: jax.random.split(jax.random.PRNGKey(m), seeds) for m in master_seeds}
    log(f"{name}: compiling for {seeds} seeds")
    start = time.perf_counter()
    init_c = init.lower(keys[master_seeds[0]]).compile()
    state_shape = jax.eval_shape(init, keys[master_seeds[0]])
    chunk_c = chunk.lower(state_shape).compile()
    eval_c = evaluate.lower(state_shape).compile()
    compile_s = time.perf_counter() - start
    log(f"{name}: compiled in {compile_s:.1f} s")

    runs = []
    for m in master_seeds:
        start = time.perf_counter()
        ts = init_c(keys[m])
        seconds, returns = [], []
        for i in range(num_evals):
            ts, (_, episode_returns) = chunk_c(ts)
            returns.append(np.asarray(episode_returns).mean(-1))  # waits for the chunk
            seconds.append(time.perf_counter() - start)
            global_step = np.asarray(ts.global_step)
            if np.any(global_step != env_steps[i]):
                raise RuntimeError(f"{name}: global_step {global_step.tolist()} != {env_steps[i]}")
        eval_s = []
        for _ in range(3):  # the evaluation alone, on the final state, after a warm call
            t = time.perf_counter()
            jax.block_until_ready(eval_c(ts))
            eval_s.append(time.perf_counter() - t)
        returns = np.stack(returns, axis=1)  # [seeds, evals]
        log(f"{name}: master seed {m}: run {seconds[-1]:.1f} s, final mean {returns[:, -1].mean():.1f}")
        runs.append(
            {
                "master_seed": m,
                "run_seconds": seconds[-1],
                "seconds_at_eval": seconds,
                "eval_seconds": float(np.median(eval_s[1:])),
                # Mean over the evaluation's episodes, per seed and evaluation.
                "eval_return": returns.tolist(),
            }
        )
    return {
        "config": config,
        "compile_seconds": compile_s,
        "env_steps": env_steps,
        "eval_episodes": eval_episodes,
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
        "--total-timesteps", type=int, default=None, help="env steps per agent (default: the config's)"
    )
    parser.add_argument(
        "--eval-freq", type=int, default=None, help="env steps between evaluations (default: the config's)"
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=REJAX_EVAL_EPISODES, help="episodes per evaluation"
    )
    parser.add_argument(
        "--overrides",
        default="{}",
        help='JSON of config values to set per algorithm, e.g. {"td3": {"num_envs": 16}}',
    )
    parser.add_argument(
        "--num-envs",
        type=int,
        default=None,
        help="envs per iteration, with num_epochs scaled to keep the config's updates per env step",
    )
    parser.add_argument("--out", default=None, help="JSON path (default: stdout)")
    args = parser.parse_args()
    if args.num_envs is not None and args.num_envs < 1:
        raise SystemExit(f"--num-envs {args.num_envs}: must be at least 1")
    master_seeds = [int(s) for s in args.master_seeds.split(",") if s.strip()]
    overrides = json.loads(args.overrides)

    device = jax.devices()[0]
    result = {
        "config_source": CONFIG_SOURCE,
        "versions": versions(),
        "python": platform.python_version(),
        "device": device.device_kind,
        "platform": device.platform,
        "master_seeds": master_seeds,
        "seeds": args.seeds,
        "overrides": overrides,
        "num_envs": args.num_envs,
        "algos": {},
    }
    for name in args.algos.split(","):
        config = copy.deepcopy(REJAX_PENDULUM[name])
        unknown = set(overrides.get(name, {})) - set(config)
        if unknown:
            raise SystemExit(f"--overrides: {sorted(unknown)} are not keys of rejax's {name} config")
        config.update(overrides.get(name, {}))
        if args.num_envs is not None:
            scale, rest = divmod(args.num_envs * config["num_epochs"], config["num_envs"])
            if rest:
                raise SystemExit(f"--num-envs {args.num_envs}: not a multiple of {name}'s num_envs")
            config.update(num_envs=args.num_envs, num_epochs=scale)
        if args.total_timesteps is not None:
            config["total_timesteps"] = args.total_timesteps
        if args.eval_freq is not None:
            config["eval_freq"] = args.eval_freq
        result["algos"][name] = run_algo(name, config, master_seeds, args.seeds, args.eval_episodes)

    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
