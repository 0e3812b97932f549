"""A persistent compilation cache, so a resumed or repeated sweep loads its programs from disk
instead of compiling them again (minutes for an MJX task on a CPU).

This is JAX's own cache (keyed by the program, the JAX and XLA versions, the device and the
compiler flags, so a hit is the same executable and results are bit-identical). Sweeps turn it on
by default; `make_train` users call `enable()` before compiling:

    from fasttd3x import compile_cache
    compile_cache.enable()                      # ~/.cache/fasttd3x/jax, or where below says

Where: the folder given, else JAX_COMPILATION_CACHE_DIR (JAX's variable; the tests point it at a
temporary folder), else $XDG_CACHE_HOME/fasttd3x/jax, else ~/.cache/fasttd3x/jax. The cache grows
with every new program; delete the folder to reclaim the space.
"""

from __future__ import annotations

import os
import pathlib

# Programs that compile faster than this are not worth a disk round trip (JAX's default too).
MIN_COMPILE_SECONDS = 1.0
# Entries of any size are kept: a sweep's programs are large, and the disk is the user's choice.
MIN_ENTRY_BYTES = 0


def default_folder(environ=os.environ) -> pathlib.Path:
    """Where the cache lives when no folder is given (module docstring)."""
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return pathlib.Path(environ["JAX_COMPILATION_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "fasttd3x" / "jax"


def enable(folder=None) -> pathlib.Path:
    """Turns JAX's persistent compilation cache on in `folder` (default: `default_folder()`),
    for every program compiled after this call. Returns the folder. A folder that cannot be
    created is refused by name (a sweep must not start writing and fail later)."""
    import jax

    path = pathlib.Path(folder) if folder is not None else default_folder()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"--compile-cache {path}: cannot create the compilation cache folder "
            f"({error.strerror or error}); pass another folder, or --no-compile-cache"
        ) from None
    if not os.access(path, os.W_OK):
        raise ValueError(
            f"--compile-cache {path}: the folder is not writable; pass another, or --no-compile-cache"
        )
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", MIN_ENTRY_BYTES)
    return path


def disable() -> None:
    """Turns the persistent cache off for programs compiled after this call."""
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
