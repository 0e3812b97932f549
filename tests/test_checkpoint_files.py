"""checkpoints.py on tiny pytrees, no training: a checkpoint reads back as written (also when its
state is split over devices), the files it refuses by name, atomic writes, the disk check and the
file names that sweep.py writes and policy.py parses."""

import json
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fasttd3x import checkpoints
from shared_configs import subprocess_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A call's state in miniature: a per-agent leaf of 4 rows and the shared (unbatched) eval counter.
STATE = {"buffer": jnp.arange(12.0).reshape(4, 3), "evals_done": jnp.int32(2)}


def _save(path: pathlib.Path) -> None:
    metrics = {"eval_return": np.arange(8.0).reshape(4, 2)}
    checkpoints.save_checkpoint(path, STATE, metrics, {"evals_done": 2, "run_seconds": 1.5})


def test_checkpoint_reads_back_as_written(tmp_path):
    path = tmp_path / "checkpoint_000000-000004.npz"
    _save(path)
    leaves, metrics, meta = checkpoints.load_checkpoint(path)
    for leaf, want in zip(leaves, jax.tree.leaves(STATE), strict=True):
        np.testing.assert_array_equal(leaf, np.asarray(want))
        assert leaf.dtype == want.dtype
    np.testing.assert_array_equal(metrics["eval_return"], np.arange(8.0).reshape(4, 2))
    assert meta == {"format": checkpoints.FORMAT, "evals_done": 2, "run_seconds": 1.5}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_state_split_over_devices_is_saved_in_agent_order(tmp_path):
    """Four host devices in reverse order hold the rows: the file holds them in agent order, and
    the replicated counter once. A process of its own, since the device count is set at start."""
    script = textwrap.dedent(
        f"""
        import pathlib
        import jax, numpy as np
        from fasttd3x import checkpoints

        mesh = jax.sharding.Mesh(np.array(jax.devices()[::-1]), ("agents",))
        rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
        shared = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        buffer = np.arange(24.0, dtype=np.float32).reshape(8, 3)
        state = {{"buffer": jax.device_put(buffer, rows), "evals_done": jax.device_put(np.int32(2), shared)}}
        assert len(state["buffer"].addressable_shards) == 4
        path = pathlib.Path({str(tmp_path)!r}) / "checkpoint_000000-000008.npz"
        checkpoints.save_checkpoint(path, state, {{}}, {{"evals_done": 2, "run_seconds": 0.0}})
        leaves, _, _ = checkpoints.load_checkpoint(path)
        np.testing.assert_array_equal(leaves[0], buffer)
        assert leaves[1].shape == () and leaves[1] == 2
        """
    )
    env = subprocess_env(devices=4)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_another_format_and_a_damaged_file_are_refused_by_name(tmp_path):
    other = tmp_path / "checkpoint_000000-000004.npz"
    checkpoints.write_npz(other, {"meta": np.array(json.dumps({"format": "fasttd3x-checkpoint/0"}))})
    with pytest.raises(checkpoints.CorruptFileError, match="'fasttd3x-checkpoint/0'") as refused:
        checkpoints.load_checkpoint(other)
    assert str(other) in str(refused.value) and "Delete it" in str(refused.value)

    damaged = tmp_path / "checkpoint_000004-000008.npz"
    _save(damaged)
    damaged.write_bytes(damaged.read_bytes()[:200])
    with pytest.raises(checkpoints.CorruptFileError, match="is unreadable") as refused:
        checkpoints.load_checkpoint(damaged)
    assert str(damaged) in str(refused.value)


def test_leaves_of_another_config_are_refused():
    """This process's rows (2 of 4) fit; another count of arrays, another shape past the agent
    axis or another rank do not."""
    specs = [jax.ShapeDtypeStruct((4, 3), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32)]
    counter = np.zeros((), np.int32)
    checkpoints.check_state_fits([np.zeros((2, 3), np.float32), counter], specs)
    with pytest.raises(checkpoints.CorruptFileError, match="holds 1 arrays, this config's state 2"):
        checkpoints.check_state_fits([counter], specs)
    for leaf in (np.zeros((2, 5)), np.zeros((2, 3, 1))):
        with pytest.raises(checkpoints.CorruptFileError, match=re.escape(f"shape {leaf.shape}")):
            checkpoints.check_state_fits([leaf, counter], specs)


def test_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "agents_000000-000002.npz"
    checkpoints.write_npz(path, {"agent": np.arange(2)})
    checkpoints.write_json(tmp_path / "calls.json", {"agents_per_call": np.int64(2)})
    assert not list(tmp_path.glob("*.tmp"))
    assert json.loads((tmp_path / "calls.json").read_text()) == {"agents_per_call": 2.0}

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoints.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoints.write_npz(path, {"agent": np.arange(3)})
    with np.load(path) as data:
        np.testing.assert_array_equal(data["agent"], np.arange(2))


