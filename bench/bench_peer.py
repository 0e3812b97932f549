"""Our default Pendulum-v1 job and rejax 0.1.3 (TD3 and SAC) side by side, on the same seeds.

For every master seed M the agents train on `jax.random.split(jax.random.PRNGKey(M), --seeds)`,
vmapped in one program. The default master seeds 1 and 2 are report seeds, never used for tuning
(tuning used master seed 0). Each side is compiled once and its compiled program then runs once
per master seed; compile and run times are measured apart. Per algorithm it reports the run time
and env steps until the mean eval return over seeds first reaches --threshold, the share of seeds
whose final eval return reaches it, and the mean and min final return.

rejax runs in its own throwaway virtualenv (built on first use, reused afterwards):
`python -m venv`, `pip install rejax==0.1.3 six`, `pip install gymnax==0.0.9` (gymnax >= 1.0
returns six values from `step`, which rejax 0.1.3 cannot unpack). `bench/peer_rejax_worker.py`
runs there as a subprocess with rejax's own Pendulum configs.

    python bench/bench_peer.py [--seeds 32] [--master-seeds 1,2] [--threshold -200]
                               [--rejax-venv ~/.cache/fasttd3x/rejax-venv] [--smoke]

Writes bench/results/peer_pendulum_<device>.json (--smoke: a temporary folder instead).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import purejax_fasttd3 as ft
from common import compile_and_run, environment, write

DEFAULT_VENV = "~/.cache/fasttd3x/rejax-venv"
WORKER = pathlib.Path(__file__).resolve().with_name("peer_rejax_worker.py")
REJAX_INSTALLS = (["rejax==0.1.3", "six"], ["gymnax==0.0.9"])
_VENV_CHECK = (
    "import importlib.metadata as m, rejax, gymnax\n"
    "assert m.version('rejax') == '0.1.3', m.version('rejax')\n"
    "assert m.version('gymnax') == '0.0.9', m.version('gymnax')\n"
)
NAMES = {"ours": "FastTD3X (ours)", "rejax_td3": "rejax 0.1.3 TD3", "rejax_sac": "rejax 0.1.3 SAC"}

# Time to threshold from one timed run: the run time at evaluation i is taken as
# run_seconds * env_steps[i] / env_steps[-1], i.e. every chunk between two evaluations is assumed
# to cost the same. For ours that is exact by construction: each eval chunk is the same scan of
# EVAL_INTERVAL iterations followed by one evaluation, so eval i ends at (i + 1) / num_evals of
# the run. For rejax it is the same for its chunks (eval_freq env steps of training, then one
# evaluation of 128 episodes); its extra evaluation before training (at 0 env steps) is counted
# as free, which understates rejax's times by at most one evaluation's share of the run.
TIME_ASSUMPTION = (
    "seconds at eval i = run_seconds * env_steps[i] / env_steps[-1] (chunks between evals do "
    "identical work; rejax's initial evaluation at 0 env steps is counted as free)"
)


# ------------------------------------------------------------------------------------ rejax venv
def _venv_python(venv: pathlib.Path) -> pathlib.Path:
    return venv / "bin" / "python"


def _venv_works(python: pathlib.Path) -> bool:
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-I", "-c", _VENV_CHECK], capture_output=True, text=True)
    return check.returncode == 0


def ensure_rejax_venv(venv: pathlib.Path) -> pathlib.Path:
    """The python of a working rejax 0.1.3 virtualenv at `venv`, built there if needed."""
    python = _venv_python(venv)
    if _venv_works(python):
        print(f"rejax venv: reusing {venv}")
        return python
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        raise SystemExit(
            f"--rejax-venv {venv} exists and is not a virtualenv; refusing to clear it "
            "(pass an empty or new folder)"
        )
    print(f"rejax venv: building {venv} (needs PyPI)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    commands = [[sys.executable, "-m", "venv", "--clear", str(venv)]]
    for packages in REJAX_INSTALLS:
        commands.append([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages])
    for command in commands:
        print(f"  $ {shlex.join(command)}", flush=True)
        try:
            rc = subprocess.run(command).returncode
        except OSError as err:
            rc = err
        if rc != 0:
            raise SystemExit(
                f"building the rejax venv failed: `{shlex.join(command)}` -> {rc} "
                "(no network access to PyPI?)"
            )
    if not _venv_works(python):
        raise SystemExit(f"rejax venv {venv} was built but cannot import rejax 0.1.3 with gymnax 0.0.9")
    return python


def run_rejax(python: pathlib.Path, master_seeds: list[int], seeds: int, total_timesteps: int | None) -> dict:
    """Runs the worker in the rejax venv and returns its JSON."""
    with tempfile.TemporaryDirectory(prefix="rejax_peer_") as tmp:
        out = pathlib.Path(tmp) / "rejax.json"
        command = [
            str(python), "-I", str(WORKER),
            "--master-seeds", ",".join(map(str, master_seeds)),
            "--seeds", str(seeds),
            "--out", str(out),
        ]  # fmt: skip
        if total_timesteps is not None:
            command += ["--total-timesteps", str(total_timesteps)]
        print(f"$ {shlex.join(command)}", flush=True)
        # -I: isolated mode, so neither PYTHONPATH nor the worker's folder (bench/, with our
        # modules) is on its sys.path.
        rc = subprocess.run(command, cwd=tmp).returncode
        if rc != 0:
            raise SystemExit(f"the rejax worker failed: `{shlex.join(command)}` -> exit {rc}")
        return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------ ours
def run_ours(master_seeds: list[int], seeds: int, overrides: dict) -> dict:
    config = ft.make_config("Pendulum-v1", **overrides)
    train = jax.jit(jax.vmap(ft.make_train(config)))
    compiled = compile_s = None
    runs = []
    metrics_env_steps = None
    for m in master_seeds:
        rngs = jax.random.split(jax.random.PRNGKey(m), seeds)
        if compiled is None:
            out, compiled, compile_s, run_s = compile_and_run(train, rngs)
            print(f"ours: compiled in {compile_s:.1f} s")
        else:  # the same executable on the next master seed's keys, timed the same way
            start = time.perf_counter()
            out = jax.block_until_ready(compiled(rngs))
            run_s = time.perf_counter() - start
        returns = np.asarray(out["metrics"]["eval_return"])  # [seeds, evals]
        if "env_steps" in out["metrics"]:
            metrics_env_steps = np.asarray(out["metrics"]["env_steps"])[0]
        print(f"ours: master seed {m}: run {run_s:.1f} s, final mean {returns[:, -1].mean():.1f}")
        runs.append({"master_seed": m, "run_seconds": run_s, "eval_return": returns.tolist()})
    if hasattr(ft, "env_steps_at_evals"):
        env_steps = np.asarray(ft.env_steps_at_evals(config), dtype=np.int64)
    else:
        env_steps = metrics_env_steps.astype(np.int64)
    return {
        "config": config,
        "compile_seconds": compile_s,
        "env_steps": env_steps.tolist(),
        "eval_episodes": config["NUM_EVAL_ENVS"],
        "eval_policy": "deterministic actor, one episode on each of NUM_EVAL_ENVS envs",
        "runs": runs,
    }


# -------------------------------------------------------------------------------------- summary
def summarize(returns: np.ndarray, env_steps: np.ndarray, run_s: float, threshold: float) -> dict:
    """Threshold statistics of [seeds, evals] eval returns from a run of `run_s` seconds."""
    mean = returns.mean(0)
    reached = np.flatnonzero(mean >= threshold)
    first = int(reached[0]) if reached.size else None
    final = returns[:, -1]
    return {
        "eval_index_at_threshold": first,
        "seconds_to_threshold": None if first is None else run_s * float(env_steps[first] / env_steps[-1]),
        "env_steps_to_threshold": None if first is None else int(env_steps[first]),
        "share_final_at_threshold": float(np.mean(final >= threshold)),
        "mean_final_return": float(final.mean()),
        "min_final_return": float(final.min()),
        "mean_eval_return": mean.tolist(),
    }


def add_summaries(side: dict, threshold: float) -> None:
    """Per master seed, and pooled: all seeds' returns with the mean run time of the runs."""
    env_steps = np.asarray(side["env_steps"])
    for run in side["runs"]:
        run["summary"] = summarize(np.asarray(run["eval_return"]), env_steps, run["run_seconds"], threshold)
    pooled = np.concatenate([np.asarray(run["eval_return"]) for run in side["runs"]])
    mean_run_s = float(np.mean([run["run_seconds"] for run in side["runs"]]))
    side["pooled"] = {"run_seconds": mean_run_s, **summarize(pooled, env_steps, mean_run_s, threshold)}


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _times(ratio):
    return "not reached" if ratio is None else f"{ratio:.1f}x"


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(sides: dict, threshold: float, master_seeds: list[int]) -> dict:
    t = f"{threshold:g}"
    header = (
        f"{'':<16} {'master':>6} {'compile s':>9} {'run s':>8} {'s to ' + t:>10} "
        f"{'steps to ' + t:>13} {'final>=' + t:>11} {'mean final':>10} {'min final':>9}"
    )
    print("\n" + header)
    for key, side in sides.items():
        rows = [(str(r["master_seed"]), r["run_seconds"], r["summary"]) for r in side["runs"]]
        rows.append(("all", side["pooled"]["run_seconds"], side["pooled"]))
        for i, (master, run_s, s) in enumerate(rows):
            name = NAMES[key] if i == 0 else ""
            compile_s = _fmt(side["compile_seconds"], ".1f") if i == 0 else ""
            print(
                f"{name:<16} {master:>6} {compile_s:>9} {run_s:>8.1f} "
                f"{_fmt(s['seconds_to_threshold'], '.2f'):>10} {_fmt(s['env_steps_to_threshold'], ','):>13} "
                f"{s['share_final_at_threshold']:>11.0%} {s['mean_final_return']:>10.1f} "
                f"{s['min_final_return']:>9.1f}"
            )
    print("(env steps are per agent: ours steps NUM_ENVS envs per iteration, rejax 1 env)")
    print("('all': every seed's returns pooled, with the mean run time of the master seeds' runs)")

    ratios = {}
    ours = sides["ours"]
    for key in ("rejax_td3", "rejax_sac"):
        per_master = {
            str(m): _ratio(r["summary"]["seconds_to_threshold"], o["summary"]["seconds_to_threshold"])
            for m, r, o in zip(master_seeds, sides[key]["runs"], ours["runs"])
        }
        pooled = _ratio(sides[key]["pooled"]["seconds_to_threshold"], ours["pooled"]["seconds_to_threshold"])
        ratios[key] = {"per_master_seed": per_master, "pooled": pooled}
        parts = ", ".join(f"master {m}: {_times(v)}" for m, v in per_master.items())
        print(f"{NAMES[key]} / ours, time to {t}: {parts}; all: {_times(pooled)}")
    return ratios


