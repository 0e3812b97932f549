"""search.py and sweep.py's --sample/--pbt/--schedule: sampling, exploit/explore, resume, refusals."""

import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import qmc

import purejax_fasttd3 as ft
from fasttd3x import interrupts, results, search, sweep
from shared_configs import TINY_AGENT, set_flags, subprocess_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPACE_ITEMS = ["CRITIC_LEARNING_RATE=log:1e-4,1e-2", "TAU=lin:0.01,0.5", "STD_MAX=choice:0.4,0.8,0.6"]
TINY = dict(TINY_AGENT, TOTAL_TIMESTEPS=80, NUM_EVAL_ENVS=2, BUFFER_SIZE=40, EPISODE_LENGTH=25, BATCH_SIZE=16)


# ------------------------------------------------------------------------------------ sampling
def test_sampling_is_reproducible_in_range_and_quasi_random():
    space = search.parse_space(SPACE_ITEMS)
    points = search.sample_points(space, 64, seed=3)
    assert points == search.sample_points(space, 64, seed=3)
    assert points != search.sample_points(space, 64, seed=4)
    lr = np.array([p["CRITIC_LEARNING_RATE"] for p in points])
    tau = np.array([p["TAU"] for p in points])
    assert lr.min() >= np.float32(1e-4) and lr.max() <= np.float32(1e-2)
    assert tau.min() >= np.float32(0.01) and tau.max() <= np.float32(0.5)
    assert {p["STD_MAX"] for p in points} == {np.float32(v).item() for v in (0.4, 0.6, 0.8)}
    # The same points as mapping scrambled Halton draws by hand: log-uniform, uniform, thirds.
    unit = qmc.Halton(d=3, scramble=True, seed=3).random(64)
    np.testing.assert_allclose(lr, 1e-4 * 100 ** unit[:, 0], rtol=1e-6)
    np.testing.assert_allclose(tau, 0.01 + 0.49 * unit[:, 1], rtol=1e-6)
    np.testing.assert_allclose(
        [p["STD_MAX"] for p in points], np.array([0.4, 0.6, 0.8])[(unit[:, 2] * 3).astype(int)], rtol=1e-6
    )
    # Quasi-random: every eighth of the log range holds 8 of the 64 points.
    counts = np.histogram(np.log10(lr), bins=8, range=(-4, -2))[0]
    assert counts.min() >= 7 and counts.max() <= 9


def test_perturbed_and_resampled_settings_stay_in_range():
    space = search.parse_space(SPACE_ITEMS)
    config = search.PBTConfig(every=1, population=512, resample=0.3, factors=(0.5, 2.0))
    edges = {"CRITIC_LEARNING_RATE": [1e-4, 1e-2], "TAU": [0.01, 0.5], "STD_MAX": [0.4, 0.8]}
    for d, dim in enumerate(space):
        values = jnp.asarray(np.repeat(edges[dim.key], 256), jnp.float32)  # half at each end
        moved = np.asarray(search.explore(dim, values, jax.random.PRNGKey(d), config))
        assert moved.min() >= np.float32(dim.lo) and moved.max() <= np.float32(dim.hi), dim.key
        assert len(np.unique(moved)) > 2  # both moved off the edges and resampled inside
    lr = np.asarray(search.explore(space[0], jnp.full(4096, 1e-3), jax.random.PRNGKey(9), config))
    kept_in_grid = np.isclose(lr, 5e-4, rtol=1e-6) | np.isclose(lr, 2e-3, rtol=1e-6)
    assert abs(kept_in_grid.mean() - 0.7) < 0.03  # perturbed with probability 1 - resample


