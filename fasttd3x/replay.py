"""The replay buffer: per-env rings of transitions and n-step sampling (spec §5)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fasttd3x import envs


# ==================================================================================================
# REPLAY BUFFER
# ==================================================================================================
# One ring per environment, time-major: slot t of every env is written at iteration t % B. Each
# observation is stored once: the next observation of slot t is the observation in slot t+1,
# except where an episode timed out, whose true final observation lives in a small side ring
# (`final_obs`, indexed by `final_index`). A time-out happens at most once per episode_iterations
# steps, so that ring needs only ceil(B / episode_iterations) + 1 entries per env. Terminations
# need no final observation: they never bootstrap.
class ReplayBuffer(NamedTuple):
    obs: jax.Array  # [B, N, obs_dim]
    privileged: jax.Array  # [B, N, privileged_dim]
    action: jax.Array  # [B, N, action_dim], unclipped, as the reference stores it
    reward: jax.Array  # [B, N]
    done: jax.Array  # [B, N] bool
    truncated: jax.Array  # [B, N] bool
    final_index: jax.Array  # [B, N] int32, row of final_obs for truncated slots
    final_obs: jax.Array  # [F, N, obs_dim + privileged_dim]
    num_truncations: jax.Array  # [N] int32
    ptr: jax.Array  # iterations written so far


class Batch(NamedTuple):
    """n-step transitions, env-major, raw (unnormalized) observations."""

    obs: jax.Array
    privileged: jax.Array
    action: jax.Array
    reward: jax.Array  # n-step discounted reward sum
    next_obs: jax.Array
    next_privileged: jax.Array
    discount: jax.Array  # gamma ** (rewards summed)
    bootstrap: jax.Array  # 1.0 unless the window ended in a termination


def final_ring_size(buffer_size: int, episode_iterations: int) -> int:
    return math.ceil(buffer_size / episode_iterations) + 1


def buffer_init(size, num_envs, obs_dim, privileged_dim, action_dim, episode_iterations):
    final_size = final_ring_size(size, episode_iterations)
    return ReplayBuffer(
        obs=jnp.zeros((size, num_envs, obs_dim)),
        privileged=jnp.zeros((size, num_envs, privileged_dim)),
        action=jnp.zeros((size, num_envs, action_dim)),
        reward=jnp.zeros((size, num_envs)),
        done=jnp.zeros((size, num_envs), bool),
        truncated=jnp.zeros((size, num_envs), bool),
        final_index=jnp.zeros((size, num_envs), jnp.int32),
        final_obs=jnp.zeros((final_size, num_envs, obs_dim + privileged_dim)),
        num_truncations=jnp.zeros(num_envs, jnp.int32),
        ptr=jnp.int32(0),
    )


def buffer_for(config: dict, env: envs.Env) -> ReplayBuffer:
    """The empty buffer of one agent for this config and task."""
    return buffer_init(
        config["BUFFER_SIZE"],
        config["NUM_ENVS"],
        env.obs_dim,
        env.privileged_dim,
        env.action_dim,
        env.episode_iterations,
    )


def buffer_add(buf: ReplayBuffer, obs, privileged, action, step: envs.StepOutput) -> ReplayBuffer:
    """Writes one iteration (all envs) at slot ptr % B."""
    slot = buf.ptr % buf.obs.shape[0]
    envs_idx = jnp.arange(buf.obs.shape[1])
    final_row = buf.num_truncations % buf.final_obs.shape[0]
    final = jnp.concatenate([step.final_obs, step.final_privileged], -1)
    kept = buf.final_obs[final_row, envs_idx]
    return buf._replace(
        obs=buf.obs.at[slot].set(obs),
        privileged=buf.privileged.at[slot].set(privileged),
        action=buf.action.at[slot].set(action),
        reward=buf.reward.at[slot].set(step.reward),
        done=buf.done.at[slot].set(step.done),
        truncated=buf.truncated.at[slot].set(step.truncated),
        final_index=buf.final_index.at[slot].set(final_row),
        final_obs=buf.final_obs.at[final_row, envs_idx].set(jnp.where(step.truncated[:, None], final, kept)),
        num_truncations=buf.num_truncations + step.truncated,
        ptr=buf.ptr + 1,
    )


def nstep_return(rewards, dones, gamma):
    """n-step return over windows [..., n] that stop at the first done (spec §5).

    Returns (discounted reward sum, gamma ** number of rewards summed, index of the window's
    last transition). A window ends at its first done; truncations imply dones here.
    """
    n = rewards.shape[-1]
    alive_before = jnp.cumprod(1.0 - dones, -1)
    mask = jnp.concatenate([jnp.ones_like(alive_before[..., :1]), alive_before[..., :-1]], -1)
    powers = gamma ** jnp.arange(n, dtype=jnp.float32)
    reward = (rewards * mask * powers).sum(-1)
    summed = mask.sum(-1)
    last = jnp.where(dones.any(-1), jnp.argmax(dones, -1), n - 1)
    return reward, gamma**summed, last


def buffer_sample(
    buf: ReplayBuffer, key, per_env: int, n_steps: int, gamma, disable_bootstrap: bool = False
) -> Batch:
    """`per_env` n-step windows from every env, uniform with replacement over valid starts.

    A window is valid when its next observation is stored, so windows never cross the write
    pointer: starts run over the oldest `size - n_steps` slots. A window that ends in a time-out
    bootstraps from the true final observation unless `disable_bootstrap` (the reference's
    `disable_bootstrap`: every done, time-outs included, ends the return).
    """
    capacity, num_envs = buf.obs.shape[:2]
    size = jnp.minimum(buf.ptr, capacity)
    oldest = (buf.ptr - size) % capacity
    offsets = jax.random.randint(key, (num_envs, per_env), 0, size - n_steps)
    start = (oldest + offsets) % capacity
    envs_idx = jnp.arange(num_envs)[:, None]
    window = (start[..., None] + jnp.arange(n_steps)) % capacity  # [N, S, n]
    reward, discount, last = nstep_return(
        buf.reward[window, envs_idx[..., None]],
        buf.done[window, envs_idx[..., None]].astype(jnp.float32),
        gamma,
    )
    end = (start + last) % capacity
    done_end, trunc_end = buf.done[end, envs_idx], buf.truncated[end, envs_idx]
    stored_next = (end + 1) % capacity
    final = buf.final_obs[buf.final_index[end, envs_idx], envs_idx]
    obs_dim = buf.obs.shape[-1]
    next_obs = jnp.where(trunc_end[..., None], final[..., :obs_dim], buf.obs[stored_next, envs_idx])
    next_privileged = jnp.where(
        trunc_end[..., None], final[..., obs_dim:], buf.privileged[stored_next, envs_idx]
    )
    flat = lambda x: x.reshape(num_envs * per_env, *x.shape[2:])  # noqa: E731
    return Batch(
        obs=flat(buf.obs[start, envs_idx]),
        privileged=flat(buf.privileged[start, envs_idx]),
        action=flat(buf.action[start, envs_idx]),
        reward=flat(reward),
        next_obs=flat(next_obs),
        next_privileged=flat(next_privileged),
        discount=flat(discount),
        bootstrap=flat((~done_end if disable_bootstrap else trunc_end | ~done_end).astype(jnp.float32)),
    )
