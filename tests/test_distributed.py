"""sweep.py --distributed: two real processes on localhost CPU give the single-process results,
also when one of them is killed mid-checkpoint and both are restarted; a damaged checkpoint part
on one process stops both with the same message; a process killed outright ends the other within
the heartbeat bound, which names it and the command that resumes (supervise.py); a checkpoint
written by another number of processes is refused."""

import json
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from fasttd3x import checkpoints, distributed, supervise, sweep
from shared_configs import RESUMABLE, set_flags, subprocess_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
# 2 grid points x 4 seeds in calls of 4 agents: two calls, each split 2 + 2 over the two devices.
FLAGS = [
    "--env", "Pendulum-v1", "--seeds", "4", "--grid", "STD_MAX=0.4,0.8", "--chunk", "4",
    *set_flags(dict(RESUMABLE, EVAL_INTERVAL=100)),
    "--out", "res", "--no-plots", "--quiet",
]  # fmt: skip
WRITTEN = {
    "sweep.json",
    "summary.csv",
    "combo_000/config.json",
    "combo_000/calls.json",
    "combo_000/agents_000000-000004.npz",
    "combo_000/agents_000004-000008.npz",
    "live.jsonl",  # the live metrics log, and the folder lock (process 0's)
    ".sweep.lock",
}
TIMEOUT_S = 900  # compilation alone takes minutes on two busy CPU cores


def test_distributed_flags():
    args = sweep.parse_args(["--distributed", "--coordinator", "10.0.0.1:1234", "--num-processes", "4",
                             "--process-id", "3"])  # fmt: skip
    assert (args.coordinator, args.num_processes, args.process_id) == ("10.0.0.1:1234", 4, 3)
    args = sweep.parse_args(["--distributed"])  # the cluster environment supplies the rest
    assert (args.coordinator, args.num_processes, args.process_id) == (None, None, None)
    for argv in (["--process-id", "0"], ["--distributed", "--num-processes", "2", "--process-id", "2"]):
        with pytest.raises(SystemExit):
            sweep.parse_args(argv)
    distributed.init_distributed(sweep.parse_args([]))  # without --distributed: nothing to join


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(
    cwd: pathlib.Path, devices: int, extra: list[str], flags=FLAGS, log_name=None, env=None, script="sweep.py"
) -> subprocess.Popen:
    """`python sweep.py flags` in `cwd` (results go to cwd/res) on `devices` host devices; its
    stdout goes to cwd/../`log_name`.log (default: cwd's name), its stderr to `log_name`.err."""
    cwd.mkdir(exist_ok=True)
    env = {**subprocess_env(devices), **(env or {})}
    cmd = [sys.executable, str(ROOT / script), *flags, *extra]
    log = cwd.parent / (log_name or cwd.name)
    with open(f"{log}.log", "w") as out, open(f"{log}.err", "w") as err:  # files: no pipe fills up
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)


def _read(log: pathlib.Path) -> str:
    """What a process started by `_start` printed: its stdout, then its stderr."""
    return log.with_suffix(".log").read_text() + log.with_suffix(".err").read_text()


