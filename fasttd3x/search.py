"""Search over traced settings: quasi-random sampling, population-based training, schedules.

Pure pieces, usable from a notebook as from the sweep:

    space = parse_space(["CRITIC_LEARNING_RATE=log:1e-4,1e-2", "TAU=lin:0.005,0.2"])
    points = sample_points(space, 16, seed=0)      # [{KEY: float32 value}], scrambled Halton
    runner, record = pbt_step(runner, fitness, rng, space, PBTConfig(every=2, population=16))

`pbt_step` is one exploit/explore step over a vmapped `Runner` (axes `RUNNER_AXES`): the bottom
`fraction` of the population by `fitness` take the complete state of an agent drawn from the top
`fraction` (a gather along the agent axis: networks, optimizers, target critic, normalizers,
replay buffer, env and exploration state), perturb or resample each searched setting within its
range, and continue on a fresh RNG stream. Being one gather it runs sharded over devices and
processes like the rest of the state. `Search` drives it (or a replayed schedule) between the
evaluations of a sweep call, and holds what a checkpoint must keep of it.

Fitness (`fitness`): the last eval return. Measured on the 192 Pendulum-v1 agents of
bench/results/tuning_pendulum (bench/bench_search.py --fitness-check), the last evaluation ranks
agents by their final return better than the mean of the last 2 or 4 (Spearman 0.71 against 0.62
and 0.34 at evaluation 6 of 20): agents improve fast, and older evaluations are stale.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import purejax_fasttd3 as ft
from fasttd3x import checkpoints, configs, distributed

DISTRIBUTIONS = ("log", "lin", "choice")
SCHEDULE_FORMAT = "fasttd3x-schedule/1"
LINEAGE_FIELDS = ("pbt_parent", "pbt_fitness")  # the other pbt_<KEY> arrays are settings


# ==================================================================================================
# SEARCH SPACE
# ==================================================================================================
class Dim(NamedTuple):
    """One searched traced setting: `log` or `lin` over [lo, hi], or one of `choices`."""

    key: str
    kind: str  # "log", "lin" or "choice"
    lo: float
    hi: float
    choices: tuple[float, ...] = ()  # sorted, for "choice"

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.key}=choice:{','.join(f'{c:g}' for c in self.choices)}"
        return f"{self.key}={self.kind}:{self.lo:g},{self.hi:g}"


def parse_space(items: list[str], flag: str = "--sample") -> tuple[Dim, ...]:
    """`KEY=log:LO,HI`, `KEY=lin:LO,HI` or `KEY=choice:V1,V2,...` items to a search space;
    only traced settings, each once, with LO < HI and a log range above zero."""
    space: list[Dim] = []
    for item in items:
        key, sep, rest = item.partition("=")
        kind, colon, raw = rest.partition(":")
        key, kind = key.strip(), kind.strip()
        if not sep or not colon or not key or not raw:
            raise ValueError(
                f"{flag} expects KEY=log:LO,HI, KEY=lin:LO,HI or KEY=choice:V1,V2,..., got {item!r}"
            )
        if key in configs.STATIC_DEFAULTS:
            raise ValueError(
                f"{flag} {item}: {key} is a static setting (it changes shapes or loop counts); "
                f"only traced settings can be searched inside one program: {sorted(configs.HPARAM_DEFAULTS)}"
            )
        if key not in configs.HPARAM_DEFAULTS:
            raise ValueError(
                f"{flag} {item}: unknown traced setting {key}; allowed: {sorted(configs.HPARAM_DEFAULTS)}"
            )
        if any(dim.key == key for dim in space):
            raise ValueError(f"{flag} {key} is given twice")
        if kind not in DISTRIBUTIONS:
            raise ValueError(
                f"{flag} {item}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}"
            )
        try:
            values = [float(v) for v in raw.split(",")]
        except ValueError:
            raise ValueError(f"{flag} {item}: the values must be numbers") from None
        if not all(map(math.isfinite, values)):
            raise ValueError(f"{flag} {item}: the values must be finite")
        if kind == "choice":
            choices = tuple(sorted(set(values)))
            if len(choices) < 2:
                raise ValueError(f"{flag} {item}: a choice needs at least two different values")
            space.append(Dim(key, kind, choices[0], choices[-1], choices))
            continue
        if len(values) != 2:
            raise ValueError(f"{flag} {item}: {kind} takes two values, LO,HI")
        lo, hi = values
        if lo >= hi:
            raise ValueError(f"{flag} {item}: LO={lo:g} must be below HI={hi:g}")
        if kind == "log" and lo <= 0:
            raise ValueError(f"{flag} {item}: a log range must lie above zero, LO={lo:g}")
        space.append(Dim(key, kind, lo, hi))
    return tuple(space)


def check_space_corners(space: tuple[Dim, ...], config: dict, flag: str = "--sample") -> None:
    """Refuses a space some point of which breaks `validate_hparams` with the config's other
    settings (e.g. STD_MIN above STD_MAX). The checks are bounds on one setting or an order of
    two, so checking every corner of the box checks the whole box."""
    base = {key: config[key] for key in configs.HPARAM_DEFAULTS}
    for corner in itertools.product(*[(dim.lo, dim.hi) for dim in space]):
        point = {**base, **{dim.key: value for dim, value in zip(space, corner)}}
        try:
            configs.validate_hparams(point)
        except ValueError as error:
            ranges = " ".join(dim.describe() for dim in space)
            raise ValueError(
                f"{flag} {ranges}: the point {dict(zip((d.key for d in space), corner))} "
                f"of this range is invalid: {error}"
            ) from None


def from_unit(dim: Dim, u):
    """Maps u in [0, 1) to the setting's range (log-uniform for log ranges). NumPy or jnp."""
    xp = jnp if isinstance(u, jax.Array) else np
    if dim.kind == "lin":
        return dim.lo + u * (dim.hi - dim.lo)
    if dim.kind == "log":
        return xp.exp(math.log(dim.lo) + u * (math.log(dim.hi) - math.log(dim.lo)))
    index = xp.minimum(xp.floor(u * len(dim.choices)).astype(xp.int32), len(dim.choices) - 1)
    return xp.asarray(dim.choices, xp.float32)[index]


