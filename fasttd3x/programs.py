"""The compiled programs of a sweep: one static combination's `init` and `run`, vmapped over the
agents of a call and sharded over every device of every process."""

from __future__ import annotations

import concurrent.futures
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

import purejax_fasttd3 as ft
from fasttd3x import checkpoints, distributed
from fasttd3x.capacity import tree_bytes
from fasttd3x.configs import HPARAM_DEFAULTS


class CallPrograms:
    """The two compiled programs of one static combination, vmapped over calls of `num_agents`
    agents and sharded over all devices: `init` starts new agents, `run(state)` trains them one
    more evaluation. Construction traces `init` once, which gives the state's shapes (what a
    checkpoint holds, how one is placed back); `compile` builds both side by side before the first
    call (init only when some call starts from scratch). Every call advances one evaluation at a
    time with the same `run` program, checkpointed or not, stopped and resumed or not, so a resumed
    call equals an uninterrupted one bit for bit, and a stop request is honoured at the next
    evaluation. `progress(eval_index)` is called by the host after each evaluation (`report`), not
    from inside `run`: JAX's persistent compilation cache never stores a program with host
    callbacks, so only `heartbeat` (see `ft.make_train_loop`), when given, keeps `run` out of it."""

    def __init__(self, config: dict, mesh, num_agents: int, progress=None, heartbeat=None):
        self.loop = ft.make_train_loop(config, heartbeat=heartbeat)
        self.progress = progress
        agents = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))
        shared = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        self.state_sharding = jax.tree.map(
            lambda axis: agents if axis == 0 else shared, ft.RUNNER_AXES, is_leaf=lambda x: x is None
        )
        init = jax.jit(
            jax.vmap(self.loop.init, out_axes=ft.RUNNER_AXES),
            in_shardings=(agents, agents),
            out_shardings=self.state_sharding,
        )
        start = time.perf_counter()
        per_agent = functools.partial(jax.ShapeDtypeStruct, sharding=agents)
        rngs = per_agent((num_agents, 2), jnp.uint32)
        hp = {key: per_agent((num_agents,), jnp.float32) for key in HPARAM_DEFAULTS}
        self._lowered_init = init.lower(rngs, hp)  # tracing init traces the env reset: done once
        self._state_template = self._lowered_init.out_info
        self._init = self._run = None  # compiled by `compile`
        self._agents, self._shared = agents, shared
        self.compile_seconds = time.perf_counter() - start

    def _run_jit(self):
        run = jax.vmap(
            functools.partial(self.loop.run, num_evals=1),
            in_axes=(ft.RUNNER_AXES,),
            out_axes=(ft.RUNNER_AXES, 0),
        )
        return jax.jit(
            run,
            in_shardings=(self.state_sharding,),
            out_shardings=(self.state_sharding, self._agents),
            donate_argnums=0,  # the state is replaced, never read again: reuse its memory
        )

    def compile(self, with_init: bool = True) -> None:
        """Compiles `run`, and `init` if `with_init` (a sweep whose calls all resume from
        checkpoints never starts an agent), at once. XLA compiles outside the GIL, so the env's
        reset (in init) and its step (in run), tens of seconds each for an MJX robot, compile
        side by side."""
        start = time.perf_counter()
        lowered = {"run": self._run_jit().lower(self._state_template)}
        if with_init:
            lowered["init"] = self._lowered_init
        with concurrent.futures.ThreadPoolExecutor(len(lowered)) as pool:
            compiled = dict(zip(lowered, pool.map(lambda program: program.compile(), lowered.values())))
        self._run, self._init = compiled["run"], compiled.get("init")
        self.compile_seconds += time.perf_counter() - start

    def init(self, rngs: np.ndarray, hparams: dict[str, np.ndarray]):
        """New agents from every row's PRNG key and traced settings (NumPy, whole on every process)."""
        return self._init(*distributed.place((rngs, hparams), self._agents))  # compiled by `compile`

    def run(self, state):
        """One more evaluation of every agent of the call: (state, that evaluation's metrics)."""
        return self._run(state)

    def report(self, eval_index: int) -> None:
        """The progress callback for a finished evaluation (0-based), if there is one; on process
        0 only, like the heartbeats (which come from its first device)."""
        if self.progress is not None and jax.process_index() == 0:
            self.progress(eval_index)

    def state_bytes(self) -> int:
        """Bytes of a call's complete state: what one checkpoint holds."""
        return tree_bytes(self._state_template)

    def place_state(self, leaves: list[np.ndarray]):
        """The sharded state of a call from this process's rows of every leaf (what
        `checkpoints.save_checkpoint` saved), refused when they do not fit this config's state.
        The eval counter is the only unbatched (scalar) leaf."""
        specs, treedef = jax.tree.flatten(self._state_template)
        checkpoints.check_state_fits(leaves, specs)
        placed = []
        for leaf, spec in zip(leaves, specs):
            sharding = self._agents if spec.ndim else self._shared
            placed.append(
                jax.make_array_from_process_local_data(sharding, leaf.astype(spec.dtype), spec.shape)
            )
        return jax.tree.unflatten(treedef, placed)
