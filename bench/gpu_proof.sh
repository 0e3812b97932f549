#!/bin/bash
# bench/gpu_proof.py on the offline GPU machine: installs the wheels that its image lacks (the
# line from the header of shared/device/prepare_offline_gpu.sh, which made .whl/ and .menag/),
# then runs the driver with this script's arguments. Results go to $OUT.
#   bash bench/gpu_proof.sh                              # stages a,b,c1,d within 540 s
#   bash bench/gpu_proof.sh --stages c2 --budget-s 570   # the 10.24M-step curve, its own call
cd "$(dirname "$0")/.." || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD \
  MENAGERIE_PATH=$PWD/.menag XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
exec python3 bench/gpu_proof.py "$@"
