"""The statistics and the resume bookkeeping of bench/bench_reference.py, against scipy, hand
formulas and full enumeration (no venv, no network, no torch)."""

from __future__ import annotations

import itertools
import math
import pathlib
import sys

import numpy as np
import pytest
import scipy.stats

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_reference as br  # noqa: E402

pytestmark = pytest.mark.bench  # a test of the benchmark scripts, not of the product

SETTINGS = {
    "iterations": 1000,
    "eval_interval": 500,
    "sizes": {"num_envs": 16},
    "eval_iterations": [500, 1000],
}


def run(final: float) -> dict:
    return {"iterations": [500, 1000], "env_steps": [8000, 16000], "eval_return": [0.0, final]}


# ------------------------------------------------------------------------------------ statistics
def test_welch_matches_scipy_and_the_hand_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 9), rng.normal(0.8, 3, 13)
    ours = br.welch_test(a, b)
    expected = scipy.stats.ttest_ind(a, b, equal_var=False)
    assert ours["t"] == pytest.approx(expected.statistic, rel=1e-10)
    assert ours["p"] == pytest.approx(expected.pvalue, rel=1e-8)
    va, vb = a.var(ddof=1) / 9, b.var(ddof=1) / 13  # Welch-Satterthwaite degrees of freedom
    assert ours["df"] == pytest.approx((va + vb) ** 2 / (va**2 / 8 + vb**2 / 12), rel=1e-12)


def test_welch_on_constant_samples_and_too_few_values():
    assert br.welch_test([2.0, 2.0], [2.0, 2.0])["p"] == 1.0
    assert br.welch_test([1.0, 1.0], [2.0, 2.0])["p"] == 0.0
    with pytest.raises(ValueError, match="at least 2 values"):
        br.welch_test([1.0], [1.0, 2.0])


def test_exact_permutation_p_counts_every_split_by_hand():
    a, b = [1.0, 2.0, 4.0], [3.0, 7.0, 8.0, 9.0]
    pooled = a + b
    observed = abs(np.mean(a) - np.mean(b))
    extreme = 0
    for chosen in itertools.combinations(range(7), 3):
        first = [pooled[i] for i in chosen]
        rest = [pooled[i] for i in range(7) if i not in chosen]
        extreme += abs(np.mean(first) - np.mean(rest)) >= observed - 1e-12
    out = br.permutation_test(a, b)
    assert out["method"] == "exact" and out["splits"] == math.comb(7, 3)
    assert out["p"] == pytest.approx(extreme / math.comb(7, 3), abs=1e-15)
    scipy_p = scipy.stats.permutation_test(  # |difference| large: the two-sided test by its definition
        (a, b), lambda x, y: abs(np.mean(x) - np.mean(y)), permutation_type="independent",
        n_resamples=np.inf, alternative="greater",
    ).pvalue  # fmt: skip
    assert out["p"] == pytest.approx(scipy_p, abs=1e-12)


def test_monte_carlo_permutation_p_is_close_to_scipys_exact_value():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 10), rng.normal(0.7, 1, 10)  # 184,756 splits: sampled, not enumerated
    out = br.permutation_test(a, b, reps=20_000)
    exact = scipy.stats.permutation_test(
        (a, b), lambda x, y, axis: abs(np.mean(x, axis) - np.mean(y, axis)), vectorized=True,
        permutation_type="independent", n_resamples=np.inf, alternative="greater",
    ).pvalue  # fmt: skip
    assert out["method"] == "monte_carlo"
    assert out["p"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4)
    assert br.permutation_test([5.0] * 15, [0.0] * 15, reps=1000)["p"] == pytest.approx(1 / 1001)


def test_bootstrap_mean_ci_covers_like_the_normal_interval_and_is_a_point_for_constants():
    x = np.random.default_rng(3).normal(10.0, 2.0, 400)
    low, high = br.mean_ci(x, reps=4000)
    half = 1.959964 * x.std(ddof=0) / math.sqrt(len(x))  # the bootstrap's plug-in standard error
    assert low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.15 * half)
    assert br.mean_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)


def test_intervals_overlap_includes_touching_ends():
    assert br.intervals_overlap((0.0, 1.0), (1.0, 2.0))
    assert br.intervals_overlap((0.0, 5.0), (1.0, 2.0))
    assert not br.intervals_overlap((0.0, 1.0), (1.5, 2.0))