def sample_points(space: tuple[Dim, ...], n: int, seed: int) -> list[dict[str, float]]:
    """`n` points of `space`, scrambled Halton (quasi-random: spread more evenly than i.i.d.
    draws), reproducible from `seed`; values are float32 as the agents use them."""
    if not space:
        return [{} for _ in range(n)]
    from scipy.stats import qmc  # here: scipy.stats takes 1.5 s to import, and the sweep imports us

    unit = qmc.Halton(d=len(space), scramble=True, seed=seed).random(n)
    columns = [
        np.clip(from_unit(dim, unit[:, d]), dim.lo, dim.hi).astype(np.float32) for d, dim in enumerate(space)
    ]
    return [{dim.key: float(column[i]) for dim, column in zip(space, columns)} for i in range(n)]


# ==================================================================================================
# POPULATION-BASED TRAINING
# ==================================================================================================
class PBTConfig(NamedTuple):
    """How a PBT step exploits and explores (static under jit)."""

    every: int  # evaluations per generation
    population: int  # rows 0..population-1 take part; rows past it (padding) are left alone
    fraction: float = 0.25  # the bottom `fraction` copy an agent of the top `fraction`
    factors: tuple[float, float] = (0.8, 1.2)  # perturbation factors, one drawn per setting
    resample: float = 0.25  # probability that a setting is drawn anew from its range instead
    # True: a replaced agent also takes its parent's experience (replay buffer, envs, running
    # episodes and their exploration noise). False: it keeps its own and takes only the learner
    # (networks, optimizers, target critic, normalizers), so its data stays one stream of its own.
    copy_experience: bool = True

    @property
    def replaced(self) -> int:
        """Agents replaced (and parents to draw from) per generation."""
        return int(self.fraction * self.population)


def check_pbt(config: PBTConfig, space: tuple[Dim, ...], num_evals: int) -> None:
    """Refuses PBT settings that cannot run, naming the flag."""
    if not space:
        raise ValueError("--pbt needs a search space: give the settings to explore with --sample KEY=...")
    if not 0 < config.fraction <= 0.5:
        raise ValueError(f"--pbt-fraction must lie in (0, 0.5], got {config.fraction:g}")
    if config.replaced < 1:
        raise ValueError(
            f"--pbt-fraction {config.fraction:g}: a population of {config.population} agents has no agent "
            f"in its bottom {config.fraction:g}; use at least {math.ceil(1 / config.fraction)} agents"
        )
    if config.every < 1 or config.every >= num_evals:
        raise ValueError(
            f"--pbt-every {config.every}: must lie in 1..{num_evals - 1}, the run has {num_evals} "
            "evaluations (a generation must end before the run does)"
        )
    if not 0 <= config.resample <= 1:
        raise ValueError(f"--pbt-resample must be a probability in [0, 1], got {config.resample:g}")
    if not 0 < config.factors[0] <= 1 <= config.factors[1]:
        raise ValueError(f"--pbt-factors must be DOWN,UP with 0 < DOWN <= 1 <= UP, got {config.factors}")


