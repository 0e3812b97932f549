"""Stopping a sweep safely (SIGINT, SIGTERM) and noticing one that hangs (the watchdog).

`STOP` and `WATCHDOG` are the process's one stop request and one watchdog, which the sweep
installs and beats.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import sys
import threading
import time
import traceback

import jax
import numpy as np

from fasttd3x import distributed, supervise
from fasttd3x.progress import ProgressPrinter

PACKAGE = pathlib.Path(__file__).resolve().parent


class Interrupted(Exception):
    """A sweep stopped at a safe point after SIGINT or SIGTERM."""


class StopRequest:
    """SIGINT/SIGTERM that act whatever the main thread is doing.

    Python runs signal handlers in the main thread between bytecodes, so while that thread waits
    inside XLA (compiling, or in a device call) a handler would wait too. Here the C-level
    handler only writes the signal to a socket (`signal.set_wakeup_fd`) and a daemon thread acts
    on it at once: the first signal asks the sweep to stop at the next evaluation, with a
    checkpoint of the running call and every finished result written; a second ends the process
    at once (exit 130, or 143 for SIGTERM), losing only the running call's work since its last
    checkpoint (writes are atomic, so no file is left half-written). Under a supervisor
    (fasttd3x/supervise.py) the signals come from it, through a pipe, and this process ignores its own."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal_name: str | None = None
        self.resume_hint = ""
        self._sockets = None

    def install(self, resume_hint: str) -> None:
        """From the main thread, before the sweep starts. Where the process already has a wakeup
        fd (an event loop's: sweep.main called from a notebook kernel), signals stay the host's."""
        self.resume_hint = resume_hint
        if threading.current_thread() is not threading.main_thread():
            return
        if supervise.is_child():
            for sig in self.SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            forwarded = supervise.forwarded_signals()
            self._start_listening(lambda: os.read(forwarded, 64))
            return
        receiver, sender = socket.socketpair()
        sender.setblocking(False)
        previous = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
        if previous != -1:
            signal.set_wakeup_fd(previous)
            receiver.close()
            sender.close()
            return
        self._sockets = (receiver, sender)
        for sig in self.SIGNALS:
            signal.signal(sig, lambda signum, frame: None)  # acted on by the thread below
        self._start_listening(lambda: receiver.recv(64))

    def _start_listening(self, read) -> None:
        """A daemon thread acts on each signal number that `read()` returns, until it returns none."""
        threading.Thread(target=self._listen, args=(read,), daemon=True, name="stop-request").start()

    def _listen(self, read) -> None:
        while signums := read():
            for signum in signums:
                if signum in self.SIGNALS:
                    self._on_signal(signal.Signals(signum).name)

    def _on_signal(self, name: str) -> None:
        if self.signal_name is None:
            self.signal_name = name
            print(
                f"\n{name}: stopping after the running evaluation, with a checkpoint of the running "
                "call and every finished result written. Send it again to stop at once.",
                flush=True,
            )
            return
        print(
            f"\n{name} again: stopped at once; finished agents and the last checkpoints are kept, "
            f"the running call's later work is lost; {self.resume_hint}",
            flush=True,
        )
        os._exit(143 if name == "SIGTERM" else 130)

    def requested(self) -> bool:
        """Whether any process was asked to stop (all processes must stop at the same call)."""
        asked = np.array([self.signal_name is not None], np.int32)
        if jax.process_count() > 1:
            asked = distributed.allgather(asked, "agreeing whether to stop")
        return bool(np.max(asked))


class Watchdog:
    """Speaks up when a sweep shows no sign of life for `seconds`: what it is doing, for how
    long, and where its main thread is. Signs of life are heartbeats from inside device calls,
    finished evaluations and each new stage (`doing`). It only reports; it stops nothing."""

    def __init__(self):
        self.seconds: float | None = None
        self.what = "starting"
        self.last = time.monotonic()
        self._main = threading.main_thread()

    @contextlib.contextmanager
    def watching(self, seconds: float):
        """Watches while the block runs; the thread ends with it (a notebook that called
        `sweep.main` goes on without a watchdog reporting its idle kernel)."""
        self.seconds = seconds
        self.beat()
        stopped = threading.Event()
        thread = threading.Thread(target=self._watch, args=(stopped,), daemon=True, name="watchdog")
        thread.start()
        try:
            yield self
        finally:
            stopped.set()
            thread.join()
            self.seconds = None

    def doing(self, what: str) -> None:
        self.what = what
        self.beat()

    def beat(self) -> None:
        self.last = time.monotonic()

    def silence(self) -> str | None:
        """The report to print now, if the sweep has been silent for `seconds` or more."""
        quiet = time.monotonic() - self.last
        if self.seconds is None or quiet < self.seconds:
            return None
        frame = sys._current_frames().get(self._main.ident)
        stack = traceback.extract_stack(frame) if frame is not None else []
        ours = [f for f in stack if _is_ours(f.filename)]
        places = [f"{pathlib.Path(f.filename).name}:{f.lineno} {f.name}" for f in (ours[-1:] + stack[-1:])]
        return (
            f"watchdog: no progress for {quiet:.0f} s while {self.what}; the main thread is at "
            f"{', inside '.join(dict.fromkeys(places)) or 'an unknown place'}. Still waiting (--watchdog "
            "sets this interval)."
        )

    def reporters(self, printer: ProgressPrinter | None):
        """(progress, heartbeat) callbacks for the train loop: each beats the watchdog, and prints
        through `printer` unless it is None (a --quiet sweep)."""

        def progress(chunk):
            self.beat()
            if printer is not None:
                printer(chunk)

        def heartbeat(done):
            self.beat()
            if printer is not None:
                printer.heartbeat(done)

        return progress, heartbeat

    def _watch(self, stopped: threading.Event) -> None:
        while not stopped.wait(min(self.seconds, 5.0)):
            report = self.silence()
            if report:
                print(report, flush=True)
                self.beat()  # the next report comes after another silent interval


def _is_ours(filename: str) -> bool:
    """A file of FastTD3X: the package and the algorithm file, installed or not, and in a clone
    any file of the clone (not of a package installed in a venv inside it)."""
    path = pathlib.Path(filename)
    in_clone = path.is_relative_to(PACKAGE.parent) and "site-packages" not in filename
    return path.is_relative_to(PACKAGE) or path.name == "purejax_fasttd3.py" or in_clone


STOP = StopRequest()
WATCHDOG = Watchdog()
