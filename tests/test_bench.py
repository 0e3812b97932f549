"""The bench scripts' shared functions that bench/gpu_proof.py drives, on the paths a CPU run never
takes (out of memory) or takes only at full length (the comparison with the published curve), and
the peer comparison's summary and settings map, and the search study's held-out comparison."""

import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import purejax_fasttd3 as ft  # noqa: E402
from bench_iterations import RATES, rates  # noqa: E402
from bench_parity import reference_comparison  # noqa: E402
from bench_peer import rejax_at_our_settings, summarize  # noqa: E402
from bench_scaling import agent_count_row  # noqa: E402
from bench_search import compare_heldout  # noqa: E402
from ci_durations import durations  # noqa: E402

pytestmark = pytest.mark.bench  # a test of the benchmark scripts, not of the product


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


def test_peer_summary_times_the_first_evaluation_whose_mean_reaches_the_threshold():
    returns = np.array([[-900.0, -250.0, -150.0, -120.0], [-700.0, -180.0, -190.0, -260.0]])
    env_steps = np.array([100, 200, 300, 400])
    seconds = [1.5, 2.5, 4.0, 5.0]  # measured, not proportional to env steps
    got = summarize(returns, env_steps, seconds, threshold=-200.0)
    # Means per evaluation: -800, -215, -170, -190: the first at or above -200 is the third.
    assert got["eval_index_at_threshold"] == 2
    assert got["seconds_to_threshold"] == 4.0 and got["env_steps_to_threshold"] == 300
    assert got["share_final_at_threshold"] == 0.5  # -120 solved, -260 not
    assert got["mean_final_return"] == -190.0 and got["min_final_return"] == -260.0
    never = summarize(returns, env_steps, seconds, threshold=-100.0)
    assert never["seconds_to_threshold"] is None and never["share_final_at_threshold"] == 0.0


def test_rejax_at_our_settings_counts_transitions_and_updates_like_ours():
    config = ft.make_config("Pendulum-v1")
    td3, sac = rejax_at_our_settings(config).values()
    # rejax sizes its replay and warm-up in transitions over all envs; ours per env and iteration.
    assert td3["buffer_size"] == config["BUFFER_SIZE"] * config["NUM_ENVS"]
    assert td3["fill_buffer"] == config["LEARNING_STARTS"] * config["NUM_ENVS"]
    # rejax makes num_epochs updates per num_envs env steps: the same count as ours over a budget.
    budget = config["TOTAL_TIMESTEPS"] * config["NUM_ENVS"]
    for rejax in (td3, sac):
        assert (
            budget // rejax["num_envs"] * rejax["num_epochs"]
            == config["TOTAL_TIMESTEPS"] * config["NUM_UPDATES"]
        )
        assert rejax["polyak"] == pytest.approx(1 - config["TAU"])
    assert config["STD_MIN"] < td3["exploration_noise"] < config["STD_MAX"]
    assert set(td3) - set(sac) == {"policy_delay", "target_noise", "target_noise_clip", "exploration_noise"}
    with pytest.raises(SystemExit, match="one learning rate"):
        rejax_at_our_settings(ft.make_config("Pendulum-v1", ACTOR_LEARNING_RATE=3e-4))


def test_ci_durations_sum_each_workers_and_modules_phases():
    log = """
[gw0] [ 50%] PASSED tests/test_a.py::test_one
[gw1] [100%] PASSED tests/test_b.py::test_two[x]
============================= slowest durations ==============================
12.50s call     tests/test_a.py::test_one
3.00s setup    tests/test_a.py::test_one
7.50s call     tests/test_b.py::test_two[x]
================ 2 passed, 1 warning in 30.10s (0:00:30) =================
"""
    got = durations(log)
    assert got["passed"] == 2 and got["pytest_wall_seconds"] == 30.1
    assert got["worker_seconds"] == {"gw0": 15.5, "gw1": 7.5}
    assert list(got["module_seconds"].items()) == [("tests/test_a.py", 15.5), ("tests/test_b.py", 7.5)]
    with pytest.raises(SystemExit, match="durations"):
        durations("== 2 passed in 3.0s ==")


def test_search_study_comparison_is_welch_and_a_bootstrap_of_the_mean():
    """Welch's p from its formula (unequal variances, Welch-Satterthwaite degrees of freedom);
    a diverged seed (None) left out; the bootstrap CI brackets the mean inside the data's range."""
    from scipy import stats

    held = lambda finals: {"heldout": {"finals": finals}}  # noqa: E731
    result = {
        "methods": {"grid": held([1.0, 2.0, 3.0, 4.0]), "random": held([2.0, 3.5, 4.0, None, 6.0])},
        "defaults": held([0.0, 1.0, 0.5, 1.5, 0.2]),
    }
    out = compare_heldout(result, draws=2000)

    def welch_p(a, b):
        va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
        t = (np.mean(a) - np.mean(b)) / np.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        return 2 * stats.t.sf(abs(t), dof)

    random, grid, defaults = [2.0, 3.5, 4.0, 6.0], [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.5, 1.5, 0.2]
    assert out["welch_p_vs_grid"] == pytest.approx({"random": welch_p(random, grid)})
    assert out["welch_p_vs_defaults"] == pytest.approx(
        {"grid": welch_p(grid, defaults), "random": welch_p(random, defaults)}
    )
    for name, finals in (("grid", grid), ("random", random), ("defaults", defaults)):
        low, high = out["mean_ci95"][name]
        assert min(finals) <= low < np.mean(finals) < high <= max(finals), name
