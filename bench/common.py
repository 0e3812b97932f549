"""Shared bits of the benchmark scripts: where they run, with what, and where results go."""

from __future__ import annotations

import datetime
import json
import pathlib

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
