"""Runs that survive: resuming a train loop bit for bit, and sweeps stopped by SIGINT or killed
with SIGKILL mid-run that, rerun, end with the results of an uninterrupted sweep.

Bit-exactness holds where the same compiled program runs on the same values: a state saved
through the host and continued with the same `run` program. Another chunking (one call of four
evals against two of two) or the fused `train` is another program that XLA may lay out and round
differently on another CPU, so those are compared to float32 rounding on the first eval chunk,
before rounding differences have had training to grow."""

import functools
import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejax_fasttd3 as ft
from fasttd3x import checkpoints, progress, results, sweep
from fasttd3x import policy as pol
from shared_configs import RESUMABLE, set_flags, subprocess_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = dict(RESUMABLE)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


REPORTED: list[int] = []  # evaluations reported to the progress callback, in order
BEATS: list[int] = []  # iterations done at each heartbeat


@pytest.fixture(scope="module")
def loop():
    """The loop under test reports through both callbacks, so every program here also runs the
    heartbeat's cond inside its scans (vmapped and sharded ones too)."""
    return ft.make_train_loop(
        ft.make_config("Pendulum-v1", **SMALL),
        progress=lambda i: REPORTED.append(int(i)),
        heartbeat=lambda done: BEATS.append(int(done)),
    )


def _through_host(state):
    """The state as a file gives it back: every leaf copied to NumPy and back to the device."""
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), state)


