"""What the test suite's time goes to, from the log of a CI run.

    CI=true PYTEST_ADDOPTS="--durations=0 -v" bash .ci/run > ci.log 2>&1
    python bench/ci_durations.py ci.log

Reads pytest's wall time, the seconds of every test phase (`--durations=0`) and which xdist
worker ran each test (`-v`), and writes bench/results/ci_durations_cpu.json: the wall time, the
summed seconds per worker and per module (what tests/conftest.py's MODULE_SECONDS orders the
modules by), and the machine the log was written on (run this script on that machine).
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re

from common import environment, write

PHASE = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)", re.MULTILINE)
WORKER = re.compile(r"\[(gw\d+)\] \[\s*\d+%\] (?:PASSED|SKIPPED|FAILED|ERROR|XFAIL|XPASS) (\S+)")
SUMMARY = re.compile(r"=+ (\d+) passed.* in ([\d.]+)s")


def durations(log: str) -> dict:
    """Wall time and summed phase seconds per worker and module of one pytest log."""
    summary = SUMMARY.findall(log)
    if not summary:
        raise SystemExit("no pytest summary line ('N passed ... in S s') in the log")
    passed, wall = summary[-1]
    worker_of = {nodeid: worker for worker, nodeid in WORKER.findall(log)}
    workers, modules = collections.Counter(), collections.Counter()
    for seconds, _, nodeid in PHASE.findall(log):
        workers[worker_of.get(nodeid, "unknown")] += float(seconds)
        modules[nodeid.split("::")[0]] += float(seconds)
    if not modules:
        raise SystemExit("no test durations in the log: run pytest with --durations=0")
    return {
        "passed": int(passed),
        "pytest_wall_seconds": float(wall),
        "worker_seconds": {k: round(v, 1) for k, v in sorted(workers.items())},
        "module_seconds": {k: round(v, 1) for k, v in modules.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=pathlib.Path, help="output of a CI run with --durations=0 -v")
    args = parser.parse_args()
    record = {"benchmark": "ci_durations", **durations(args.log.read_text()), **environment()}
    write("ci_durations_cpu", record)


if __name__ == "__main__":
    main()
