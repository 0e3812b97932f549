"""Suite-wide setup: fast compiles, one persistent JAX compilation cache per suite run, and the
longest modules scheduled first.

Most of the suite's time is XLA compiling, and several tests compile the same program in other
processes: every sweep subprocess (interrupted, killed, resumed, two-process), the notebook's
kernel and the pytest-xdist workers. They all inherit this process's environment, so pointing
JAX_COMPILATION_CACHE_DIR at a folder before JAX is imported makes each program compile once per
suite run and load from disk after that. The cache is keyed by the program, the JAX version and
the compiler flags, so a hit is the same executable: results are bit-identical with or without it.

The folder is new for each suite run and removed at its end (by the process that made it; the
xdist workers and subprocesses inherit it), so two suites on one machine never read each other's
half-written entries, and no run depends on what an earlier one left. A folder set by the user
(JAX_COMPILATION_CACHE_DIR in the environment) is used as it is and kept.

XLA compiles this process's and the workers' programs with LLVM's optimizations off
(shared_configs.FAST_COMPILE_XLA_FLAGS: the suite takes about 40% less time), unless XLA_FLAGS
already sets an optimization level. A test that needs the default build says so per program
(shared_configs.DEFAULT_BUILD).
"""

import os
import shutil
import tempfile

from shared_configs import FAST_COMPILE_XLA_FLAGS

_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="fasttd3x-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_XLA_FLAGS}".strip()


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


# Seconds each module took in a CI run (bench/results/ci_durations_cpu.json, made by
# bench/ci_durations.py from a `--durations=0 -v` log; 2 workers on 2 cores; modules over 30 s).
# pytest-xdist hands whole modules to whichever worker is free, in collection order
# (pytest.ini turns off its own reordering by test count), so the longest go first and no long
# module starts last while the other core idles: longest-processing-time-first scheduling.
MODULE_SECONDS = {
    "test_train": 219, "test_distributed": 167, "test_resume": 111, "test_notebook": 102,
    "test_upstream": 90, "test_stop": 76, "test_sweep": 58, "test_search": 54, "test_brax": 52,
    "test_gpu_proof": 50, "test_envs": 33, "test_policy": 33, "test_reference_options": 31,
    # measured alone (-n 0) on a busy 2-core CPU, not in a CI run:
    "test_lockstep": 65, "test_live": 150, "test_package": 20,
}  # fmt: skip


def pytest_collection_modifyitems(config, items):
    """Measured modules longest first; then unmeasured ones, those with slow tests first."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}

    def rank(item):
        name = item.module.__name__
        return (-MODULE_SECONDS.get(name, 0), name not in slow_modules)

    items.sort(key=rank)  # stable: the order inside a module is kept
