"""The sweep's command line: the argument table, in help groups, and the checks that refuse
flags which cannot run together, before anything is planned or compiled (`parse_args`).

`sweep.py` plans and runs what the parsed arguments describe; the flags of the live log
(live.py, sinks.py), of clusters (cluster.py), of the compilation cache (compile_cache.py) and of
saved configs (config_file.py) are checked here, where a mistake still costs nothing.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from fasttd3x import cluster, config_file, live
from fasttd3x.configs import HPARAM_DEFAULTS, SOLVED_THRESHOLDS, STATIC_DEFAULTS, make_config
from fasttd3x.distributed import HEARTBEAT_TIMEOUT_S

# The default job: 16 seeds at each of the two PRE_TANH_PENALTY values that solved at least 62 of
# 64 tuning seeds (bench/results/tuning_pendulum). The grid was tuned on Pendulum-v1 only, so it is
# the default there alone; any other task runs its config's settings unless --grid says otherwise.
DEFAULT_SEEDS = 16
DEFAULT_GRID_ENV = "Pendulum-v1"
DEFAULT_GRID = ["PRE_TANH_PENALTY=1e-3,1e-2"]


def parse_args(argv=None) -> argparse.Namespace:
    """The sweep's arguments (`argv`, or the command line), refused by name when they cannot run.
    --config puts the saved settings before the command line's --set items (and sets --env);
    --part I/N moves --out to the part's folder, OUT/parts/I-of-N."""
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_config_file(parser, args, sys.argv[1:] if argv is None else argv)
    check_sweep_flags(parser, args)
    check_live_sinks(parser, args)
    check_part(parser, args)
    if args.grid is None:
        searched = args.set or args.sample or args.schedule
        args.grid = list(DEFAULT_GRID) if args.env == DEFAULT_GRID_ENV and not searched else []
    return args