def test_disk_check_counts_the_checkpoint_it_replaces(tmp_path, monkeypatch, capsys):
    """Room for two checkpoints of a call, where an existing one will be replaced and so counts as
    room; the cost is printed before any refusal."""
    folder = tmp_path / "combo_000"
    folder.mkdir()
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 0, 1000))
    checkpoints.check_disk(folder, per_call=500, agents=2)
    with pytest.raises(ValueError, match="room for two"):
        checkpoints.check_disk(folder, per_call=600, agents=2)
    assert capsys.readouterr().out.count("checkpoints: ") == 2
    (folder / "checkpoint_000000-000002.npz").write_bytes(bytes(200))
    checkpoints.check_disk(folder, per_call=600, agents=2)


def test_checkpoint_names(tmp_path):
    path = checkpoints.checkpoint_path(tmp_path, 4, 12)
    assert path == tmp_path / "checkpoint_000004-000012.npz"  # one process: no process part
    assert checkpoints.parse_checkpoint_name(path) == (4, 12, 0)
    part = checkpoints.part_path(tmp_path, 4, 12, evals=7, process=3)
    assert part == tmp_path / "checkpoint_000004-000012_eval000007_process3.npz"
    assert checkpoints.parse_checkpoint_name(part) == (4, 12, 3)
    assert checkpoints.manifest_path(tmp_path, 4, 12) == tmp_path / "checkpoint_000004-000012.json"
    for other in (
        "agents_000004-000012.npz",
        "checkpoint_000004-000012.npz.tmp",
        "checkpoint_000004-000012.json",
    ):
        assert checkpoints.parse_checkpoint_name(tmp_path / other) is None
    assert checkpoints.partial_path(path) == tmp_path / "checkpoint_000004-000012.npz.tmp"


def test_manifest_and_the_parts_it_names(tmp_path):
    """A manifest reads back as written; a part is accepted only with its bytes and CRC-32."""
    part = checkpoints.part_path(tmp_path, 0, 4, evals=2, process=1)
    _save(part)
    size, crc = checkpoints.checksum(part)
    assert size == part.stat().st_size
    entry = {"name": part.name, "bytes": size, "crc32": crc}
    manifest = checkpoints.manifest_path(tmp_path, 0, 4)
    checkpoints.write_manifest(manifest, 2, [entry, entry])
    assert checkpoints.read_manifest(manifest)["evals_done"] == 2
    assert checkpoints.read_manifest(manifest)["parts"] == [entry, entry]
    assert checkpoints.check_part(part, entry) is None

    assert checkpoints.check_part(tmp_path / "gone.npz", entry) == "its part gone.npz is missing"
    assert f"has {size} bytes, the manifest says {size + 1}" in checkpoints.check_part(
        part, {**entry, "bytes": size + 1}
    )
    damaged = bytearray(part.read_bytes())
    damaged[100] ^= 0xFF  # one flipped byte, same size
    part.write_bytes(bytes(damaged))
    assert "CRC-32" in checkpoints.check_part(part, entry)

    manifest.write_text('{"format": "something else"}')
    with pytest.raises(checkpoints.CorruptFileError, match=re.escape(f"manifest {manifest} is unreadable")):
        checkpoints.read_manifest(manifest)


def test_cleaning_up_after_a_kill(tmp_path):
    """Partial writes go, each process's its own; a finished call's checkpoint files go (each
    process its parts, process 0 the manifest); a call's older parts go once a newer is kept."""
    names = [
        "agents_000000-000002.npz.tmp",
        "config.json.tmp",
        "checkpoint_000002-000004_eval000003_process0.npz.tmp",
        "checkpoint_000002-000004_eval000003_process1.npz.tmp",
        "checkpoint_000000-000002.json",
        "checkpoint_000000-000002_eval000001_process0.npz",
        "checkpoint_000000-000002_eval000001_process1.npz",
        "checkpoint_000002-000004.json",
        "checkpoint_000002-000004_eval000001_process1.npz",
        "checkpoint_000002-000004_eval000002_process1.npz",
        "checkpoint_000004-000006.npz",
        "agents_000000-000002.npz",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert checkpoints.remove_partial_writes(tmp_path, 1) == [names[3]]
    assert checkpoints.remove_partial_writes(tmp_path, 0) == sorted(names[:3])
    finished = lambda lo, hi: hi <= 2  # noqa: E731  (agents 0 and 1 have results)
    assert checkpoints.remove_checkpoints(tmp_path, 1, finished) == [names[6]]
    assert checkpoints.remove_checkpoints(tmp_path, 0, finished) == [names[4], names[5]]
    checkpoints.remove_old_parts(tmp_path, 2, 4, process=1, keep_evals=2)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {names[7], names[9], names[10], names[11]}