def fitness(eval_returns: np.ndarray) -> np.ndarray:
    """Each agent's last eval return ([agents, evals] so far); -inf where it is not finite, so
    such an agent is never a parent."""
    last = np.asarray(eval_returns, np.float32)[:, -1]
    return np.where(np.isfinite(last), last, -np.inf).astype(np.float32)


def exploit_parents(fitness_values, rng, config: PBTConfig):
    """int32 [rows]: the row each row continues from. The bottom `replaced` of the population
    (ties broken by row) each draw a parent uniformly from the top `replaced`; every other row
    keeps its own state."""
    rows = fitness_values.shape[0]
    order = jnp.argsort(fitness_values[: config.population], stable=True)  # worst first
    bottom, top = order[: config.replaced], order[config.population - config.replaced :]
    picks = jax.random.randint(rng, (config.replaced,), 0, config.replaced)
    return jnp.arange(rows, dtype=jnp.int32).at[bottom].set(top[picks].astype(jnp.int32))


def explore(dim: Dim, values, rng, config: PBTConfig):
    """Perturbed or resampled values of one setting, within its range. A log setting is
    multiplied by a factor (a step in log space), a lin one moved by (factor - 1) x its range's
    width, a choice moved to the next value down or up; with probability `resample` the value
    is drawn anew from the range instead."""
    k_up, k_resample, k_new = jax.random.split(rng, 3)
    up = jax.random.bernoulli(k_up, 0.5, values.shape)
    factor = jnp.where(up, config.factors[1], config.factors[0])
    if dim.kind == "log":
        moved = values * factor
    elif dim.kind == "lin":
        moved = values + (factor - 1.0) * (dim.hi - dim.lo)
    else:
        choices = jnp.asarray(dim.choices, jnp.float32)
        index = jnp.argmin(jnp.abs(values[:, None] - choices[None, :]), axis=1)
        moved = choices[jnp.clip(index + jnp.where(up, 1, -1), 0, len(dim.choices) - 1)]
    fresh = from_unit(dim, jax.random.uniform(k_new, values.shape))
    resampled = jax.random.bernoulli(k_resample, config.resample, values.shape)
    return jnp.clip(jnp.where(resampled, fresh, moved), dim.lo, dim.hi).astype(values.dtype)


# What an agent keeps of its own under PBTConfig(copy_experience=False): the data it collected and
# the envs (with the running episodes' returns and exploration noise) that go on collecting it.
EXPERIENCE_FIELDS = ("buffer", "env_state", "episode_return", "noise_scale")


def pbt_step(runner: ft.Runner, fitness_values, rng, space: tuple[Dim, ...], config: PBTConfig):
    """One exploit/explore step over a vmapped `Runner` (axes `ft.RUNNER_AXES`).

    Returns (runner, record): every leaf of a replaced row is its parent's row, except the
    searched settings (explored), the RNG (`fold_in(key, row)`, `key` split from `rng`: a
    stream new for that row and, through `rng`, for that generation) and, without
    `config.copy_experience`, its experience (`EXPERIENCE_FIELDS`); other rows are unchanged.
    `record` has "parent" [rows], "fitness" [rows] and "hparams" {key: [rows]} of the searched
    settings now."""
    k_exploit, k_stream, k_explore = jax.random.split(rng, 3)
    parents = exploit_parents(fitness_values, k_exploit, config)
    gathered = jax.tree.map(
        lambda axis, tree: tree if axis is None else jax.tree.map(lambda x: x[parents], tree),
        ft.RUNNER_AXES,
        runner,
        is_leaf=lambda x: x is None,
    )
    if not config.copy_experience:
        gathered = gathered._replace(**{field: getattr(runner, field) for field in EXPERIENCE_FIELDS})
    rows = jnp.arange(parents.shape[0], dtype=jnp.int32)
    replaced = parents != rows
    streams = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(k_stream, rows)
    rng_rows = jnp.where(replaced[:, None], streams, gathered.rng)
    hparams = dict(gathered.hparams)
    for d, dim in enumerate(space):
        explored = explore(dim, hparams[dim.key], jax.random.fold_in(k_explore, d), config)
        hparams[dim.key] = jnp.where(replaced, explored, hparams[dim.key])
    runner = gathered._replace(hparams=hparams, rng=rng_rows)
    record = {"parent": parents, "fitness": fitness_values, "hparams": {d.key: hparams[d.key] for d in space}}
    return runner, record


