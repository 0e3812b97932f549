"""Runtime patch of playground 0.2.0 so the PyTorch reference FastTD3 (229ed59) runs on it.

The reference was written against its authors' Playground fork; released playground 0.2.0 differs
in the three places below, which this module changes in the running process only (nothing on
disk). `bench/reference_worker.py` loads it inside the reference's venv before the reference
imports Playground; it is not imported by FastTD3X.

1. `registry.load` always builds the pure-JAX MJX model (`config_overrides={"impl": "jax"}`):
   the 0.2.0 task configs default to `impl="warp"`, which does not run on CPU here.
2. `BraxAutoResetWrapper` keeps the observation the step produced before its done-based reset
   in `info["raw_obs"]` (and the reset observation there at `reset`), as the fork does: its
   inner env is wrapped so every inner step copies `obs` into `info`, and the auto-reset then
   replaces only `obs` and `data`, leaving `info["raw_obs"]` as the true final observation.
3. `RSLRLBraxWrapper.reset` and `.step` return plain tensors (not a TensorDict of `{"state": ...}`)
   and `step`'s info holds `{"time_outs", "observations": {"critic": None, "raw": {"obs"}},
   "log": {}}`, the fork's layout that the reference's train loop reads. The per-step `.item()`
   of every env metric that 0.2.0 puts in `info["log"]` is left out (the reference never reads
   it). Asymmetric-observation tasks are refused: the fork's `reset_with_critic_obs` is not
   reproduced.
"""

from __future__ import annotations

from mujoco_playground import registry
from mujoco_playground._src import wrapper, wrapper_torch

RAW_OBS = "raw_obs"


def _load_pure_jax(original_load):
    def load(env_name, config=None, config_overrides=None):
        return original_load(env_name, config, {**(config_overrides or {}), "impl": "jax"})

    return load


class _KeepRawObs(wrapper.Wrapper):
    """Inner env of the auto-reset wrapper: copies each step's observation into info."""

    def step(self, state, action):
        state = self.env.step(state, action)
        state.info[RAW_OBS] = state.obs
        return state


def _auto_reset_init(original_init):
    def __init__(self, env, *args, **kwargs):
        original_init(self, _KeepRawObs(env), *args, **kwargs)

    return __init__


def _auto_reset_reset(original_reset):
    def reset(self, rng):
        state = original_reset(self, rng)
        state.info[RAW_OBS] = state.obs
        return state

    return reset


def _rsl_rl_init(original_init):
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self.asymmetric_obs:
            raise NotImplementedError(
                "reference_worker_patch: asymmetric-observation tasks (dict observations) are not "
                "supported; use a task with a flat observation (e.g. the DeepMind Control tasks)"
            )

    return __init__


def _rsl_rl_reset(self):
    self.env_state = self.reset_fn(self.key_reset)
    return wrapper_torch._jax_to_torch(self.env_state.obs)


def _rsl_rl_step(self, action):
    import torch

    action = wrapper_torch._torch_to_jax(torch.clip(action, -1.0, 1.0))
    self.env_state = self.step_fn(self.env_state, action)
    to_torch = wrapper_torch._jax_to_torch
    info = {
        "time_outs": to_torch(self.env_state.info["truncation"]),
        "observations": {"critic": None, "raw": {"obs": to_torch(self.env_state.info[RAW_OBS])}},
        "log": {},
    }
    return to_torch(self.env_state.obs), to_torch(self.env_state.reward), to_torch(self.env_state.done), info


def apply() -> None:
    """Patches the running process's playground 0.2.0 (idempotent)."""
    if getattr(registry, "_fasttd3x_patched", False):
        return
    registry.load = _load_pure_jax(registry.load)
    auto_reset = wrapper.BraxAutoResetWrapper
    auto_reset.__init__ = _auto_reset_init(auto_reset.__init__)
    auto_reset.reset = _auto_reset_reset(auto_reset.reset)
    rsl_rl = wrapper_torch.RSLRLBraxWrapper
    rsl_rl.__init__ = _rsl_rl_init(rsl_rl.__init__)
    rsl_rl.reset = _rsl_rl_reset
    rsl_rl.step = _rsl_rl_step
    registry._fasttd3x_patched = True