def _assert_first_chunk_close(chunked: dict, fused: dict, axis: int = 0):
    """Another program on the same run: the first eval chunk agrees to float32 rounding."""
    for name, values in fused.items():
        first, want = (np.take(np.asarray(x), 0, axis) for x in (chunked[name], values))
        np.testing.assert_allclose(first, want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_single_run_continues_bit_for_bit(loop, monkeypatch):
    """init, 1 eval, the state through the host, then 3 more: exactly what the same programs give
    without stopping; and the run `train` gives in one program, to float32 rounding."""
    monkeypatch.setattr(progress, "MIN_HEARTBEAT_INTERVAL", 1)  # heartbeats in these short chunks too
    rng = jax.random.PRNGKey(3)
    run_one, run_three = (jax.jit(functools.partial(loop.run, num_evals=n)) for n in (1, 3))
    REPORTED.clear()
    BEATS.clear()
    start = jax.jit(loop.init)(rng)
    state, first = run_one(start)
    # No weakly typed leaf (a state read from a file has none), so every call below, from init,
    # from run or through the host, has one input signature: one compiled program each.
    assert not any(x.weak_type for x in jax.tree.leaves((start, state)))
    kept, kept_rest = run_three(state)
    state, rest = run_three(_through_host(state))
    for name, values in kept_rest.items():  # exact: the same compiled program on the same values
        np.testing.assert_array_equal(rest[name], values, err_msg=name)
    _assert_trees_equal(state, kept)
    assert int(state.evals_done) == loop.num_evals
    jax.effects_barrier()
    assert sorted(REPORTED) == [0, 1, 1, 2, 2, 3, 3]  # each continuation reports evals 1-3, not 0-2
    # Heartbeats: 50-iteration chunks report every 10 iterations (5 segments of the minimum 10);
    # chunks 2-4 ran twice (kept and resumed).
    assert progress.heartbeat_segments(SMALL["EVAL_INTERVAL"]) == 5
    assert sorted(BEATS) == sorted([*range(10, 51, 10), *range(60, 201, 10), *range(60, 201, 10)])

    full = jax.jit(ft.make_train(ft.make_config("Pendulum-v1", **SMALL)))(rng)
    chunked = {name: np.concatenate([first[name], rest[name]]) for name in first}
    np.testing.assert_array_equal(chunked["iteration"], full["metrics"]["iteration"])
    _assert_first_chunk_close(chunked, full["metrics"])


def test_vmapped_grid_continues_bit_for_bit(loop, tmp_path):
    """Seeds x an hparam grid: 2 + 2 evals from a saved state equal the same two calls without
    stopping, bit for bit, and one call of 4 evals to float32 rounding. The eval counter stays one
    shared scalar (RUNNER_AXES), so warm-up and actor cadence remain real branches."""
    rngs = jax.random.split(jax.random.PRNGKey(0), 3)
    hparams = {
        k: jnp.full(3, v) for k, v in ft.default_hparams(ft.make_config("Pendulum-v1", **SMALL)).items()
    }
    hparams["STD_MAX"] = jnp.array([0.4, 0.6, 0.8])
    axes = ft.RUNNER_AXES
    init = jax.jit(jax.vmap(loop.init, out_axes=axes))
    run = lambda n: jax.jit(
        jax.vmap(functools.partial(loop.run, num_evals=n), in_axes=(axes,), out_axes=(axes, 0))
    )
    start = init(rngs, hparams)
    assert start.evals_done.shape == ()
    run_two = run(2)
    mid_run, first = run_two(start)
    kept, kept_second = run_two(mid_run)
    state, second = run_two(_through_host(mid_run))
    for name, values in kept_second.items():  # exact: the same compiled program on the same values
        np.testing.assert_array_equal(second[name], values, err_msg=name)
    _assert_trees_equal(state, kept)
    _, whole = run(4)(init(rngs, hparams))
    chunked = {name: np.concatenate([first[name], second[name]], 1) for name in first}
    np.testing.assert_array_equal(chunked["iteration"], whole["iteration"])
    _assert_first_chunk_close(chunked, whole, axis=1)

    # A policy read back from a mid-run checkpoint file acts as the agent did at that evaluation.
    config = ft.make_config("Pendulum-v1", **SMALL)
    combo = tmp_path / "combo_000"
    combo.mkdir()
    (combo / "config.json").write_text(json.dumps(config))
    checkpoints.save_checkpoint(
        combo / "checkpoint_000000-000003.npz", mid_run, {}, {"evals_done": 2, "run_seconds": 0.0}
    )
    trained, policy, evals = pol.load_checkpoint_policy(combo / "checkpoint_000000-000003.npz", agent=2)
    assert evals == 2 and trained["STD_MAX"] == pytest.approx(0.8)
    _assert_trees_equal(policy.actor_params, jax.tree.map(lambda x: x[2], mid_run.train_state.actor_params))
    eval_key = jax.random.split(rngs[2], 6)[5]  # the k_eval of TrainLoop.init
    returns = jax.jit(lambda p: pol.evaluate_policy(trained, p, eval_key))(policy)
    np.testing.assert_allclose(returns.mean(), first["eval_return"][2, 1], rtol=1e-5)


# ---------------------------------------------------------------------------------------- sweeps
SWEEP = [
    "--env", "Pendulum-v1", "--seeds", "2", "--chunk", "2", "--no-plots", "--quiet",
    *set_flags(dict(RESUMABLE, TOTAL_TIMESTEPS=3000, EVAL_INTERVAL=100, BUFFER_SIZE=400)),
]  # fmt: skip


def _sweep_process(out):
    """The sweep as its own process, on one host device: two calls of one agent each."""
    env = subprocess_env(devices=1)
    cmd = [sys.executable, "sweep.py", *SWEEP, "--chunk", "1", "--out", str(out), "--checkpoint-every", "3"]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for(predicate, process, timeout=600.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"sweep ended early:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "timed out waiting for a checkpoint"
        time.sleep(0.02)


# The sweep's two calls train agent 0 and agent 1; each call's checkpoint is named by its agent
# range, and exists only while that call runs (a finished call writes agents_*.npz, then removes it).
FIRST_CALL, SECOND_CALL = "checkpoint_000000-000001.npz", "checkpoint_000001-000002.npz"


def _checkpoint_evals(out, name: str) -> int:
    """Evaluations done at the checkpoint `name` of combo_000 (0 while there is none)."""
    try:
        with np.load(pathlib.Path(out) / "combo_000" / name) as data:
            return json.loads(str(data["meta"]))["evals_done"]
    except FileNotFoundError:  # not written yet, or removed when its call finished
        return 0


def _results(out):
    arrays = {}
    for path in sorted(pathlib.Path(out).glob("combo_000/agents_*.npz")):
        with np.load(path) as data:
            for key in data.files:
                if key != "meta":
                    arrays.setdefault(key, []).append(data[key])
    return {k: np.concatenate(v) for k, v in arrays.items()}


@pytest.mark.slow
def test_sigint_then_sigkill_then_resume_equals_uninterrupted(tmp_path):
    reference = tmp_path / "uninterrupted"
    interrupted = tmp_path / "interrupted"
    uninterrupted = _sweep_process(reference)  # runs beside the first interrupted one

    # Ctrl-C once the first call has a checkpoint: a clean stop at the next evaluation, saying how
    # to resume.
    first = _sweep_process(interrupted)
    _wait_for(lambda: _checkpoint_evals(interrupted, FIRST_CALL) >= 3, first)
    first.send_signal(signal.SIGINT)
    log = first.communicate(timeout=600)[0]
    assert first.returncode == 130, log
    assert "rerun the same command to resume" in log and "Traceback" not in log, log
    assert not list(interrupted.rglob("*.tmp")), "a half-written file was left behind"
    # It stops at the evaluation after the signal, saving a checkpoint there (or between calls).
    stopped_at = _checkpoint_evals(interrupted, FIRST_CALL)
    assert stopped_at >= 4 or list(interrupted.glob("combo_000/agents_*.npz")), log

    # SIGKILL in the middle of the second call. Only the second call writes its own checkpoint, so
    # waiting for that file cannot end on the first call's leftover (which the first call removes
    # when it finishes). SIGSTOP freezes the sweep before the check that the call is still running;
    # SIGKILL then lands exactly there.
    second = _sweep_process(interrupted)
    _wait_for(lambda: _checkpoint_evals(interrupted, SECOND_CALL) >= 3, second)
    second.send_signal(signal.SIGSTOP)
    assert _checkpoint_evals(interrupted, SECOND_CALL) >= 3, "the second call ended before SIGSTOP"
    second.kill()
    second.communicate(timeout=60)
    assert (interrupted / "combo_000" / SECOND_CALL).exists(), "the kill should land mid-call"
    assert [p.name for p in interrupted.glob("combo_000/agents_*.npz")] == ["agents_000000-000001.npz"]

    log = uninterrupted.communicate(timeout=900)[0]
    assert uninterrupted.returncode == 0, log
    third = _sweep_process(interrupted)
    log = third.communicate(timeout=900)[0]
    assert third.returncode == 0, log
    assert "resume from their checkpoint at eval" in log, log
    assert not list(interrupted.glob("combo_000/checkpoint_*")), "finished calls keep no checkpoint"
    got, want = _results(interrupted), _results(reference)
    assert set(got) == set(want)
    for key in want:  # exact: both sweeps run the same programs (chunk 1, 3 evals) on one device
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_corrupt_results_file_is_named_not_trusted(tmp_path, capsys):
    out = tmp_path / "sweep"
    (out / "combo_000").mkdir(parents=True)
    bad = out / "combo_000" / "agents_000000-000002.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit) as stop:
        sweep.main([*SWEEP, "--out", str(out)])
    message = str(stop.value.code)
    assert str(bad) in message and "Delete it" in message
    assert bad.read_bytes() == b"PK\x03\x04 truncated"  # neither recomputed over nor removed


def test_corrupt_checkpoint_is_named(tmp_path):
    out = tmp_path / "sweep"
    (out / "combo_000").mkdir(parents=True)
    bad = out / "combo_000" / "checkpoint_000000-000002.npz"  # the one call: --chunk 2
    bad.write_bytes(b"not a zip file")
    with pytest.raises(SystemExit) as stop:
        sweep.main([*SWEEP, "--out", str(out), "--checkpoint-every", "3"])
    assert str(bad) in str(stop.value.code) and "Delete it" in str(stop.value.code)


def test_checkpoints_need_room_for_two(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        checkpoints.shutil, "disk_usage", lambda path: checkpoints.shutil._ntuple_diskusage(1, 0, 1000)
    )
    with pytest.raises(SystemExit) as stop:
        sweep.main([*SWEEP, "--out", str(tmp_path / "sweep"), "--checkpoint-every", "3"])
    message = str(stop.value.code)
    assert "--checkpoint-every" in message and "room for two" in message
    assert "checkpoints:" in capsys.readouterr().out  # the cost is printed before refusing


def test_checkpoint_of_another_config_is_refused(tmp_path):
    """A readable checkpoint whose arrays do not match the config's state: the sweep and the
    policy loader both name the file instead of resuming from a wrong state."""
    out = tmp_path / "sweep"
    (out / "combo_000").mkdir(parents=True)
    other = out / "combo_000" / "checkpoint_000000-000002.npz"
    state = {"only_leaf": jnp.zeros((2, 3))}
    checkpoints.save_checkpoint(other, state, {}, {"evals_done": 3, "run_seconds": 0.0})
    with pytest.raises(SystemExit) as stop:
        sweep.main([*SWEEP, "--out", str(out), "--checkpoint-every", "3"])
    message = str(stop.value.code)
    assert str(other) in message and "does not fit this sweep" in message and "holds 1 arrays" in message

    (out / "combo_000" / "config.json").write_text(json.dumps(ft.make_config("Pendulum-v1", **SMALL)))
    with pytest.raises(ValueError, match="holds 1 state arrays"):
        pol.load_checkpoint_policy(other, agent=0)


def test_resume_keeps_the_call_size_of_calls_json(tmp_path):
    """An explicit --chunk that differs from the one the sweep started with is refused, named."""
    (tmp_path / "combo_000").mkdir(parents=True)
    (tmp_path / "combo_000" / "calls.json").write_text('{"agents_per_call": 1, "devices": 1}')
    with pytest.raises(SystemExit) as stop:
        sweep.main([*SWEEP, "--out", str(tmp_path)])  # --chunk 2
    message = str(stop.value.code)
    assert "--chunk 2: this combination started with 1 agents per call" in message, message
    assert "Drop --chunk (or pass --chunk 1)" in message


def test_leftovers_of_a_kill_are_removed_on_resume(tmp_path, capsys):
    """A kill after a call's results were written but before its checkpoint was deleted, and a
    second Ctrl-C during a results write: the resumed sweep removes both, trusting the results."""
    folder = tmp_path / "combo_000"
    folder.mkdir(parents=True)
    arrays = {"agent": np.arange(2), "grid_index": np.zeros(2, np.int64)}  # the sweep summarizes it
    arrays.update({f"metric_{name}": np.zeros((2, 1)) for name in results.METRICS})
    checkpoints.write_npz(folder / "agents_000000-000002.npz", arrays)
    stale = checkpoints.checkpoint_path(folder, 0, 2)
    checkpoints.save_checkpoint(stale, {"leaf": jnp.zeros((2, 3))}, {}, {"evals_done": 3, "run_seconds": 0.0})
    (folder / "agents_000000-000002.npz.tmp").write_bytes(b"half a file")
    sweep.run_sweep(sweep.parse_args([*SWEEP, "--out", str(tmp_path), "--checkpoint-every", "3"]))
    out = capsys.readouterr().out
    assert "removed agents_000000-000002.npz.tmp, checkpoint_000000-000002.npz" in out, out
    assert "all 2 agents already finished, skipped" in out
    assert sorted(p.name for p in folder.iterdir()) == ["agents_000000-000002.npz", "config.json"]
