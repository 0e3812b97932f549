"""FastTD3X: FastTD3 as one pure, vmappable JAX function.

    from fasttd3x import make_config, make_train
    train = make_train(make_config("Pendulum-v1"))      # train(rng, hparams=None), pure

The algorithm itself is the top-level module `purejax_fasttd3` (installed beside this package);
`make_train` and `make_train_loop` are its, re-exported here. This package holds its parts and
everything around it: settings, environments, the sweep, checkpoints, search and results.
"""

from __future__ import annotations

from importlib import metadata

from fasttd3x.configs import make_config

try:
    __version__ = metadata.version("fasttd3x")
except metadata.PackageNotFoundError:  # a clone used without installing
    __version__ = "0+unknown"

# Loaded on first use (PEP 562): purejax_fasttd3 imports this package's modules, so importing
# it here (or results.py, whose search import needs it) would meet it half-initialized whenever
# `import purejax_fasttd3` comes first.
_LAZY = {
    "make_train": "purejax_fasttd3",
    "make_train_loop": "purejax_fasttd3",
    "load_sweep": "fasttd3x.results",
    "load_frame": "fasttd3x.frames",  # pandas: pip install "fasttd3x[pandas]"
    "load_live_frame": "fasttd3x.frames",
}

__all__ = [
    "load_frame",
    "load_live_frame",
    "load_sweep",
    "make_config",
    "make_train",
    "make_train_loop",
    "__version__",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fasttd3x' has no attribute {name!r}")
