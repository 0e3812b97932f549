"""The actor and critic networks: the reference's MLPs (optionally with a SimNorm layer) and SimbaV2.

`make_networks(config, action_dim)` picks them from AGENT and SIM_TYPE; every module keeps float32
parameters and computes in COMPUTE_DTYPE.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

# ==================================================================================================
# MLP ACTOR AND CRITIC (reference fast_td3.py)
# ==================================================================================================
# PyTorch's default Linear init (uniform +-1/sqrt(fan_in) for weights and biases), which the
# reference relies on; flax's defaults differ.
_torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def _torch_dense(width: int, fan_in: int, dtype) -> nn.Dense:
    """A linear layer initialized as torch's nn.Linear, float32 parameters, `dtype` compute."""
    return nn.Dense(
        width,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=_torch_kernel_init,
        bias_init=_torch_bias_init(fan_in),
    )


def _mlp(x, widths, dtype):
    for width in widths:
        x = nn.relu(_torch_dense(width, x.shape[-1], dtype)(x))
    return x


def _simnorm_layer(x, seq_len: int, sim_dimension: int, dtype):
    """The reference's SimNormLinear: Linear -> LayerNorm -> softmax within each of `seq_len`
    groups of `sim_dimension` units, so the features are `seq_len` points on simplices."""
    dense = _torch_dense(seq_len * sim_dimension, x.shape[-1], dtype)
    x = nn.LayerNorm(epsilon=1e-5, dtype=jnp.float32)(dense(x).astype(jnp.float32))  # torch's eps
    groups = jax.nn.softmax(x.reshape(*x.shape[:-1], seq_len, sim_dimension), -1)
    return groups.reshape(x.shape).astype(dtype)


def mlp_widths(hidden_dim: int) -> tuple[int, int, int]:
    """The reference MLP's hidden widths: h, h/2, h/4."""
    return hidden_dim, hidden_dim // 2, hidden_dim // 4


def _trunk(x, hidden_dim: int, seq_len: int, sim_dimension: int, dtype):
    """Hidden layers h, h/2, then h/4 (ReLU) or, with `seq_len` > 0, a SimNorm layer."""
    *first, last = mlp_widths(hidden_dim)
    if seq_len == 0:
        return _mlp(x, (*first, last), dtype)
    return _simnorm_layer(_mlp(x, first, dtype), seq_len, sim_dimension, dtype)


class Actor(nn.Module):
    """obs -> 3 ReLU layers (h, h/2, h/4) -> tanh action in [-1, 1] (and, if asked, the
    pre-tanh output the actor loss penalizes). `seq_len` > 0: the third layer is SimNorm."""

    action_dim: int
    hidden_dim: int
    dtype: Any = jnp.float32
    seq_len: int = 0
    sim_dimension: int = 0

    @nn.compact
    def __call__(self, obs, with_pre_tanh: bool = False):
        x = _trunk(obs, self.hidden_dim, self.seq_len, self.sim_dimension, self.dtype)
        # Unit-normal init; `init_actor` rescales it to N(0, INIT_SCALE) (a traced setting).
        head = nn.Dense(
            self.action_dim,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=nn.initializers.normal(1.0),
            bias_init=nn.initializers.zeros,
            name="head",
        )
        pre_tanh = head(x).astype(jnp.float32)
        return (jnp.tanh(pre_tanh), pre_tanh) if with_pre_tanh else jnp.tanh(pre_tanh)


class DistributionalCritic(nn.Module):
    """(critic obs, action) -> logits over NUM_ATOMS returns. Twins are a leading param axis.
    `seq_len` > 0: the third hidden layer is SimNorm."""

    num_atoms: int
    hidden_dim: int
    dtype: Any = jnp.float32
    seq_len: int = 0
    sim_dimension: int = 0

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([obs, action], -1)
        x = _trunk(x, self.hidden_dim, self.seq_len, self.sim_dimension, self.dtype)
        logits = nn.Dense(
            self.num_atoms,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=_torch_kernel_init,
            bias_init=_torch_bias_init(x.shape[-1]),
        )(x)
        return logits.astype(jnp.float32)  # softmax and projection stay in float32


# ==================================================================================================
# SIMBAV2 (reference fast_td3_simbav2.py)
# ==================================================================================================
# SimbaV2 (Lee et al. 2025) as the reference's fast_td3_simbav2.py builds it: features live on the
# unit sphere; bias-free orthogonal layers, learned per-unit scalers and residual blocks that
# interpolate between a point and the block's output. Dense layers run in the compute dtype,
# the normalizations and scalers in float32. As in the reference, parameters are not projected
# back onto the sphere after optimizer steps.
def _l2normalize(x):
    x = x.astype(jnp.float32)
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def orthogonal_init(key, shape, dtype=jnp.float32):
    """A Haar-random matrix with orthonormal rows or columns (whichever side is shorter), the
    distribution of torch's `orthogonal_`. QR is Gram-Schmidt, each column projected twice, in plain
    jnp: jaxlib 0.10's LAPACK QR, batched over vmapped agents, deadlocks XLA's CPU thread pool."""
    rows, cols = shape
    tall = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)

    def next_column(j, q):  # columns not yet built are zero, so q @ q.T projects on the finished ones
        v = tall[:, j]
        for _ in range(2):
            v = v - q @ (q.T @ v)
        return q.at[:, j].set(v / jnp.linalg.norm(v))

    q = jax.lax.fori_loop(0, tall.shape[1], next_column, jnp.zeros_like(tall))
    return (q if rows >= cols else q.T).astype(dtype)


