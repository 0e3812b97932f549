"""bench/gpu_proof.py runs every stage (on CPU, tiny) and writes what the per-card tables of
docs/benchmarks.md read, and that page's generated block is what bench/benchmarks_table.py makes of
bench/results/."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import benchmarks_table  # noqa: E402
from shared_configs import subprocess_env  # noqa: E402

pytestmark = pytest.mark.bench  # a test of the benchmark scripts, not of the product

STAGES = ("iterations", "scaling", "learn1", "learn2", "profile")
COMMON_KEYS = {"schema", "stage", "status", "smoke", "device", "platform", "versions", "settings", "numbers"}
ROW_KEYS = {
    "iterations": {"task", "compute_dtype", "num_envs", "iterations_per_second", "warmup_iteration_ms"},
    "scaling": {"agents", "agent_iterations_per_second", "env_steps_per_second", "peak_memory_bytes"},
    "learn1": {"env_steps", "eval_return_mean", "eval_return_per_seed", "chunk_seconds"},
    "learn2": {"env_steps", "eval_return_mean", "eval_return_per_seed", "chunk_seconds"},
    "profile": {"component", "ms", "how"},
}
COMPONENTS = {
    "iteration",
    "warmup_iteration",
    "learner",
    "buffer_add",
    "buffer_sample",
    "learner_without_sample",
    "simulator_step",
    "eval_step",
}


@pytest.mark.slow
def test_smoke_writes_every_stage(tmp_path):
    out = tmp_path / "out"
    env = {
        **subprocess_env(devices=1),
        "OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        # A budget out of reach: on a loaded machine the clock would skip stages, and this test is
        # about what every stage writes (test_clock_skips_what_does_not_fit covers the skipping).
        [sys.executable, str(ROOT / "bench" / "gpu_proof.py"), "--smoke", "--budget-s", "1e6"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = {path.name: json.loads(path.read_text()) for path in out.glob("gpu_proof_*.json")}
    assert sorted(files) == sorted(f"gpu_proof_{stage}_cpu.json" for stage in STAGES)
    for stage in STAGES:
        record = files[f"gpu_proof_{stage}_cpu.json"]
        assert COMMON_KEYS <= set(record), stage
        assert record["stage"] == stage and record["smoke"] is True
        assert record["status"] == "complete", (stage, record["notes"], record.get("error"))
        assert record["versions"]["jax"] and record["settings"]
        assert record["numbers"], stage
        for row in record["numbers"]:
            assert ROW_KEYS[stage] <= set(row), (stage, row)
    assert {row["component"] for row in files["gpu_proof_profile_cpu.json"]["numbers"]} == COMPONENTS
    assert [row["env_steps"] for row in files["gpu_proof_learn2_cpu.json"]["numbers"]] == [80, 160, 240, 320]
    assert "GPU config ok: learn2 T1JoystickFlatTerrain to 10,240,000 env steps" in done.stdout
    # docs/benchmarks.md's tables read these files (forced to include CPU results) without a KeyError.
    block = benchmarks_table.render(out, include_cpu=True)
    for stage in STAGES:
        assert f"gpu_proof_{stage}_cpu.json" in block


def test_clock_skips_what_does_not_fit(capsys):
    import gpu_proof

    clock = gpu_proof.Clock(budget_s=100.0, priors={"compile_s": {}, "iterations_per_s": {}})
    clock.start -= 30.0  # as if 30 s of the call were spent
    assert clock.fits(60.0, "step a")
    assert not clock.fits(80.0, "step b")
    printed = capsys.readouterr().out
    assert "step a: estimated 60 s, 70 s left" in printed
    assert "skipped step b: estimated 80 s, 70 s left of the 100 s budget" in printed


def test_smoke_results_stay_out_of_the_readme(tmp_path):
    """CPU and smoke files are not GPU results; with none, the block names the device command."""
    (tmp_path / "gpu_proof_iterations_cpu.json").write_text(
        json.dumps({"device": "cpu", "platform": "cpu", "smoke": True, "numbers": []})
    )
    block = benchmarks_table.render(tmp_path)
    assert "No GPU result" in block and benchmarks_table.DEVICE_COMMAND in block


def test_readme_benchmarks_block_is_generated():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "benchmarks_table.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