# ---------------------------------------------------------------------------------- exploit
def _distinct_runner(agents: int) -> ft.Runner:
    """A vmapped Runner of the tiny config whose every batched leaf differs between agents."""
    loop = ft.make_train_loop(ft.make_config("Pendulum-v1", **TINY))
    hp = {k: jax.ShapeDtypeStruct((agents,), jnp.float32) for k in ft.HPARAM_DEFAULTS}
    rngs = jax.ShapeDtypeStruct((agents, 2), jnp.uint32)
    shapes = jax.eval_shape(jax.vmap(loop.init, out_axes=ft.RUNNER_AXES), rngs, hp)
    leaves, treedef = jax.tree.flatten(shapes)
    rng = np.random.default_rng(0)
    filled = []
    for leaf in leaves:
        if leaf.dtype == jnp.bool_:
            filled.append(rng.random(leaf.shape) < 0.5)
        elif jnp.issubdtype(leaf.dtype, jnp.integer):
            filled.append(rng.integers(0, 1000, leaf.shape).astype(leaf.dtype))
        else:
            filled.append(rng.normal(size=leaf.shape).astype(leaf.dtype))
    runner = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in filled])
    return runner._replace(evals_done=jnp.int32(3))


def _check_exploit(before, after, record, fitness, space, config):
    """Against NumPy: the bottom `replaced` by fitness took a top agent's complete state, except
    RNG and searched settings (in range) and, without `copy_experience`, the replay buffer, envs,
    running episodes and their noise, which stay their own; everyone else is untouched."""
    parents = np.asarray(record["parent"])
    order = np.argsort(fitness, kind="stable")
    bottom, top = set(order[: config.replaced]), set(order[-config.replaced :])
    replaced = {i for i in range(len(fitness)) if parents[i] != i}
    assert replaced == bottom and {int(parents[i]) for i in replaced} <= top
    searched = {dim.key for dim in space}
    own = () if config.copy_experience else (".buffer", ".env_state", ".episode_return", ".noise_scale")
    flat_before = jax.tree_util.tree_flatten_with_path(before)[0]
    flat_after = jax.tree.leaves(after)
    for (path, old), new in zip(flat_before, flat_after):
        name = jax.tree_util.keystr(path)
        old, new = np.asarray(old), np.asarray(new)
        if name == ".evals_done":
            assert new == old
            continue
        for i in range(len(fitness)):
            if i not in replaced or name.startswith(own):
                np.testing.assert_array_equal(new[i], old[i], err_msg=name)
            elif name == ".rng":  # a fresh stream, not the parent's
                assert not np.array_equal(new[i], old[parents[i]])
            elif name not in {f".hparams['{key}']" for key in searched}:  # explored: checked below
                np.testing.assert_array_equal(new[i], old[parents[i]], err_msg=name)
    for dim in space:
        values = np.asarray(after.hparams[dim.key])
        assert values.min() >= np.float32(dim.lo) and values.max() <= np.float32(dim.hi)
        np.testing.assert_array_equal(np.asarray(record["hparams"][dim.key]), values)


def _population():
    """8 distinct agents whose searched settings are sampled points of the space."""
    agents = 8
    space = search.parse_space(SPACE_ITEMS)
    runner = _distinct_runner(agents)
    edges = search.sample_points(space, agents, seed=0)
    hparams = dict(runner.hparams, **{d.key: jnp.array([p[d.key] for p in edges]) for d in space})
    return runner._replace(hparams=hparams), space


@pytest.fixture(scope="module")
def population():
    return _population()


def test_exploit_copies_the_complete_state_and_explores_in_range(population):
    runner, space = population
    config = search.PBTConfig(every=1, population=8, fraction=0.25)
    fitness = np.array([5.0, -1.0, 3.0, 7.0, -np.inf, 2.0, 9.0, 0.0], np.float32)
    after, record = jax.jit(search.pbt_step, static_argnums=(3, 4))(
        runner, fitness, search.generation_key(0, 1), space, config
    )
    _check_exploit(runner, after, record, fitness, space, config)
    # Fresh, distinct streams for the replaced rows, from the generation's key.
    rngs = np.asarray(after.rng)[np.asarray(record["parent"]) != np.arange(8)]
    assert len({tuple(r) for r in rngs}) == 2


