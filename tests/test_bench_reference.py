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


def test_two_sides_saving_into_one_file_keep_each_others_seeds(tmp_path):
    """`--side ours` and `--side reference` run as two processes, each with its own copy of the
    task's entry; each save merges what the other wrote."""
    path = tmp_path / "reference_learning_cpu.json"
    ours, reference = br.new_task_entry(SETTINGS, 2), br.new_task_entry(SETTINGS, 2)
    br.add_run(ours, "ours", 0, run(5.0))
    br.save_task(path, "CartpoleSwingup", ours, {"benchmark": "reference_learning"})
    br.add_run(reference, "reference", 1, run(4.0))
    reference["reference_args"] = {"seed": 1}
    br.save_task(path, "CartpoleSwingup", reference, {"benchmark": "reference_learning"})
    br.add_run(ours, "ours", 1, run(6.0))
    br.save_task(path, "CartpoleSwingup", ours, {"benchmark": "reference_learning"})
    [entry] = br.load_results(path)["tasks"].values()
    assert sorted(entry["runs"]["ours"]) == ["0", "1"] and sorted(entry["runs"]["reference"]) == ["1"]
    assert entry["reference_args"] == {"seed": 1}  # the other process's keys survive too
    assert entry["status"]["seeds_missing"] == {"reference": [0], "ours": []}


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


def test_reference_evaluation_uses_its_start_states_and_iteration_count():
    """`--reference-evaluation`: the eval states are the reference's (reset from
    split(PRNGKey(seed))), not the run's own, and each evaluation comes one iteration later
    than ours: T + 1 iterations in all (the buffer's write pointer counts them)."""
    import jax
    import jax.numpy as jnp

    import purejax_fasttd3 as ft
    from fasttd3x import envs

    config = ft.make_config(
        "Pendulum-v1", NUM_ENVS=2, NUM_EVAL_ENVS=2, BATCH_SIZE=8, TOTAL_TIMESTEPS=8, EVAL_INTERVAL=4,
        LEARNING_STARTS=2, CRITIC_HIDDEN_DIM=8, ACTOR_HIDDEN_DIM=8, BUFFER_SIZE=32,
    )  # fmt: skip
    env = envs.make_env(config)
    returns, runner = jax.jit(br.reference_evaluation_train(config))(jax.random.PRNGKey(5), jnp.int32(3))
    assert returns.shape == (2,) and bool(jnp.isfinite(returns).all())
    assert int(runner.buffer.ptr) == config["TOTAL_TIMESTEPS"] + 1
    theirs = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(3), 2))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, runner.eval_states, theirs))
    nets = ft.make_networks(config, env.action_dim)
    own = ft.init_runner(nets, env, config, jax.random.PRNGKey(5)).eval_states
    assert not jnp.array_equal(own.obs, theirs.obs)


def test_tost_matches_two_one_sided_welch_tests_in_scipy():
    ours = np.array([70.0, 81.0, 95.0, 64.0, 88.0, 77.0])
    reference = np.array([72.0, 90.0, 61.0, 85.0, 79.0, 83.0, 69.0])
    out = br.tost_welch(ours, reference, margin_fraction=0.2, alpha=0.05)
    margin = 0.2 * reference.mean()
    lower = scipy.stats.ttest_ind(ours, reference - margin, equal_var=False, alternative="greater")
    upper = scipy.stats.ttest_ind(ours, reference + margin, equal_var=False, alternative="less")
    assert out["margin"] == pytest.approx(margin)
    assert out["p_lower"] == pytest.approx(lower.pvalue) and out["p_upper"] == pytest.approx(upper.pvalue)
    ci = scipy.stats.ttest_ind(ours, reference, equal_var=False).confidence_interval(0.90)
    assert out["ci"] == pytest.approx([ci.low, ci.high])
    inside = -margin < out["ci"][0] and out["ci"][1] < margin
    assert out["equivalent"] == inside == (max(out["p_lower"], out["p_upper"]) < 0.05)


def test_tost_refuses_a_shifted_sample_and_accepts_a_tight_match():
    rng = np.random.default_rng(0)
    reference = rng.normal(100.0, 5.0, 30)
    assert br.tost_welch(reference + rng.normal(0.0, 1.0, 30), reference)["equivalent"]
    assert not br.tost_welch(reference * 1.5, reference)["equivalent"]


def test_seeds_for_equivalence_reaches_its_power_in_simulation():
    """At the returned seed count and a true difference of 0, TOST concludes equivalence in
    about 80% of simulated studies (normal returns; 2,000 studies)."""
    sd, mean = 30.0, 100.0
    n = br.seeds_for_equivalence(sd, sd, 0.2 * mean)
    rng = np.random.default_rng(1)
    hits = [
        br.tost_welch(rng.normal(mean, sd, n), rng.normal(mean, sd, n))["equivalent"] for _ in range(2000)
    ]
    assert 0.78 <= np.mean(hits) <= 0.9, (n, np.mean(hits))
    assert br.seeds_for_equivalence(sd, sd, 0.1 * mean) > 3 * n  # a half margin needs ~4x the seeds


def test_equivalence_summary_uses_each_seeds_area_under_the_curve():
    settings = {**SETTINGS, "equivalence": True}
    entry = br.new_task_entry(settings, 3)
    entry["protocol"] = br.EQUIVALENCE_PROTOCOL
    for seed, (ref, ours) in enumerate([(10.0, 11.0), (20.0, 19.0), (30.0, 33.0)]):
        br.add_run(entry, "reference", seed, {**run(ref), "eval_return": [ref / 2, ref]})
        br.add_run(entry, "ours", seed, {**run(ours), "eval_return": [ours / 2, ours]})
    br.summarize_task(entry)
    areas = entry["equivalence"]["area_under_curve"]
    assert areas["reference"] == [7.5, 15.0, 22.5] and areas["ours"] == [8.25, 14.25, 24.75]
    assert entry["equivalence"]["tost"] == br.tost_welch(areas["ours"], areas["reference"])
