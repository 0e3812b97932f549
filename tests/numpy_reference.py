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


def normalize(norm, x):
    """The reference's EmpiricalNormalization forward (spec §6.1), eps added to the std, with
    `norm`'s statistics (mean, var) in NumPy."""
    x = np.asarray(x, np.float64)
    return (x - np.asarray(norm.mean)) / (np.sqrt(np.asarray(norm.var)) + 0.01)


def log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def softmax(x):
    return np.exp(log_softmax(x))


def clip_grad_norm(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ over a list of arrays, as the reference calls it: one
    2-norm over all of them, scale min(1, bound / (norm + 1e-6)), bound inf when max_norm is 0."""
    grads = [np.asarray(g, np.float64) for g in grads]
    norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    bound = max_norm if max_norm > 0 else np.inf
    return [g * min(bound / (norm + 1e-6), 1.0) for g in grads]


class RewardScale:
    """The reference's RewardNormalizer (fast_td3_utils.py) in float64: G per env, its running
    mean and variance by EmpiricalNormalization's update (cross term on the updated mean), the
    running max |G|, and the scale 1 / max(std + 1e-8, max|G| / g_max)."""

    def __init__(self, num_envs, gamma, v_min, v_max):
        self.gamma, self.g_max = gamma, min(abs(v_min), abs(v_max))
        self.returns = np.zeros(num_envs)
        self.mean, self.var, self.count, self.max_abs = 0.0, 1.0, 0, 0.0

    def update(self, reward, done):
        g = self.gamma * (1.0 - np.asarray(done, np.float64)) * self.returns + np.asarray(reward, np.float64)
        n = g.size
        total = self.count + n
        self.mean += (g.mean() - self.mean) * n / total
        delta = g.mean() - self.mean
        self.var = (self.var * self.count + g.var() * n + delta**2 * self.count * n / total) / total
        self.count, self.returns = total, g
        self.max_abs = max(self.max_abs, np.abs(g).max())

    def __call__(self, reward):
        return np.asarray(reward, np.float64) / max(np.sqrt(self.var) + 1e-8, self.max_abs / self.g_max)


def relu(x):
    return np.maximum(x, 0.0)


def simnorm_linear(x, kernel, bias, ln_scale, ln_bias, seq_len, dim):
    """The reference's SimNormLinear: Linear, LayerNorm (eps 1e-5), softmax per group of `dim`."""
    y = x @ kernel + bias
    y = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-5) * ln_scale + ln_bias
    return softmax(y.reshape(*y.shape[:-1], seq_len, dim)).reshape(y.shape)


def l2normalize(x):
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def simbav2(x, embed, blocks, head, hidden_dim):
    """The reference's SimbaV2 network (fast_td3_simbav2.py) before its tanh, if any.

    embed = (kernel, scaler); blocks = [(kernel_up, scaler_up, kernel_down, alpha)];
    head = (kernel1, scaler, kernel2, bias). Scalers are the stored parameters: the forward
    multiplies them by init/scale, which is 1 for all but alpha (init 1/(blocks+1), scale
    1/sqrt(hidden_dim))."""
    x = np.asarray(x, np.float64)
    x = l2normalize(np.concatenate([x, np.full((*x.shape[:-1], 1), 3.0)], -1))
    kernel, scaler = embed
    x = l2normalize((x @ kernel) * scaler)
    alpha_factor = (1.0 / (len(blocks) + 1)) * np.sqrt(hidden_dim)
    for up, scaler_up, down, alpha in blocks:
        y = l2normalize((relu((x @ up) * scaler_up) + 1e-8) @ down)
        x = l2normalize(x + alpha * alpha_factor * (y - x))
    kernel1, scaler, kernel2, bias = head
    return ((x @ kernel1) * scaler) @ kernel2 + bias
