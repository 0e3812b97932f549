"""Replay memory per agent and per stored transition, against the reference's layout.

The reference (`SimpleReplayBuffer`, spec §5) stores float32 obs and next obs, the privileged
tail twice (asymmetric Playground tasks), float32 action and reward, and int64 done and
truncation flags. Ours stores each observation once plus a small ring of time-out observations.
Also the whole per-agent state `train` carries (`TrainLoop.init`'s Runner: replay, networks,
target critics, optimizer states, normalizers, env states), at the task's defaults and, for
CheetahRun, at the 128 envs and batch 4096 of the measured 128-agent scaling point, so the model
can be set beside what XLA reported there. Shapes only: nothing is allocated, so this runs
anywhere.

    MENAGERIE_PATH=../shared/menagerie python bench/bench_memory.py [TASK ...]

Writes bench/results/memory.json.
"""

from __future__ import annotations

import sys

import jax

import purejax_fasttd3 as ft
from common import environment, write
from fasttd3x import capacity, envs


def reference_bytes_per_transition(env: envs.Env) -> int:
    floats = 2 * env.obs_dim + 2 * env.privileged_dim + env.action_dim + 1
    return 4 * floats + 2 * 8


def state_bytes(config: dict) -> int:
    """Bytes of one agent's whole training state (`TrainLoop.init`; shapes only)."""
    loop = ft.make_train_loop(config)
    shapes = jax.eval_shape(loop.init, jax.random.PRNGKey(0))
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))


# The settings of the measured scaling point (bench/results/gpu_proof_scaling_NVIDIA_H200.json).
SCALING_POINT = {"task": "CheetahRun", "overrides": {"NUM_ENVS": 128, "BATCH_SIZE": 4096}}


def main() -> None:
    tasks = sys.argv[1:] or ["T1JoystickFlatTerrain", "CheetahRun", "Pendulum-v1"]
    rows = {}
    for task in tasks:
        config = ft.make_config(task)
        env = envs.make_env(config)
        total = capacity.replay_bytes(config, env)
        transitions = config["BUFFER_SIZE"] * config["NUM_ENVS"]
        ours = total / transitions
        reference = reference_bytes_per_transition(env)
        rows[task] = {
            "num_envs": config["NUM_ENVS"],
            "buffer_size_per_env": config["BUFFER_SIZE"],
            "obs_dim": env.obs_dim,
            "privileged_dim": env.privileged_dim,
            "action_dim": env.action_dim,
            "replay_bytes_per_agent": total,
            "bytes_per_transition": ours,
            "reference_bytes_per_transition": reference,
            "ratio_to_reference": ours / reference,
            "state_bytes_per_agent": state_bytes(config),
        }
        print(
            f"{task}: {ours:.1f} B/transition vs reference {reference} ({ours / reference:.2f}x), "
            f"{total / 2**30:.2f} GiB per agent"
        )
    point = ft.make_config(SCALING_POINT["task"], **SCALING_POINT["overrides"])
    scaling_point = {**SCALING_POINT, "state_bytes_per_agent": state_bytes(point)}
    record = {"benchmark": "replay_memory", "tasks": rows, "scaling_point": scaling_point}
    write("memory", {**record, **environment()})


if __name__ == "__main__":
    main()
