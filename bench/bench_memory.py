"""Replay memory per agent and per stored transition, against the reference's layout.

The reference (`SimpleReplayBuffer`, spec §5) stores float32 obs and next obs, the privileged
tail twice (asymmetric Playground tasks), float32 action and reward, and int64 done and
truncation flags. Ours stores each observation once plus a small ring of time-out observations.
Shapes only: nothing is allocated, so this runs anywhere.

    MENAGERIE_PATH=../shared/menagerie python bench/bench_memory.py [TASK ...]

Writes bench/results/memory.json.
"""

from __future__ import annotations

import sys

import purejax_fasttd3 as ft
from common import environment, write
from fasttd3x import capacity, envs


def reference_bytes_per_transition(env: envs.Env) -> int:
    floats = 2 * env.obs_dim + 2 * env.privileged_dim + env.action_dim + 1
    return 4 * floats + 2 * 8


def main() -> None:
    tasks = sys.argv[1:] or ["T1JoystickFlatTerrain", "CheetahRun"]
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
        }
        print(
            f"{task}: {ours:.1f} B/transition vs reference {reference} ({ours / reference:.2f}x), "
            f"{total / 2**30:.2f} GiB per agent"
        )
    write("memory", {"benchmark": "replay_memory", "tasks": rows, **environment()})


if __name__ == "__main__":
    main()
