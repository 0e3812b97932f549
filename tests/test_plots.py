"""Sweep result loading, rliable-style statistics and the plot scripts, on synthetic results."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from fasttd3x import figures
from fasttd3x.results import bootstrap_ci, finite_agents, grid_table, iqm, load_sweep, solved_threshold
from plots import plot_throughput

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID_2X2 = {"TAU": [0.005, 0.1], "CRITIC_LEARNING_RATE": [1e-4, 3e-4]}
STATIC_2 = {"NUM_ENVS": [16, 32]}
SEEDS = 5
EVALS = 6
CHUNK = 8  # agents per chunk file


def final_return(grid_index, seed_index):
    """Synthetic last eval return: grid points 10 apart, seeds 1 apart."""
    return 10.0 * (grid_index + 1) + seed_index


def chunk_arrays(agents, grid, seeds):
    """One chunk in sweep.py's format for the given agent ids."""
    agents = np.asarray(agents, np.int64)
    grid_index, seed_index = agents // seeds, agents % seeds
    points = list(itertools.product(*grid.values()))
    progress = np.arange(1, EVALS + 1) / EVALS
    finals = final_return(grid_index, seed_index).astype(np.float32)
    losses = np.ones((len(agents), EVALS), np.float32)
    losses[:, 0] = np.nan  # first eval chunk ends before LEARNING_STARTS: no updates, 0/0
    arrays = {
        "agent": agents,
        "grid_index": grid_index,
        "seed_index": seed_index,
        "metric_env_steps": np.tile(np.arange(1, EVALS + 1, dtype=np.int64) * 1000, (len(agents), 1)),
        "metric_eval_return": (finals[:, None] * progress).astype(np.float32),
        "metric_train_return": np.full((len(agents), EVALS), np.nan, np.float32),
        "metric_critic_loss": losses.copy(),
        "metric_actor_loss": losses.copy(),
        "metric_q_mean": losses.copy(),
    }
    for position, key in enumerate(grid):
        arrays[f"hparam_{key}"] = np.array([points[g][position] for g in grid_index], np.float32)
    arrays["hparam_GAMMA"] = np.full(len(agents), 0.99, np.float32)  # traced but not swept
    return arrays


def write_sweep(root, grid, static, seeds=SEEDS, missing=(), nonfinite=None, no_chunks=(), env="Pendulum-v1"):
    """A results dir exactly as sweep.py writes it, with chunks stored out of agent order.

    missing: (combo, chunk) pairs not written; nonfinite: {(combo, agent): (metric, eval, value)};
    no_chunks: combos with only config.json.
    """
    nonfinite = nonfinite or {}
    combos = [dict(zip(static, values)) for values in itertools.product(*static.values())]
    (root / "sweep.json").write_text(
        json.dumps(
            {
                "format": "fasttd3x-sweep/1",
                "env": env,
                "seeds": seeds,
                "seed": 0,
                "grid": grid,
                "static": static,
                "combos": combos,
            }
        )
    )
    agents = len(list(itertools.product(*grid.values()))) * seeds
    for c, settings in enumerate(combos):
        combo_dir = root / f"combo_{c:03d}"
        combo_dir.mkdir()
        config = {"ENV_NAME": env, "EVAL_INTERVAL": 100, **settings}
        (combo_dir / "config.json").write_text(json.dumps(config))
        if c in no_chunks:
            continue
        ids = np.arange(agents)
        chunks = [ids[i : i + CHUNK][::-1] for i in range(0, agents, CHUNK)][::-1]  # reversed order
        for k, chunk in enumerate(chunks):
            if (c, k) in missing:
                continue
            arrays = chunk_arrays(chunk, grid, seeds)
            for row, agent in enumerate(chunk):
                if (c, agent) in nonfinite:
                    metric, step, value = nonfinite[c, agent]
                    arrays[f"metric_{metric}"][row, step] = value
            meta = json.dumps({"device": "cpu", "compile_seconds": 1.0, "run_seconds": 2.0, "chunk": k})
            np.savez(combo_dir / f"chunk_{k:04d}.npz", **arrays, meta=np.array(meta))
    return root


