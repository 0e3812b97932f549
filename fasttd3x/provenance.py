"""Where a result was produced: the devices, the host and the package versions it ran with.

One helper for everything that records its provenance (sweep.py's per-call meta, the bench/
scripts' JSON results), so they all name the same keys the same way.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform

import jax

PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "mujoco",
    "mujoco-mjx",
    "playground",
    "brax",
    "gymnax",
    "numpy",
)


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution; None for one that is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_environment() -> dict:
    """The devices, host and package versions of this process (JSON-serialisable).

    device, platform: kind and platform of the first JAX device ("NVIDIA H100 80GB HBM3", "gpu";
    "cpu", "cpu"); num_devices: devices over all processes; process_count: JAX processes;
    host_cpu, cpu_count, os: the host; python: the interpreter version; versions: PACKAGES.
    No timestamp and no host name: two runs on the same setup record the same dict.
    """
    device = jax.devices()[0]
    return {
        "device": device.device_kind,
        "platform": device.platform,
        "num_devices": jax.device_count(),
        "process_count": jax.process_count(),
        "host_cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
    }


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
