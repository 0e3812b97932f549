"""FastTD3X and the PyTorch reference FastTD3 (younggyoseo/FastTD3 at 229ed59) side by side on
MuJoCo Playground tasks, on this machine's CPU: learning curves over seeds, and one agent's
iterations/s.

    python bench/bench_reference.py --learn --env CartpoleSwingup --seeds 8 [--iterations 5000] [--jobs 2]
    python bench/bench_reference.py --throughput --env CartpoleSwingup
    python bench/bench_reference.py --learn --env CartpoleBalance --agent fasttd3_simbav2

`--agent` is the reference's `--agent` and our `AGENT` (the SimbaV2 networks with `fasttd3_simbav2`),
the same on both sides; the results file keys each task by its agent when it is not the default.

Both sides get the reference's defaults for the task except the sizes a 2-core CPU needs, the same
for both (`--num-envs`, `--num-eval-envs`, `--batch-size`, `--critic-hidden-dim`,
`--actor-hidden-dim`), and the same budget of `--iterations` (one iteration steps every training
env once) with an evaluation every `--eval-interval` iterations: the deterministic actor, one full
episode on each of the eval envs, which start every evaluation from the same states (both sides).
The reference's own parsed settings are recorded next to our config, and every setting that
differs is listed in the JSON (`settings_differences`).

The reference runs in a throwaway venv built on first use under `--cache` (reused afterwards):
its source is extracted there from `--reference-git-dir` (a git directory holding the commit) or
cloned from GitHub, never copied into this repository, with a CPU torch, tensordict, tyro, tqdm,
loguru and the jax/playground/mujoco versions this environment has (our requirements.txt pins).
`bench/reference_worker.py` runs the reference's own `train.py` main loop in that venv for one
seed (`--no-cuda --no-amp --no-compile`: eager torch, no AMP on CPU) and records the reference's
own evaluations as they happen; `bench/reference_worker_patch.py` makes playground 0.2.0 behave
like the authors' fork at run time.

The two sides count the same evaluations: the reference evaluates at iteration indices
E, 2E, ..., T (run for T + 1 iterations: it evaluates after the update of index g, when g % E == 0,
and never after its last one), ours after iterations E, 2E, ..., T. Env steps are recorded as
iteration * num_envs for both; the reference has then taken one iteration more (num_envs env
steps, one update step), which is far below the eval spacing.

`--reference-evaluation` (with --learn) evaluates ours the reference's way instead: from its
start states (its eval envs reset with `jax.random.split(PRNGKey(seed), num_eval_envs)`, where
ours use the run's own key) and after its iteration count (iteration index 0 first, then E per
evaluation: evaluations after the same g + 1 iterations as the reference's). Its runs go to their
own entry, "<task> (reference evaluation)"; the reference side is the same runs.

`--equivalence` (with --learn) runs the pre-registered equivalence study of parity
(`EQUIVALENCE_PROTOCOL`, recorded in the task's own entry "<task> (equivalence)" before its first
run): per seed the mean evaluation return over all evaluations, two one-sided Welch tests
against a margin of 20% of the reference's mean (`tost_welch`, reported with the 90% CI), at
least 24 seeds a side, evaluations every 100 iterations on 64 eval envs. `seeds_for_equivalence`
sizes the seed count from a pilot's spread. Not yet run.

--learn is resumable per (task, implementation, seed), and `--collect-only` merges what finished
under --cache (e.g. seeds run in other processes) without training anything. `--side ours` and
`--side reference` train one side only, so two processes can run the two sides at once (the JSON
is merged under a lock); `--ours-group N` trains our seeds N per program, each group saved when it
finishes (with the persistent compilation cache, later groups load the first one's program): seeds already in
bench/results/reference_learning_cpu.json are skipped; a reference seed whose worker finished
(its file under --cache) is merged without rerunning. Our seeds run vmapped in one program, seed s
on `jax.random.PRNGKey(s)`; the reference's seed s is its `--seed s`. The JSON is rewritten after
every seed, with statistics over the seeds done so far and a status that says which are missing.

--throughput times one agent of each side alone, one after the other, both warmed up, `--repeats`
times each (medians reported): the reference over `--measure-iterations` after
`--warmup-iterations` (from the wall times of its logging calls, every 100 iterations), a fresh
process per run, at each of `--torch-threads` (its `train.py` sets OMP_NUM_THREADS=1; 2 gives
torch both cores, as XLA has); ours over compiled chunks of `--measure-iterations` after a first,
warming chunk. The load average before each side is recorded, so a number taken while other work
shared the CPU is visible. Writes bench/results/reference_throughput_cpu.json.

    python bench/bench_reference.py --throughput --env CartpoleBalance --torch-threads 1 2 --repeats 5
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import importlib.metadata
import itertools
import json
import math
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

import purejax_fasttd3 as ft
from common import RESULTS, Chunks, environment, write
from fasttd3x import compile_cache, envs, progress
from fasttd3x.results import bootstrap_ci

REFERENCE_REPO = "younggyoseo/FastTD3"
REFERENCE_COMMIT = "229ed59"
DEFAULT_CACHE = f"~/.cache/fasttd3x/reference-{REFERENCE_COMMIT}"
WORKER = pathlib.Path(__file__).resolve().with_name("reference_worker.py")
LEARNING_NAME = "reference_learning_cpu"
THROUGHPUT_NAME = "reference_throughput_cpu"

# The venv gets the versions of these that this environment has, i.e. our requirements.txt pins.
SHARED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "playground", "mujoco", "mujoco-mjx", "brax")
REFERENCE_ONLY_PACKAGES = ("tensordict", "tyro", "tqdm", "loguru")
TORCH_SPEC = "torch==2.13.0+cpu"  # a CPU build: the CUDA wheels pull gigabytes of unused libraries
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# Sizes a 2-core CPU needs, the same for both sides; everything else is the reference's default.
CPU_SIZES = {
    "num_envs": 16,
    "num_eval_envs": 16,
    "batch_size": 512,
    "critic_hidden_dim": 256,
    "actor_hidden_dim": 128,
}

# Our config keys are the reference's argument names in upper case; these have no counterpart.
OURS_ONLY = {
    "ENV_NAME", "COMPUTE_DTYPE", "EPISODE_LENGTH", "ACTION_REPEAT", "IMPL", "PHYSICS_PRECISION",
    "RESET_MODE", "PRE_TANH_PENALTY",
}  # fmt: skip


# ------------------------------------------------------------------------------------ statistics
def mean_ci(x, reps: int = 10_000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap (1 - alpha) interval of the mean of `x` (seeds resampled)."""
    low, high = bootstrap_ci(np.asarray(x, float), statistic=np.mean, reps=reps, alpha=alpha, seed=seed)
    return float(low), float(high)


