"""Shared bits of the benchmark scripts: where they run, with what, where results go, and the two
ways they time a compiled program."""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import json
import pathlib
import time
from typing import Any, NamedTuple

import jax

import purejax_fasttd3 as ft
from fasttd3x.provenance import run_environment

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


def chunk_config(task: str, overrides: dict, chunk: int, **extra) -> dict:
    """The task's reference config with `overrides`, one eval chunk of `chunk` iterations, no
    evaluation unless `extra` asks for one, and TOTAL_TIMESTEPS a multiple of the chunk (it only
    sets the horizon of the learning-rate schedule, constant by default)."""
    base = ft.make_config(task, **overrides)
    total = max(base["TOTAL_TIMESTEPS"] // chunk, 4) * chunk
    settings = {"EVAL_INTERVAL": chunk, "NUM_EVAL_ENVS": 0, "TOTAL_TIMESTEPS": total, **extra}
    return ft.make_config(task, **{**overrides, **settings})


class Chunks:
    """`agents` vmapped agents of `config` (the resumable `make_train_loop`): init, then one
    compiled eval chunk called again and again on the state it returns (donated), so no timed call
    compiles and one compile serves every chunk (`compile_and_run` of two run lengths needs two).
    Construction compiles both programs at once (XLA compiles outside the GIL, so the simulator's
    reset and step compile side by side), then runs init and the first chunk; `start(seed)` runs
    them again from other keys with the same two programs."""

    def __init__(self, config: dict, agents: int, seed: int = 0):
        loop = ft.make_train_loop(config)
        init = jax.jit(jax.vmap(loop.init, out_axes=ft.RUNNER_AXES))
        run = jax.vmap(
            functools.partial(loop.run, num_evals=1), in_axes=(ft.RUNNER_AXES,), out_axes=(ft.RUNNER_AXES, 0)
        )
        self.agents = agents
        rngs = jax.random.split(jax.random.PRNGKey(seed), agents)
        start = time.perf_counter()
        init_lowered = init.lower(rngs)
        run_lowered = jax.jit(run, donate_argnums=0).lower(init_lowered.out_info)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            init_future = pool.submit(init_lowered.compile)
            self.compiled = run_lowered.compile()
            self.init_compiled = init_future.result()
        self.compile_seconds = time.perf_counter() - start  # both programs, traced and compiled
        self.start(seed)

    def start(self, seed: int) -> None:
        """Init from `jax.random.split(PRNGKey(seed), agents)` and the first chunk, each timed."""
        rngs = jax.random.split(jax.random.PRNGKey(seed), self.agents)
        start = time.perf_counter()
        self.runner = jax.block_until_ready(self.init_compiled(rngs))
        self.init_seconds = time.perf_counter() - start
        start = time.perf_counter()
        self.runner, self.metrics = jax.block_until_ready(self.compiled(self.runner))
        self.first_chunk_seconds = time.perf_counter() - start
        self.chunks_done = 1

    def step(self) -> float:
        """Runs one more chunk; its wall seconds."""
        start = time.perf_counter()
        self.runner, self.metrics = jax.block_until_ready(self.compiled(self.runner))
        self.chunks_done += 1
        return time.perf_counter() - start
