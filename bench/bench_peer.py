"""Our default Pendulum-v1 job and rejax 0.1.3 (TD3 and SAC) side by side, on the same seeds,
the same env-step budget and the same evaluation.

For every master seed M each side trains `jax.random.split(jax.random.PRNGKey(M), --seeds)`
agents, vmapped in one program. The default master seeds 1 and 2 are report seeds, never used for
tuning (tuning used master seed 0). rejax runs its own tuned Pendulum configs, but to our env-step
budget (32,000 env steps per agent) and with our evaluation: --eval-episodes episodes (our
NUM_EVAL_ENVS, 16) every 1,600 env steps (our EVAL_INTERVAL iterations of NUM_ENVS envs), no
evaluation before training. Both sides train one eval chunk per call of a compiled program and
the host takes a timestamp after every evaluation, so every time below is measured, from the
start of init to that evaluation, with compilation timed apart. One evaluation alone is timed
too (on the final state), to show what evaluation costs each side. Per algorithm it reports the
time and env steps until the mean eval return over seeds first reaches --threshold, the share of
seeds whose final eval return reaches it, and the mean and worst final return.

`--rejax-settings ours` moves rejax's configs to our loop's settings where rejax has a key for
them (16 envs, 2 updates per iteration, our batch, learning rate, discount, target rate, replay
size, warm-up and noise; `rejax_at_our_settings`), with its own networks and losses, and writes
peer_pendulum_our_settings_<device>.json: the peer at our settings beside the peer at its own.
`--rejax-settings own16` keeps rejax's tuned configs but steps our NUM_ENVS (16) envs per
iteration, with its updates per iteration scaled by 16 so each config keeps its own updates per env
step (the worker's --num-envs): the parallelism held equal, everything else rejax's. It writes
peer_pendulum_own16_<device>.json.

rejax runs in its own throwaway virtualenv (built on first use, reused afterwards):
`python -m venv`, `pip install rejax==0.1.3 six`, `pip install gymnax==0.0.9` (gymnax >= 1.0
returns six values from `step`, which rejax 0.1.3 cannot unpack). `bench/peer_rejax_worker.py`
runs there as a subprocess. Each side runs alone, one after the other.

    python bench/bench_peer.py [--seeds 16] [--master-seeds 1,2] [--threshold -200]
                               [--rejax-settings own|own16|ours]
                               [--rejax-venv ~/.cache/fasttd3x/rejax-venv] [--smoke]

Writes bench/results/peer_pendulum[_our_settings|_own16]_<device>.json (--smoke: a temporary folder).
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
from common import Chunks, environment, write
from fasttd3x import envs

DEFAULT_VENV = "~/.cache/fasttd3x/rejax-venv"
WORKER = pathlib.Path(__file__).resolve().with_name("peer_rejax_worker.py")
REJAX_INSTALLS = (["rejax==0.1.3", "six"], ["gymnax==0.0.9"])
_VENV_CHECK = (
    "import importlib.metadata as m, rejax, gymnax\n"
    "assert m.version('rejax') == '0.1.3', m.version('rejax')\n"
    "assert m.version('gymnax') == '0.0.9', m.version('gymnax')\n"
)
NAMES = {"ours": "FastTD3X (ours)", "rejax_td3": "rejax 0.1.3 TD3", "rejax_sac": "rejax 0.1.3 SAC"}

TIMING = (
    "measured: each side trains one eval chunk per call of its compiled program; seconds at eval "
    "i run from the start of init to the host receiving eval i's returns; compilation excluded"
)


def rejax_at_our_settings(config: dict) -> dict:
    """rejax's TD3 and SAC configs moved to our loop's settings, key for key where rejax has one:
    envs stepped per iteration, updates per iteration, batch, learning rate, discount, target
    rate (rejax's polyak is 1 - TAU), replay size and warm-up in transitions, TD3's actor delay,
    target smoothing noise and clip, and one exploration noise at the middle of our per-env range
    [STD_MIN, STD_MAX]. Networks, losses and gradient clipping stay rejax's: we have no key for
    them in its configs."""
    if config["ACTOR_LEARNING_RATE"] != config["CRITIC_LEARNING_RATE"]:
        raise SystemExit("rejax has one learning rate: ours must use one for actor and critic")
    shared = {
        "num_envs": config["NUM_ENVS"],
        "num_epochs": config["NUM_UPDATES"],
        "batch_size": config["BATCH_SIZE"],
        "learning_rate": config["CRITIC_LEARNING_RATE"],
        "gamma": config["GAMMA"],
        "polyak": 1.0 - config["TAU"],
        "buffer_size": config["BUFFER_SIZE"] * config["NUM_ENVS"],
        "fill_buffer": config["LEARNING_STARTS"] * config["NUM_ENVS"],
    }
    td3 = {
        **shared,
        "policy_delay": config["POLICY_FREQUENCY"],
        "target_noise": config["POLICY_NOISE"],
        "target_noise_clip": config["NOISE_CLIP"],
        "exploration_noise": (config["STD_MIN"] + config["STD_MAX"]) / 2,
    }
    return {"td3": td3, "sac": shared}


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


def run_rejax(
    python: pathlib.Path,
    master_seeds: list[int],
    seeds: int,
    budget: dict,
    overrides: dict,
    num_envs: int | None = None,
) -> dict:
    """Runs the worker in the rejax venv with `budget` (total_timesteps, eval_freq and
    eval_episodes), per-algorithm config `overrides` and `num_envs` (the worker's --num-envs),
    and returns its JSON."""
    with tempfile.TemporaryDirectory(prefix="rejax_peer_") as tmp:
        out = pathlib.Path(tmp) / "rejax.json"
        command = [
            str(python), "-I", str(WORKER),
            "--master-seeds", ",".join(map(str, master_seeds)),
            "--seeds", str(seeds),
            "--out", str(out),
        ]  # fmt: skip
        for key, value in budget.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        if overrides:
            command += ["--overrides", json.dumps(overrides)]
        if num_envs is not None:
            command += ["--num-envs", str(num_envs)]
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
    num_evals = config["TOTAL_TIMESTEPS"] // config["EVAL_INTERVAL"]
    env = envs.make_env(config)
    nets = ft.make_networks(config, env.action_dim)
    evaluate = jax.jit(
        jax.vmap(
            lambda r: ft.evaluate(nets, env, config, r.train_state, r.eval_states), in_axes=(ft.RUNNER_AXES,)
        )
    )
    chunks = Chunks(config, seeds, seed=master_seeds[0])  # compiles, runs init and the first chunk
    runs = []
    for m in master_seeds:
        if m != master_seeds[0]:
            chunks.start(m)  # the same compiled programs on this master seed's keys
        seconds = [chunks.init_seconds + chunks.first_chunk_seconds]
        returns = [np.asarray(chunks.metrics["eval_return"])]
        for _ in range(num_evals - 1):
            seconds.append(seconds[-1] + chunks.step())
            returns.append(np.asarray(chunks.metrics["eval_return"]))
        returns = np.concatenate(returns, axis=1)  # [seeds, evals]
        eval_s = []
        for _ in range(3):  # the evaluation alone, on the final state, after a warm call
            start = time.perf_counter()
            jax.block_until_ready(evaluate(chunks.runner))
            eval_s.append(time.perf_counter() - start)
        print(f"ours: master seed {m}: run {seconds[-1]:.1f} s, final mean {returns[:, -1].mean():.1f}")
        runs.append(
            {
                "master_seed": m,
                "run_seconds": seconds[-1],
                "seconds_at_eval": seconds,
                "eval_seconds": float(np.median(eval_s[1:])),
                "eval_return": returns.tolist(),
            }
        )
    return {
        "config": config,
        "compile_seconds": chunks.compile_seconds,
        "env_steps": ft.env_steps_at_evals(config).tolist(),
        "eval_episodes": config["NUM_EVAL_ENVS"],
        "eval_policy": "deterministic actor, one episode on each of NUM_EVAL_ENVS envs",
        "runs": runs,
    }


# -------------------------------------------------------------------------------------- summary
def summarize(returns: np.ndarray, env_steps: np.ndarray, seconds_at_eval, threshold: float) -> dict:
    """Threshold statistics of [seeds, evals] eval returns timed at `seconds_at_eval`."""
    mean = returns.mean(0)
    reached = np.flatnonzero(mean >= threshold)
    first = int(reached[0]) if reached.size else None
    final = returns[:, -1]
    return {
        "eval_index_at_threshold": first,
        "seconds_to_threshold": None if first is None else float(seconds_at_eval[first]),
        "env_steps_to_threshold": None if first is None else int(env_steps[first]),
        "share_final_at_threshold": float(np.mean(final >= threshold)),
        "mean_final_return": float(final.mean()),
        "min_final_return": float(final.min()),
        "mean_eval_return": mean.tolist(),
    }


def add_summaries(side: dict, threshold: float) -> None:
    """Per master seed, and pooled: all seeds' returns at the mean times of the runs."""
    env_steps = np.asarray(side["env_steps"])
    for run in side["runs"]:
        run["summary"] = summarize(
            np.asarray(run["eval_return"]), env_steps, run["seconds_at_eval"], threshold
        )
    pooled = np.concatenate([np.asarray(run["eval_return"]) for run in side["runs"]])
    seconds = np.mean([run["seconds_at_eval"] for run in side["runs"]], axis=0)
    side["pooled"] = {
        "run_seconds": float(seconds[-1]),
        "seconds_at_eval": seconds.tolist(),
        "eval_seconds": float(np.mean([run["eval_seconds"] for run in side["runs"]])),
        **summarize(pooled, env_steps, seconds, threshold),
    }


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
    envs = [f"ours {sides['ours']['config']['NUM_ENVS']}"]
    envs += [f"{NAMES[k]} {sides[k]['config']['num_envs']}" for k in ("rejax_td3", "rejax_sac")]
    print(f"(env steps are per agent; envs stepped at once: {', '.join(envs)})")
    print("('all': every seed's returns pooled, at the mean times of the master seeds' runs)")
    for key, side in sides.items():
        print(f"{NAMES[key]}: one evaluation alone takes {side['pooled']['eval_seconds']:.3f} s")

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
    parser.add_argument("--seeds", type=int, default=16, help="seeds per master seed (vmapped)")
    parser.add_argument(
        "--master-seeds", default="1,2", help="comma-separated master seeds (0 was used for tuning)"
    )
    parser.add_argument("--threshold", type=float, default=-200.0)
    parser.add_argument(
        "--rejax-settings",
        choices=("own", "own16", "ours"),
        default="own",
        help="rejax's tuned Pendulum configs; those at our NUM_ENVS with their own updates per env "
        "step (own16, writes peer_pendulum_own16_<device>.json); or those moved to our loop's "
        "settings (rejax_at_our_settings; writes peer_pendulum_our_settings_<device>.json)",
    )
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
    config = ft.make_config("Pendulum-v1", **ours_overrides)
    # rejax at our budget and evaluation: env steps per agent, env steps per eval chunk, episodes.
    budget = {
        "total_timesteps": config["TOTAL_TIMESTEPS"] * config["NUM_ENVS"],
        "eval_freq": config["EVAL_INTERVAL"] * config["NUM_ENVS"],
        "eval_episodes": config["NUM_EVAL_ENVS"],
    }

    python = ensure_rejax_venv(pathlib.Path(os.path.expanduser(args.rejax_venv)).resolve())

    # One side at a time: ours, then rejax TD3 and SAC (in one worker process).
    sides = {"ours": run_ours(master_seeds, seeds, ours_overrides)}
    overrides = rejax_at_our_settings(config) if args.rejax_settings == "ours" else {}
    num_envs = config["NUM_ENVS"] if args.rejax_settings == "own16" else None
    rejax_out = run_rejax(python, master_seeds, seeds, budget, overrides, num_envs)
    for name in ("td3", "sac"):
        sides[f"rejax_{name}"] = rejax_out["algos"][name]
        if sides[f"rejax_{name}"]["env_steps"] != sides["ours"]["env_steps"]:
            raise SystemExit(f"rejax {name} evaluated at other env steps than ours")
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
        "timing": TIMING,
        "rejax_budget": budget,
        "rejax_settings": args.rejax_settings,
        "rejax_overrides": overrides,
        "rejax_num_envs": num_envs,
        "ratio_rejax_over_ours_seconds_to_threshold": ratios,
        **sides,
        "rejax_environment": rejax_env,
        **info,
    }
    settings = {"own": "", "own16": "_own16", "ours": "_our_settings"}[args.rejax_settings]
    name = f"peer_pendulum{settings}_{info['device'].replace(' ', '_')}"
    if args.smoke:
        write(name, result, pathlib.Path(tempfile.mkdtemp(prefix="peer_smoke_")))
    else:
        write(name, result)


if __name__ == "__main__":
    main()