def build_parser() -> argparse.ArgumentParser:
    """The argument table, one help group per job (a table: longer than a function should be)."""
    parser = argparse.ArgumentParser(
        description="Train many FastTD3 agents at once: seeds x a grid of traced settings, "
        "looping over static settings. Rerun the same command to resume.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    static = ", ".join(key for key in STATIC_DEFAULTS if key != "ENV_NAME")  # --env sets ENV_NAME
    parser.epilog = (
        f"static keys (--set; several values loop over compilations): {static}. "
        f"traced keys (--grid, --sample, or one value with --set): {', '.join(HPARAM_DEFAULTS)}"
    )
    what = parser.add_argument_group("what to train: task, seeds, settings")
    what.add_argument("--env", default="Pendulum-v1", help="task: gymnax or MuJoCo Playground name")
    what.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per grid point")
    what.add_argument(
        "--seed", type=int, default=0, help="master PRNG seed; seed i uses split(PRNGKey(seed), seeds)[i]"
    )
    what.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2,...",
        help="traced setting to sweep inside one program (repeatable; the grid is the cartesian "
        f"product). Keys: {', '.join(HPARAM_DEFAULTS)}. Default for {DEFAULT_GRID_ENV}, where it was "
        f"tuned, when no --grid/--set is given: {' '.join(DEFAULT_GRID)}; other tasks: no grid",
    )
    what.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V[,V2,...]",
        help="config override (repeatable). Several values of a static key loop over "
        "compilations; a traced key takes one value here (sweep it with --grid)",
    )
    saved = parser.add_argument_group("saved configs")
    saved.add_argument(
        "--config",
        metavar="FILE",
        help="start from a saved config (a sweep's OUT/combo_XXX/config.json): its task and every setting "
        "that differs from the task's defaults; --set and --grid given here apply on top",
    )
    found = parser.add_argument_group("searching settings: quasi-random points, PBT, schedules")
    found.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="KEY=DIST:ARGS",
        help="traced setting to search (repeatable): KEY=log:LO,HI, KEY=lin:LO,HI or KEY=choice:V1,V2,...; "
        "--samples points are drawn quasi-randomly (scrambled Halton, from --seed), each crossed with "
        "--seeds and any --grid, in one program",
    )
    found.add_argument("--samples", type=int, default=None, metavar="N", help="points drawn from --sample")
    found.add_argument(
        "--pbt",
        action="store_true",
        help="population-based training over the --sample space: the --samples x --seeds agents start "
        "at the sampled points; every --pbt-every evaluations the worst --pbt-fraction take the complete "
        "state of one of the best and perturb or resample their settings",
    )
    found.add_argument("--pbt-every", type=int, default=1, metavar="E", help="evaluations per PBT generation")
    found.add_argument(
        "--pbt-fraction",
        type=float,
        default=0.25,
        metavar="Q",
        help="share of the population replaced, and parents",
    )
    found.add_argument(
        "--pbt-factors",
        default="0.8,1.2",
        metavar="DOWN,UP",
        help="PBT perturbation factors, one drawn per setting",
    )
    found.add_argument(
        "--pbt-resample",
        type=float,
        default=0.25,
        metavar="P",
        help="probability that PBT draws a setting anew from its range instead of perturbing it",
    )
    found.add_argument(
        "--pbt-keep-experience",
        action="store_true",
        help="PBT: a replaced agent keeps its own replay buffer and envs and takes only its parent's "
        "learner (networks, optimizers, target critic, normalizers); default: it takes everything",
    )
    found.add_argument(
        "--schedule",
        metavar="FILE",
        help="replay a schedule of settings (a PBT sweep's OUT/combo_XXX/schedule_best.json): plain agents "
        "whose settings change between evaluations as the file says",
    )
    run = parser.add_argument_group("running and resuming: results folder, calls, checkpoints, output")
    run.add_argument("--out", default=None, help="results folder (default: results/<env>)")
    run.add_argument(
        "--chunk", type=int, default=None, help="agents per device call (default: from free memory)"
    )
    run.add_argument(
        "--save-policies", action="store_true", help="also store every agent's final actor and normalizer"
    )
    run.add_argument(
        "--solved-at",
        type=float,
        default=None,
        metavar="RETURN",
        help="final eval return at or above which a seed counts as solved, for the success columns "
        f"of the summary and the plots (default: the task's entry in {SOLVED_THRESHOLDS})",
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="EVALS",
        help="save each running call's complete state (replay buffers, env states, RNG) every EVALS "
        "evaluations, so a killed sweep rerun with the same command loses at most EVALS evals of "
        "work (default: no checkpoints; a killed call restarts from its beginning)",
    )
    run.add_argument("--no-plots", action="store_true", help="skip drawing the plots at the end")
    run.add_argument(
        "--quiet", action="store_true", help="no progress lines (per evaluation and inside long ones)"
    )
    run.add_argument(
        "--watchdog",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="report (without stopping) when the sweep shows no progress for this long: what it "
        "waits on and where; 0 turns it off",
    )
    watch = parser.add_argument_group("live metrics (OUT/live.jsonl is always written)")
    watch.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to OUT/tensorboard: per grid point the mean, IQM and "
        "interquartile band over seeds after each evaluation, the spec, the final summary "
        '(pip install "fasttd3x[tensorboard]")',
    )
    watch.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="also log to this Weights & Biases project, like --tensorboard (files in OUT/wandb; "
        'WANDB_MODE=offline keeps it local; pip install "fasttd3x[wandb]")',
    )
    watch.add_argument(
        "--log-agents", action="store_true", help="--tensorboard/--wandb: every agent's curves too"
    )
    many = parser.add_argument_group("many processes: one sweep over several GPUs or hosts")
    many.add_argument(
        "--distributed",
        action="store_true",
        help="one of several processes running this same command (many GPUs or hosts): joins them "
        "with jax.distributed.initialize(), which reads the three settings below from the cluster "
        "(SLURM, Open MPI, ...) unless they are given; process 0 writes the results",
    )
    many.add_argument("--coordinator", metavar="HOST:PORT", help="--distributed: process 0's address")
    many.add_argument("--num-processes", type=int, metavar="N", help="--distributed: processes in all")
    many.add_argument("--process-id", type=int, metavar="I", help="--distributed: this one, 0..N-1")
    many.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=HEARTBEAT_TIMEOUT_S,
        metavar="SECONDS",
        help="--distributed: a process silent this long counts as lost, and every other one stops "
        f"(default {HEARTBEAT_TIMEOUT_S})",
    )
    parts = parser.add_argument_group("clusters: parts, merging, locking")
    parts.add_argument(
        "--part",
        metavar="I/N",
        help="train only part I of N (1..N) of every combination's agents into OUT/parts/I-of-N, with no "
        "coordinator (a job array); needs --chunk, and not --pbt. Merge the finished parts with "
        "--merge-parts OUT: the same results as the whole sweep with the same --chunk",
    )
    parts.add_argument(
        "--merge-parts",
        metavar="OUT",
        help="merge the parts in OUT/parts into OUT (checked to be one sweep, every agent finished), "
        "then write the summary and plots; trains nothing",
    )
    cache = parser.add_argument_group("compilation cache")
    cache.add_argument(
        "--compile-cache",
        metavar="DIR",
        default=None,
        help="folder of JAX's persistent compilation cache, so a resume loads its programs instead of "
        "compiling them (default: $JAX_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/fasttd3x/jax, "
        "else ~/.cache/fasttd3x/jax)",
    )
    cache.add_argument(
        "--no-compile-cache", action="store_true", help="compile every program anew (no persistent cache)"
    )
    cache.add_argument(
        "--no-heartbeats",
        action="store_true",
        help="no progress reports from inside evaluation intervals of 1,000 iterations or more: "
        "such reports are host callbacks, and JAX's cache never stores a program that has them, so "
        "without them a resume loads the training program instead of compiling it again",
    )
    return parser