def welch_test(a, b) -> dict:
    """Welch's two-sided t-test of equal means without assuming equal variances."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_test needs at least 2 values per sample, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    if va + vb == 0:  # both samples constant: the means are either equal or surely different
        return {"t": 0.0 if diff == 0 else math.copysign(math.inf, diff), "df": None, "p": float(diff == 0)}
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return {"t": float(t), "df": float(df), "p": float(2 * scipy.stats.t.sf(abs(t), df))}


def permutation_test(a, b, reps: int = 20_000, seed: int = 0) -> dict:
    """Two-sided permutation test of the difference in means: exact over every split of the pooled
    values when there are at most `reps` splits, else `reps` random relabellings with the
    (count + 1) / (reps + 1) estimate, which never reports p = 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"permutation_test needs values on both sides, got {len(a)} and {len(b)}")
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    tolerance = 1e-12 * max(1.0, np.abs(pooled).max())  # ties with the observed split count
    splits = math.comb(len(pooled), len(a))
    if splits <= reps:
        first = np.zeros((splits, len(pooled)), bool)
        for row, chosen in enumerate(itertools.combinations(range(len(pooled)), len(a))):
            first[row, list(chosen)] = True
        diffs = np.abs((first * pooled).sum(1) / len(a) - (~first * pooled).sum(1) / len(b))
        return {"p": float(np.mean(diffs >= observed - tolerance)), "method": "exact", "splits": splits}
    rng = np.random.default_rng(seed)
    order = rng.permuted(np.tile(np.arange(len(pooled)), (reps, 1)), axis=1)
    shuffled = pooled[order]
    diffs = np.abs(shuffled[:, : len(a)].mean(1) - shuffled[:, len(a) :].mean(1))
    count = int(np.sum(diffs >= observed - tolerance))
    return {"p": (count + 1) / (reps + 1), "method": "monte_carlo", "splits": reps}


# The pre-registered equivalence study of parity with the reference, written before any of its runs: `--learn
# --equivalence` records it in the task's entry when the entry is created, then runs.
EQUIVALENCE_PROTOCOL = {
    "primary_measure": "each seed's mean evaluation return over all of its evaluations "
    "(area under the curve)",
    "test": "two one-sided Welch t-tests (TOST) of ours minus reference against -margin and +margin, "
    "each at alpha; equivalent when both reject, i.e. when the (1 - 2 alpha) Welch CI of the difference "
    "lies inside [-margin, +margin]",
    "margin_fraction_of_reference_mean": 0.2,
    "alpha": 0.05,
    "min_seeds_per_side": 24,
    "seeds": "the same seed numbers on both sides (0..N-1)",
    "eval_interval": 100,
    "num_eval_envs": 64,
    "tasks": {
        "CartpoleSwingup": "1,500 iterations",
        "second": "a DeepMind Control task of another kind at a short budget; it and its seed count "
        "are chosen from a pilot's spread of the primary measure with seeds_for_equivalence "
        "(power 0.8 at a true difference of 0), written here before its runs",
    },
    "report": [
        "the 90% CI of the difference against +-margin and the TOST verdict, per task",
        "curves with bootstrap bands, final-return distributions, the first evaluation above the plateau",
    ],
}


def area_under_curve(run: dict) -> float:
    """The protocol's primary measure: a seed's mean evaluation return over its evaluations."""
    return float(np.mean(run["eval_return"]))


