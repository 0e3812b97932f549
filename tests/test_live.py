"""The live metrics log (fasttd3x/live.py), the pandas loader (fasttd3x/frames.py), and
cluster hygiene (fasttd3x/cluster.py): launcher refusal, the folder lock, --part and merging.

The in-process sweep is tiny (2 seeds x 2 grid points, calls of 2 agents); the subprocess one
runs fifty evaluations so it is still running when the test reads its log: every read waits on
a progress line that only comes after the records under test were written."""

import contextlib
import csv
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from fasttd3x import cluster, compile_cache, config_file, configs, frames, live, results, sweep
from shared_configs import TINY_AGENT, set_items, subprocess_env
from test_stop import MANY_EVALS, Sweep

TINY = set_items(dict(TINY_AGENT, NUM_EVAL_ENVS=2, BUFFER_SIZE=40, EPISODE_LENGTH=25))
METRICS = [m for m in results.METRICS if m != "env_steps"]
ROOT = pathlib.Path(__file__).resolve().parents[1]


def flags(out) -> list[str]:
    """2 seeds x 2 grid points, two evaluations, in calls of 2 agents (on 1 or 2 devices)."""
    return [
        "--env", "Pendulum-v1", "--seeds", "2", "--grid", "TAU=0.05,0.1",
        *sum([["--set", s] for s in TINY], []),
        "--chunk", "2", "--out", str(out), "--quiet", "--no-plots",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("live")
    sweep.run_sweep(sweep.parse_args(flags(out)))
    return out


def _results(out: pathlib.Path) -> dict:
    files = sorted((out / "combo_000").glob("agents_*.npz"))
    data = [dict(np.load(f)) for f in files]
    return {k: np.concatenate([d[k] for d in data]) for k in data[0] if k != "meta"}


def test_live_log_holds_every_evaluation_as_the_results_do(swept):
    records = live.read_records(swept / live.LIVE_FILE)
    assert len(records) == 4 * 2  # agents x evals, each once
    written = _results(swept)
    for r in records:
        a, e = r["agent"], r["eval"] - 1
        assert (r["combo"], r["grid_index"], r["seed_index"]) == (0, a // 2, a % 2)
        assert r["TAU"] == [0.05, 0.1][a // 2]
        assert r["env_steps"] == written["metric_env_steps"][a, e] and r["iterations"] == 20 * (e + 1)
        for name in METRICS:  # float32 on the device, exact through JSON
            assert np.float32(r[name]) == written[f"metric_{name}"][a, e] or (
                r[name] is None and not np.isfinite(written[f"metric_{name}"][a, e])
            ), name


def test_resume_appends_without_duplicates(swept):
    before = (swept / live.LIVE_FILE).read_text()
    last = sorted((swept / "combo_000").glob("agents_*.npz"))[-1]
    last.unlink()  # its agent trains again from the start: the same records
    with open(swept / live.LIVE_FILE, "a") as f:
        f.write('{"combo": 0, "agent": 3, "ev')  # a line a kill cut short
    sweep.run_sweep(sweep.parse_args(flags(swept)))
    assert (swept / live.LIVE_FILE).read_text() == before


def test_unwritable_log_folder_is_refused_by_name(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ValueError, match=f"live metrics log {blocked / live.LIVE_FILE} cannot be written"):
        live.LiveLog(blocked)
    assert blocked.read_text() == "not a folder"


def test_missing_optional_package_names_the_extra():
    with pytest.raises(live.OptionalDependencyError, match=r'pip install "fasttd3x\[tensorboard\]"'):
        live.require("no_such_module_xyz", "tensorboard", "--tensorboard")


def test_pandas_frame_matches_load_sweep(swept):
    frame = frames.load_frame(swept)
    written = _results(swept)
    assert len(frame) == 8 and list(frame.columns[:5]) == [
        "combo",
        "agent",
        "grid_index",
        "seed_index",
        "TAU",
    ]
    for name in results.METRICS:
        np.testing.assert_array_equal(frame[name].to_numpy().reshape(4, 2), written[f"metric_{name}"])
    np.testing.assert_array_equal(frame["TAU"].to_numpy()[::2], [0.05, 0.05, 0.1, 0.1])
    live_frame = frames.load_live_frame(swept)
    np.testing.assert_array_equal(live_frame["eval_return"].to_numpy(dtype=np.float32), frame["eval_return"])
    assert list(live_frame["env_steps"]) == list(frame["env_steps"])


@pytest.mark.slow
def test_log_grows_while_the_sweep_runs_and_a_resume_continues_it(tmp_path):
    out = tmp_path / "sweep"
    log = out / live.LIVE_FILE
    first = Sweep(out, MANY_EVALS)
    first.wait_for("] eval 2/50")  # eval 2 runs: eval 1 reached the host and was logged
    early = live.read_records(log)
    assert {(r["agent"], r["eval"]) for r in early} >= {(0, 1), (1, 1)}
    assert not list(out.glob("combo_000/agents_*.npz"))  # nothing else on disk shows the run
    first.wait_for(f"] eval {max(r['eval'] for r in early) + 2}/50")
    assert len(live.read_records(log)) > len(early)
    first.proc.send_signal(signal.SIGINT)
    assert first.finish() == 130, first.log
    second = Sweep(out, MANY_EVALS, "--quiet")
    assert second.finish() == 0, second.log
    records = live.read_records(log)
    assert sorted((r["agent"], r["eval"]) for r in records) == [(a, e) for a in (0, 1) for e in range(1, 51)]
    [written] = out.glob("combo_000/agents_*.npz")
    with np.load(written) as data:
        returns = data["metric_eval_return"]
    for r in records:
        assert np.float32(r["eval_return"]) == returns[r["agent"], r["eval"] - 1]
    assert json.loads(log.read_text().splitlines()[0])["combo"] == 0


# ---------------------------------------------------------------------------------- clusters
def _sweep_py(args: list[str], **env) -> subprocess.CompletedProcess:
    """sweep.py in its own process; what is tested here stops it before anything compiles."""
    cmd = [sys.executable, str(ROOT / "sweep.py"), *args]
    return subprocess.run(
        cmd, env={**subprocess_env(), **env}, capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_processes_a_launcher_started_are_refused_without_distributed(tmp_path):
    proc = _sweep_py(flags(tmp_path / "out"), OMPI_COMM_WORLD_SIZE="2")
    assert proc.returncode != 0
    assert "one of 2 that Open MPI (mpirun), OMPI_COMM_WORLD_SIZE=2 started" in proc.stderr, proc.stderr
    assert "Add --distributed" in proc.stderr and not (tmp_path / "out").exists()
    assert cluster.scheduler_processes({"SLURM_NTASKS": "4"}) is None  # a batch script: one process
    assert cluster.scheduler_processes({"SLURM_STEP_NUM_TASKS": "4"})[0] == 4
    cluster.refuse_unjoined_processes(True, {"SLURM_STEP_NUM_TASKS": "4"})  # joined, or given parts


def test_second_sweep_into_a_locked_folder_stops_at_once(tmp_path):
    out = tmp_path / "out"
    with cluster.FolderLock(out):
        proc = _sweep_py(flags(out))
    assert proc.returncode != 0
    assert f"{out} is in use by another sweep (pid {os.getpid()} on" in proc.stderr, proc.stderr
    assert not (out / "sweep.json").exists()  # it stopped before writing anything
    with cluster.FolderLock(out):  # released: the next sweep gets it
        pass


def test_part_flag_errors():
    with pytest.raises(SystemExit):
        sweep.parse_args(["--part", "3/2", "--chunk", "2"])
    with pytest.raises(ValueError, match="the part index must be in 1..2, got 3"):
        cluster.parse_part("3/2")
    with pytest.raises(ValueError, match="expects I/N"):
        cluster.parse_part("two")
    with pytest.raises(SystemExit):
        sweep.parse_args(["--part", "1/2"])  # no --chunk
    assert [list(cluster.part_agents(cluster.Part(i, 3), 10, 2)) for i in (1, 2, 3)] == [
        [0, 1],
        [2, 3, 4, 5],
        [6, 7, 8, 9],
    ]


PRINTED: dict[str, str] = {}  # what each part printed, by part


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    out = tmp_path_factory.mktemp("parts")
    for part in ("1/2", "2/2"):
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            sweep.run_sweep(sweep.parse_args([*flags(out), "--part", part]))
        PRINTED[part] = printed.getvalue()
    return out


def test_a_part_says_which_agents_it_trains(parts, capsys):
    """A fresh part is not a resume: the other parts' agents are not "already finished"."""
    assert "combo 1/1: part 2/2: agents 2-3 of 4\n" in PRINTED["2/2"], PRINTED["2/2"]
    assert "resuming" not in PRINTED["1/2"] + PRINTED["2/2"]
    sweep.run_sweep(sweep.parse_args([*flags(parts), "--part", "2/2"]))  # every agent of it written
    assert "part 2/2: its 2 of 4 agents already finished, skipped" in capsys.readouterr().out


def test_merged_parts_equal_the_whole_sweep(swept, parts):
    assert [p.name for p in sorted((parts / "parts/1-of-2/combo_000").glob("agents_*"))] == [
        "agents_000000-000002.npz"
    ]
    assert sweep.main([*flags(parts)[:-4], "--merge-parts", str(parts), "--no-plots"]) is None
    whole, merged = _results(swept), _results(parts)
    assert whole.keys() == merged.keys()
    for key in whole:  # the same calls of the same programs: exact
        np.testing.assert_array_equal(merged[key], whole[key], err_msg=key)
    for name in ("sweep.json", "combo_000/config.json", "combo_000/calls.json"):
        assert (parts / name).read_text() == (swept / name).read_text()
    timeless = lambda r: {k: v for k, v in r.items() if k not in ("time", "run_seconds")}  # noqa: E731
    assert [timeless(r) for r in live.read_records(parts / live.LIVE_FILE)] == [
        timeless(r) for r in sorted(live.read_records(swept / live.LIVE_FILE), key=lambda r: r["agent"])
    ]
    rows = lambda out: [  # noqa: E731
        {k: v for k, v in r.items() if k != "seconds_to_threshold"} for r in csv.DictReader(open(out))
    ]
    results.summarize(swept)
    assert rows(parts / "summary.csv") == rows(swept / "summary.csv")


def test_parts_of_different_sweeps_are_refused_and_nothing_is_written(parts, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(parts / "parts", out / "parts")
    spec = json.loads((out / "parts/2-of-2/sweep.json").read_text())
    (out / "parts/2-of-2/sweep.json").write_text(json.dumps({**spec, "seeds": 3}))
    with pytest.raises(ValueError, match=r"parts of different sweeps: .*2-of-2 has seeds 3, .*1-of-2 has 2"):
        cluster.merge_parts(out)
    assert sorted(p.name for p in out.iterdir()) == ["parts"]
    (out / "parts/2-of-2/sweep.json").write_text(json.dumps(spec))
    calls = out / "parts/2-of-2/combo_000/calls.json"
    calls.write_text(json.dumps({**json.loads(calls.read_text()), "agents_per_call": 4}))
    with pytest.raises(ValueError, match=r"the call size in .*2-of-2/combo_000/calls.json differs"):
        cluster.merge_parts(out)
    assert sorted(p.name for p in out.iterdir()) == ["parts"]
    shutil.rmtree(out / "parts/2-of-2")
    with pytest.raises(ValueError, match="parts 2-of-2 are missing"):
        cluster.merge_parts(out)


# ---------------------------------------------------------------------------------- compile cache
CACHE_PROGRAM = """
import jax, jax.numpy as jnp
from fasttd3x import compile_cache
print(compile_cache.enable())
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # cache even this small program
jax.jit(lambda x: jnp.sin(x) * 2).lower(jnp.ones(3)).compile()
"""


def test_compile_cache_goes_to_the_user_cache_folder_unless_moved(tmp_path):
    env = {k: v for k, v in subprocess_env().items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", CACHE_PROGRAM], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "xdg" / "fasttd3x" / "jax"
    assert proc.stdout.strip() == str(folder) and any(folder.iterdir())
    assert compile_cache.default_folder({"JAX_COMPILATION_CACHE_DIR": "/x"}) == pathlib.Path("/x")
    home = compile_cache.default_folder({})
    assert home == pathlib.Path.home() / ".cache" / "fasttd3x" / "jax"
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ValueError, match=f"--compile-cache {blocked / 'jax'}: cannot create"):
        compile_cache.enable(blocked / "jax")
    args = sweep.parse_args(["--compile-cache", str(tmp_path), "--no-compile-cache"])
    assert args.compile_cache == str(tmp_path) and args.no_compile_cache
    beating, quiet = sweep.parse_args([]), sweep.parse_args(["--no-heartbeats"])
    long, short = configs.make_config("Pendulum-v1", EVAL_INTERVAL=1000), configs.make_config("Pendulum-v1")
    assert sweep.sends_heartbeats(beating, long) and short["EVAL_INTERVAL"] < 1000
    assert not sweep.sends_heartbeats(beating, short) and not sweep.sends_heartbeats(quiet, long)


@pytest.mark.parametrize("eval_interval, beats", [(20, True), (1000, False), (1000, True)])
def test_training_program_is_cacheable_unless_it_sends_heartbeats(eval_interval, beats):
    """JAX's persistent cache never stores a program with host callbacks: the sweep's `run` has
    none (progress comes from the host) unless heartbeats are on for an interval long enough
    to have them (1,000 iterations or more)."""
    import jax

    from fasttd3x.programs import CallPrograms

    config = configs.make_config("Pendulum-v1", **dict(TINY_AGENT, EVAL_INTERVAL=eval_interval,
                                                       TOTAL_TIMESTEPS=eval_interval))  # fmt: skip
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("agents",))
    reports = []
    programs = CallPrograms(config, mesh, 1, reports.append, (lambda done: None) if beats else None)
    text = programs._run_jit().lower(programs._state_template).as_text()
    assert ("callback" in text) == (beats and eval_interval >= 1000)
    programs.report(3)
    assert reports == [3]


# ---------------------------------------------------------------------------------- TensorBoard, W&B
def _wandb_records(path: pathlib.Path):
    """The records of a W&B run file (.wandb): a LevelDB-style log of wandb's own protobuf
    `Record` messages after a 7-byte header; parsed with wandb's proto classes."""
    from wandb.proto import wandb_internal_pb2

    data, block, at, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while at + 7 <= len(data):
        left = block - at % block
        if left < 7:  # a block's tail too short for a header is padding
            at += left
            continue
        length, kind = int.from_bytes(data[at + 4 : at + 6], "little"), data[at + 6]
        pending += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The tiny sweep with --tensorboard, --wandb (offline) and --log-agents, summary included."""
    out = tmp_path_factory.mktemp("watched")
    saved = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_SILENT")}
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    try:
        args = sweep.parse_args([*flags(out), "--tensorboard", "--wandb", "fasttd3x-test", "--log-agents"])
        sweep.run_sweep(args)  # the summary included
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    return out


def _group_means(out: pathlib.Path) -> dict[int, np.ndarray]:
    returns = _results(out)["metric_eval_return"]  # [agents, evals], agent = grid * 2 + seed
    return {g: returns[2 * g : 2 * g + 2].astype(float).mean(axis=0) for g in (0, 1)}


def test_tensorboard_holds_the_sweeps_numbers(watched):
    from tensorboard.backend.event_processing import event_accumulator

    steps = _results(watched)["metric_env_steps"][0]
    for g, means in _group_means(watched).items():
        acc = event_accumulator.EventAccumulator(str(watched / f"tensorboard/combo_000/grid_{g:03d}"))
        acc.Reload()
        scalars = acc.Scalars("eval_return/mean")
        assert [s.step for s in scalars] == list(steps)
        np.testing.assert_allclose([s.value for s in scalars], means, rtol=1e-6)
        seed_1 = [s.value for s in acc.Scalars("seed_1/eval_return")]
        np.testing.assert_allclose(seed_1, _results(watched)["metric_eval_return"][2 * g + 1], rtol=1e-6)
        assert {"eval_return/iqm", "eval_return/p25", "critic_loss/p75"} <= set(acc.Tags()["scalars"])
    acc = event_accumulator.EventAccumulator(str(watched / "tensorboard/sweep"))
    acc.Reload()
    assert {"sweep/text_summary", "summary/text_summary"} <= set(acc.Tags()["tensors"])


def test_wandb_offline_run_holds_the_sweeps_numbers(watched):
    [run_file] = watched.glob("wandb/offline-run-*/run-*.wandb")
    history: dict[str, list[float]] = {}
    config = {}
    for record in _wandb_records(run_file):
        for item in record.history.item:
            key = item.key or "/".join(item.nested_key)
            history.setdefault(key, []).append(json.loads(item.value_json))
        for item in [*record.run.config.update, *record.config.update]:  # at the start, then updates
            config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    for g, means in _group_means(watched).items():
        np.testing.assert_allclose(history[f"combo_000/grid_{g:03d}/eval_return/mean"], means, rtol=1e-6)
    assert config["sweep"]["grid"] == {"TAU": [0.05, 0.1]}
    assert history["summary/_type"] == ["table-file"]  # the final table, a file beside the run
    [table] = run_file.parent.glob("files/media/table/summary_*.table.json")
    table = json.loads(table.read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    summary = list(csv.DictReader(open(watched / "summary.csv")))
    assert [(r["grid_index"], r["iqm"]) for r in rows] == [
        (int(r["grid_index"]), float(r["iqm"])) for r in summary
    ]


def test_missing_optional_packages_are_refused_before_the_sweep(monkeypatch, capsys):
    for module, flag in (("tensorboardX", ["--tensorboard"]), ("wandb", ["--wandb", "project"])):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
        with pytest.raises(SystemExit):
            sweep.parse_args(flag)
        extra = flag[0].removeprefix("--")
        assert f'pip install "fasttd3x[{extra}]"' in capsys.readouterr().err


# ---------------------------------------------------------------------------------- --config
def test_config_file_runs_the_saved_settings_with_set_and_grid_on_top(swept, tmp_path, capsys):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "saved configs:" in text and "clusters: parts, merging, locking:" in text
    assert "static keys (--set; several values loop over compilations): NUM_ENVS," in " ".join(text.split())
    saved = swept / "combo_000" / "config.json"
    args = sweep.parse_args(["--config", str(saved), "--set", "NUM_ENVS=8", "--grid", "GAMMA=0.9,0.99"])
    fixed, _ = configs.parse_set(args.set)
    config = json.loads(saved.read_text())
    assert args.env == "Pendulum-v1" and fixed["NUM_ENVS"] == 8  # the command line wins
    assert configs.parse_grid(args.grid) == {"GAMMA": [0.9, 0.99]}
    remade = configs.make_config(args.env, **fixed)
    assert {k: v for k, v in remade.items() if k != "NUM_ENVS"} == {
        k: v for k, v in config.items() if k != "NUM_ENVS"
    }
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        sweep.parse_args(["--config", str(bad)])
    with pytest.raises(ValueError, match="a JSON object with ENV_NAME"):
        config_file.load(bad)
    with pytest.raises(SystemExit):
        sweep.parse_args(["--config", str(saved), "--env", "CheetahRun"])