def generation_key(seed: int, generation: int):
    """The PRNG key of PBT step `generation` (1, 2, ...) of a sweep with master seed `seed`."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EA4C4), generation)


# ==================================================================================================
# LINEAGE AND SCHEDULES
# ==================================================================================================
def lineage_arrays(lineage: list[dict], population: int) -> dict[str, np.ndarray]:
    """The lineage as results arrays, [agents, generations + 1] each: `pbt_parent` (column g:
    the row whose state the agent took at step g; column 0, the start, itself), `pbt_fitness`
    (at step g; NaN at the start) and `pbt_<KEY>` (each searched setting after step g)."""
    n = population
    arrays = {
        "pbt_parent": np.stack([np.asarray(r["parent"], np.int64)[:n] for r in lineage], axis=1),
        "pbt_fitness": np.stack([np.asarray(r["fitness"], np.float32)[:n] for r in lineage], axis=1),
    }
    for key in lineage[0]["hparams"]:
        arrays[f"pbt_{key}"] = np.stack(
            [np.asarray(r["hparams"][key], np.float32)[:n] for r in lineage], axis=1
        )
    return arrays


def start_record(hparams: dict, space: tuple[Dim, ...], rows: int) -> dict:
    """Column 0 of the lineage: every row its own parent, no fitness, its starting settings."""
    return {
        "parent": np.arange(rows),
        "fitness": np.full(rows, np.nan, np.float32),
        "hparams": {dim.key: np.asarray(hparams[dim.key], np.float32) for dim in space},
    }


def ancestry(parents: np.ndarray, agent: int) -> np.ndarray:
    """The row agent `agent` descends from in each column of `parents` [agents, G + 1]: its
    own row in the last, and at each step back the parent it copied there."""
    rows = np.empty(parents.shape[1], np.int64)
    rows[-1] = agent
    for g in range(parents.shape[1] - 1, 0, -1):
        rows[g - 1] = parents[rows[g], g]
    return rows


def agent_schedule(arrays: dict, agent: int, keys: list[str]) -> list[dict[str, float]]:
    """Settings of `agent`'s line through the run: entry g holds them from generation g on."""
    line = ancestry(arrays["pbt_parent"], agent)
    return [{key: float(arrays[f"pbt_{key}"][row, g]) for key in keys} for g, row in enumerate(line)]


def best_agents(arrays: dict, count: int) -> list[int]:
    """The `count` agents with the best final fitness (last eval return)."""
    final = fitness(arrays["metric_eval_return"])
    return [int(a) for a in np.argsort(-final, kind="stable")[:count]]


def schedule_spec(env: str, every: int, settings: list[dict], source: dict) -> dict:
    """A schedule file's content: `settings[g]` applies from evaluation g * every on."""
    return {"format": SCHEDULE_FORMAT, "env": env, "every": every, "settings": settings, "source": source}


def report_pbt(sweep: dict, combo: dict, folder: pathlib.Path, count: int = 3) -> pathlib.Path:
    """Prints the `count` best final agents of a PBT combination (`results.load_sweep`'s)
    with their lines' settings per generation, and writes the best one's schedule to
    folder/schedule_best.json (replay it on new seeds with fasttd3x-sweep --schedule)."""
    every, arrays = sweep["search"]["pbt"]["every"], combo["arrays"]
    keys = [name[len("pbt_") :] for name in arrays if name.startswith("pbt_") and name not in LINEAGE_FIELDS]
    final = fitness(arrays["metric_eval_return"])
    best = best_agents(arrays, count)
    print(f"\nPBT, combo {combo['index']}: best agents by final eval return")
    for agent in best:
        line = agent_schedule(arrays, agent, keys)
        steps = " -> ".join(", ".join(f"{k}={v:.3g}" for k, v in entry.items()) for entry in line)
        print(f"  agent {agent}: {final[agent]:.1f}; every {every} evals: {steps}")
    source = {
        "sweep": str(folder.parent),
        "combo": combo["index"],
        "agent": best[0],
        "fitness": float(final[best[0]]),
    }
    path = folder / "schedule_best.json"
    checkpoints.write_json(
        path, schedule_spec(sweep["env"], every, agent_schedule(arrays, best[0], keys), source)
    )
    print(f"  its schedule: {path} (replay: python sweep.py --schedule {path} ...)")
    return path