def _hyper_dense(x, width: int, dtype):
    dense = nn.Dense(width, use_bias=False, dtype=dtype, param_dtype=jnp.float32, kernel_init=orthogonal_init)
    return dense(x).astype(jnp.float32)


class Scaler(nn.Module):
    """A learned per-unit gain, stored as start*scale and applied times start/scale (the
    reference's parametrization: its effective initial gain is start**2)."""

    start: float
    scale: float

    @nn.compact
    def __call__(self, x):
        gain = self.param("scaler", nn.initializers.constant(self.start * self.scale), (x.shape[-1],))
        return gain * (self.start / self.scale) * x


def _simba_encoder(x, hidden_dim: int, num_blocks: int, dtype):
    """Embedder (shift constant 3, sphere, dense, scaler, sphere), then `num_blocks` LERP blocks."""
    gain = math.sqrt(2.0 / hidden_dim)
    x = jnp.concatenate([x, jnp.full((*x.shape[:-1], 1), 3.0, x.dtype)], -1)
    x = _l2normalize(Scaler(gain, gain)(_hyper_dense(_l2normalize(x), hidden_dim, dtype)))
    alpha_init, alpha_scale = 1.0 / (num_blocks + 1), 1.0 / math.sqrt(hidden_dim)
    for _ in range(num_blocks):  # the MLP is 4x wide; its scaler's init and scale shrink by 2
        y = Scaler(gain / 2.0, gain / 2.0)(_hyper_dense(x, 4 * hidden_dim, dtype))
        y = _l2normalize(_hyper_dense(nn.relu(y) + 1e-8, hidden_dim, dtype))
        x = _l2normalize(x + Scaler(alpha_init, alpha_scale)(y - x))
    return x


class SimbaV2Head(nn.Module):
    """dense -> unit scaler -> dense + bias, with no nonlinearity in between (float32 out)."""

    hidden_dim: int
    out_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = Scaler(1.0, 1.0)(_hyper_dense(x, self.hidden_dim, self.dtype))
        return _hyper_dense(x, self.out_dim, self.dtype) + self.param(
            "bias", nn.initializers.zeros, (self.out_dim,)
        )


class SimbaV2Actor(nn.Module):
    """SimbaV2 encoder -> head -> tanh (the same call signature as `Actor`)."""

    action_dim: int
    hidden_dim: int
    num_blocks: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs, with_pre_tanh: bool = False):
        x = _simba_encoder(obs, self.hidden_dim, self.num_blocks, self.dtype)
        pre_tanh = SimbaV2Head(self.hidden_dim, self.action_dim, self.dtype, name="head")(x)
        return (jnp.tanh(pre_tanh), pre_tanh) if with_pre_tanh else jnp.tanh(pre_tanh)


class SimbaV2Critic(nn.Module):
    """(critic obs, action) -> SimbaV2 encoder -> head -> logits (the signature of
    `DistributionalCritic`)."""

    num_atoms: int
    hidden_dim: int
    num_blocks: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs, action):
        x = _simba_encoder(jnp.concatenate([obs, action], -1), self.hidden_dim, self.num_blocks, self.dtype)
        return SimbaV2Head(self.hidden_dim, self.num_atoms, self.dtype, name="head")(x)


# ==================================================================================================
# THE NETWORKS OF A CONFIG
# ==================================================================================================
class Networks(NamedTuple):
    """One agent's flax modules (static: they hold shapes and dtypes, no parameters)."""

    actor: Actor
    critic: DistributionalCritic

    def twin_critic(self, critic_params, obs, action) -> jax.Array:
        """Logits of both critics, [2, B, atoms]: their parameters are stacked on axis 0."""
        return jax.vmap(self.critic.apply, in_axes=(0, None, None))(critic_params, obs, action)


def make_networks(config: dict, action_dim: int) -> Networks:
    dtype = jnp.dtype(config["COMPUTE_DTYPE"])
    if config["AGENT"] == "fasttd3_simbav2":
        return Networks(
            actor=SimbaV2Actor(action_dim, config["ACTOR_HIDDEN_DIM"], config["ACTOR_NUM_BLOCKS"], dtype),
            critic=SimbaV2Critic(
                config["NUM_ATOMS"], config["CRITIC_HIDDEN_DIM"], config["CRITIC_NUM_BLOCKS"], dtype
            ),
        )
    sim, sim_dimension = config["SIM_TYPE"], config["SIM_DIMENSION"]
    actor_seq = config["ACTOR_SEQ_LEN"] if sim in ("sim_actor", "sim_both") else 0
    critic_seq = config["CRITIC_SEQ_LEN"] if sim in ("sim_critic", "sim_both") else 0
    return Networks(
        actor=Actor(action_dim, config["ACTOR_HIDDEN_DIM"], dtype, actor_seq, sim_dimension),
        critic=DistributionalCritic(
            config["NUM_ATOMS"], config["CRITIC_HIDDEN_DIM"], dtype, critic_seq, sim_dimension
        ),
    )


def critic_hidden_widths(config: dict) -> tuple[int, ...]:
    """The widths of one critic's hidden activations, as `make_networks` builds it: what a
    memory estimate counts per sample."""
    hidden = config["CRITIC_HIDDEN_DIM"]
    if config["AGENT"] == "fasttd3_simbav2":  # embedder, then each block's 4x MLP and its output
        return (hidden, *(4 * hidden, hidden) * config["CRITIC_NUM_BLOCKS"], hidden)
    return mlp_widths(hidden)
