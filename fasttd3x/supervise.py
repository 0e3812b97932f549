"""The last word of a --distributed sweep process whose peer died.

When one process of a sweep dies outright (SIGKILL, a lost node), JAX's distributed runtime ends
every other one with its own fatal error: a C++ abort, often before Python can print anything, so
the user would see neither which process was lost nor how to resume. (jax 0.10's client takes a
`missed_heartbeat_callback`, but `jax.distributed.initialize` does not pass one, and a Python
callback given to the client directly aborts too: its status argument cannot be converted.)

So `python sweep.py --distributed ...` runs as two processes: this supervisor, which starts the
same command as its child and does no JAX work, and the child, which runs the sweep. The child's
stdout goes straight to the supervisor's; its stderr passes through the supervisor, which keeps
the end of it. The child reports, once the processes have joined, its process index, the process
count and every process's host (`report`). When the child ends abnormally, the supervisor prints
the final message on stderr: which process lost contact with which (from the runtime's own log
line, which names the task that stopped sending heartbeats or the lost coordinator), and the
command that resumes. The supervisor forwards the SIGINT and SIGTERM it receives through a pipe,
and the child ignores its own: a signal sent to both (a terminal's Ctrl-C, a scheduler that
signals every process of a job) then still counts once, so the child stops at the next evaluation
on the first and at once on the second, as without a supervisor. The child dies with its
supervisor (PR_SET_PDEATHSIG), so a SIGKILL of the process a scheduler started ends the sweep too.

Stdlib only: a supervisor never starts a JAX backend.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

# In the child's environment: "<supervisor pid>:<report fd>:<forwarded signals fd>".
CHILD = "FASTTD3X_SUPERVISOR"
LOST = 75  # a child's exit status: it lost contact with a peer and the runtime named none
RUNTIME_FATAL = "JAX distributed service detected fatal errors"
TAIL_BYTES = 1 << 16  # of the child's stderr, kept to find the runtime's message in
FORWARDED = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


# ==================================================================================================
# THE SUPERVISOR
# ==================================================================================================
def supervise(resume: str, process: int | None, processes: int | None) -> int:
    """Runs this command again as a child and waits for it; returns its exit status, or dies of
    the signal that killed it. `process` and `processes` (the command line's, if given) name this
    process until the child reports them."""
    report_read, report_write = os.pipe()
    signals_read, signals_write = os.pipe()
    env = {**os.environ, CHILD: f"{os.getpid()}:{report_write}:{signals_read}"}
    # Forwarding starts before the child does: a signal that comes while the child starts waits in
    # the pipe for it, instead of killing this process with the default action.
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, frame: _forward(signals_write, signum))
    child = subprocess.Popen(
        [sys.executable, *sys.orig_argv[1:]],
        env=env,
        stderr=subprocess.PIPE,
        pass_fds=(report_write, signals_read),
    )
    os.close(report_write)
    os.close(signals_read)
    tail = bytearray()
    relay = threading.Thread(target=_pass_through, args=(child.stderr, tail), daemon=True)
    relay.start()
    code = child.wait()
    relay.join(timeout=5.0)
    reported = _read_report(report_read) or {"process": process, "processes": processes, "hosts": []}
    log = tail.decode(errors="replace")
    message = final_message(code, log, reported, resume)
    if message:
        print(message, file=sys.stderr, flush=True)
    if code < 0 and RUNTIME_FATAL not in log:
        _die_of(signal.Signals(-code))
    return 1 if code < 0 or code == LOST else code


def _die_of(sig: signal.Signals) -> None:
    """Ends this process as its child ended: killed by `sig` (a SIGKILL reads as one)."""
    if sig in (*FORWARDED, signal.SIGPIPE):  # handled here, or ignored by Python: the default again
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _forward(fd: int, signum: int) -> None:
    with contextlib.suppress(OSError):  # the child has ended
        os.write(fd, bytes([signum]))


def _pass_through(stream, tail: bytearray) -> None:
    """Copies the child's stderr to ours as it comes, keeping its last TAIL_BYTES in `tail`."""
    while chunk := os.read(stream.fileno(), 1 << 16):
        sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()
        tail += chunk
        del tail[:-TAIL_BYTES]


def _read_report(fd: int) -> dict | None:
    """What the child reported; None if it ended before it could (or while it did)."""
    with os.fdopen(fd, "rb") as f:
        text = f.read().decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return None


def lost_processes(log: str) -> list[int]:
    """The processes that the distributed runtime's message in `log` says were lost: the tasks
    that stopped sending heartbeats (one per line after the message, `1` or
    `/job:jax_worker/replica:0/task:1`), or process 0 when the coordinator (the "leader task")
    could not be reached; [] when it names none."""
    lost = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith("(stopped sending heartbeats):"):
            for task in lines[i + 1 :]:
                match = re.fullmatch(r"\s*(?:/job:\w+/replica:\d+/task:)?(\d+)\s*", task)
                if match is None:
                    break
                lost.append(int(match[1]))
    if not lost and "the leader task was preempted/died" in log:
        lost.append(0)
    return list(dict.fromkeys(lost))


def final_message(code: int, log: str, reported: dict, resume: str) -> str | None:
    """What the supervisor says when its child ended with exit status `code` (negative: killed
    by that signal), its stderr ending in `log`; None when the child ended on its own (success,
    or an error or a stop it printed itself)."""
    if code >= 0 and code != LOST:
        return None
    who = _process_name(reported, reported.get("process"))
    restart = (
        "Every process of the sweep stops; start every one again with the same command to resume "
        f"from the last complete checkpoint: {resume}"
    )
    if code == LOST or RUNTIME_FATAL in log:
        lost = lost_processes(log)
        peers = ", ".join(_process_name(reported, k) for k in lost) or "another process"
        return f"sweep.py: error: {who}: lost contact with {peers}: it died or its host was lost. {restart}"
    return f"sweep.py: error: {who}: killed by {signal.Signals(-code).name}. {restart}"


def _process_name(reported: dict, process: int | None) -> str:
    """`process 1 of 2 (host node-7)`, as far as the child reported it."""
    if process is None:
        return "this process"
    count = f" of {reported['processes']}" if reported.get("processes") else ""
    hosts = reported.get("hosts") or []
    host = f" (host {hosts[process]})" if process < len(hosts) else ""
    return f"process {process}{count}{host}"


# ==================================================================================================
# THE CHILD
# ==================================================================================================
def is_child() -> bool:
    """Whether this process runs the sweep of a supervisor."""
    return CHILD in os.environ


def attach() -> None:
    """In the child, first thing: die with the supervisor (Linux), and end at once if it is
    already gone."""
    supervisor = int(os.environ[CHILD].split(":")[0])
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor:
        os._exit(1)


def forwarded_signals() -> int:
    """In the child: the pipe on which the supervisor sends the numbers of the signals it got."""
    return int(os.environ[CHILD].split(":")[2])


def report(process: int, processes: int, hosts: list[str]) -> None:
    """Tells the supervisor (if any) who this process is and where every process runs."""
    if not is_child():
        return
    fd = int(os.environ[CHILD].split(":")[1])
    with os.fdopen(fd, "w") as f:
        json.dump({"process": process, "processes": processes, "hosts": hosts}, f)


def await_verdict(seconds: float) -> None:
    """After a collective failed: waits up to `seconds` for the distributed runtime to end this
    process with its message naming the lost process (the supervisor reads it), then exits with
    LOST. Never returns."""
    time.sleep(seconds)
    os._exit(LOST)