def test_exploit_without_experience_copies_only_the_learner(population):
    """--pbt-keep-experience: a replaced agent takes its parent's networks, optimizers, target
    critic and normalizers, and keeps its own replay buffer and envs."""
    runner, space = population
    config = search.PBTConfig(every=1, population=8, fraction=0.25, copy_experience=False)
    fitness = np.array([5.0, -1.0, 3.0, 7.0, -np.inf, 2.0, 9.0, 0.0], np.float32)
    after, record = jax.jit(search.pbt_step, static_argnums=(3, 4))(
        runner, fitness, search.generation_key(0, 1), space, config
    )
    _check_exploit(runner, after, record, fitness, space, config)
    child, parent = 4, int(record["parent"][4])
    for name, tree in (("buffer", after.buffer), ("critic", after.train_state.critic_params)):
        before = runner.buffer if name == "buffer" else runner.train_state.critic_params
        source = child if name == "buffer" else parent
        for new, old in zip(jax.tree.leaves(tree), jax.tree.leaves(before)):
            np.testing.assert_array_equal(np.asarray(new)[child], np.asarray(old)[source], err_msg=name)


def test_padding_rows_past_the_population_are_left_alone(population):
    runner, space = population
    config = search.PBTConfig(every=1, population=6, fraction=0.5)
    fitness = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0, 100.0], np.float32)
    parents = np.asarray(search.exploit_parents(jnp.asarray(fitness), jax.random.PRNGKey(0), config))
    assert set(np.flatnonzero(parents != np.arange(8))) == {0, 1, 2}
    assert set(parents[:3]) <= {3, 4, 5}


SHARDED = """
import sys
sys.path.insert(0, "tests")
import jax, numpy as np, purejax_fasttd3 as ft
from fasttd3x import distributed, search
import test_search as t
assert jax.device_count() == 4
runner, space = t._population()
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("agents",))
rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
shared = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
shardings = jax.tree.map(lambda a: rows if a == 0 else shared, ft.RUNNER_AXES, is_leaf=lambda x: x is None)
put = lambda s, sub: jax.tree.map(lambda x: jax.device_put(np.asarray(x), s), sub)
placed = jax.tree.map(put, shardings, runner)
config = search.PBTConfig(every=1, population=8, fraction=0.25)
fitness = np.array([-5.0, -4.0, 1.0, 2.0, 3.0, 4.0, 8.0, 9.0], np.float32)  # parents on device 3
step = search.Search(0, shardings, search.Plan(space, config))._step
after, record = step(placed, distributed.place(fitness, shared), search.generation_key(0, 1))
assert after.train_state.actor_params["params"]["head"]["kernel"].sharding == rows
t._check_exploit(runner, after, record, fitness, space, config)
print("sharded exploit exact")
"""


def test_parent_on_another_device_is_copied_exactly():
    env = subprocess_env(devices=4)
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sharded exploit exact" in proc.stdout


TWO_PROCESSES = """
import sys
sys.path.insert(0, "tests")
import jax
process, port = int(sys.argv[1]), int(sys.argv[2])
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process)
import numpy as np, purejax_fasttd3 as ft
from fasttd3x import distributed, search
import test_search as t
assert jax.device_count() == 4 and jax.local_device_count() == 2
runner, space = t._population()
runner = jax.tree.map(np.asarray, runner)  # the same on both processes
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("agents",))
rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
shared = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
shardings = jax.tree.map(lambda a: rows if a == 0 else shared, ft.RUNNER_AXES, is_leaf=lambda x: x is None)
place = lambda s, x: jax.make_array_from_callback(x.shape, s, lambda index: x[index])
placed = jax.tree.map(lambda s, sub: jax.tree.map(lambda x: place(s, x), sub), shardings, runner)
owners = [d.process_index for d in mesh.devices.flat]  # rows 0-3 on one process, 4-7 on the other
assert owners[0] == owners[1] != owners[2] == owners[3]
config = search.PBTConfig(every=1, population=8, fraction=0.25)
fitness = np.array([-5.0, -4.0, 1.0, 2.0, 3.0, 4.0, 8.0, 9.0], np.float32)  # parents: process 1's rows
step = search.Search(0, shardings, search.Plan(space, config))._step
after, record = step(placed, distributed.place(fitness, shared), search.generation_key(0, 1))
assert after.hparams["TAU"].sharding == rows
t._check_exploit(runner, distributed.to_host(after), distributed.to_host(record), fitness, space, config)
print(f"process {process}: exploit across processes exact")
"""