def tost_welch(ours, reference, margin_fraction: float = 0.2, alpha: float = 0.05) -> dict:
    """TOST of ours minus reference with Welch's standard error and degrees of freedom against
    +-margin_fraction x |reference mean|: both one-sided p-values, the (1 - 2 alpha) CI and the
    verdict (equivalent iff the CI lies inside the margins, iff both p < alpha)."""
    a, b = np.asarray(ours, float), np.asarray(reference, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"tost_welch needs at least 2 values per sample, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff, margin = a.mean() - b.mean(), margin_fraction * abs(b.mean())
    p_lower = scipy.stats.t.sf((diff + margin) / se, df)  # H0: diff <= -margin
    p_upper = scipy.stats.t.cdf((diff - margin) / se, df)  # H0: diff >= +margin
    half = scipy.stats.t.ppf(1 - alpha, df) * se
    return {
        "difference": float(diff),
        "margin": float(margin),
        "ci": [float(diff - half), float(diff + half)],
        "ci_level": 1 - 2 * alpha,
        "df": float(df),
        "p_lower": float(p_lower),
        "p_upper": float(p_upper),
        "equivalent": bool(max(p_lower, p_upper) < alpha),
    }


def seeds_for_equivalence(sd_ours: float, sd_reference: float, margin: float, alpha=0.05, power=0.8) -> int:
    """Seeds per side for TOST to conclude equivalence with `power` when the true difference is 0:
    n = (z(1 - alpha) + z(1 - (1 - power) / 2))^2 (sd_ours^2 + sd_reference^2) / margin^2, the
    normal approximation, plus one seed for the t distribution's heavier tails at small n."""
    z = scipy.stats.norm.ppf(1 - alpha) + scipy.stats.norm.ppf(1 - (1 - power) / 2)
    return math.ceil(z**2 * (sd_ours**2 + sd_reference**2) / margin**2) + 1


def intervals_overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return first[0] <= second[1] and second[0] <= first[1]


def compare_finals(reference: list[float], ours: list[float]) -> dict:
    """Final-return distributions of both sides: summary, 95% CIs of the means and the two tests."""
    sides = {"reference": np.asarray(reference, float), "ours": np.asarray(ours, float)}
    out = {}
    for name, x in sides.items():
        out[name] = {
            "seeds": len(x),
            "mean": float(x.mean()),
            "std": float(x.std(ddof=1)) if len(x) > 1 else None,
            "min": float(x.min()),
            "max": float(x.max()),
            "mean_ci95": list(mean_ci(x)),
        }
    out["ours_minus_reference"] = float(sides["ours"].mean() - sides["reference"].mean())
    out["cis_overlap"] = intervals_overlap(out["reference"]["mean_ci95"], out["ours"]["mean_ci95"])
    enough = min(len(x) for x in sides.values()) >= 2
    out["welch"] = welch_test(sides["reference"], sides["ours"]) if enough else None
    out["permutation"] = permutation_test(sides["reference"], sides["ours"]) if enough else None
    return out


# ----------------------------------------------------------------------------- results and resume
def new_task_entry(settings: dict, seeds_target: int) -> dict:
    return {"settings": settings, "seeds_target": seeds_target, "runs": {"reference": {}, "ours": {}}}


def task_entry(result: dict, task: str, settings: dict, seeds_target: int) -> dict:
    """The task's entry in `result` (added if new). An existing entry must have been run with the
    same settings, or its seeds would not be comparable: the differing ones are named."""
    entry = result.setdefault("tasks", {}).setdefault(task, new_task_entry(settings, seeds_target))
    differing = {
        k: (entry["settings"].get(k), v) for k, v in settings.items() if entry["settings"].get(k) != v
    }
    differing.update({k: (v, None) for k, v in entry["settings"].items() if k not in settings})
    if differing:
        details = ", ".join(
            f"{k}: recorded {old!r}, requested {new!r}" for k, (old, new) in sorted(differing.items())
        )
        raise SystemExit(
            f"{task}: the results file holds seeds run with other settings ({details}); run with the "
            "recorded settings, or move the file away to start over"
        )
    entry["seeds_target"] = max(entry["seeds_target"], seeds_target)
    return entry


def missing_seeds(entry: dict, implementation: str, seeds: list[int]) -> list[int]:
    """The seeds of `seeds` that `entry` has no finished run of for `implementation`."""
    done = entry["runs"][implementation]
    return [s for s in seeds if str(s) not in done]


def add_run(entry: dict, implementation: str, seed: int, run: dict) -> None:
    """Stores one finished seed; its evaluation points must be the task's."""
    expected = entry["settings"]["eval_iterations"]
    if run["iterations"] != expected:
        raise ValueError(
            f"{implementation} seed {seed}: evaluations at iterations {run['iterations']}, "
            f"expected {expected}; the run did not finish or used other settings"
        )
    entry["runs"][implementation][str(seed)] = run


def summarize_task(entry: dict) -> None:
    """Status and final-return comparison over the seeds each side has finished so far."""
    target = list(range(entry["seeds_target"]))
    runs = entry["runs"]
    done = {name: sorted(int(s) for s in runs[name]) for name in runs}
    complete = all(not missing_seeds(entry, name, target) for name in runs)
    entry["status"] = {
        "complete": complete,
        "seeds_done": done,
        "seeds_missing": {name: missing_seeds(entry, name, target) for name in runs},
    }
    finals = {name: [runs[name][str(s)]["eval_return"][-1] for s in done[name]] for name in runs}
    if all(finals.values()):
        entry["final_returns"] = finals
        entry["comparison"] = compare_finals(finals["reference"], finals["ours"])
    both = sorted(set(done["reference"]) & set(done["ours"]))
    if entry["settings"].get("equivalence") and len(both) >= 2:
        areas = {name: [area_under_curve(runs[name][str(s)]) for s in both] for name in runs}
        protocol = entry["protocol"]
        entry["equivalence"] = {
            "seeds": both,
            "area_under_curve": areas,
            "tost": tost_welch(
                areas["ours"],
                areas["reference"],
                protocol["margin_fraction_of_reference_mean"],
                protocol["alpha"],
            ),
        }


def load_results(path: pathlib.Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_task(path: pathlib.Path, name: str, entry: dict, result: dict) -> None:
    """Merges task `name`'s `entry` into the results file as it is now, under a lock: other
    tasks, and seeds of this one that another process (another --side) finished meanwhile, are
    kept and taken into `entry`; the file-level keys come from `result`."""
    with locked(path):
        current = load_results(path)
        on_disk = current.get("tasks", {}).get(name)
        if on_disk and on_disk["settings"] == entry["settings"]:
            for side, runs in on_disk["runs"].items():
                for seed, run in runs.items():
                    entry["runs"][side].setdefault(seed, run)
            for key, value in on_disk.items():  # e.g. the reference's parsed args
                entry.setdefault(key, value)
        summarize_task(entry)
        current.update({k: v for k, v in result.items() if k != "tasks"})
        current.setdefault("tasks", {})[name] = entry
        current["status"] = (
            "complete" if all(t["status"]["complete"] for t in current["tasks"].values()) else "partial"
        )
        write(path.stem, current, path.parent)


@contextlib.contextmanager
def locked(path: pathlib.Path):
    """An exclusive lock on `path`, so processes running other sides or tasks of the study never
    overwrite each other's seeds. The lock file lives in the temporary folder, keyed by the results
    file's absolute path, so nothing but results is left under bench/results."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with open(pathlib.Path(tempfile.gettempdir()) / f"fasttd3x-results-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -------------------------------------------------------------------------------- reference venv
def _venv_check(versions: dict) -> str:
    return (
        "import importlib.metadata as m, torch, tensordict, tyro, tqdm, loguru, mujoco_playground\n"
        f"pins = {versions!r}\n"
        "wrong = {k: m.version(k) for k, v in pins.items() if m.version(k) != v}\n"
        "assert not wrong, f'versions differ from the pins: {wrong}'\n"
    )


def shared_versions() -> dict:
    return {name: importlib.metadata.version(name) for name in SHARED_PACKAGES}


def _run(command: list[str], what: str, **kwargs) -> None:
    print(f"  $ {shlex.join(command)}", flush=True)
    try:
        rc = subprocess.run(command, **kwargs).returncode
    except OSError as err:
        rc = err
    if rc != 0:
        raise SystemExit(f"{what} failed: `{shlex.join(command)}` -> {rc}")


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except OSError:
        return False


def ensure_reference_source(cache: pathlib.Path, git_dir: str | None) -> pathlib.Path:
    """The reference's source tree at REFERENCE_COMMIT under `cache`/src, extracted if needed."""
    source = cache / "src"
    if (source / "fast_td3" / "train.py").exists():
        return source
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="reference_src_", dir=cache))
    if git_dir is None:
        clone = tmp / "clone.git"
        _run(["git", "clone", "--bare", f"https://github.com/{REFERENCE_REPO}", str(clone)],
             f"cloning {REFERENCE_REPO} (or pass --reference-git-dir)")  # fmt: skip
        git_dir = str(clone)
    tree = tmp / "tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "--git-dir", git_dir, "archive", REFERENCE_COMMIT], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(
            f"--reference-git-dir {git_dir}: `git archive {REFERENCE_COMMIT}` failed: "
            f"{archive.stderr.decode().strip()}"
        )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    tree.rename(source)
    shutil.rmtree(tmp)
    return source


