"""Many processes as one sweep: joining them, gathering arrays, and agreeing on every decision.

Used by the sweep (fasttd3x/sweep.py), its checkpoints and the search between evaluations; a single
process takes the same paths, where every collective is the identity.
"""

from __future__ import annotations

import argparse
import socket
import traceback

import jax
import numpy as np


def init_distributed(args: argparse.Namespace) -> None:
    """With --distributed, joins the other processes before JAX starts a backend. Unset
    --coordinator/--num-processes/--process-id are detected from the cluster environment."""
    if not args.distributed or jax.distributed.is_initialized():
        return
    if jax.config.jax_cpu_collectives_implementation != "mpi":
        # CPU processes exchange arrays over gloo; GPU and TPU backends ignore this setting.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        heartbeat_timeout_seconds=args.heartbeat_timeout,
    )


# What a process reads from disk or measures can differ from another's (hosts need not share the
# results folder), so every decision that shapes the programs or the collectives is taken once,
# the same on every process. A step that can fail on one process only (a file it reads, its disk,
# its device memory) runs inside `agreed`, whose all-gather every process reaches, failed or not:
# all processes stop together, with the same message, instead of the others waiting forever in
# the next collective. A process that dies outright is the distributed runtime's to notice: a
# process silent for --heartbeat-timeout seconds (a lost host) ends every other one with the
# runtime's message, which names it; a peer's closed connection fails the next all-gather at once
# (`ProcessLost`), and the survivor then waits for that message (VERDICT_MARGIN_S more at most).
# The supervisor (fasttd3x/supervise.py) turns either into the final message: who was lost, how to resume.
HEARTBEAT_TIMEOUT_S = 60
VERDICT_MARGIN_S = 15  # past the heartbeat timeout: the runtime's detection and error propagation
CAUSE_BYTES = 2048  # of each process's error message, shared by `agreed`
HOST_BYTES = 256  # of each process's host name, shared by `agreed_hosts`


class ProcessLost(RuntimeError):
    """A collective failed: another process died, or its host was lost."""


def allgather(values: np.ndarray, what: str) -> np.ndarray:
    """[processes, ...]: `values` (int32 or uint8, the same shape everywhere) of every process."""
    from jax.experimental import multihost_utils

    try:
        return np.asarray(multihost_utils.process_allgather(values))
    except (jax.errors.JaxRuntimeError, ValueError) as error:  # gloo raises either, by stage
        raise lost_contact(what, error) from None


def lost_contact(what: str, error: Exception) -> ProcessLost:
    return ProcessLost(
        f"lost contact with another process while {what} ({str(error).splitlines()[0]}): it died or "
        "its host was lost"
    )


def agreed(what: str, step, advice: str = ""):
    """`step()`'s result on this process, once every process has run its own `step()`. If it
    failed on any process, every process raises the same ValueError: `what`, each failed
    process and its error, then `advice`. A single process raises its own error unchanged."""
    if jax.process_count() == 1:
        return step()
    result, cause = None, ""
    try:
        result = step()
    except Exception as error:  # shared, never swallowed: every process raises it below
        if not isinstance(error, (ValueError, MemoryError, OSError)):
            traceback.print_exc()  # a bug: its traceback, here
        cause = str(error) or type(error).__name__
    causes = allgather_texts(cause, CAUSE_BYTES, what)
    failed = [f"process {k} of {len(causes)}: {c}" for k, c in enumerate(causes) if c]
    if not failed:
        return result
    if len(failed) == len(causes) and len(set(causes)) == 1 and not advice:
        raise ValueError(causes[0])  # the same on every process (a bad flag): as one process says it
    raise ValueError(f"{what} failed on {'; '.join(failed)}" + (f". {advice}" if advice else ""))


def allgather_texts(text: str, size: int, what: str) -> list[str]:
    """Every process's `text`, its first `size` bytes."""
    encoded = np.frombuffer(text.encode()[:size], np.uint8)
    buffer = np.zeros(size, np.uint8)
    buffer[: len(encoded)] = encoded
    return [bytes(row).rstrip(b"\0").decode(errors="replace") for row in allgather(buffer, what)]


def agreed_hosts() -> list[str]:
    """Every process's host name, by process index: how a lost process is named."""
    return allgather_texts(socket.gethostname(), HOST_BYTES, "sharing host names")


def process_0_view(values: np.ndarray, what: str) -> np.ndarray:
    """Process 0's copy of an int32 array that every process holds in the same shape: what it
    reads from the results folder, which other hosts may not share."""
    return values if jax.process_count() == 1 else allgather(values, what)[0]


def process_0_int64(values: list[int], what: str) -> np.ndarray:
    """Process 0's copy of int64 `values` (sizes and checksums that int32 cannot hold)."""
    return process_0_view(np.array(values, np.int64).view(np.int32), what).view(np.int64)


def least_free_memory(free: int) -> int:
    """The smallest free memory of any process, so that every process picks the same chunk."""
    if jax.process_count() == 1:
        return free
    mib = allgather(np.array([min(free >> 20, 2**31 - 1)], np.int32), "measuring free memory")
    return int(np.min(mib)) << 20


def to_host(tree):
    """`tree` as NumPy arrays, whole on every process (gathered over processes when there are several)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        try:
            tree = multihost_utils.process_allgather(tree, tiled=True)
        except (jax.errors.JaxRuntimeError, ValueError) as error:
            raise lost_contact("gathering results", error) from None
    return jax.tree.map(np.asarray, tree)


def place(values, sharding):
    """NumPy arrays, identical on every process, as jax.Arrays with `sharding`: each process places
    only the pieces of its own devices (jit refuses NumPy inputs with a non-trivial sharding when
    devices belong to several processes)."""
    put = lambda x: jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])  # noqa: E731
    return jax.tree.map(put, values)
