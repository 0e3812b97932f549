"""sweep.py: flag parsing, chunking, the results format, resume, NaN flagging, sharding."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import purejax_fasttd3 as ft
import sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = [
    "NUM_ENVS=4",
    "NUM_EVAL_ENVS=2",
    "TOTAL_TIMESTEPS=40",
    "EVAL_INTERVAL=20",
    "BUFFER_SIZE=40",
    "CRITIC_HIDDEN_DIM=16",
    "ACTOR_HIDDEN_DIM=8",
    "NUM_ATOMS=11",
    "EPISODE_LENGTH=25",
]


# ---------------------------------------------------------------------------------- parsing
def test_parse_grid_values_and_errors():
    assert sweep.parse_grid(["TAU=0.05,0.1", "GAMMA=0.9"]) == {"TAU": [0.05, 0.1], "GAMMA": [0.9]}
    with pytest.raises(ValueError, match="NUM_ENVS is a static setting.*--set NUM_ENVS=1,2"):
        sweep.parse_grid(["NUM_ENVS=1,2"])
    with pytest.raises(ValueError, match="TAU.*'abc' is not a number"):
        sweep.parse_grid(["TAU=0.1,abc"])
    with pytest.raises(ValueError, match="TAUU.*unknown"):
        sweep.parse_grid(["TAUU=0.1"])
    with pytest.raises(ValueError, match="given twice"):
        sweep.parse_grid(["TAU=0.1", "TAU=0.2"])
    with pytest.raises(ValueError, match="KEY=V1"):
        sweep.parse_grid(["TAU"])


def test_parse_set_values_and_errors():
    fixed, looped = sweep.parse_set(["NUM_ENVS=8", "BATCH_SIZE=64,128", "USE_CDQ=false", "TAU=0.2"])
    assert fixed == {"NUM_ENVS": 8, "USE_CDQ": False, "TAU": 0.2}
    assert looped == {"BATCH_SIZE": [64, 128]}
    with pytest.raises(ValueError, match="traced.*--grid TAU=0.1,0.2"):
        sweep.parse_set(["TAU=0.1,0.2"])
    with pytest.raises(ValueError, match="NUM_ENVS=abc.*int"):
        sweep.parse_set(["NUM_ENVS=abc"])
    with pytest.raises(ValueError, match="NUM_ENV.*NUM_ENVS"):
        sweep.parse_set(["NUM_ENV=8"])


def test_grid_points_order_and_agent_hparams():
    points = sweep.grid_points({"TAU": [0.1, 0.2], "GAMMA": [0.9, 0.99, 0.999]})
    assert points[0] == {"TAU": 0.1, "GAMMA": 0.9} and points[3] == {"TAU": 0.2, "GAMMA": 0.9}
    assert sweep.grid_points({}) == [{}]
    config = ft.make_config("Pendulum-v1")
    hp = sweep.agent_hparams(config, points, seeds=2)
    # agent = grid_index * seeds + seed_index
    np.testing.assert_allclose(hp["GAMMA"][[0, 1, 2, 3]], [0.9, 0.9, 0.99, 0.99])
    np.testing.assert_allclose(hp["TAU"][6:], [0.2] * 6)
    np.testing.assert_allclose(hp["V_MIN"], config["V_MIN"])
    with pytest.raises(ValueError, match="V_MIN"):
        sweep.agent_hparams(config, [{"V_MIN": 5.0, "V_MAX": 1.0}], seeds=1)


def test_chunking():
    assert sweep.pending_ranges(set(), 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert sweep.pending_ranges({0, 1, 5}, 8, 4) == [(2, 5), (6, 8)]
    assert sweep.choose_chunk(per_agent=100, free=10_000, num_devices=1, total=500, requested=None) == 70
    assert sweep.choose_chunk(per_agent=100, free=10_000, num_devices=4, total=500, requested=None) == 280
    assert sweep.choose_chunk(per_agent=100, free=10_000, num_devices=4, total=6, requested=None) == 8
    assert sweep.choose_chunk(per_agent=100, free=10_000, num_devices=1, total=6, requested=3) == 3
    with pytest.raises(MemoryError, match="one agent needs about"):
        sweep.choose_chunk(per_agent=2**31, free=2**30, num_devices=1, total=4, requested=None)


def test_memory_estimate_counts_the_replay_buffer():
    config = ft.make_config("Pendulum-v1")
    env = sweep.envs.make_env(config)
    memory = sweep.bytes_per_agent(config, env)
    assert memory["replay"] == ft.replay_bytes(config, env) > 0
    assert all(v > 0 for v in memory.values())


# ---------------------------------------------------------------------------------- end to end
def _flags(out, batch_sizes: str, chunk: int) -> list[str]:
    """The flags of the test sweep: 2 seeds x 2 learning rates, one of which diverges."""
    return [
        "--env", "Pendulum-v1", "--seeds", "2", "--grid", "CRITIC_LEARNING_RATE=1e-3,1e9",
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
    assert spec["grid"] == {"CRITIC_LEARNING_RATE": [1e-3, 1e9]} and spec["static"] == {"BATCH_SIZE": [8, 16]}
    assert spec["combos"] == [{"BATCH_SIZE": 8}, {"BATCH_SIZE": 16}]
    for c, batch in enumerate((8, 16)):
        combo = swept / f"combo_{c:03d}"
        assert json.loads((combo / "config.json").read_text())["BATCH_SIZE"] == batch
        files, arrays, data = _load(combo)
        assert [f.name for f in files] == ["agents_000000-000003.npz", "agents_000003-000004.npz"]
        np.testing.assert_array_equal(arrays["agent"], np.arange(4))
        np.testing.assert_array_equal(arrays["grid_index"], [0, 0, 1, 1])
        np.testing.assert_array_equal(arrays["seed_index"], [0, 1, 0, 1])
        np.testing.assert_allclose(arrays["hparam_CRITIC_LEARNING_RATE"], [1e-3, 1e-3, 1e9, 1e9])
        assert arrays["metric_eval_return"].shape == (4, 2)
        np.testing.assert_array_equal(arrays["metric_env_steps"][0], [80, 160])
        meta = json.loads(str(data[0]["meta"]))
        assert {"device", "versions", "compile_seconds", "run_seconds", "nonfinite_agents"} <= set(meta)


def test_agents_equal_single_runs(swept):
    """Agent (grid point 0, seed 1) equals train(split(PRNGKey(0), 2)[1]) run alone."""
    config = ft.make_config("Pendulum-v1", **sweep.parse_set(TINY)[0], BATCH_SIZE=8, PROGRESS=False)
    rng = jax.random.split(jax.random.PRNGKey(0), 2)[1]
    single = jax.jit(ft.make_train(config))(rng, {"CRITIC_LEARNING_RATE": 1e-3})
    _, arrays, _ = _load(swept / "combo_000")
    for name in sweep.METRICS:
        np.testing.assert_allclose(
            arrays[f"metric_{name}"][1], np.asarray(single["metrics"][name]), rtol=1e-4, atol=1e-4
        )


def test_nonfinite_agents_are_flagged_and_the_sweep_goes_on(swept):
    _, arrays, data = _load(swept / "combo_000")
    flagged = sum((json.loads(str(d["meta"]))["nonfinite_agents"] for d in data), [])
    blew_up = [a for a in range(4) if not np.isfinite(arrays["metric_critic_loss"][a]).all()]
    assert blew_up and flagged == blew_up  # the 1e9 learning rate diverges
    assert set(blew_up) <= {2, 3}
    rows = sweep.summarize(swept)
    by_lr = {(r["combo"], r["CRITIC_LEARNING_RATE"]): r for r in rows}
    assert by_lr[(0, 1e9)]["nonfinite"] == len(blew_up) and by_lr[(0, 1e-3)]["nonfinite"] == 0
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
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_results_folder_of_another_sweep_is_refused(swept):
    args = _args(swept)
    args.seeds = 3
    with pytest.raises(ValueError, match="another sweep: its seeds is 2, this command asks for 3"):
        sweep.run_sweep(args)


def test_sharding_over_four_cpu_devices(swept, tmp_path):
    """The agent axis split over 4 host devices gives the single-device results."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, str(ROOT / "sweep.py"), *_flags(tmp_path, "8", chunk=4)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on 4 cpu" in proc.stdout
    _, sharded, data = _load(tmp_path / "combo_000")
    assert json.loads(str(data[0]["meta"]))["num_devices"] == 4
    _, single, _ = _load(swept / "combo_000")
    stable = single["hparam_CRITIC_LEARNING_RATE"] < 1.0  # diverging agents amplify rounding
    for name in sweep.METRICS:
        np.testing.assert_allclose(
            sharded[f"metric_{name}"][stable], single[f"metric_{name}"][stable], rtol=1e-4, atol=1e-4
        )
