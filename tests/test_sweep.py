"""sweep.py: flag parsing, chunking, the results format, resume, NaN flagging, sharding, summary."""

import csv
import json
import os
import pathlib
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest
from scipy import stats

import purejax_fasttd3 as ft
from fasttd3x import capacity, configs, interrupts, results, sweep
from shared_configs import TINY_AGENT, set_items, subprocess_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_cpu_deadlock  # noqa: E402

TINY = set_items(dict(TINY_AGENT, NUM_EVAL_ENVS=2, BUFFER_SIZE=40, EPISODE_LENGTH=25))


# ---------------------------------------------------------------------------------- parsing
def test_parse_grid_values_and_errors():
    assert configs.parse_grid(["TAU=0.05,0.1", "GAMMA=0.9"]) == {"TAU": [0.05, 0.1], "GAMMA": [0.9]}
    with pytest.raises(ValueError, match="NUM_ENVS is a static setting.*--set NUM_ENVS=1,2"):
        configs.parse_grid(["NUM_ENVS=1,2"])
    with pytest.raises(ValueError, match="TAU.*'abc' is not a number"):
        configs.parse_grid(["TAU=0.1,abc"])
    with pytest.raises(ValueError, match="TAUU.*unknown"):
        configs.parse_grid(["TAUU=0.1"])
    with pytest.raises(ValueError, match="given twice"):
        configs.parse_grid(["TAU=0.1", "TAU=0.2"])
    with pytest.raises(ValueError, match="KEY=V1"):
        configs.parse_grid(["TAU"])


def test_parse_set_values_and_errors():
    fixed, looped = configs.parse_set(["NUM_ENVS=8", "BATCH_SIZE=64,128", "USE_CDQ=false", "TAU=0.2"])
    assert fixed == {"NUM_ENVS": 8, "USE_CDQ": False, "TAU": 0.2}
    assert looped == {"BATCH_SIZE": [64, 128]}
    with pytest.raises(ValueError, match="traced.*--grid TAU=0.1,0.2"):
        configs.parse_set(["TAU=0.1,0.2"])
    with pytest.raises(ValueError, match="NUM_ENVS=abc.*int"):
        configs.parse_set(["NUM_ENVS=abc"])
    with pytest.raises(ValueError, match="NUM_ENV.*NUM_ENVS"):
        configs.parse_set(["NUM_ENV=8"])


def test_grid_points_order_and_agent_hparams():
    points = results.grid_points({"TAU": [0.1, 0.2], "GAMMA": [0.9, 0.99, 0.999]})
    assert points[0] == {"TAU": 0.1, "GAMMA": 0.9} and points[3] == {"TAU": 0.2, "GAMMA": 0.9}
    assert results.grid_points({}) == [{}]
    config = ft.make_config("Pendulum-v1")
    hp = sweep.agent_hparams(config, points, seeds=2)
    # agent = grid_index * seeds + seed_index
    np.testing.assert_allclose(hp["GAMMA"][[0, 1, 2, 3]], [0.9, 0.9, 0.99, 0.99])
    np.testing.assert_allclose(hp["TAU"][6:], [0.2] * 6)
    np.testing.assert_allclose(hp["V_MIN"], config["V_MIN"])
    with pytest.raises(ValueError, match="V_MIN"):
        sweep.agent_hparams(config, [{"V_MIN": 5.0, "V_MAX": 1.0}], seeds=1)