@pytest.fixture
def sweep_2x2(tmp_path):
    """2 static combos x 2x2 grid x 5 seeds; combo 0 has 2 diverged agents, combo 1 lacks agents 8-15."""
    nonfinite = {
        (0, 3): ("critic_loss", 4, np.nan),
        (0, 7): ("eval_return", 2, np.inf),
        (0, 12): ("q_mean", 5, -np.inf),
    }
    # Chunks are written in reverse agent order, so chunk_0001 holds agents 8..15.
    return write_sweep(tmp_path, GRID_2X2, STATIC_2, missing={(1, 1)}, nonfinite=nonfinite)


def assert_png(path):
    path = Path(path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------------------------- LOADING
def test_load_sweep_orders_and_concatenates(sweep_2x2):
    sweep = load_sweep(sweep_2x2)
    assert sweep["env"] == "Pendulum-v1" and sweep["grid"] == GRID_2X2
    assert [combo["settings"] for combo in sweep["combos"]] == [{"NUM_ENVS": 16}, {"NUM_ENVS": 32}]
    assert [combo["config"]["NUM_ENVS"] for combo in sweep["combos"]] == [16, 32]
    full, partial = (combo["arrays"] for combo in sweep["combos"])
    np.testing.assert_array_equal(full["agent"], np.arange(20))
    np.testing.assert_array_equal(partial["agent"], [*range(8), *range(16, 20)])
    for arrays in (full, partial):
        np.testing.assert_array_equal(arrays["grid_index"], arrays["agent"] // SEEDS)
        np.testing.assert_array_equal(arrays["seed_index"], arrays["agent"] % SEEDS)
        finals = final_return(arrays["grid_index"], arrays["seed_index"])
        np.testing.assert_allclose(arrays["metric_eval_return"][:, -1], finals)
        assert arrays["metric_eval_return"].shape == (len(arrays["agent"]), EVALS)
        np.testing.assert_allclose(arrays["hparam_TAU"], np.where(arrays["grid_index"] < 2, 0.005, 0.1))
    assert len(sweep["combos"][0]["meta"]) == 3 and len(sweep["combos"][1]["meta"]) == 2
    assert sweep["combos"][0]["meta"][0]["device"] == "cpu"


def test_load_sweep_reads_any_chunk_name_but_not_partial_files(sweep_2x2):
    combo_dir = sweep_2x2 / "combo_001"
    (combo_dir / "chunk_0000.npz").rename(combo_dir / "agents_000016-000020.npz")  # sweep.py's naming
    (combo_dir / "agents_000008-000016.npz.tmp").write_bytes(b"half-written")
    agents = load_sweep(sweep_2x2)["combos"][1]["arrays"]["agent"]
    np.testing.assert_array_equal(agents, [*range(8), *range(16, 20)])


def test_load_sweep_rejects_other_formats(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="format"):
        load_sweep(tmp_path)


# ---------------------------------------------------------------------------------- STATISTICS
def test_iqm_matches_hand_computation_and_scipy():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    x = np.random.default_rng(0).standard_normal((7, 3))
    assert iqm(x) == pytest.approx(stats.trim_mean(x.ravel(), 0.25))
    np.testing.assert_allclose(iqm(x, axis=0), stats.trim_mean(x, 0.25, axis=0))
    assert np.isnan(iqm([]))


@pytest.mark.parametrize("statistic", [iqm, np.mean], ids=["iqm", "mean"])
def test_bootstrap_ci_matches_scipy_percentile_bootstrap(statistic):
    """Our percentile bootstrap and scipy.stats.bootstrap's, each with many resamples, agree to
    within their Monte Carlo error (about 0.01 here; a wrong tail or axis moves a bound by 0.1+)."""
    x = np.random.default_rng(1).normal(size=12)
    low, high = bootstrap_ci(x, statistic, reps=40_000)
    scipy_ci = stats.bootstrap(
        (x,), statistic, n_resamples=40_000, method="percentile", confidence_level=0.95,
        rng=np.random.default_rng(0),
    ).confidence_interval  # fmt: skip
    assert low == pytest.approx(scipy_ci.low, abs=0.03) and high == pytest.approx(scipy_ci.high, abs=0.03)


def test_bootstrap_ci_brackets_is_seeded_and_narrows():
    rng = np.random.default_rng(1)
    few, many = rng.normal(size=10), rng.normal(size=400)
    low, high = bootstrap_ci(few)
    assert low <= iqm(few) <= high
    assert bootstrap_ci(few, seed=0) != bootstrap_ci(few, seed=1)  # the seed is used
    low_many, high_many = bootstrap_ci(many)
    assert high_many - low_many < 0.5 * (high - low)
    assert np.isnan(bootstrap_ci([])).all()


def test_bootstrap_ci_resamples_seeds_for_array_statistics():
    curves = np.random.default_rng(2).normal(size=(6, 4)) + np.arange(4)
    low, high = bootstrap_ci(curves, reps=500)
    assert low.shape == high.shape == (4,)
    assert (low <= iqm(curves, axis=0)).all() and (iqm(curves, axis=0) <= high).all()


def test_finite_agents_ignores_leading_no_update_nans_only():
    arrays = chunk_arrays(np.arange(4), {"TAU": [0.1]}, seeds=4)
    assert finite_agents(arrays).all()  # every loss starts with NaN: no updates yet
    arrays["metric_actor_loss"][1, 3] = np.nan
    arrays["metric_critic_loss"][2, 0] = np.inf
    np.testing.assert_array_equal(finite_agents(arrays), [True, False, False, True])


def test_grid_table_counts_nonfinite_and_missing(sweep_2x2):
    full, partial = (grid_table(combo) for combo in load_sweep(sweep_2x2)["combos"])
    points = [dict(zip(GRID_2X2, values)) for values in itertools.product(*GRID_2X2.values())]
    assert [row["grid"] for row in full] == points
    assert [row["seeds"] for row in full] == [5, 5, 5, 5]
    assert [row["nonfinite"] for row in full] == [1, 1, 1, 0]  # agents 3, 7, 12
    seeds_used = np.arange(SEEDS)
    for row, dropped in zip(full, [3, 2, 2, None]):
        finals = final_return(row["grid_index"], seeds_used[seeds_used != dropped])
        assert row["iqm"] == pytest.approx(stats.trim_mean(finals, 0.25))
        assert row["mean"] == pytest.approx(finals.mean())
        assert row["ci_low"] <= row["iqm"] <= row["ci_high"]
    assert [row["seeds"] for row in partial] == [5, 3, 0, 4]
    assert np.isnan([partial[2]["iqm"], partial[2]["ci_low"], partial[2]["ci_high"]]).all()
    assert partial[1]["mean"] == pytest.approx(np.mean(final_return(1, np.arange(3))))


# ---------------------------------------------------------------------------------------- PLOTS
def test_two_parameter_sweep_plots(sweep_2x2):
    paths = figures.main([str(sweep_2x2)])
    expected = [f"{kind}_combo_{c:03d}.png" for kind in ("curves", "grid") for c in range(2)]
    assert [path.name for path in paths] == expected
    for path in paths:
        assert path.parent == sweep_2x2 / "plots"
        assert_png(path)


def test_one_parameter_sweep_plots_with_many_seeds(tmp_path):
    root = write_sweep(
        tmp_path,
        {"CRITIC_LEARNING_RATE": [1e-4, 3e-4, 1e-3, 3e-3]},
        {},
        seeds=10,
        nonfinite={(0, 0): ("eval_return", 5, np.nan)},
    )
    paths = figures.draw_all(root)
    assert [path.name for path in paths] == ["curves_combo_000.png", "grid_combo_000.png"]
    for path in paths:
        assert_png(path)


@pytest.mark.parametrize("grid", [{}, {"TAU": [0.005, 0.01], "GAMMA": [0.97, 0.99], "V_MAX": [10.0, 100.0]}])
def test_ranked_grid_plots_and_empty_combos(tmp_path, grid):
    root = write_sweep(tmp_path, grid, {"BATCH_SIZE": [128, 256]}, seeds=3, no_chunks={1})
    sweep = load_sweep(root)
    assert sweep["combos"][1]["arrays"] == {}
    assert all(row["seeds"] == 0 for row in grid_table(sweep["combos"][1]))
    for path in figures.draw_all(root):
        assert_png(path)


GRIDS = {
    1: {"CRITIC_LEARNING_RATE": [1e-4, 3e-4, 1e-3]},
    2: GRID_2X2,
    3: {"TAU": [0.005, 0.01], "GAMMA": [0.97, 0.99], "V_MAX": [10.0, 100.0]},
}
THRESHOLD = 21.0  # seeds of grid point 0 end at 10..14 (none solve), of point 1 at 20..24 (4 of 5)


def panels(fig):
    """The success panel (None without a threshold) and the mean panel of a grid figure."""
    (means,) = [ax for ax in fig.axes if ax.get_xlabel() == figures.VALUE_LABEL]
    others = [ax for ax in fig.axes if ax is not means and ax.get_label() != "<colorbar>"]
    assert len(others) <= 1
    return (others[0] if others else None), means


@pytest.mark.parametrize("params", [1, 2, 3])
def test_grid_plot_shows_success_rate_and_every_seed(tmp_path, params):
    """Solved fraction on a fixed 0..1 scale, annotated k/n, beside the mean and a dot per seed."""
    root = write_sweep(tmp_path, GRIDS[params], {}, nonfinite={(0, 1): ("critic_loss", 4, np.nan)})
    sweep = load_sweep(root)
    rows = grid_table(sweep["combos"][0], THRESHOLD)
    points = len(rows)
    expected = np.array([0.0, 0.8] + [1.0] * (points - 2))  # the diverged seed counts as unsolved
    np.testing.assert_allclose([row["solved"] for row in rows], expected)
    fig = figures.grid_figure(sweep, sweep["combos"][0], THRESHOLD)
    solved_ax, means_ax = panels(fig)
    if params == 2:
        image = solved_ax.images[0]
        assert image.get_clim() == (0.0, 1.0)
        np.testing.assert_allclose(image.get_array(), expected.reshape(2, 2))
    else:
        assert solved_ax.get_xlim() == (0.0, 1.0)
        widths = sorted(patch.get_width() for patch in solved_ax.patches)
        np.testing.assert_allclose(widths, sorted(expected))
    texts = [text.get_text() for text in solved_ax.texts]
    assert "0/5\n1 non-finite" in texts and "4/5" in texts and texts.count("5/5") == points - 2
    dots = {c.get_label(): len(c.get_offsets()) for c in means_ax.collections if "seed" in c.get_label()}
    assert dots == {"seed": 4 + 5 * (points - 2), "unsolved seed": 4 + 1}  # every finite seed
    assert any(line.get_label() == f"solved: >= {THRESHOLD:g}" for line in means_ax.lines)
    figures.plt.close(fig)
    for path in figures.draw_grid(sweep, root, THRESHOLD):
        assert_png(path)


@pytest.mark.parametrize("params", [1, 2, 3])
def test_grid_plot_without_threshold_shows_mean_and_seeds_only(tmp_path, params):
    root = write_sweep(tmp_path, GRIDS[params], {}, env="CheetahRun")
    sweep = load_sweep(root)
    assert solved_threshold("CheetahRun") is None and solved_threshold("CheetahRun", 5.0) == 5.0
    assert all("solved" not in row for row in grid_table(sweep["combos"][0]))
    fig = figures.grid_figure(sweep, sweep["combos"][0])
    solved_ax, means_ax = panels(fig)
    assert solved_ax is None and len(fig.axes) == 1
    figures.plt.close(fig)
    for path in figures.draw_all(root) + figures.main([str(root), "--solved-at", str(THRESHOLD)]):
        assert_png(path)


def test_figures_run_as_a_module(sweep_2x2):
    subprocess.run([sys.executable, "-m", "fasttd3x.figures", str(sweep_2x2)], check=True, cwd=REPO)
    assert len(list((sweep_2x2 / "plots").glob("grid_combo_*.png"))) == 2


def test_throughput_plot(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    scaling = {
        "benchmark": "scaling",
        "env": "Pendulum-v1",
        "device": "cpu",
        "rows": [
            {"agents": a, "agent_iterations_per_second": 400.0 * a**0.7, "peak_memory_bytes": None}
            for a in (8, 1, 64)
        ]
        + [{"agents": 512, "error": "out of memory"}],
    }
    (bench / "scaling_pendulum.json").write_text(json.dumps(scaling))
    for agents in (1, 8):
        iterations = {
            "benchmark": "iterations",
            "env": "CheetahRun",
            "device": "cpu",
            "agents": agents,
            "agent_iterations_per_second": 5.0 * agents**0.5,
            "compute_dtype": "float32",
            "num_envs": 16,
        }
        (bench / f"iterations_{agents}.json").write_text(json.dumps(iterations))
    (bench / "memory.json").write_text(json.dumps({"benchmark": "replay_memory", "tasks": {}}))
    assert_png(plot_throughput.main([str(bench), str(tmp_path / "out" / "throughput.png")]))
    (bench / "scaling_pendulum.json").unlink()
    assert_png(plot_throughput.main([str(bench), str(tmp_path / "iterations_only.png")]))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_png(plot_throughput.main([str(empty), str(tmp_path / "none.png")]))


def test_search_study_figure(tmp_path):
    """bench_search.py --study's JSON, partial (two of three methods) and complete: a PNG beside
    it with one strip of held-out seeds per method, every seed a dot."""
    from matplotlib.collections import PathCollection

    from plots import plot_search

    def method(share, finals):
        solved = sum(v is not None and v >= -200 for v in finals) / len(finals)
        valid = [v for v in finals if v is not None]
        return {
            "tuning_agents": round(64 * share),
            "share_of_grid_compute": share,
            "heldout": {"seeds": len(finals), "solved": solved, "mean": float(np.mean(valid)),
                        "worst": min(valid), "iqm": float(np.mean(valid)), "finals": finals},
        }  # fmt: skip

    study = {
        "task": "Pendulum-v1",
        "complete": False,
        "space": ["TAU=log:0.005,0.5", "CRITIC_LEARNING_RATE=log:1e-5,1e-2"],
        "solved_at": -200.0,
        "tuning_seed": 0,
        "heldout_seed": 1,
        "heldout_seeds": 4,
        "methods": {"grid": method(1.0, [-150.0, -160.0, -900.0, -140.0]),
                    "random": method(0.094, [-170.0, None, -155.0, -150.0])},
    }  # fmt: skip
    path = tmp_path / "search_study_Pendulum-v1.json"
    path.write_text(json.dumps(study))
    assert plot_search.main([str(path)]) == [path.with_suffix(".png")]
    assert_png(path.with_suffix(".png"))
    study["methods"]["pbt"], study["complete"] = method(0.094, [-145.0, -150.0, -160.0, -170.0]), True
    fig = plot_search.study_figure(study)
    dots = [len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert dots == [4, 4, 4] and "PARTIAL" not in fig._suptitle.get_text()
    study["defaults"] = {"heldout": method(0.0, [-300.0, -250.0, -200.0, -190.0])["heldout"]}
    fig = plot_search.study_figure(study)
    dots = [len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert dots == [4, 4, 4, 4] and labels[-1] == "defaults (no search)", labels
    assert len(fig.axes[1].patches) == 3  # the defaults cost no tuning: no bar
