"""How many agents fit: bytes per agent, free device memory, agents per call, and the CPU's
device layout."""

from __future__ import annotations

import json
import os
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from fasttd3x import distributed, envs
from fasttd3x.configs import CPU_SIZE_LIMITS
from fasttd3x.networks import critic_hidden_widths, make_networks
from fasttd3x.replay import buffer_for


def tree_bytes(tree) -> int:
    """Bytes of every leaf of `tree` (arrays or shapes)."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def replay_bytes(config: dict, env: envs.Env) -> int:
    """Bytes of one agent's replay buffer (shapes only; nothing is allocated)."""
    return tree_bytes(jax.eval_shape(lambda: buffer_for(config, env)))


def bytes_per_agent(config: dict, env: envs.Env) -> dict[str, int]:
    """Estimated device memory of one agent: state that lives through the run plus the
    working set of one update. Shapes only; nothing is compiled or allocated."""
    num_envs = config["NUM_ENVS"]
    obs_in = env.obs_dim + env.privileged_dim
    nets = make_networks(config, env.action_dim)  # the architecture the run trains (AGENT, SIM_TYPE)
    key = jax.random.PRNGKey(0)
    actor_params = jax.eval_shape(nets.actor.init, key, jnp.zeros((1, env.obs_dim)))
    critic_inputs = jnp.zeros((1, obs_in)), jnp.zeros((1, env.action_dim))
    critic_params = jax.eval_shape(nets.critic.init, key, *critic_inputs)
    # Actor: params + 2 Adam moments; twin critics: params, target and 2 moments.
    networks = 3 * tree_bytes(actor_params) + 2 * 4 * tree_bytes(critic_params)
    one_env_state = tree_bytes(jax.eval_shape(env.reset, key))  # traced once: an MJX reset traces for seconds
    env_state = num_envs * one_env_state
    eval_state = max(config["NUM_EVAL_ENVS"], 1) * one_env_state
    batch = config["BATCH_SIZE"]
    sample = config["NUM_UPDATES"] * batch * (2 * obs_in + env.action_dim + 4) * 4
    # Twin critics forward and backward plus the target pass: activations of each layer.
    activations = 3 * 2 * batch * (sum(critic_hidden_widths(config)) + 3 * config["NUM_ATOMS"]) * 4
    return {
        "replay": replay_bytes(config, env),
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
    stored = int(distributed.process_0_view(np.array([distributed.agreed(what, read)], np.int32), what)[0])
    if requested is not None and stored and requested != stored:
        raise ValueError(
            f"--chunk {requested}: this combination started with {stored} agents per call "
            f"({calls_file}), and a resumed sweep keeps its call size so that it trains as an "
            f"uninterrupted one. Drop --chunk (or pass --chunk {stored}) to resume, or choose a new "
            f"--out to start over with {requested} agents per call."
        )
    return stored or requested


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


# ==================================================================================================
# CPU DEVICES
# ==================================================================================================
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