def check_sweep_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses sizes out of range and flags that need, or exclude, one another; parses
    --pbt-factors."""
    if not args.distributed and (args.coordinator, args.num_processes, args.process_id) != (None,) * 3:
        parser.error("--coordinator, --num-processes and --process-id go with --distributed")
    if args.heartbeat_timeout < 1:
        parser.error(f"--heartbeat-timeout must be at least 1 second, got {args.heartbeat_timeout}")
    if args.num_processes is not None and args.num_processes < 1:
        parser.error(f"--num-processes must be at least 1, got {args.num_processes}")
    if args.process_id is not None and not 0 <= args.process_id < (args.num_processes or 2**31):
        parser.error(f"--process-id must be in 0..{(args.num_processes or 2**31) - 1}, got {args.process_id}")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be at least 1 evaluation, got {args.checkpoint_every}")
    if args.chunk is not None and args.chunk < 1:
        parser.error(f"--chunk must be at least 1, got {args.chunk}")
    if not np.isfinite(args.watchdog) or args.watchdog < 0:
        parser.error(f"--watchdog must be a number of seconds >= 0 (0: off), got {args.watchdog}")
    if args.solved_at is not None and not np.isfinite(args.solved_at):
        parser.error(f"--solved-at must be a finite return, got {args.solved_at}")
    if bool(args.sample) != (args.samples is not None):
        parser.error("--sample and --samples go together: the space and how many points to draw from it")
    if args.samples is not None and args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    if args.pbt and not args.sample:
        parser.error("--pbt needs a search space: give the settings to explore with --sample and --samples")
    if args.schedule and (args.pbt or args.sample):
        parser.error(
            f"--schedule {args.schedule} replays fixed settings; it does not combine with --pbt or --sample"
        )
    try:
        args.pbt_factors = tuple(float(f) for f in args.pbt_factors.split(","))
    except ValueError:
        parser.error(f"--pbt-factors expects DOWN,UP, got {args.pbt_factors!r}")
    if len(args.pbt_factors) != 2:
        parser.error(f"--pbt-factors expects DOWN,UP, got {args.pbt_factors}")


def apply_config_file(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """--config FILE: the file's task becomes --env (refused if --env asks for another), and its
    settings that differ from the task's defaults go before the command line's --set items."""
    if not args.config:
        return
    try:
        saved = config_file.load(args.config)
        env_given = any(a == "--env" or a.startswith("--env=") for a in argv)
        if env_given and args.env != saved["ENV_NAME"]:
            raise ValueError(
                f"--config {args.config} is for {saved['ENV_NAME']}, and --env asks for {args.env}"
            )
        args.env = saved["ENV_NAME"]
        args.set = config_file.set_items(saved, make_config(args.env)) + args.set
    except ValueError as error:
        parser.error(str(error))


def check_live_sinks(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses --tensorboard or --wandb without its package (naming the extra to install), and
    --log-agents without either."""
    for wanted, module, extra in (
        (args.tensorboard, "tensorboardX", "tensorboard"),
        (args.wandb, "wandb", "wandb"),
    ):
        if wanted:
            try:
                live.require(module, extra, f"--{extra}")
            except live.OptionalDependencyError as error:
                parser.error(str(error))
    if args.log_agents and not (args.tensorboard or args.wandb):
        parser.error("--log-agents goes with --tensorboard or --wandb (live.jsonl always holds every agent)")


def check_part(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--part I/N: parsed into a `cluster.Part`, refused without --chunk or with a flag that joins
    agents across parts; --out becomes the part's folder."""
    if args.part is None:
        return
    try:
        args.part = cluster.parse_part(args.part)
    except ValueError as error:
        parser.error(str(error))
    if args.chunk is None:
        parser.error(
            f"--part {args.part.index}/{args.part.count} needs --chunk: every part must run the calls "
            "the whole sweep runs, and the call size chosen from free memory can differ between machines"
        )
    if args.pbt or args.distributed or args.merge_parts:
        other = "--pbt" if args.pbt else "--distributed" if args.distributed else "--merge-parts"
        parser.error(f"--part does not combine with {other}: parts train independent agents apart")
    args.out = str(cluster.part_folder(pathlib.Path(args.out or f"results/{args.env}"), args.part))