def ensure_reference_venv(cache: pathlib.Path) -> pathlib.Path:
    """The python of a working reference venv under `cache`/venv, built there if needed."""
    venv = cache / "venv"
    python = venv / "bin" / "python"
    check = _venv_check(shared_versions())
    works = (
        python.exists()
        and subprocess.run([str(python), "-I", "-c", check], capture_output=True).returncode == 0
    )
    if works:
        return python
    print(f"reference venv: building {venv} (needs the package index)")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], "creating the reference venv")
    torch_index = ["--extra-index-url", TORCH_CPU_INDEX] if _reachable(TORCH_CPU_INDEX) else []
    pins = [f"{k}=={v}" for k, v in shared_versions().items()]
    install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(
        [*install, *torch_index, TORCH_SPEC, *REFERENCE_ONLY_PACKAGES, *pins], "installing the reference venv"
    )
    result = subprocess.run([str(python), "-I", "-c", check], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"reference venv {venv} was built but fails its check:\n{result.stderr}")
    return python


def reference_environment(python: pathlib.Path) -> dict:
    script = (
        "import importlib.metadata as m, json, platform, torch\n"
        f"names = {[*SHARED_PACKAGES, 'torch', *REFERENCE_ONLY_PACKAGES]!r}\n"
        "print(json.dumps({'versions': {n: m.version(n) for n in names}, 'python': platform.python_version(),"
        " 'torch_threads_default': torch.get_num_threads()}))\n"
    )
    out = subprocess.run([str(python), "-I", "-c", script], capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout), "repo": REFERENCE_REPO, "commit": REFERENCE_COMMIT}


