"""Ctrl-C that a person can use, on a real sweep process: the first stops at the next evaluation
with a checkpoint (without --checkpoint-every) and the same command resumes from it; a second
stops at once, even while the process waits inside a device call that would take minutes; and
a silent device call is reported by the watchdog, naming what the sweep waits on.

Nothing here depends on how fast the machine is: each signal is sent after the line that says
the sweep reached the state under test, and every run is long enough (tens of evaluations, or
one evaluation of ten million iterations) that no machine finishes it before the signal lands."""

import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from shared_configs import SMALL_AGENT, set_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
HANG_GUARD_S = 900  # only a hang takes this long; compiling on two busy cores takes a minute


class Sweep:
    """sweep.py as its own process on one host device, its output read line by line."""

    def __init__(self, out: pathlib.Path, overrides: dict, *flags: str):
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
        cmd = [sys.executable, "sweep.py", "--env", "Pendulum-v1", "--seeds", "2", "--no-plots"]
        cmd += ["--out", str(out), *set_flags(overrides), *flags]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str) -> str:
        """The first line holding `text`; fails if the process ends first."""
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            assert line is not None, f"sweep ended before {text!r}:\n{self.log}"
            self.lines.append(line)
            if text in line:
                return line
        pytest.fail(f"no {text!r} within {HANG_GUARD_S} s:\n{self.log}")

    def finish(self, timeout: float = HANG_GUARD_S) -> int:
        self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10.0)) is not None:
            self.lines.append(line)
        return self.proc.returncode

    @property
    def log(self) -> str:
        return "".join(self.lines)


# Fifty evaluations of two agents: the first Ctrl-C lands after the first of them.
MANY_EVALS = dict(SMALL_AGENT, NUM_EVAL_ENVS=2, TOTAL_TIMESTEPS=50 * 400, EVAL_INTERVAL=400, BUFFER_SIZE=400)
# One evaluation of ten million iterations: hours on any CPU, so the process sits in one device
# call, and its heartbeats come 20,000 iterations apart, seconds even on a fast CPU.
ONE_LONG_EVAL = dict(MANY_EVALS, TOTAL_TIMESTEPS=10_000_000, EVAL_INTERVAL=10_000_000)


def _checkpoint_evals(out: pathlib.Path) -> list[int]:
    evals = []
    for path in sorted(out.glob("combo_000/checkpoint_*.npz")):
        with np.load(path) as data:
            evals.append(json.loads(str(data["meta"]))["evals_done"])
    return evals


@pytest.mark.slow
def test_first_ctrl_c_stops_at_the_next_evaluation_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "sweep"
    first = Sweep(out, MANY_EVALS)  # no --checkpoint-every
    first.wait_for("] eval 1/50")
    first.proc.send_signal(signal.SIGINT)
    assert first.finish() == 130, first.log
    assert "SIGINT: stopping after the running evaluation" in first.log, first.log
    assert "checkpoint saved; every finished agent is written; rerun the same command" in first.log
    assert "Traceback" not in first.log and not list(out.rglob("*.tmp")), first.log
    [stopped_at] = _checkpoint_evals(out)  # the running call was saved where it stopped
    assert 1 <= stopped_at < 50 and f"stopped at eval {stopped_at}/50 of agents 0-1" in first.log

    second = Sweep(out, MANY_EVALS, "--quiet")
    assert second.finish() == 0, second.log
    assert f"agents 0-1 resume from their checkpoint at eval {stopped_at}/50" in second.log, second.log
    assert not list(out.glob("combo_000/checkpoint_*")), "a finished call keeps no checkpoint"
    [results] = out.glob("combo_000/agents_*.npz")
    with np.load(results) as data:
        assert data["metric_eval_return"].shape == (2, 50)
        assert np.isfinite(data["metric_eval_return"]).all()


@pytest.mark.slow
def test_silent_device_call_is_reported_and_a_second_ctrl_c_stops_at_once(tmp_path):
    out = tmp_path / "sweep"
    sweep = Sweep(out, ONE_LONG_EVAL, "--watchdog", "0.5")
    sweep.wait_for("compiled in")
    report = sweep.wait_for("watchdog: no progress for")
    # The innermost frame of the sweep's own code: the device call (programs.py's CallPrograms.run)
    # or the wait for its result (sweep.py), depending on whether the call returned before the
    # program finished; both are seen on a CPU.
    where = r"while running agents 0-1, eval 1/1; the main thread is at (programs|sweep)\.py:\d+ "
    assert re.search(where, report), report
    sweep.proc.send_signal(signal.SIGINT)
    sweep.wait_for("SIGINT: stopping after the running evaluation")
    sweep.proc.send_signal(signal.SIGINT)
    assert sweep.finish() == 130, sweep.log
    assert "SIGINT again: stopped at once" in sweep.log and "rerun the same command" in sweep.log
    # Had the second signal waited for the running evaluation (hours), its call would have
    # finished and written its results, and the sweep would have ended with 0.
    assert not list(out.glob("combo_000/agents_*.npz")), sweep.log