def test_compare_finals_reports_both_sides_and_the_tests():
    out = br.compare_finals([1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0])
    assert out["reference"]["mean"] == 2.0 and out["ours"]["mean"] == 3.5
    assert out["ours_minus_reference"] == 1.5
    assert out["welch"]["p"] == pytest.approx(
        scipy.stats.ttest_ind([1, 2, 3], [2, 3, 4, 5], equal_var=False).pvalue
    )
    assert out["permutation"]["method"] == "exact"
    assert br.compare_finals([1.0], [2.0])["welch"] is None


# ----------------------------------------------------------------------------- results and resume
def test_resume_runs_only_missing_seeds_and_keeps_earlier_ones():
    result = {}
    entry = br.task_entry(result, "CartpoleSwingup", SETTINGS, seeds_target=3)
    br.add_run(entry, "ours", 0, run(5.0))
    br.add_run(entry, "ours", 2, run(6.0))
    assert br.missing_seeds(entry, "ours", [0, 1, 2]) == [1]
    assert br.missing_seeds(entry, "reference", [0, 1, 2]) == [0, 1, 2]

    again = br.task_entry(result, "CartpoleSwingup", SETTINGS, seeds_target=5)  # a later session adds seeds
    assert again is entry and entry["seeds_target"] == 5
    assert br.missing_seeds(again, "ours", range(5)) == [1, 3, 4]
    assert entry["runs"]["ours"]["2"]["eval_return"][-1] == 6.0


def test_resume_refuses_other_settings_naming_them():
    result = {}
    br.task_entry(result, "CartpoleSwingup", SETTINGS, seeds_target=2)
    with pytest.raises(SystemExit, match="iterations: recorded 1000, requested 2000"):
        br.task_entry(result, "CartpoleSwingup", {**SETTINGS, "iterations": 2000}, seeds_target=2)
    br.task_entry(
        result, "PendulumSwingup", {**SETTINGS, "iterations": 2000}, seeds_target=2
    )  # other task: fine


def test_add_run_refuses_an_unfinished_curve():
    entry = br.new_task_entry(SETTINGS, 2)
    with pytest.raises(ValueError, match=r"evaluations at iterations \[500\], expected \[500, 1000\]"):
        br.add_run(entry, "reference", 0, {"iterations": [500], "eval_return": [1.0]})


def test_summary_status_and_comparison_over_finished_seeds():
    entry = br.new_task_entry(SETTINGS, 3)
    for seed, final in enumerate([1.0, 2.0, 3.0]):
        br.add_run(entry, "ours", seed, run(final))
    br.add_run(entry, "reference", 1, run(2.5))
    br.summarize_task(entry)
    assert not entry["status"]["complete"]
    assert entry["status"]["seeds_missing"] == {"reference": [0, 2], "ours": []}
    assert entry["final_returns"] == {"reference": [2.5], "ours": [1.0, 2.0, 3.0]}
    assert entry["comparison"]["welch"] is None  # one reference seed: no test yet
    for seed, final in ((0, 1.5), (2, 3.5)):
        br.add_run(entry, "reference", seed, run(final))
    br.summarize_task(entry)
    assert entry["status"]["complete"]
    assert entry["comparison"]["reference"]["mean"] == pytest.approx(2.5)
    assert entry["comparison"]["welch"]["p"] == pytest.approx(
        scipy.stats.ttest_ind([1.5, 2.5, 3.5], [1.0, 2.0, 3.0], equal_var=False).pvalue
    )


def test_settings_differences_lists_only_real_differences():
    config = {"GAMMA": 0.97, "NUM_ENVS": 16, "TOTAL_TIMESTEPS": 1000, "RESET_MODE": "first_state", "TAU": 0.1}
    reference = {"gamma": 0.97, "num_envs": 16, "total_timesteps": 1001, "tau": 0.005, "seed": 3}
    assert br.settings_differences(config, reference, 1000) == {"tau": {"ours": 0.1, "reference": 0.005}}


def test_agent_goes_to_both_sides_and_keys_its_own_entry():
    simba = {**SETTINGS, "sizes": dict(br.CPU_SIZES), "agent": "fasttd3_simbav2"}
    plain = {**simba, "agent": "fasttd3"}
    assert "--agent=fasttd3_simbav2" in br.reference_args("CartpoleBalance", 0, simba, 1000, 500)
    assert br.ours_config("CartpoleBalance", simba)["AGENT"] == "fasttd3_simbav2"
    assert br.entry_name("CartpoleBalance", "fasttd3") == "CartpoleBalance"
    assert br.entry_name("CartpoleBalance", "fasttd3_simbav2") == "CartpoleBalance (fasttd3_simbav2)"
    assert br.run_key("CartpoleBalance", simba) != br.run_key("CartpoleBalance", plain)
