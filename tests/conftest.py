"""Suite-wide setup: one persistent JAX compilation cache, and the slow modules scheduled first.

Most of the suite's time is XLA compiling, and several tests compile the same program in other
processes: every sweep subprocess (interrupted, killed, resumed, two-process), the notebook's
kernel and the two pytest-xdist workers. They all inherit this process's environment, so setting
the cache folder here, before JAX is imported, makes each program compile once per suite run and
load from disk after that. The cache is keyed by the program, the JAX version and the compiler
flags, so a hit is the same executable: results are bit-identical with or without it. A folder
set by the user (JAX_COMPILATION_CACHE_DIR) is kept.
"""

import os
import pathlib
import tempfile

os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(pathlib.Path(tempfile.gettempdir()) / f"fasttd3x-test-jax-cache-{os.getuid()}"),
)


def pytest_collection_modifyitems(config, items):
    """Modules holding slow tests run first (pytest-xdist hands whole modules to workers in
    collection order), so the longest ones do not start last and leave one core idle."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: order kept inside
