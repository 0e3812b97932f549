"""NumPy references the unit tests share: `from numpy_reference import project, log_softmax`.

A plain module next to the tests, like shared_configs.py: float64, written from the formulas,
not from the JAX code they check."""

import numpy as np


def project(p, r, boot, disc, v_min, v_max):
    """C51 projection with the triangular kernel, in float64: m_i = sum_j p_j max(0, 1 - |b_j - i|)."""
    p, r, boot, disc = (np.asarray(a, np.float64) for a in (p, r, boot, disc))
    n = p.shape[-1]
    z = np.linspace(v_min, v_max, n)
    dz = (v_max - v_min) / (n - 1)
    b = (np.clip(r[:, None] + boot[:, None] * disc[:, None] * z, v_min, v_max) - v_min) / dz
    kernel = np.clip(1.0 - np.abs(b[:, :, None] - np.arange(n)), 0.0, None)  # [B, j, i]
    return np.einsum("bj,bji->bi", p, kernel)


def log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def softmax(x):
    return np.exp(log_softmax(x))