def load_schedule(path, num_evals: int, flag: str = "--schedule") -> dict:
    """A schedule file, refused by name when it cannot drive a run of `num_evals` evaluations."""
    try:
        spec = json.loads(pathlib.Path(path).read_text())
        every, settings = int(spec["every"]), list(spec["settings"])
        if spec.get("format") != SCHEDULE_FORMAT:
            raise ValueError(f"format {spec.get('format')!r}, expected {SCHEDULE_FORMAT!r}")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{flag} {path}: not a schedule file ({type(error).__name__}: {error})") from None
    keys = set(settings[0]) if settings else set()
    if not settings or any(set(s) != keys for s in settings) or not keys <= set(configs.HPARAM_DEFAULTS):
        raise ValueError(f"{flag} {path}: every entry must set the same traced settings")
    if every < 1 or (len(settings) - 1) * every >= num_evals:
        raise ValueError(
            f"{flag} {path}: {len(settings)} entries every {every} evaluations do not fit a run of "
            f"{num_evals} evaluations"
        )
    return spec


# ==================================================================================================
# DRIVING A SWEEP CALL
# ==================================================================================================
class Plan(NamedTuple):
    """A combination's search: the space, PBT's settings (None: no PBT), a schedule to replay
    (`load_schedule`'s dict; None: none). The empty plan changes nothing between evaluations."""

    space: tuple[Dim, ...] = ()
    pbt: PBTConfig | None = None
    schedule: dict | None = None


class Search:
    """What a sweep call does between evaluations: PBT steps, or a replayed schedule's changes.

    `after_eval(state, evals, eval_returns)` returns the state to go on with after `evals`
    evaluations (`eval_returns` [rows, evals] so far); `checkpoint_meta()` is what a checkpoint
    must hold of it and `restore(meta)` takes it back, so a resumed call goes on bit for bit;
    `results(n)` gives the arrays for the results file of the call's first n rows."""

    def __init__(self, seed: int, state_sharding, plan: Plan):
        self.seed, self.space, self.pbt, self.schedule = seed, plan.space, plan.pbt, plan.schedule
        self.lineage: list[dict] = []
        self._sharding = state_sharding
        if self.pbt is not None:
            self._step = jax.jit(
                functools.partial(pbt_step, space=self.space, config=self.pbt),
                out_shardings=(state_sharding, None),
                donate_argnums=0,
            )

    def start(self, hparams: dict) -> None:
        """A call starting from scratch with these per-row settings."""
        if self.pbt is not None:
            self.lineage = [start_record(hparams, self.space, len(next(iter(hparams.values()))))]

    def after_eval(self, state, evals: int, eval_returns: np.ndarray):
        if self.pbt is not None and evals % self.pbt.every == 0:
            generation = evals // self.pbt.every
            values = fitness(eval_returns)
            state, record = self._step(
                state,
                distributed.place(values, self._sharding.evals_done),
                generation_key(self.seed, generation),
            )
            self.lineage.append(distributed.to_host(record))
        if self.schedule is not None and evals % self.schedule["every"] == 0:
            g = evals // self.schedule["every"]
            if g < len(self.schedule["settings"]):
                state = with_settings(state, self.schedule["settings"][g])
        return state

    def checkpoint_meta(self) -> dict:
        if self.pbt is None:
            return {}
        as_lists = lambda r: jax.tree.map(lambda x: np.asarray(x).tolist(), r)  # noqa: E731
        return {"pbt_lineage": [as_lists(r) for r in self.lineage]}

    def restore(self, meta: dict) -> None:
        if self.pbt is not None:
            self.lineage = [jax.tree.map(np.asarray, r) for r in meta["pbt_lineage"]]

    def results(self, n: int) -> dict[str, np.ndarray]:
        return lineage_arrays(self.lineage, n) if self.pbt is not None else {}


def with_settings(state: ft.Runner, settings: dict[str, float]) -> ft.Runner:
    """`state` with these traced settings for every row, placed as the old ones were."""
    hparams = dict(state.hparams)
    for key, value in settings.items():
        old = hparams[key]
        hparams[key] = distributed.place(np.full(old.shape, value, np.float32), old.sharding)
    return state._replace(hparams=hparams)
