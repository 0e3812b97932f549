"""Shared bits of the benchmark scripts: where they run, with what, and where results go."""

from __future__ import annotations

import datetime
import json
import pathlib
import time
from typing import Any, NamedTuple

import jax

from provenance import run_environment

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def environment() -> dict:
    """The device, host and package versions a result was measured with (provenance.run_environment),
    and when."""
    return {**run_environment(), "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def parse_overrides(items: list[str]) -> dict:
    """KEY=VALUE strings to typed values (int, float, bool or str)."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = _typed(raw)
    return out


def _typed(raw: str):
    if raw in ("True", "true"):
        return True
    if raw in ("False", "false"):
        return False
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def write(name: str, result: dict, out_dir: pathlib.Path = RESULTS) -> pathlib.Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


class Timed(NamedTuple):
    """A compiled and timed call: compile and run seconds apart."""

    out: Any
    compiled: Any  # the executable (its memory_analysis() accounts for device memory)
    compile_seconds: float
    run_seconds: float


def compile_and_run(jitted, *args) -> Timed:
    """Compiles and runs a jitted function, timing the two apart."""
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return Timed(out, compiled, compile_s, time.perf_counter() - start)