def test_parent_on_another_process_is_copied_exactly(tmp_path):
    """Two processes on localhost, two CPU devices each: the bottom rows (process 0's devices)
    take the complete state of top rows that live on process 1's, and both processes see the
    exact copy."""
    from test_distributed import _free_port

    port = _free_port()
    env = subprocess_env(devices=2)
    logs = [tmp_path / f"process{i}.log" for i in range(2)]
    procs = []
    for i, log in enumerate(logs):
        with open(log, "w") as out:  # a file: no pipe fills up
            cmd = [sys.executable, "-c", TWO_PROCESSES, str(i), str(port)]
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
    try:
        for proc in procs:
            proc.wait(timeout=600)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for i, (proc, log) in enumerate(zip(procs, logs)):
        text = log.read_text()
        assert proc.returncode == 0, text[-3000:]
        assert f"process {i}: exploit across processes exact" in text


# ------------------------------------------------------------------------------------ refusals
def _plan(*flags):
    return sweep.plan_sweep(
        sweep.parse_args(["--env", "Pendulum-v1", "--seeds", "2", *set_flags(TINY), *flags])
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--sample", "NUM_ENVS=lin:1,8", "--samples", "2"],
            "--sample NUM_ENVS=lin:1,8: NUM_ENVS is a static",
        ),
        (["--sample", "TAU=lin:0.5,0.1", "--samples", "2"], "TAU=lin:0.5,0.1: LO=0.5 must be below HI=0.1"),
        (["--sample", "TAU=log:0,0.1", "--samples", "2"], "TAU=log:0,0.1: a log range must lie above zero"),
        (["--sample", "TAU=normal:0,1", "--samples", "2"], "unknown distribution 'normal'"),
        (
            ["--sample", "TAU=log:0.01,0.1", "--samples", "1", "--pbt"],
            "--pbt-fraction 0.25: a population of 2",
        ),
        (["--sample", "TAU=log:0.01,0.1", "--samples", "4", "--pbt", "--pbt-every", "4"], "--pbt-every 4"),
        (["--sample", "STD_MIN=lin:0.1,0.9", "--samples", "4", "--pbt"], "STD_MIN"),
        (
            ["--sample", "TAU=log:0.01,0.1", "--samples", "2", "--grid", "TAU=0.1"],
            "--sample TAU: TAU is also",
        ),
    ],
)
def test_bad_search_input_is_refused_before_compiling(flags, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _plan(*flags)


def test_pbt_without_a_space_is_refused(capsys):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--pbt"])
    assert "--pbt needs a search space" in capsys.readouterr().err


# ------------------------------------------------------------------------------- end to end
PBT = [
    "--env", "Pendulum-v1", "--seeds", "2", "--samples", "4", "--pbt", "--pbt-every", "1",
    "--sample", "CRITIC_LEARNING_RATE=log:1e-4,1e-2", "--sample", "TAU=lin:0.01,0.5",
    *set_flags(TINY), "--quiet", "--no-plots", "--checkpoint-every", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def pbt_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("pbt")
    sweep.run_sweep(sweep.parse_args([*PBT, "--out", str(out)]))
    return out


def _results(out):
    (path,) = sorted((out / "combo_000").glob("agents_*.npz"))
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k != "meta"}


def test_keep_experience_flag_reaches_the_pbt_step():
    config = ft.make_config("Pendulum-v1", **TINY)
    for flags, copy in (([], True), (["--pbt-keep-experience"], False)):
        args = sweep.parse_args([*PBT, *flags])
        plan = sweep._search_plan(args, search.parse_space(args.sample), config, agents=8)
        assert plan.pbt.copy_experience is copy


def test_pbt_results_hold_the_lineage(pbt_sweep):
    arrays = _results(pbt_sweep)
    spec = json.loads((pbt_sweep / "sweep.json").read_text())
    assert spec["search"]["pbt"]["copy_experience"] is True  # the default, recorded
    assert arrays["pbt_parent"].shape == (8, 4)  # start + generations after evals 1, 2, 3
    np.testing.assert_array_equal(arrays["pbt_parent"][:, 0], np.arange(8))
    assert ((arrays["pbt_parent"][:, 1:] != np.arange(8)[:, None]).sum(axis=0) == 2).all()
    starts = [spec["search"]["points"][a // 2]["TAU"] for a in range(8)]
    np.testing.assert_array_equal(arrays["pbt_TAU"][:, 0], np.float32(starts))
    np.testing.assert_array_equal(arrays["hparam_TAU"], arrays["pbt_TAU"][:, -1])
    # Fitness at step g is each agent's eval return of the generation before it (every = 1).
    np.testing.assert_array_equal(arrays["pbt_fitness"][:, 1:], arrays["metric_eval_return"][:, :3])


def test_pbt_stopped_mid_run_resumes_bit_for_bit(pbt_sweep, tmp_path, monkeypatch):
    calls = iter(range(100))
    monkeypatch.setattr(interrupts.STOP, "requested", lambda: next(calls) == 1)  # stop after eval 2
    args = sweep.parse_args([*PBT, "--out", str(tmp_path)])
    with pytest.raises(interrupts.Interrupted, match="eval 2/4"):
        sweep.run_sweep(args)
    (checkpoint,) = (tmp_path / "combo_000").glob("checkpoint_*.npz")
    assert len(json.loads(str(np.load(checkpoint)["meta"]))["pbt_lineage"]) == 3
    monkeypatch.setattr(interrupts.STOP, "requested", lambda: False)
    sweep.run_sweep(args)
    resumed, whole = _results(tmp_path), _results(pbt_sweep)
    assert resumed.keys() == whole.keys()
    for name, values in whole.items():
        np.testing.assert_array_equal(resumed[name], values, err_msg=name)


def test_best_schedule_is_written_and_replayed_between_evaluations(pbt_sweep, tmp_path, capsys):
    rows = results.summarize(pbt_sweep)  # the drawn points ranked, each row naming its values
    points = json.loads((pbt_sweep / "sweep.json").read_text())["search"]["points"]
    assert sorted(row["point"] for row in rows) == [0, 1, 2, 3]
    assert all(row["TAU"] == points[row["point"]]["TAU"] and row["seeds"] == 2 for row in rows)
    path = pbt_sweep / "combo_000" / "schedule_best.json"
    assert "its schedule" in capsys.readouterr().out
    schedule = search.load_schedule(path, num_evals=4)
    arrays, agent = _results(pbt_sweep), schedule["source"]["agent"]
    line = search.ancestry(arrays["pbt_parent"], agent)
    assert line[-1] == agent and len(schedule["settings"]) == 4
    for g, entry in enumerate(schedule["settings"]):  # each entry: its ancestor's settings then
        assert entry["TAU"] == float(arrays["pbt_TAU"][line[g], g])
    with pytest.raises(ValueError, match="do not fit a run of 3 evaluations"):
        search.load_schedule(path, num_evals=3)
    # Replayed on new seeds (sweep.py --schedule): the agents start at its first entry ...
    replay = _plan("--schedule", str(path), "--seed", "7", "--out", str(tmp_path)).combinations[0]
    np.testing.assert_array_equal(replay.hparams["TAU"], np.float32(schedule["settings"][0]["TAU"]))
    # ... and take the next entry at each generation's first evaluation, every row.
    runner = _population()[0]
    between = search.Search(0, None, search.Plan(schedule=schedule))
    for evals in range(1, 4):
        runner = between.after_eval(runner, evals, np.zeros((8, evals)))
        np.testing.assert_array_equal(runner.hparams["TAU"], np.float32(schedule["settings"][evals]["TAU"]))


def test_search_figures_are_drawn(pbt_sweep):
    from fasttd3x.figures import draw_search_figures, samples_figure
    from fasttd3x.results import load_sweep

    loaded = load_sweep(pbt_sweep)
    (png,) = draw_search_figures(loaded, pbt_sweep)
    assert png.name == "pbt_combo_000.png" and png.stat().st_size > 0
    space = search.parse_space(loaded["search"]["sample"])
    fig = samples_figure(loaded, loaded["combos"][0], space, threshold=-200.0)
    dots = [len(c.get_offsets()) for ax in fig.axes for c in ax.collections]
    assert sum(dots) == 8 * len(space)  # every agent a dot in every panel
    assert fig.axes[0].get_xscale() == "log" and fig.axes[1].get_xscale() == "linear"
