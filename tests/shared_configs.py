"""Small config overrides shared by the tests: `from shared_configs import PENDULUM_SMALL`, and
the environment of the tests' JAX subprocesses.

A plain module next to the tests (pytest's default import mode puts tests/ on sys.path), not
conftest.py, which pytest does not mean to be imported. A test that needs a variant derives it,
`dict(PENDULUM_SMALL, TOTAL_TIMESTEPS=120)`, so the numbers that differ stay in the test.
"""

import os

# Most tests run small programs, so compiling is nearly all their time. XLA's CPU backend
# compiles with LLVM's optimizations off much faster and runs the result slower; with this flag
# the whole suite takes 606 s in CI on 2 cores (bench/results/ci_durations_cpu.json).
# tests/conftest.py gives the pytest processes this flag, and `subprocess_env` gives it to the
# tests' JAX subprocesses. What trains for long, or must match
# numbers saved from a default build, compiles as users' programs do: a jit with
# `compiler_options=DEFAULT_BUILD` in process (the held-out learning test), or a subprocess
# environment without the flag (tests/test_stop.py). Rounding differs between the two builds, so
# a test compares numbers exactly only among programs compiled with the same options.
FAST_COMPILE_XLA_FLAGS = "--xla_backend_optimization_level=0"

# `jax.jit(f, compiler_options=DEFAULT_BUILD)`: XLA's default optimization level (3), the build
# users run, for one program in a process started with FAST_COMPILE_XLA_FLAGS.
DEFAULT_BUILD = {"xla_backend_optimization_level": 3}


def subprocess_env(devices: int = 1) -> dict:
    """os.environ for a JAX subprocess on `devices` CPU devices that compiles fast (see above)."""
    flags = f"{FAST_COMPILE_XLA_FLAGS} --xla_force_host_platform_device_count={devices}"
    return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}


# Networks and batches small enough to compile in seconds on a CPU.
SMALL_AGENT = dict(NUM_ENVS=4, BATCH_SIZE=32, CRITIC_HIDDEN_DIM=32, ACTOR_HIDDEN_DIM=16)

# One short Pendulum-v1 run: a single eval chunk, 11 atoms.
PENDULUM_SMALL = dict(
    SMALL_AGENT,
    NUM_EVAL_ENVS=3,
    TOTAL_TIMESTEPS=40,
    EVAL_INTERVAL=40,
    BUFFER_SIZE=50,
    NUM_ATOMS=11,
)

# Runs long enough to stop and resume (four evals), with a buffer as long as the run.
RESUMABLE = dict(SMALL_AGENT, NUM_EVAL_ENVS=4, TOTAL_TIMESTEPS=200, EVAL_INTERVAL=50, BUFFER_SIZE=200)

# Smaller still, for tests that compile many programs: two evals of 20 iterations.
TINY_AGENT = dict(
    NUM_ENVS=4,
    TOTAL_TIMESTEPS=40,
    EVAL_INTERVAL=20,
    CRITIC_HIDDEN_DIM=16,
    ACTOR_HIDDEN_DIM=8,
    NUM_ATOMS=11,
)


def set_items(overrides: dict) -> list[str]:
    """Overrides as sweep.py `--set` values: ["KEY=VALUE", ...]."""
    return [f"{key}={value}" for key, value in overrides.items()]


def set_flags(overrides: dict) -> list[str]:
    """Overrides as sweep.py arguments: ["--set", "KEY=VALUE", ...]."""
    return [arg for item in set_items(overrides) for arg in ("--set", item)]
