"""The parts of one FastTD3 iteration timed alone: buffer write, buffer sample, simulator step and
evaluation step.

Each part is jitted as a `lax.scan` of `--iterations` steps, compiled and run once, then timed as
the fastest of two more calls (on the state the previous call returned where it is donated); a
row gives milliseconds per step, that is per iteration of the training loop. The buffer parts
run on a full buffer of zeros (the gathers cost the same), the simulator step with random
actions (what shared/device/MEASURED.md times), the evaluation step with a freshly initialised
actor.

    python bench/bench_profile.py --env T1JoystickFlatTerrain --num-envs 1024 --iterations 50

Writes bench/results/profile_<env>_<device>_<num_envs>envs_<dtype>.json.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import purejax_fasttd3 as ft
from common import compile_and_run, environment, parse_overrides, write
from fasttd3x import envs, networks


def fastest_call(compiled, args: tuple, chained: bool) -> float:
    """Seconds of the fastest of two calls; `chained`: each call takes the state (first argument)
    that the previous one returned, as a donated argument must."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
        if chained:
            args = (out[0], *args[1:])
    return best


def _row(component: str, seconds: float, n: int, how: str, compile_seconds: float) -> dict:
    """A part's milliseconds per step, from the seconds of a scan of `n` steps."""
    return {"component": component, "ms": 1000 * seconds / n, "how": how, "compile_seconds": compile_seconds}


def full_buffer(config: dict, env: envs.Env) -> ft.ReplayBuffer:
    """A buffer of zeros whose every slot counts as written, so samples reach all of it."""
    return ft.buffer_for(config, env)._replace(ptr=jnp.int32(config["BUFFER_SIZE"]))


def buffer_add(config: dict, env: envs.Env, n: int) -> dict:
    """One iteration's write of every env's transition into a full buffer."""
    num_envs = config["NUM_ENVS"]
    obs, action = jnp.zeros((num_envs, env.obs_dim)), jnp.zeros((num_envs, env.action_dim))
    privileged = jnp.zeros((num_envs, env.privileged_dim))
    out = envs.StepOutput(
        reward=jnp.zeros(num_envs),
        done=jnp.zeros(num_envs, bool),
        truncated=jnp.ones(num_envs, bool),  # the final-observation ring is written too
        final_obs=obs,
        final_privileged=privileged,
    )

    def adds(buf):
        buf = jax.lax.scan(lambda b, _: (ft.buffer_add(b, obs, privileged, action, out), None), buf, None, n)[
            0
        ]
        return buf, buf.ptr

    timed = compile_and_run(jax.jit(adds, donate_argnums=0), full_buffer(config, env))
    seconds = fastest_call(timed.compiled, (timed.out[0],), chained=True)
    return _row("buffer_add", seconds, n, f"scan of {n} writes of {num_envs} envs", timed.compile_seconds)


def buffer_sample(config: dict, env: envs.Env, n: int) -> dict:
    """One iteration's samples: NUM_UPDATES batches of BATCH_SIZE n-step transitions."""
    updates, batch = config["NUM_UPDATES"], config["BATCH_SIZE"]
    per_env = batch // config["NUM_ENVS"]

    def samples(buf, key):
        def one(total, key):
            sample = ft.buffer_sample(
                buf, key, updates * per_env, config["NUM_STEPS"], 0.99, config["DISABLE_BOOTSTRAP"]
            )
            return total + sum(x.astype(jnp.float32).sum() for x in jax.tree.leaves(sample)), None

        return jax.lax.scan(one, jnp.float32(0.0), jax.random.split(key, n))[0]

    buf = full_buffer(config, env)
    timed = compile_and_run(jax.jit(samples), buf, jax.random.PRNGKey(0))
    seconds = fastest_call(timed.compiled, (buf, jax.random.PRNGKey(1)), chained=False)
    how = f"one iteration's {updates} x {batch} {config['NUM_STEPS']}-step transitions"
    return _row("buffer_sample", seconds, n, how, timed.compile_seconds)


def simulator_step(config: dict, env: envs.Env, n: int) -> tuple[dict, object]:
    """The vmapped step of NUM_ENVS envs with random actions; also their reset states (for
    eval_step)."""
    num_envs = config["NUM_ENVS"]
    reset = compile_and_run(jax.jit(jax.vmap(env.reset)), jax.random.split(jax.random.PRNGKey(0), num_envs))

    def sim(states, key):
        def one(states, key):
            k_act, k_step = jax.random.split(key)
            action = jax.random.uniform(k_act, (num_envs, env.action_dim), minval=-1.0, maxval=1.0)
            states, out = jax.vmap(env.step)(states, action, jax.random.split(k_step, num_envs))
            return states, out.reward.sum()

        return jax.lax.scan(one, states, jax.random.split(key, n))

    timed = compile_and_run(jax.jit(sim), reset.out, jax.random.PRNGKey(1))
    seconds = fastest_call(timed.compiled, (timed.out[0], jax.random.PRNGKey(2)), chained=True)
    how = f"scan of {n} vmapped env.step of {num_envs} envs, random actions"
    row = _row("simulator_step", seconds, n, how, timed.compile_seconds)
    return {**row, "reset_compile_seconds": reset.compile_seconds}, reset.out


def eval_step(config: dict, env: envs.Env, states, n: int) -> dict:
    """The actor and the vmapped evaluation step on NUM_ENVS env `states` (simulator_step's): one
    of up to `episode_iterations` steps of an evaluation."""
    actor = networks.Actor(env.action_dim, config["ACTOR_HIDDEN_DIM"], jnp.dtype(config["COMPUTE_DTYPE"]))
    params = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, env.obs_dim)))

    def evaluate(states):
        def one(states, _):
            states, reward, _ = jax.vmap(env.eval_step)(states, actor.apply(params, states.obs))
            return states, reward.sum()

        return jax.lax.scan(one, states, None, n)

    timed = compile_and_run(jax.jit(evaluate), states)
    seconds = fastest_call(timed.compiled, (timed.out[0],), chained=True)
    how = (
        f"actor + vmapped env.eval_step of {config['NUM_ENVS']} envs (NUM_EVAL_ENVS is 1024 at the reference)"
    )
    row = _row("eval_step", seconds, n, how, timed.compile_seconds)
    upper_bound = row["ms"] * env.episode_iterations / 1000
    return {
        **row,
        "evaluation_upper_bound_seconds": upper_bound,
        "episode_iterations": env.episode_iterations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="T1JoystickFlatTerrain")
    parser.add_argument("--num-envs", type=int, default=None, help="NUM_ENVS (task default if unset)")
    parser.add_argument("--iterations", type=int, default=50, help="steps of each timed scan")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    overrides = parse_overrides(args.set)
    if args.num_envs is not None:
        overrides["NUM_ENVS"] = args.num_envs
    config = ft.make_config(args.env, **overrides)
    env, n = envs.make_env(config), args.iterations
    rows = [buffer_add(config, env, n), buffer_sample(config, env, n)]
    simulator, states = simulator_step(config, env, n)
    rows += [simulator, eval_step(config, env, states, n)]
    for row in rows:
        print(f"  {row['component']:<16} {row['ms']:9.3f} ms (compile {row['compile_seconds']:.0f} s)")
    info = environment()
    device = info["device"].replace(" ", "_")
    result = {"benchmark": "profile", "env": args.env, "config": config, "overrides": overrides, "rows": rows}
    write(
        f"profile_{args.env}_{device}_{config['NUM_ENVS']}envs_{config['COMPUTE_DTYPE']}", {**result, **info}
    )


if __name__ == "__main__":
    main()