def test_chunking():
    assert capacity.pending_ranges(set(), 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert capacity.pending_ranges({0, 1, 5}, 8, 4) == [(2, 5), (6, 8)]
    assert capacity.choose_chunk(per_agent=100, free=10_000, num_devices=1, total=500, requested=None) == 70
    assert capacity.choose_chunk(per_agent=100, free=10_000, num_devices=4, total=500, requested=None) == 280
    assert capacity.choose_chunk(per_agent=100, free=10_000, num_devices=4, total=6, requested=None) == 8
    assert capacity.choose_chunk(per_agent=100, free=10_000, num_devices=1, total=6, requested=3) == 3
    with pytest.raises(MemoryError, match="one agent needs about"):
        capacity.choose_chunk(per_agent=2**31, free=2**30, num_devices=1, total=4, requested=None)


def test_memory_estimate_counts_the_replay_buffer():
    config = ft.make_config("Pendulum-v1")
    env = sweep.envs.make_env(config)
    memory = capacity.bytes_per_agent(config, env)
    assert memory["replay"] == capacity.replay_bytes(config, env) > 0
    assert all(v > 0 for v in memory.values())


# ---------------------------------------------------------------------------------- end to end
def _flags(out, batch_sizes: str, chunk: int) -> list[str]:
    """The flags of the test sweep: 2 seeds x 2 learning rates, one of which diverges."""
    return [
        "--env", "Pendulum-v1", "--seeds", "2", "--grid", "CRITIC_LEARNING_RATE=1e-3,1e30",
        "--set", f"BATCH_SIZE={batch_sizes}", *sum([["--set", s] for s in TINY], []),
        "--chunk", str(chunk), "--out", str(out), "--quiet", "--no-plots",
    ]  # fmt: skip


def _args(out):
    return sweep.parse_args(_flags(out, "8,16", chunk=3))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    sweep.run_sweep(_args(out))
    return out


def _load(combo_dir):
    files = sorted(combo_dir.glob("agents_*.npz"))
    data = [dict(np.load(f)) for f in files]
    return files, {k: np.concatenate([d[k] for d in data]) for k in data[0] if k != "meta"}, data


def test_results_format(swept):
    spec = json.loads((swept / "sweep.json").read_text())
    assert spec["grid"] == {"CRITIC_LEARNING_RATE": [1e-3, 1e30]} and spec["static"] == {
        "BATCH_SIZE": [8, 16]
    }
    assert spec["combos"] == [{"BATCH_SIZE": 8}, {"BATCH_SIZE": 16}]
    for c, batch in enumerate((8, 16)):
        combo = swept / f"combo_{c:03d}"
        assert json.loads((combo / "config.json").read_text())["BATCH_SIZE"] == batch
        files, arrays, data = _load(combo)
        assert [f.name for f in files] == ["agents_000000-000003.npz", "agents_000003-000004.npz"]
        np.testing.assert_array_equal(arrays["agent"], np.arange(4))
        np.testing.assert_array_equal(arrays["grid_index"], [0, 0, 1, 1])
        np.testing.assert_array_equal(arrays["seed_index"], [0, 1, 0, 1])
        np.testing.assert_allclose(arrays["hparam_CRITIC_LEARNING_RATE"], [1e-3, 1e-3, 1e30, 1e30])
        assert arrays["metric_eval_return"].shape == (4, 2)
        np.testing.assert_array_equal(arrays["metric_env_steps"][0], [80, 160])
        meta = json.loads(str(data[0]["meta"]))
        assert {"device", "versions", "compile_seconds", "run_seconds", "nonfinite_agents"} <= set(meta)


def test_agents_equal_single_runs(swept):
    """Agent (grid point 0, seed 1) equals train(split(PRNGKey(0), 2)[1]) run alone."""
    config = ft.make_config("Pendulum-v1", **configs.parse_set(TINY)[0], BATCH_SIZE=8)
    rng = jax.random.split(jax.random.PRNGKey(0), 2)[1]
    single = jax.jit(ft.make_train(config))(rng, {"CRITIC_LEARNING_RATE": 1e-3})
    _, arrays, _ = _load(swept / "combo_000")
    expected = {**single["metrics"], "env_steps": ft.env_steps_at_evals(config)}
    assert arrays["metric_env_steps"].dtype == np.int64
    for name in results.METRICS:
        np.testing.assert_allclose(
            arrays[f"metric_{name}"][1], np.asarray(expected[name]), rtol=1e-4, atol=1e-4
        )


def test_nonfinite_agents_are_flagged_and_the_sweep_goes_on(swept):
    _, arrays, data = _load(swept / "combo_000")
    flagged = sum((json.loads(str(d["meta"]))["nonfinite_agents"] for d in data), [])
    blew_up = [a for a in range(4) if not np.isfinite(arrays["metric_critic_loss"][a]).all()]
    assert blew_up and flagged == blew_up  # 1e30 overflows at once (1e9 sat on the edge)
    assert set(blew_up) <= {2, 3}
    rows = results.summarize(swept)
    by_lr = {(r["combo"], r["CRITIC_LEARNING_RATE"]): r for r in rows}
    assert by_lr[(0, 1e30)]["nonfinite"] == len(blew_up) and by_lr[(0, 1e-3)]["nonfinite"] == 0
    assert (swept / "summary.csv").exists()


def test_resume_skips_finished_work_and_recomputes_only_what_is_missing(swept, capsys):
    combo = swept / "combo_001"
    assert json.loads((combo / "calls.json").read_text())["agents_per_call"] == 3
    files, before, _ = _load(combo)
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[1].unlink()  # as if the sweep had been killed during its last call
    sweep.run_sweep(_args(swept))
    assert "all 4 agents already finished, skipped" in capsys.readouterr().out  # combo 0
    for f, stamp in stamps.items():
        if f != files[1]:
            assert f.stat().st_mtime_ns == stamp  # finished chunks are not rewritten
    _, after, _ = _load(combo)
    for key, value in before.items():  # exact: the same call size (calls.json), so the same program
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_results_folder_of_another_sweep_is_refused(swept):
    args = _args(swept)
    args.seeds = 3
    with pytest.raises(ValueError, match="another sweep: its seeds is 2, this command asks for 3"):
        sweep.run_sweep(args)


def test_sharding_over_four_cpu_devices(swept, tmp_path):
    """The agent axis split over 4 host devices gives the single-device results."""
    env = subprocess_env(devices=4)  # compiled like this process's sweep
    cmd = [sys.executable, str(ROOT / "sweep.py"), *_flags(tmp_path, "8", chunk=4)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on 4 cpu" in proc.stdout
    _, sharded, data = _load(tmp_path / "combo_000")
    assert json.loads(str(data[0]["meta"]))["num_devices"] == 4
    _, single, _ = _load(swept / "combo_000")
    stable = single["hparam_CRITIC_LEARNING_RATE"] < 1.0  # diverging agents amplify rounding
    for name in results.METRICS:
        np.testing.assert_allclose(
            sharded[f"metric_{name}"][stable], single[f"metric_{name}"][stable], rtol=1e-4, atol=1e-4
        )


# ---------------------------------------------------------------------------------- summary
# A synthetic results folder in sweep.py's format, no training: 2 static combos (same data) x
# TAU in 3 grid points x 5 seeds, 4 evals at 1000..4000 env steps. Seed curves are final + offset.
SUMMARY_FINALS = np.array(
    [
        [-120.0, -110.0, -100.0, -105.0, -900.0],  # the best IQM, but seed 4 fails
        [-180.0, -170.0, -160.0, -175.0, -165.0],  # every seed solves -200, lower IQM
        [-150.0, -150.0, -150.0, -150.0, -150.0],  # seed 4 diverges (NaN critic loss)
    ]
)
SUMMARY_OFFSETS = np.array(
    [[-1000.0, -300.0, -100.0, 0.0], [-1000.0, -20.0, -10.0, 0.0], [-1000.0, -300.0, 0.0, 0.0]]
)
SUMMARY_CALLS = [(0, 6, 10.0), (6, 12, 30.0), (12, 15, 20.0)]  # agents [lo, hi) of each call, its run_seconds
SUMMARY_DIVERGED = 14  # agent = grid_index * seeds + seed_index


def _summary_results(root: pathlib.Path, env: str) -> pathlib.Path:
    seeds, evals = SUMMARY_FINALS.shape[1], SUMMARY_OFFSETS.shape[1]
    spec = {
        "format": results.FORMAT,
        "env": env,
        "seeds": seeds,
        "seed": 0,
        "grid": {"TAU": [0.1, 0.2, 0.3]},
        "static": {"BATCH_SIZE": [8, 16]},
        "fixed": {},
        "combos": [{"BATCH_SIZE": 8}, {"BATCH_SIZE": 16}],
    }
    (root / "sweep.json").write_text(json.dumps(spec))
    curves = SUMMARY_FINALS[..., None] + SUMMARY_OFFSETS[:, None, :]  # [grid, seeds, evals]
    for c in range(2):
        combo = root / f"combo_{c:03d}"
        combo.mkdir()
        for lo, hi, run_seconds in SUMMARY_CALLS:
            agents = np.arange(lo, hi)
            losses = np.ones((len(agents), evals), np.float32)
            losses[agents == SUMMARY_DIVERGED, 2] = np.nan
            arrays = {
                "agent": agents,
                "grid_index": agents // seeds,
                "seed_index": agents % seeds,
                "hparam_TAU": np.array([0.1, 0.2, 0.3], np.float32)[agents // seeds],
                "metric_env_steps": np.tile(1000 * np.arange(1, evals + 1), (len(agents), 1)),
                "metric_eval_return": curves[agents // seeds, agents % seeds].astype(np.float32),
                "metric_train_return": np.full((len(agents), evals), np.nan, np.float32),
                "metric_critic_loss": losses,
                "metric_actor_loss": np.ones_like(losses),
                "metric_q_mean": np.ones_like(losses),
                "meta": np.array(json.dumps({"run_seconds": run_seconds, "nonfinite_agents": []})),
            }
            np.savez(combo / f"agents_{lo:06d}-{hi:06d}.npz", **arrays)
    return root


def _summary_reference(threshold: float) -> list[dict]:
    """Per grid point, straight from the arrays above: what summarize must report."""
    seeds, evals = SUMMARY_FINALS.shape[1], SUMMARY_OFFSETS.shape[1]
    reference = []
    for g, (finals, offsets) in enumerate(zip(SUMMARY_FINALS, SUMMARY_OFFSETS)):
        agents = g * seeds + np.arange(seeds)
        finite = agents != SUMMARY_DIVERGED
        curves = finals[finite, None] + offsets
        mean_curve = curves.mean(axis=0)
        reached = (mean_curve >= threshold).any()
        first = int(np.argmax(mean_curve >= threshold))
        slowest = max(s for lo, hi, s in SUMMARY_CALLS if lo <= agents[-1] and agents[0] < hi)
        reference.append(
            {
                "seeds": seeds,
                "nonfinite": int((~finite).sum()),
                "mean": curves[:, -1].mean(),
                "iqm": stats.trim_mean(curves[:, -1], 0.25),
                "min": curves[:, -1].min(),
                "solved": (curves[:, -1] >= threshold).sum() / seeds,
                "steps_to_threshold": 1000.0 * (first + 1) if reached else np.nan,
                "seconds_to_threshold": slowest * (first + 1) / evals if reached else np.nan,
            }
        )
    return reference


def _read_csv(path: pathlib.Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


SUMMARY_COLUMNS = ["combo", "BATCH_SIZE", "TAU", "grid_index", "seeds", "nonfinite", "mean", "iqm", "ci_low"]
SUMMARY_COLUMNS += ["ci_high", "min"]
SUCCESS_COLUMNS = ["threshold", "solved", "steps_to_threshold", "seconds_to_threshold"]


def _assert_matches(rows: list[dict], reference: list[dict]) -> None:
    for row in rows:
        expected = reference[int(row["grid_index"])]
        for key, value in expected.items():
            np.testing.assert_allclose(float(row[key]), value, rtol=1e-6, err_msg=f"{key} {row}")


def test_summary_reports_success_and_ranks_lost_seeds_below_reliable_ones(tmp_path, capsys):
    out = _summary_results(tmp_path, "Pendulum-v1")
    rows = results.summarize(out)
    printed = capsys.readouterr().out
    reference = _summary_reference(-200.0)
    # Hand-computed: grid point 1 reaches -200 on average at eval 2 (calls of 10 s and 30 s: 30 s
    # x 2/4), grid point 2 at eval 3 (30 s x 3/4), grid point 0 never (its mean ends at -267).
    np.testing.assert_allclose([r["solved"] for r in reference], [0.8, 1.0, 0.8])
    np.testing.assert_allclose([r["min"] for r in reference], [-900.0, -180.0, -150.0])
    np.testing.assert_allclose([r["steps_to_threshold"] for r in reference], [np.nan, 2000.0, 3000.0])
    np.testing.assert_allclose([r["seconds_to_threshold"] for r in reference], [np.nan, 15.0, 22.5])
    assert reference[0]["iqm"] > reference[1]["iqm"]  # the high IQM that must not win
    _assert_matches(rows, reference)
    assert [(r["combo"], r["grid_index"]) for r in rows] == [(c, g) for c in (0, 1) for g in (1, 0, 2)]
    assert all(r["threshold"] == -200.0 for r in rows)
    assert "solved: final eval return >= -200 (SOLVED_THRESHOLDS)" in printed
    assert "4/5" in printed and "never" in printed
    columns, written = _read_csv(out / "summary.csv")
    assert columns == SUMMARY_COLUMNS + SUCCESS_COLUMNS
    order = [(r["combo"], r["grid_index"]) for r in rows]
    assert [(int(r["combo"]), int(r["grid_index"])) for r in written] == order
    _assert_matches(written, reference)
    assert {r["threshold"] for r in written} == {"-200.0"}


def test_solved_at_overrides_the_threshold_table(tmp_path):
    out = _summary_results(tmp_path, "Pendulum-v1")
    args = sweep.parse_args(["--solved-at", "-160", "--out", str(out)])
    assert args.solved_at == -160.0
    rows = results.summarize(out, args.solved_at)
    reference = _summary_reference(-160.0)
    np.testing.assert_allclose([r["solved"] for r in reference], [0.8, 0.2, 0.8])
    _assert_matches(rows, reference)
    assert [r["grid_index"] for r in rows if r["combo"] == 0] == [0, 2, 1]
    columns, written = _read_csv(out / "summary.csv")
    assert columns[-4:] == SUCCESS_COLUMNS and {r["threshold"] for r in written} == {"-160.0"}
    with pytest.raises(SystemExit):
        sweep.parse_args(["--solved-at", "nan"])


def test_task_without_threshold_gets_no_success_columns(tmp_path, capsys):
    out = _summary_results(tmp_path, "CheetahRun")
    rows = results.summarize(out)
    printed = capsys.readouterr().out
    assert printed.count("has no solved threshold") == 1  # once, not per combination
    assert [r["grid_index"] for r in rows if r["combo"] == 1] == [0, 2, 1]  # by IQM alone
    reference = _summary_reference(-200.0)
    for row in rows:
        assert not set(SUCCESS_COLUMNS) & set(row)
        assert row["min"] == pytest.approx(reference[row["grid_index"]]["min"])
    columns, written = _read_csv(out / "summary.csv")
    assert columns == SUMMARY_COLUMNS and len(written) == 6


def test_default_job_and_cpu_devices(monkeypatch):
    """`python sweep.py` alone: 16 seeds x the tuned PRE_TANH_PENALTY pair, and on CPU one host
    device per core unless XLA_FLAGS already sets a count."""
    args = sweep.parse_args([])
    assert args.env == "Pendulum-v1" and args.seeds == 16
    assert configs.parse_grid(args.grid) == {"PRE_TANH_PENALTY": [1e-3, 1e-2]}
    assert sweep.parse_args(["--set", "NUM_ENVS=8"]).grid == []  # any --set: no default grid
    # The grid was tuned on Pendulum-v1: other tasks run their own config's settings.
    assert sweep.parse_args(["--env", "CheetahRun"]).grid == []
    assert sweep.parse_args(["--env", "MountainCarContinuous-v0"]).grid == []
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    layout = capacity.choose_cpu_devices("Pendulum-v1")
    assert layout == (6, "one per core") and layout.report(6) == "6 CPU device(s), one per core"
    # JAX already running with another count (sweep.main from a notebook): said, with the fix.
    started = layout.report(1)
    assert started.startswith("1 CPU device(s): JAX started before the sweep could choose 6"), started
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=6" in started, started
    assert (
        os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=6"
    )
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=3")
    assert capacity.choose_cpu_devices("CheetahRun") is None  # the user's count wins
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=3"


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_mjx_tasks_leave_a_cpu_thread_free_where_lapack_blocks_it(cores):
    assert capacity.cpu_device_count("Pendulum-v1", cores) == (cores, "one per core")
    count, why = capacity.cpu_device_count("CheetahRun", cores)
    if capacity.LAPACK_BLOCKS_POOL:  # jaxlib 0.10.x, the Python 3.11 pin
        assert count == max(cores - 1, 1) and "LAPACK" in why, why
    else:
        assert count == cores
    assert capacity.cpu_device_count("inverted_pendulum", cores)[0] == count  # Brax runs on MJX too


def test_sharded_lapack_kernels_finish_on_the_layout_the_sweep_chooses():
    """Batched Cholesky factorizations, what MJX's constraint solver runs every physics step,
    sharded over the host devices the sweep gives an MJX task. With a device on every core,
    jaxlib 0.10.2 waits here forever (bench/results/cpu_deadlock_cpu.json)."""
    count, _ = capacity.cpu_device_count("CheetahRun", os.cpu_count() or 1)
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}",
    }
    try:  # seconds of work: only a deadlock reaches the limit
        proc = subprocess.run(
            [sys.executable, "-c", bench_cpu_deadlock.PROGRAM],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"batched LAPACK kernels on {count} host devices waited forever")
    assert proc.returncode == 0, proc.stderr
    assert f"finished on {count} devices: True" in proc.stdout, proc.stdout


def test_gpu_sized_config_on_cpu_is_warned_with_what_to_shrink():
    cheetah = ft.make_config("CheetahRun")  # the reference's sizes: 1024 envs, batch 32768
    warning = capacity.cpu_size_warning(cheetah, "cpu")
    for key in ("NUM_ENVS=1024", "BATCH_SIZE=32768", "CRITIC_HIDDEN_DIM=1024", "ACTOR_HIDDEN_DIM=512"):
        assert key in warning, warning
    assert "--set NUM_ENVS=128" in warning and "EVAL_INTERVAL=5000" in warning, warning
    assert capacity.cpu_size_warning(cheetah, "gpu") is None
    assert capacity.cpu_size_warning(ft.make_config("Pendulum-v1"), "cpu") is None
    one = capacity.cpu_size_warning(ft.make_config("Pendulum-v1", NUM_ENVS=256, BATCH_SIZE=512), "cpu")
    assert "NUM_ENVS=256 is GPU-sized" in one and "BATCH_SIZE" not in one, one


def test_watchdog_names_what_it_waits_on_and_where():
    release = threading.Event()

    def waiting_on_the_device():  # stands for the main thread inside a long device call
        release.wait()

    waiter = threading.Thread(target=waiting_on_the_device, daemon=True)
    waiter.start()
    dog = interrupts.Watchdog()
    dog._main = waiter  # the thread whose place it names
    assert dog.silence() is None  # not started: never reports
    dog.seconds = 5.0
    dog.doing("running agents 0-3, eval 2/20")
    assert dog.silence() is None  # a sign of life just now
    dog.last -= 6.0
    report = dog.silence()
    release.set()
    assert report.startswith("watchdog: no progress for 6 s while running agents 0-3, eval 2/20"), report
    # Where our code waits, and inside what: the innermost frame of the project and of all.
    assert "the main thread is at test_sweep.py:" in report and "waiting_on_the_device" in report, report
    assert ", inside threading.py:" in report, report
    dog.beat()
    assert dog.silence() is None


def test_watchdog_thread_lives_as_long_as_the_sweep():
    def watchdogs():
        return [t for t in threading.enumerate() if t.name == "watchdog"]

    dog = interrupts.Watchdog()
    with dog.watching(60.0):
        assert len(watchdogs()) == 1 and dog.seconds == 60.0
    assert not watchdogs()  # joined on the way out
    dog.last -= 120.0
    assert dog.silence() is None  # no longer watching: a later idle spell is not reported
