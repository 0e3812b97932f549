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
from fasttd3x.results import load_sweep

try:
    __version__ = metadata.version("fasttd3x")
except metadata.PackageNotFoundError:  # a clone used without installing
    __version__ = "0+unknown"

# purejax_fasttd3 imports this package's modules, so its names load on first use (PEP 562):
# importing them here would import purejax_fasttd3 half-initialized.
_FROM_ALGORITHM = ("make_train", "make_train_loop")

__all__ = ["load_sweep", "make_config", "make_train", "make_train_loop", "__version__"]


def __getattr__(name: str):
    if name in _FROM_ALGORITHM:
        import purejax_fasttd3

        return getattr(purejax_fasttd3, name)
    raise AttributeError(f"module 'fasttd3x' has no attribute {name!r}")