# ------------------------------------------------------------------------------------ the runs
def reference_args(task: str, seed: int, settings: dict, iterations: int, eval_interval: int) -> list[str]:
    """The reference's command line: its defaults for `task` but the CPU sizes and the budget."""
    sizes = [f"--{k.replace('_', '-')}={settings['sizes'][k]}" for k in CPU_SIZES]
    return [
        f"--env-name={task}", f"--seed={seed}", f"--agent={settings['agent']}", *sizes,
        f"--total-timesteps={iterations + 1}", f"--eval-interval={eval_interval}",
        "--render-interval=0", "--save-interval=0", "--no-cuda", "--no-amp", "--no-compile",
        "--use-wandb", "--exp-name=fasttd3x_bench",
    ]  # fmt: skip


def run_key(task: str, settings: dict) -> str:
    sizes = "_".join(str(settings["sizes"][k]) for k in CPU_SIZES)
    return f"{task}_{settings['agent']}_it{settings['iterations']}_ev{settings['eval_interval']}_{sizes}"


def entry_name(task: str, agent: str) -> str:
    """A task's key in the results file: the task, with the agent when it is not the default."""
    return task if agent == "fasttd3" else f"{task} ({agent})"


def worker_env(cache: pathlib.Path) -> dict:
    """The worker's environment: JAX's persistent compilation cache under `cache`, so only the
    first seed compiles the simulator's reset and step (a hit is the same executable)."""
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache / "jax-cache")}


def reference_finished(cache: pathlib.Path, task: str, seed: int, settings: dict) -> bool:
    out = cache / "runs" / f"{run_key(task, settings)}_seed{seed}.json"
    return out.exists() and json.loads(out.read_text()).get("complete", False)