def _files(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _load(res: pathlib.Path):
    data = [np.load(res / "combo_000" / f"agents_{lo:06d}-{lo + 4:06d}.npz") for lo in (0, 4)]
    metas = [json.loads(str(d["meta"])) for d in data]
    return {k: np.concatenate([d[k] for d in data]) for k in data[0].files if k != "meta"}, metas


@pytest.mark.slow  # three compilations: about 100 CPU-seconds, minutes on two busy cores
def test_two_processes_equal_one_process_with_two_devices(tmp_path):
    """Two processes with one CPU device each, started with the same command apart from
    --process-id, in different working directories: agents are split over the processes, only
    process 0 writes (process 1's relative --out stays empty, as on a host without a shared
    disk), and every result equals one process running the same two-device program."""
    port = _free_port()
    distributed = ["--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = {
        "single": _start(tmp_path / "single", 2, []),
        "p0": _start(tmp_path / "p0", 1, [*distributed, "--process-id", "0"]),
        "p1": _start(tmp_path / "p1", 1, [*distributed, "--process-id", "1"]),
    }
    try:
        for proc in procs.values():
            proc.wait(timeout=TIMEOUT_S)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = {name: _read(tmp_path / name) for name in procs}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{logs[name][-3000:]}"
    assert "8 agents on 2 cpu\n" in logs["single"]
    for name in ("p0", "p1"):
        assert "8 agents on 2 cpu in 2 processes" in logs[name], logs[name][-3000:]
    assert "ranked by" in logs["p0"] and "ranked by" not in logs["p1"]  # the summary: process 0 only

    assert _files(tmp_path / "p1") == set()  # process 1 wrote nothing, not even a folder
    assert not any((tmp_path / "p1").iterdir())
    assert _files(tmp_path / "p0" / "res") == WRITTEN == _files(tmp_path / "single" / "res")  # no .tmp
    for name in ("sweep.json", "combo_000/config.json", "combo_000/calls.json"):
        written = json.loads((tmp_path / "p0" / "res" / name).read_text())
        assert written == json.loads((tmp_path / "single" / "res" / name).read_text()), name

    multi, multi_meta = _load(tmp_path / "p0" / "res")
    single, single_meta = _load(tmp_path / "single" / "res")
    assert all(m["process_count"] == 2 and m["num_devices"] == 2 for m in multi_meta)
    assert all(m["process_count"] == 1 and m["num_devices"] == 2 for m in single_meta)
    assert set(multi) == set(single)
    np.testing.assert_array_equal(multi["agent"], np.arange(8))
    # Exact: each of the two processes compiles and runs the per-device program of the one
    # two-device process on the same rows, and the agents never communicate.
    for key in single:
        np.testing.assert_array_equal(multi[key], single[key], err_msg=key)
    assert np.isfinite(multi["metric_eval_return"]).all()


# The same sweep in calls of four evaluations, with a checkpoint after each.
CHECKPOINTED = [
    "--env", "Pendulum-v1", "--seeds", "4", "--grid", "STD_MAX=0.4,0.8", "--chunk", "4",
    *set_flags(dict(RESUMABLE, EVAL_INTERVAL=50)),
    "--out", "res", "--no-plots", "--quiet", "--checkpoint-every", "1",
]  # fmt: skip
FIRST_CALL = "checkpoint_000000-000004"
# The sweep with test-only fault injection (FASTTD3X_TEST_KILL_AFTER_PART), see the script.
KILL_AFTER_PART = "tests/kill_after_part.py"
# A process silent this long counts as lost (sweep.py's default is 60 s): a survivor ends within
# LOST_BOUND_S of a peer's death.
HEARTBEAT_S = 15
LOST_BOUND_S = HEARTBEAT_S + distributed.VERDICT_MARGIN_S


def _pair(
    tmp_path: pathlib.Path, run: str, env=None, flags=CHECKPOINTED, script="sweep.py"
) -> dict[str, subprocess.Popen]:
    """Processes 0 and 1 of a two-process sweep, in tmp_path/p0 and tmp_path/p1 (no shared disk),
    each running `script` (the sweep, or a test's wrapper of it)."""
    joined = ["--distributed", "--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2",
                   "--heartbeat-timeout", str(HEARTBEAT_S)]  # fmt: skip
    return {
        f"p{k}": _start(
            tmp_path / f"p{k}", 1, [*joined, "--process-id", str(k)], flags, f"{run}_p{k}", env, script
        )
        for k in (0, 1)
    }


def _resume_command(proc: subprocess.Popen) -> str:
    """The command line that resumes the sweep `proc` runs, as sweep.py prints it."""
    return shlex.join(["python", *proc.args[1:]])


def _finish(tmp_path: pathlib.Path, run: str, procs: dict, timeout: float) -> tuple[dict, dict, dict]:
    """(exit code, log, when it ended) of each process; any still running at `timeout` is
    killed and fails the test."""
    ended, deadline = {}, time.monotonic() + timeout
    try:
        while len(ended) < len(procs) and time.monotonic() < deadline:
            for name, proc in procs.items():
                if name not in ended and proc.poll() is not None:
                    ended[name] = time.monotonic()
            time.sleep(0.1)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = {name: _read(tmp_path / f"{run}_{name}") for name in procs}
    assert len(ended) == len(procs), f"{run}: still running after {timeout} s:\n{logs}"
    return {name: proc.returncode for name, proc in procs.items()}, logs, ended


def _error_line(log: str) -> str:
    return next(line for line in log.splitlines() if line.startswith("sweep.py: error:"))


@pytest.mark.slow  # four compilations and a trace: minutes on two busy cores
def test_kill_between_parts_and_a_damaged_part_stop_both_and_resume_exactly(tmp_path):
    """Process 1 dies (SIGKILL, test-only fault injection) right after writing its part of the
    checkpoint at eval 2, before process 0 could commit it: process 0 ends well within the
    heartbeat bound, and the complete checkpoint is still the one at eval 1. With process 1's
    part of it damaged, the restarted pair stops, both with the same message naming process 1
    and the cause. Restored, the pair resumes from eval 1 and ends with the results of one
    uninterrupted process."""
    reference = {"single": _start(tmp_path / "single", 2, [], CHECKPOINTED[:-2], "single_single")}
    procs = _pair(tmp_path, "killed", env={"FASTTD3X_TEST_KILL_AFTER_PART": "1:2"}, script=KILL_AFTER_PART)
    codes, logs, ended = _finish(tmp_path, "killed", procs, TIMEOUT_S)
    assert codes["p1"] == -9 and "process 1 killed after its part at eval 2" in logs["p1"], logs["p1"]
    assert codes["p0"] == 1, logs["p0"]
    assert ended["p0"] - ended["p1"] < LOST_BOUND_S, logs["p0"][-3000:]
    host = socket.gethostname()
    lost = f"process 0 of 2 (host {host}): lost contact with process 1 of 2 (host {host})"
    assert lost in logs["p0"] and _resume_command(procs["p0"]) in logs["p0"], logs["p0"][-3000:]
    print(f"process 0 ended {ended['p0'] - ended['p1']:.1f} s after process 1 was killed")
    p0, p1 = tmp_path / "p0" / "res" / "combo_000", tmp_path / "p1" / "res" / "combo_000"
    assert json.loads((p0 / f"{FIRST_CALL}.json").read_text())["evals_done"] == 1  # eval 2: uncommitted
    assert (p1 / f"{FIRST_CALL}_eval000002_process1.npz").exists()  # written, never committed

    part = p1 / f"{FIRST_CALL}_eval000001_process1.npz"
    intact = part.read_bytes()
    damaged = bytearray(intact)
    damaged[len(damaged) // 2] ^= 0xFF
    part.write_bytes(bytes(damaged))
    codes, logs, _ = _finish(tmp_path, "damaged", _pair(tmp_path, "damaged"), TIMEOUT_S)
    assert codes["p0"] == codes["p1"] == 1, logs
    assert _error_line(logs["p0"]) == _error_line(logs["p1"])
    message = _error_line(logs["p0"])
    assert (
        f"resuming agents 0-3 from their checkpoint at eval 1 ({FIRST_CALL}.json) failed on process 1 of 2:"
        in message
    )
    assert f"its part {part.name} has CRC-32" in message and "process 0 of 2" not in message, message

    part.write_bytes(intact)
    codes, logs, _ = _finish(tmp_path, "resumed", _pair(tmp_path, "resumed"), TIMEOUT_S)
    assert codes == {"p0": 0, "p1": 0}, logs
    assert "agents 0-3 resume from their checkpoint at eval 1/4" in logs["p0"], logs["p0"]
    assert not list((tmp_path / "p1").rglob("*.npz*")), "process 1 keeps no checkpoint part"
    assert _files(tmp_path / "p0" / "res") == WRITTEN  # no manifest, part or .tmp left

    codes, logs, _ = _finish(tmp_path, "single", reference, TIMEOUT_S)
    assert codes == {"single": 0}, logs
    resumed, _ = _load(tmp_path / "p0" / "res")
    single, _ = _load(tmp_path / "single" / "res")
    for key in single:
        np.testing.assert_array_equal(resumed[key], single[key], err_msg=key)


# The distributed runtime's messages when a peer dies (jax 0.10.2, seen on localhost): on process 0,
# which runs the coordination service, after the heartbeat timeout; on another process, at once
# when process 0 dies.
HEARTBEATS_STOPPED = """\
E1130 20:46:17.491769    9987 coordination_service.cc:1549] [98034] Use error polling to propagate \
the following error to all tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):
1
The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. \
preemption, eviction) to debug further. [type.googleapis.com/tensorflow.CoordinationServiceError='']
F1130 20:46:17.492514    9998 client.h:80] Terminating process because the JAX distributed service \
detected fatal errors. This most likely indicates that another task died; see the other task logs for \
more details. absl::Status: UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):
1
The tasks have crashed.
"""
LEADER_LOST = """\
F1130 20:46:01.004025    9871 client.h:80] Terminating process because the JAX distributed service \
detected fatal errors. This most likely indicates that another task died; see the other task logs for \
more details. absl::Status: UNAVAILABLE: Failed to send RPC to coordination service. Either the leader \
task was preempted/died/restarted unexpectedly or this task is experiencing network issues.
"""


def test_the_supervisor_names_the_lost_process_and_the_resume_command():
    assert supervise.lost_processes(HEARTBEATS_STOPPED) == [1]
    two_tasks = "...(stopped sending heartbeats):\n/job:jax_worker/replica:0/task:2\n3\nThe tasks"
    assert supervise.lost_processes(two_tasks) == [2, 3]
    assert supervise.lost_processes(LEADER_LOST) == [0]
    assert supervise.lost_processes("Terminating process because ... detected fatal errors") == []
    reported = {"process": 0, "processes": 2, "hosts": ["node-a", "node-b"]}
    resume = "python sweep.py --distributed"
    message = supervise.final_message(-6, HEARTBEATS_STOPPED, reported, resume)
    lost = "process 0 of 2 (host node-a): lost contact with process 1 of 2 (host node-b): it died or"
    assert message.startswith(f"sweep.py: error: {lost} its host was lost."), message
    assert message.endswith(f"the last complete checkpoint: {resume}"), message
    unnamed = supervise.final_message(supervise.LOST, "", {"process": 1, "processes": 3}, resume)
    assert "process 1 of 3: lost contact with another process" in unnamed
    killed = supervise.final_message(-9, "", {"process": None, "processes": None}, resume)
    assert killed.startswith("sweep.py: error: this process: killed by SIGKILL.") and resume in killed
    for code in (0, 1, 130, 143):  # the sweep's own ends: it printed why
        assert supervise.final_message(code, HEARTBEATS_STOPPED, reported, resume) is None


def _wait_for(path: pathlib.Path, procs: dict, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        assert all(proc.poll() is None for proc in procs.values()), f"a process ended before {path}"
        time.sleep(0.05)


@pytest.mark.slow  # two compilations: a minute or two on two busy cores
def test_a_killed_process_ends_the_other_naming_it_and_the_resume_command(tmp_path):
    """`kill -9` of process 1 (the process started, whose sweep child dies with it) in the middle
    of a long run, after its first checkpoint: process 0 exits 1 within the heartbeat bound and
    its stderr ends naming process 1 and the command that resumes."""
    procs = _pair(tmp_path, "lost", flags=[*CHECKPOINTED, "--set", "TOTAL_TIMESTEPS=5000"])
    _wait_for(tmp_path / "p0" / "res" / "combo_000" / f"{FIRST_CALL}.json", procs, TIMEOUT_S)
    os.kill(procs["p1"].pid, signal.SIGKILL)
    killed = time.monotonic()
    codes, logs, ended = _finish(tmp_path, "lost", procs, TIMEOUT_S)
    assert codes == {"p0": 1, "p1": -9}, logs
    print(f"process 0 ended {ended['p0'] - killed:.1f} s after process 1 was killed")
    assert ended["p0"] - killed < LOST_BOUND_S, logs["p0"][-3000:]
    stderr = (tmp_path / "lost_p0.err").read_text()
    host = socket.gethostname()
    final = stderr.rstrip().splitlines()[-1]
    assert final == (
        f"sweep.py: error: process 0 of 2 (host {host}): lost contact with process 1 of 2 (host {host}): it "
        "died or its host was lost. Every process of the sweep stops; start every one again with the same "
        f"command to resume from the last complete checkpoint: {_resume_command(procs['p0'])}"
    ), stderr[-3000:]


def test_a_checkpoint_of_another_process_count_is_refused(tmp_path):
    """One process on the checkpoint of two (a hand-written manifest: only its existence and
    part count matter here), and two processes on the checkpoint of one: each refuses before
    compiling, naming the file, both process counts and what to do, and deletes nothing."""
    combo = tmp_path / "one" / "res" / "combo_000"
    combo.mkdir(parents=True)
    parts = [{"name": f"{FIRST_CALL}_eval000003_process{k}.npz", "bytes": 1, "crc32": 0} for k in (0, 1)]
    checkpoints.write_manifest(combo / f"{FIRST_CALL}.json", 3, parts)
    one = {"one": _start(tmp_path / "one", 2, [], CHECKPOINTED, "one_one")}
    codes, logs, _ = _finish(tmp_path, "one", one, 300)
    assert codes == {"one": 1}, logs
    assert _error_line(logs["one"]) == (
        "sweep.py: error: agents 0-3 have a checkpoint at eval 3 written by 2 processes "
        f"(res/combo_000/{FIRST_CALL}.json), and "
        "this sweep runs one process: a checkpoint resumes only in as many processes as wrote it. Run the "
        "same command with --distributed in 2 processes to resume it, or delete the call's checkpoint "
        f"files ({FIRST_CALL}*) on every host to train its agents from the start"
    )
    assert "compiled" not in logs["one"] and (combo / f"{FIRST_CALL}.json").exists()
    assert not list(combo.glob("agents_*"))

    single = tmp_path / "p0" / "res" / "combo_000" / f"{FIRST_CALL}.npz"
    single.parent.mkdir(parents=True)
    single.write_bytes(b"a single process's checkpoint")
    codes, logs, _ = _finish(tmp_path, "two", _pair(tmp_path, "two"), 300)
    assert codes == {"p0": 1, "p1": 1}, logs
    refused = (
        "sweep.py: error: reading the checkpoint manifest of agents 0-3 failed on process 0 of 2: agents "
        f"0-3 have a checkpoint written by one process (res/combo_000/{FIRST_CALL}.npz), and this sweep "
        "runs 2 processes: a checkpoint resumes only in as many processes as wrote it. Run the same "
        f"command without --distributed to resume it, or delete the call's checkpoint files ({FIRST_CALL}*) "
        "on every host to train its agents from the start"
    )
    assert _error_line(logs["p0"]) == _error_line(logs["p1"]) == refused
    assert "compiled" not in logs["p0"] and single.exists()


# A stand-in for sweep.py under its supervisor: the child does what MODE says.
SUPERVISED = """
import os, signal, sys, time
from fasttd3x import supervise
if not supervise.is_child():
    sys.exit(supervise.supervise("python sweep.py --distributed", 1, 2))
supervise.attach()
for sig in (signal.SIGINT, signal.SIGTERM):  # as sweep.py does: its own ignored, forwarded ones read
    signal.signal(sig, signal.SIG_IGN)
print(os.getpid(), flush=True)
if os.environ["MODE"] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
if os.environ["MODE"] == "signals":
    print(list(os.read(supervise.forwarded_signals(), 64)), flush=True)
    sys.exit(3)
time.sleep(60)
"""


def _supervised(tmp_path: pathlib.Path, mode: str) -> tuple[subprocess.Popen, int]:
    """The stand-in started in its own process group, and its child's pid."""
    with open(tmp_path / f"{mode}.log", "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SUPERVISED],
            cwd=ROOT,
            env={**os.environ, "MODE": mode, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not (tmp_path / f"{mode}.log").read_text().endswith("\n"):  # the whole pid line
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, int((tmp_path / f"{mode}.log").read_text().split()[0])


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (not ended, nor a zombie that nobody reaped yet)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_supervisor_forwards_each_signal_once_and_its_child_dies_with_it(tmp_path):
    """A child killed by a signal: the supervisor says so with the resume command and dies of
    the same signal. A SIGTERM to the whole process group (as a terminal's Ctrl-C or a scheduler
    sends it) reaches the child once, through the supervisor. `kill -9` of the supervisor ends
    its child too."""
    proc, _ = _supervised(tmp_path, "killed")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = "sweep.py: error: process 1 of 2: killed by SIGKILL. Every process of the sweep stops"
    assert killed in stderr and "the last complete checkpoint: python sweep.py --distributed" in stderr

    proc, _ = _supervised(tmp_path, "signals")
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3 and not stderr, stderr
    assert (tmp_path / "signals.log").read_text().split()[1:] == [f"[{int(signal.SIGTERM)}]"]

    proc, child = _supervised(tmp_path, "orphan")
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child outlived its supervisor"
