"""Progress reports of a running train loop: how often the loop calls its heartbeat, and the
printed lines (`ProgressPrinter`) with the rate and the time left."""

from __future__ import annotations

import time

# In-chunk progress: each eval interval runs as a scan over segments of a scan over iterations,
# with `heartbeat` called after every segment (no cond inside the iteration loop). Segments are
# at least MIN_HEARTBEAT_ITERATIONS long and at most MAX_HEARTBEATS per interval. Intervals
# shorter than MIN_HEARTBEAT_INTERVAL report at evaluations only, a design choice: they end in
# seconds and report at their evaluation anyway. No cost is measured either way: over 15
# alternating pairs, heartbeats changed the run time by -2.2% (95% CI -5.1% to +5.8%) at
# 100-iteration intervals and +1.6% (-0.5% to +4.7%) at 1,000 (bench/results/heartbeat_cost_cpu.json).
MAX_HEARTBEATS = 500
MIN_HEARTBEAT_ITERATIONS = 10
MIN_HEARTBEAT_INTERVAL = 1_000


def heartbeat_segments(eval_interval: int) -> int:
    """Heartbeats per eval interval: 0 below MIN_HEARTBEAT_INTERVAL, else its largest divisor
    within both limits."""
    if eval_interval < MIN_HEARTBEAT_INTERVAL:
        return 0
    fits = [
        d
        for d in range(1, MAX_HEARTBEATS + 1)
        if eval_interval % d == 0 and eval_interval // d >= MIN_HEARTBEAT_ITERATIONS
    ]
    return max(fits, default=1)


class ProgressPrinter:
    """Progress callbacks for `make_train`: a line after every evaluation (`__call__`) and, inside
    long eval chunks, a line from the heartbeats (`heartbeat`) at most every `min_seconds`. Each
    gives the rate in iterations per second, measured since the first report, and the time left."""

    def __init__(self, config: dict, min_seconds: float = 10.0):
        self.name = config["ENV_NAME"]
        self.eval_interval = config["EVAL_INTERVAL"]
        self.total = config["TOTAL_TIMESTEPS"]
        self.steps_per_iteration = config["NUM_ENVS"]
        self.min_seconds = min_seconds
        self.first: tuple[float, int] | None = None  # (time, iterations done) of the first report
        self.last_line = time.perf_counter()

    def _rate(self, done: int) -> float | None:
        """Iterations per second since the first report; None at the first (or a new run's)."""
        now = time.perf_counter()
        if self.first is None or done <= self.first[1]:
            self.first = (now, done)
            return None
        return (done - self.first[1]) / (now - self.first[0])

    def _print(self, line: str) -> None:
        self.last_line = time.perf_counter()
        print(line, flush=True)

    def __call__(self, chunk) -> None:
        done = (int(chunk) + 1) * self.eval_interval
        rate = self._rate(done)
        line = (
            f"[{self.name}] eval {done // self.eval_interval}/{self.total // self.eval_interval}  "
            f"env steps/agent {done * self.steps_per_iteration:,}"
        )
        if rate is not None:
            line += f"  {rate:,.1f} it/s  run ETA {_duration((self.total - done) / rate)}"
        self._print(line)

    def heartbeat(self, done) -> None:
        done = int(done)
        rate = self._rate(done)
        if time.perf_counter() - self.last_line < self.min_seconds:
            return
        chunk = -(-done // self.eval_interval)  # the eval chunk this iteration belongs to, from 1
        in_chunk = done - (chunk - 1) * self.eval_interval
        line = (
            f"[{self.name}] eval {chunk}/{self.total // self.eval_interval} in progress: "
            f"{in_chunk:,}/{self.eval_interval:,} iterations"
        )
        if rate is None:  # the first report of a run
            line += " (the rate and the time left follow)"
        else:
            line += (
                f", {rate:,.2f} it/s; this eval in {_duration((chunk * self.eval_interval - done) / rate)}, "
                f"the run in {_duration((self.total - done) / rate)}"
            )
        self._print(line)


def _duration(seconds: float) -> str:
    """A duration for people: 42 s, 12.5 min, 3.1 h."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
