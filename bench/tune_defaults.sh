#!/usr/bin/env bash
# How the gymnax defaults were chosen: sweep.py on master seed 0 only (64 seeds per grid point),
# then the chosen defaults judged on master seeds that tuning never saw (bench/bench_peer.py for
# Pendulum-v1, the report sweeps below for MountainCarContinuous-v0).
#
#   bash bench/tune_defaults.sh            # about an hour on 2 CPU cores
#
# Each sweep writes its summary.csv, plots and per-seed curves under bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two host devices: sweep.py shards the agents over them, one CPU core each.
export XLA_FLAGS="--xla_force_host_platform_device_count=2"

# Pendulum-v1, tuning seeds: the stuck-actor remedy (bench/diagnose_pendulum.py) against the old default.
python sweep.py --env Pendulum-v1 --seed 0 --seeds 64 --quiet \
    --grid STD_MAX=0.8,0.4 --out bench/results/tuning_pendulum

# MountainCarContinuous-v0: tuning seeds, then two report master seeds with the chosen defaults.
python sweep.py --env MountainCarContinuous-v0 --seed 0 --seeds 64 --quiet \
    --grid STD_MAX=0.8,0.4 --out bench/results/tuning_mountaincar
for seed in 1 2; do
    python sweep.py --env MountainCarContinuous-v0 --seed "$seed" --seeds 64 --quiet \
        --no-grid --out "bench/results/report_mountaincar_seed$seed"
done
