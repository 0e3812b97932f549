"""The bench scripts' shared functions that bench/gpu_proof.py drives, on the paths a CPU run never
takes (out of memory) or takes only at full length (the comparison with the published curve)."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_iterations import RATES, rates  # noqa: E402
from bench_parity import reference_comparison  # noqa: E402
from bench_scaling import agent_count_row  # noqa: E402


def test_rates_of_vmapped_agents():
    assert rates(10.0, agents=4, num_envs=128) == dict(zip(RATES, (10.0, 40.0, 5120.0)))


def test_agent_count_row_records_out_of_memory_and_raises_the_rest():
    def out_of_memory():
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.6 GiB\nmore")

    row = agent_count_row(256, 128, out_of_memory, timed_chunks=2)
    assert row["status"] == "out_of_memory" and row["error"].startswith("RESOURCE_EXHAUSTED")
    assert row["agents"] == 256 and row["timed_chunks"] == 2
    assert row["iterations_per_second"] is None and row["peak_memory_bytes"] > 0

    def other_error():
        raise ValueError("a bug, not a full device")

    with pytest.raises(ValueError):
        agent_count_row(256, 128, other_error)

    row = agent_count_row(2, 128, lambda: (5.0, 1.5, None, {"chunk_seconds": [0.4]}))
    assert row["status"] == "ok" and row["env_steps_per_second"] == 5.0 * 2 * 128
    assert row["compile_seconds"] == 1.5 and row["chunk_seconds"] == [0.4] and row["compiled_memory"] is None


def test_reference_comparison_only_where_both_have_a_point():
    ours = {1_280_000: 1.0, 5_120_000: 14.0}
    comparison = reference_comparison("T1JoystickFlatTerrain", ours)
    assert comparison == {"5120000": {"ours": 14.0, "reference": 17.50, "ratio": 14.0 / 17.50}}
    assert reference_comparison("Pendulum-v1", ours) == {}
