"""Suite-wide setup: one persistent JAX compilation cache per suite run, and the slow modules
scheduled first.

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
"""

import os
import shutil
import tempfile

_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="fasttd3x-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Modules holding slow tests run first (pytest-xdist hands whole modules to workers in
    collection order), so the longest ones do not start last and leave one core idle."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: order kept inside
