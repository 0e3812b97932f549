"""C51: the projection of a distributional TD target onto the critic's fixed support (spec §3.2,
HEAD semantics with the #30 fix)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def categorical_projection(probs, reward, bootstrap, discount, v_min, v_max):
    """Projects r + bootstrap * discount * z onto the support z = linspace(v_min, v_max, N).

    probs: [B, N] target probabilities. Each atom's mass goes to its two neighbours with the
    triangular kernel max(0, 1 - |b - i|), which is what the fixed reference computes.
    """
    num_atoms = probs.shape[-1]
    support = jnp.linspace(v_min, v_max, num_atoms)
    delta = (v_max - v_min) / (num_atoms - 1)
    target = reward[:, None] + (bootstrap * discount)[:, None] * support
    b = (jnp.clip(target, v_min, v_max) - v_min) / delta
    lower = jnp.clip(jnp.floor(b), 0, num_atoms - 2)
    upper_weight = b - lower  # in [0, 1]; an exact atom gives all its mass to `lower`
    lower = lower.astype(jnp.int32)

    def scatter(p, low, w):
        m = jnp.zeros(num_atoms, p.dtype).at[low].add(p * (1.0 - w))
        return m.at[low + 1].add(p * w)

    return jax.vmap(scatter)(probs, lower, upper_weight)