def run_reference_seed(python, source, cache: pathlib.Path, task, seed, settings, iterations, eval_interval):
    """One reference seed, or its finished worker file from an earlier call; the worker's JSON."""
    out = cache / "runs" / f"{run_key(task, settings)}_seed{seed}.json"
    if reference_finished(cache, task, seed, settings):
        print(f"reference {task} seed {seed}: reusing {out}")
        return json.loads(out.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [str(python), "-I", str(WORKER), "--source", str(source), "--out", str(out), "--",
               *reference_args(task, seed, settings, iterations, eval_interval)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="reference_run_") as tmp:  # its final checkpoint lands here
        with open(pathlib.Path(tmp) / "log.txt", "w") as log:
            print(f"reference {task} seed {seed}: $ {shlex.join(command)}", flush=True)
            rc = subprocess.run(
                command, cwd=tmp, env=worker_env(cache), stdout=log, stderr=subprocess.STDOUT
            ).returncode
        if rc != 0:
            tail = (pathlib.Path(tmp) / "log.txt").read_text()[-3000:]
            raise SystemExit(f"the reference worker failed (exit {rc}); its output ended with:\n{tail}")
    return json.loads(out.read_text())


def reference_run(worker: dict) -> dict:
    evals = worker["evals"]
    return {
        "iterations": [e["iteration"] for e in evals],
        "env_steps": [e["env_steps"] for e in evals],
        "eval_return": [e["eval_return"] for e in evals],
        "eval_length": [e["eval_length"] for e in evals],
        "wall_seconds": worker["logs"][-1]["wall_seconds"] if worker["logs"] else None,
    }


def ours_config(task: str, settings: dict) -> dict:
    sizes = {k.upper(): v for k, v in settings["sizes"].items()}
    return ft.make_config(
        task,
        **sizes,
        AGENT=settings["agent"],
        TOTAL_TIMESTEPS=settings["iterations"],
        EVAL_INTERVAL=settings["eval_interval"],
    )


def reference_eval_states(env, config: dict, seed) -> envs.EnvState:
    """The reference's evaluation start states for `--seed seed`: its eval envs reset with
    `jax.random.split(jax.random.PRNGKey(seed), num_eval_envs)` (ours use the run's own key)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), max(config["NUM_EVAL_ENVS"], 1))
    return jax.vmap(env.reset)(keys)


def reference_evaluation_train(config: dict):
    """`train(rng, seed) -> (eval returns [TOTAL_TIMESTEPS // EVAL_INTERVAL], runner)`: our
    pieces evaluated as the reference evaluates, from its start states (`reference_eval_states`)
    and after its iteration count: it evaluates after the update of iteration index g for
    g = E, 2E, ..., T, i.e. after g + 1 iterations, ours by default after g. So this runs
    iteration 0 first, then chunks of E iterations (indices 1..E, E+1..2E, ...), each followed by
    an evaluation. The learning-rate schedules still span TOTAL_TIMESTEPS = T iterations (the
    reference's T + 1; equal for constant rates, the Playground defaults)."""
    env = envs.make_env(config)
    nets = ft.make_networks(config, env.action_dim)
    interval, num_evals = config["EVAL_INTERVAL"], config["TOTAL_TIMESTEPS"] // config["EVAL_INTERVAL"]

    def step(runner, iteration):
        return ft.iteration_step(nets, env, config, runner, iteration)[0], None

    def chunk(runner, index):
        runner, _ = jax.lax.scan(step, runner, index * interval + 1 + jnp.arange(interval))
        return runner, ft.evaluate(nets, env, config, runner.train_state, runner.eval_states)

    def train(rng, seed):
        runner = ft.init_runner(nets, env, config, rng)
        runner = runner._replace(eval_states=reference_eval_states(env, config, seed))
        runner, _ = step(runner, jnp.int32(0))
        runner, returns = jax.lax.scan(chunk, runner, jnp.arange(num_evals))
        return returns, runner

    return train


def run_ours(task: str, settings: dict, seeds: list[int]) -> dict[int, dict]:
    """Our agents of `seeds`, vmapped in one program; seed s trains on PRNGKey(s). A line after
    every evaluation: on CPU the program runs for up to an hour. With the settings'
    `reference_evaluation`, evaluated as the reference evaluates (`reference_evaluation_train`;
    no progress lines)."""
    config = ours_config(task, settings)
    rngs = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    start = time.perf_counter()
    if settings.get("reference_evaluation"):
        train = reference_evaluation_train(config)
        returns, _ = jax.block_until_ready(jax.jit(jax.vmap(train))(rngs, jnp.asarray(seeds)))
        returns = np.asarray(returns, float)
        iterations = settings["eval_iterations"]
    else:
        train = ft.make_train(config, progress=progress.ProgressPrinter(config))
        out = jax.block_until_ready(jax.jit(jax.vmap(train))(rngs))
        returns = np.asarray(out["metrics"]["eval_return"], float)
        iterations = np.asarray(out["metrics"]["iteration"])[0].astype(int).tolist()
    seconds = time.perf_counter() - start
    env_steps = ft.env_steps_at_evals(config).tolist()
    print(
        f"ours {task} seeds {seeds}: {seconds:.0f} s with compilation, finals {np.round(returns[:, -1], 1)}"
    )
    return {
        s: {
            "iterations": iterations,
            "env_steps": env_steps,
            "eval_return": returns[i].tolist(),
            "vmapped_seeds": len(seeds),
            "wall_seconds_all_vmapped_with_compile": seconds,
        }  # fmt: skip
        for i, s in enumerate(seeds)
    }


def settings_differences(config: dict, reference: dict, iterations: int) -> dict:
    """Every setting both sides have where our config and the reference's parsed args differ
    (the reference runs one iteration more, see the docstring)."""
    out = {}
    for key, ours in config.items():
        name = key.lower()
        if key in OURS_ONLY or name not in reference:
            continue
        theirs = reference[name] - 1 if name == "total_timesteps" else reference[name]
        if not (ours == theirs or (isinstance(ours, float) and math.isclose(ours, theirs, rel_tol=1e-6))):
            out[name] = {"ours": ours, "reference": theirs}
    return out


def learn(args, python, source, cache: pathlib.Path, path: pathlib.Path) -> None:
    sizes = {k: getattr(args, k) for k in CPU_SIZES}
    evals = range(args.eval_interval, args.iterations + 1, args.eval_interval)
    settings = {"iterations": args.iterations, "eval_interval": args.eval_interval, "sizes": sizes,
                "agent": args.agent, "eval_iterations": list(evals)}  # fmt: skip
    if args.reference_evaluation:  # only then: entries run without the option keep their settings
        settings["reference_evaluation"] = True
    if args.equivalence:
        settings["equivalence"] = True
    seeds = list(range(args.seeds))
    name = entry_name(args.env, args.agent) + (" (reference evaluation)" if args.reference_evaluation else "")
    name += " (equivalence)" if args.equivalence else ""
    result = load_results(path)
    entry = task_entry(result, name, settings, args.seeds)
    if args.equivalence:
        entry.setdefault("protocol", EQUIVALENCE_PROTOCOL)  # recorded before the first run
    config = ours_config(args.env, settings)
    entry["ours_config"] = config
    result.update(
        benchmark="reference_learning",
        description=__doc__.split("\n\n")[0],
        reference_environment=reference_environment(python),
        environment=environment(),
    )

    def save():
        save_task(path, name, entry, result)

    # Our finished seeds are also kept under --cache, so a rerun never trains them again.
    ours_key = run_key(args.env, settings) + ("_refeval" if args.reference_evaluation else "")
    ours_file = cache / "runs" / f"ours_{ours_key}.json"
    ours_cached = json.loads(ours_file.read_text()) if ours_file.exists() else {}
    for seed in missing_seeds(entry, "ours", seeds):
        if str(seed) in ours_cached:
            add_run(entry, "ours", seed, ours_cached[str(seed)])
    todo = missing_seeds(entry, "ours", seeds) if args.side in ("both", "ours") else []
    group = args.ours_group or len(todo) or 1
    for first in range(0, 0 if args.collect_only else len(todo), group):
        # Seeds in groups of --ours-group, each saved when done: a killed study keeps finished groups.
        for seed, run in run_ours(args.env, settings, todo[first : first + group]).items():
            add_run(entry, "ours", seed, run)
        ours_file.parent.mkdir(parents=True, exist_ok=True)
        ours_file.write_text(json.dumps(entry["runs"]["ours"]) + "\n")
        save()
    save()
    reference_todo = missing_seeds(entry, "reference", seeds) if args.side in ("both", "reference") else []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            pool.submit(
                run_reference_seed,
                python, source, cache, args.env, seed, settings, args.iterations, args.eval_interval,
            ): seed
            for seed in reference_todo
            if not args.collect_only or reference_finished(cache, args.env, seed, settings)
        }  # fmt: skip
        for future in concurrent.futures.as_completed(futures):
            seed, worker = futures[future], future.result()
            entry["reference_args"] = worker["args"]
            entry["reference_torch_threads"] = worker.get("torch_threads")  # train.py sets OMP_NUM_THREADS=1
            entry["settings_differences"] = settings_differences(config, worker["args"], args.iterations)
            add_run(entry, "reference", seed, reference_run(worker))
            print(f"reference {name} seed {seed}: final {worker['evals'][-1]['eval_return']:.1f}")
            save()
    save()
    comparison = entry.get("comparison")
    if comparison:
        print(
            json.dumps(
                {k: comparison[k] for k in ("reference", "ours", "cis_overlap", "welch", "permutation")}
            )
        )


def reference_speed(python, source, cache: pathlib.Path, ref_args: list[str], threads: int, marks) -> dict:
    """One timed reference run on `threads` torch threads: iterations/s between the logging calls
    at `marks` (warm-up end, run end)."""
    command = [str(python), "-I", str(WORKER), "--source", str(source), f"--torch-threads={threads}"]
    with tempfile.TemporaryDirectory(prefix="reference_speed_") as tmp:
        out = pathlib.Path(tmp) / "speed.json"
        _run([*command, "--out", str(out), "--", *ref_args], "the reference worker", cwd=tmp,
             env=worker_env(cache), stdout=subprocess.DEVNULL)  # fmt: skip
        worker = json.loads(out.read_text())
    logs = {log["iteration"]: log for log in worker["logs"]}
    first, last = logs[marks[0]], logs[marks[1]]
    return {
        "iterations_per_second": (marks[1] - marks[0]) / (last["wall_seconds"] - first["wall_seconds"]),
        "own_speed_at_end": last["speed"],
        "torch_threads": worker["torch_threads"],
        "args": worker["args"],
    }


def throughput(args, python, source, cache: pathlib.Path, path: pathlib.Path) -> None:
    """Both sides `--repeats` times, alone and one after the other; medians are the result. The
    reference at each of `--torch-threads` (its own `train.py` runs it on one thread)."""
    if args.warmup_iterations % 100 or args.measure_iterations % 100:
        raise SystemExit(
            f"--warmup-iterations {args.warmup_iterations} and --measure-iterations "
            f"{args.measure_iterations} must be multiples of 100 (the reference logs every 100)"
        )
    if min(args.torch_threads) < 1:
        raise SystemExit(f"--torch-threads {args.torch_threads}: each count must be at least 1")
    sizes = {k: getattr(args, k) for k in CPU_SIZES}
    settings = {"sizes": sizes, "agent": args.agent, "warmup_iterations": args.warmup_iterations,
                "measure_iterations": args.measure_iterations, "repeats": args.repeats}  # fmt: skip
    total = args.warmup_iterations + args.measure_iterations
    ref_args = reference_args(args.env, 0, settings, total, 0)
    loads = {}
    by_threads = {}
    for threads in args.torch_threads:
        loads[f"before_reference_{threads}_threads"] = os.getloadavg()
        runs = []
        for repeat in range(args.repeats):
            print(f"reference, {threads} torch threads, run {repeat + 1}/{args.repeats}", flush=True)
            runs.append(
                reference_speed(python, source, cache, ref_args, threads, (args.warmup_iterations, total))
            )
        each = [run["iterations_per_second"] for run in runs]
        by_threads[str(threads)] = {
            "iterations_per_second": float(np.median(each)),
            "iterations_per_second_each": each,
            "torch_threads_used": sorted({run["torch_threads"] for run in runs}),
            "own_speed_at_end": [run["own_speed_at_end"] for run in runs],
        }
        reference_parsed = runs[0]["args"]
        print(f"reference at {threads} torch threads: {np.median(each):.2f} it/s (median of {len(each)})")

    chunk = args.measure_iterations
    settings_ours = {"sizes": sizes, "agent": args.agent, "iterations": (args.repeats + 2) * chunk,
                     "eval_interval": chunk}  # fmt: skip
    config = {**ours_config(args.env, settings_ours), "NUM_EVAL_ENVS": 0}
    loads["before_ours"] = os.getloadavg()
    chunks = Chunks(config, agents=1)  # compiles, then runs a first (warming) chunk
    ours_seconds = [chunks.step() for _ in range(args.repeats)]
    loads["after_ours"] = os.getloadavg()
    ours_each = [args.measure_iterations / s for s in ours_seconds]
    ours_its = float(np.median(ours_each))
    own = by_threads.get("1") or next(iter(by_threads.values()))
    result = {
        "benchmark": "reference_throughput",
        "env": args.env,
        "settings": settings,
        "reference": {
            **own,
            "mode": "eager torch (--no-compile), fp32, on one torch thread as its train.py sets it",
            "args": reference_parsed,
        },
        "reference_by_torch_threads": by_threads,
        "ours": {
            "iterations_per_second": ours_its,
            "iterations_per_second_each": ours_each,
            "compile_seconds": chunks.compile_seconds,
            "config": config,
        },
        "ours_over_reference": ours_its / own["iterations_per_second"],
        "ours_over_reference_by_torch_threads": {
            threads: ours_its / side["iterations_per_second"] for threads, side in by_threads.items()
        },
        "statistic": "median of --repeats runs per side (each a fresh reference process; ours one "
        "compiled program's timed chunks after a warming one)",
        "load_average_1_5_15": loads,
        "reference_environment": reference_environment(python),
        **environment(),
    }
    print(f"{args.env}: ours {ours_its:.1f} it/s (1 agent, median); over the reference: "
          f"{result['ours_over_reference_by_torch_threads']} by torch threads")  # fmt: skip
    write(path.stem, result, path.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--learn", action="store_true", help="learning curves of --seeds seeds per side")
    mode.add_argument("--throughput", action="store_true", help="iterations/s of one agent per side")
    parser.add_argument("--env", required=True, help="a Playground task with flat observations")
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1 per side (--learn)")
    parser.add_argument(
        "--agent",
        choices=("fasttd3", "fasttd3_simbav2"),
        default="fasttd3",
        help="the reference's --agent and our AGENT, the same on both sides",
    )
    parser.add_argument("--iterations", type=int, default=5_000, help="training iterations (--learn)")
    parser.add_argument(
        "--eval-interval", type=int, default=500, help="iterations between evals, a multiple of 100"
    )
    parser.add_argument("--jobs", type=int, default=1, help="reference seeds run at once (--learn)")
    parser.add_argument(
        "--side",
        choices=("both", "ours", "reference"),
        default="both",
        help="--learn: train only this side's missing seeds (two processes can run the two sides)",
    )
    parser.add_argument(
        "--ours-group",
        type=int,
        default=0,
        help="--learn: our seeds vmapped per program, each group saved when done (default: all at once)",
    )
    parser.add_argument(
        "--collect-only",
        action="store_true",
        help="--learn: merge the seeds already finished under --cache into the JSON; train nothing",
    )
    parser.add_argument(
        "--reference-evaluation",
        action="store_true",
        help="--learn: ours evaluates the reference's start states (PRNGKey(seed)) after its iteration "
        "count (one more iteration before each evaluation); its own results entry",
    )
    parser.add_argument(
        "--equivalence",
        action="store_true",
        help="--learn: the pre-registered equivalence study (EQUIVALENCE_PROTOCOL: TOST on each seed's "
        "area under the curve, margin 20%% of the reference's mean); needs --seeds >= 24, "
        "--eval-interval 100 and --num-eval-envs 64; its own results entry",
    )
    parser.add_argument("--warmup-iterations", type=int, default=200, help="--throughput")
    parser.add_argument("--measure-iterations", type=int, default=1_000, help="--throughput")
    parser.add_argument(
        "--repeats", type=int, default=3, help="--throughput: timed runs per side (medians reported)"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        nargs="+",
        default=[1],
        help="--throughput: the reference's torch threads, each timed (1 is what its train.py sets)",
    )
    for name, default in CPU_SIZES.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=default, help="same on both sides"
        )
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="reference source, venv and per-seed runs")
    parser.add_argument(
        "--reference-git-dir", help=f"a git directory holding {REFERENCE_REPO} {REFERENCE_COMMIT}"
    )
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the JSON goes")
    args = parser.parse_args()
    if args.learn and (args.seeds < 2 or args.iterations < 1):
        raise SystemExit(
            f"--seeds {args.seeds} and --iterations {args.iterations}: need at least 2 seeds and 1 iteration"
        )
    if args.eval_interval % 100 or args.iterations % args.eval_interval:
        raise SystemExit(
            f"--eval-interval {args.eval_interval}: must be a multiple of 100 (the reference only evaluates "
            f"on its 100-iteration logging steps) that divides --iterations {args.iterations}"
        )
    protocol = EQUIVALENCE_PROTOCOL
    if args.equivalence and (
        args.seeds < protocol["min_seeds_per_side"]
        or args.eval_interval != protocol["eval_interval"]
        or args.num_eval_envs != protocol["num_eval_envs"]
    ):
        raise SystemExit(
            f"--equivalence: the protocol needs --seeds >= {protocol['min_seeds_per_side']}, --eval-interval "
            f"{protocol['eval_interval']} and --num-eval-envs {protocol['num_eval_envs']}"
        )
    cache = pathlib.Path(os.path.expanduser(args.cache)).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    source = ensure_reference_source(cache, args.reference_git_dir)
    python = ensure_reference_venv(cache)
    out_dir = pathlib.Path(args.out_dir)
    if args.learn:
        compile_cache.enable()  # our groups of seeds, and a rerun, load the compiled program
        learn(args, python, source, cache, out_dir / f"{LEARNING_NAME}.json")
    else:
        throughput(args, python, source, cache, out_dir / f"{THROUGHPUT_NAME}.json")


if __name__ == "__main__":
    main()