# ----------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=32, help="seeds per master seed (vmapped)")
    parser.add_argument(
        "--master-seeds", default="1,2", help="comma-separated master seeds (0 was used for tuning)"
    )
    parser.add_argument("--threshold", type=float, default=-200.0)
    parser.add_argument("--rejax-venv", default=DEFAULT_VENV, help="throwaway virtualenv for rejax 0.1.3")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run (2 seeds, short training) written to a temporary folder",
    )
    args = parser.parse_args()
    master_seeds = [int(s) for s in args.master_seeds.split(",") if s.strip()]
    if not master_seeds or args.seeds < 1:
        raise SystemExit("--master-seeds needs at least one seed and --seeds at least 1")
    seeds = 2 if args.smoke else args.seeds
    ours_overrides = {"TOTAL_TIMESTEPS": 200, "EVAL_INTERVAL": 100} if args.smoke else {}
    rejax_timesteps = 1000 if args.smoke else None

    python = ensure_rejax_venv(pathlib.Path(os.path.expanduser(args.rejax_venv)).resolve())

    # Back to back in one invocation: ours, then rejax TD3 and SAC (in one worker process).
    sides = {"ours": run_ours(master_seeds, seeds, ours_overrides)}
    rejax_out = run_rejax(python, master_seeds, seeds, rejax_timesteps)
    for name in ("td3", "sac"):
        sides[f"rejax_{name}"] = rejax_out["algos"][name]
    for side in sides.values():
        add_summaries(side, args.threshold)

    info = environment()
    rejax_env = {k: rejax_out[k] for k in ("versions", "python", "device", "platform", "config_source")}
    rejax_env["venv"] = str(python.parent.parent)
    if rejax_env["platform"] != info["platform"]:
        print(
            f"WARNING: ours ran on {info['platform']} ({info['device']}), rejax on "
            f"{rejax_env['platform']} ({rejax_env['device']}): install the matching jax build "
            "in the rejax venv for a like-for-like comparison"
        )

    ratios = print_table(sides, args.threshold, master_seeds)
    result = {
        "benchmark": "peer_time_to_threshold",
        "env": "Pendulum-v1",
        "smoke": args.smoke,
        "master_seeds": master_seeds,
        "seeds_per_master_seed": seeds,
        "threshold": args.threshold,
        "time_assumption": TIME_ASSUMPTION,
        "ratio_rejax_over_ours_seconds_to_threshold": ratios,
        **sides,
        "rejax_environment": rejax_env,
        **info,
    }
    name = f"peer_pendulum_{info['device'].replace(' ', '_')}"
    if args.smoke:
        write(name, result, pathlib.Path(tempfile.mkdtemp(prefix="peer_smoke_")))
    else:
        write(name, result)


if __name__ == "__main__":
    main()
