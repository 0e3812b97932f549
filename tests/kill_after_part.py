"""`python tests/kill_after_part.py SWEEP_FLAGS...`: the sweep command line, except that process K
dies (SIGKILL, as a lost host would) right after writing its part of the checkpoint at eval E,
where FASTTD3X_TEST_KILL_AFTER_PART="K:E". Fault injection for tests/test_distributed.py, kept out
of the product: it wraps the checkpoint writer before the sweep starts (a supervised sweep reruns
this same command as its child, so the child is wrapped too)."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the clone's root

from fasttd3x import checkpoints, sweep  # noqa: E402

KILL_AFTER_PART = "FASTTD3X_TEST_KILL_AFTER_PART"
_save_checkpoint = checkpoints.save_checkpoint


def save_then_die_if_asked(path, state, metrics, meta) -> None:
    _save_checkpoint(path, state, metrics, meta)
    lo_hi_process = checkpoints.parse_checkpoint_name(path)
    process, evals = (lo_hi_process[2] if lo_hi_process else None), meta["evals_done"]
    if "_process" in path.name and os.environ.get(KILL_AFTER_PART) == f"{process}:{evals}":
        print(f"{KILL_AFTER_PART}: process {process} killed after its part at eval {evals}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


checkpoints.save_checkpoint = save_then_die_if_asked

if __name__ == "__main__":
    sweep.main()
