"""Running normalizers of observations and rewards, as the reference's EmpiricalNormalization and
RewardNormalizer compute them (spec §6)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


# ==================================================================================================
# OBSERVATION NORMALIZATION (reference EmpiricalNormalization, spec §6.1)
# ==================================================================================================
class Normalizer(NamedTuple):
    mean: jax.Array
    var: jax.Array
    count: jax.Array  # float32: only the ratio batch/count matters, to ~1e-7 relative


def normalizer_init(dim: int) -> Normalizer:
    return Normalizer(jnp.zeros(dim), jnp.ones(dim), jnp.float32(0.0))


def normalizer_update(norm: Normalizer, x: jax.Array) -> Normalizer:
    """The reference's update, quirk included: the cross term uses the *updated* mean."""
    x = x.reshape(-1, x.shape[-1])
    n_batch = x.shape[0]
    batch_mean, batch_var = x.mean(0), x.var(0)
    count = norm.count + n_batch
    mean = norm.mean + (batch_mean - norm.mean) * (n_batch / count)
    delta = batch_mean - mean
    m2 = norm.var * norm.count + batch_var * n_batch + delta**2 * (norm.count * n_batch / count)
    return Normalizer(mean, m2 / count, count)


def normalize(norm: Normalizer, x: jax.Array) -> jax.Array:
    return (x - norm.mean) / (jnp.sqrt(norm.var) + 0.01)  # eps is added to the std


# ==================================================================================================
# REWARD NORMALIZATION (reference RewardNormalizer, spec §6.2)
# ==================================================================================================
class RewardNormalizer(NamedTuple):
    """Running statistics of each env's discounted return G, which set the reward scale."""

    returns: jax.Array  # [NUM_ENVS] G, reset by dones
    stats: Normalizer  # mean and variance of G over envs and iterations (1 dim)
    max_abs: jax.Array  # the largest |G| seen


def reward_normalizer_init(num_envs: int) -> RewardNormalizer:
    return RewardNormalizer(jnp.zeros(num_envs), normalizer_init(1), jnp.float32(0.0))


def reward_normalizer_update(rn: RewardNormalizer, reward, done, gamma) -> RewardNormalizer:
    """G <- gamma (1 - done) G + r with the rollout's rewards and dones, as the reference does
    each iteration before storing the transition."""
    returns = gamma * (1.0 - done) * rn.returns + reward
    return RewardNormalizer(
        returns,
        normalizer_update(rn.stats, returns[:, None]),
        jnp.maximum(rn.max_abs, jnp.abs(returns).max()),
    )


def scale_reward(rn: RewardNormalizer, reward, v_min, v_max):
    """r / max(std(G) + 1e-8, max|G| / g_max) with g_max = min(|v_min|, |v_max|): the scale keeps
    returns within the support once max|G| dominates."""
    g_max = jnp.minimum(jnp.abs(v_min), jnp.abs(v_max))
    return reward / jnp.maximum(jnp.sqrt(rn.stats.var[0]) + 1e-8, rn.max_abs / g_max)
