"""sweep.py --distributed: two real processes on localhost CPU give the single-process results."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

import sweep
from shared_configs import RESUMABLE, set_flags

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
    sweep.init_distributed(sweep.parse_args([]))  # without --distributed: nothing to join


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cwd: pathlib.Path, devices: int, extra: list[str]) -> subprocess.Popen:
    """`python sweep.py FLAGS` in `cwd` (results go to cwd/res) on `devices` host devices."""
    cwd.mkdir()
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    cmd = [sys.executable, str(ROOT / "sweep.py"), *FLAGS, *extra]
    with open(cwd.parent / f"{cwd.name}.log", "w") as log:  # a file: no pipe fills up while we wait
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


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
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in procs}
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
