"""
FastTD3 (Seo et al. 2025, github.com/younggyoseo/FastTD3): TD3 for massively parallel
simulators, with twin distributional (C51) critics and clipped double Q, n-step returns, one
exploration std per env, large batches and empirical observation normalization. For continuous
gymnax and Brax tasks. `jax.vmap(make_train(config))` trains many seeds, or a grid of `hparams`.
Left out (MuJoCo Playground only): asymmetric critic observations, restarts from the first state.

CONFIG KEYS. Time is counted in env steps, as in PureJaxRL; the reference and FastTD3X (the
project this file comes from, `purejax_fasttd3.make_config`) count vector-env steps and replay
slots per env, so the keys marked *N are theirs times NUM_ENVS.
  here              reference flag             FastTD3X key
  TOTAL_TIMESTEPS   total_timesteps *N         TOTAL_TIMESTEPS *N   (NUM_UPDATES = this // NUM_ENVS)
  EVAL_INTERVAL     eval_interval *N           EVAL_INTERVAL *N
  LEARNING_STARTS   learning_starts *N         LEARNING_STARTS *N
  BUFFER_SIZE       buffer_size *N             BUFFER_SIZE *N       (transitions in all envs)
  UPDATES_PER_STEP  num_updates                NUM_UPDATES          (PureJaxRL's NUM_UPDATES differs)
  N_STEP            num_steps                  NUM_STEPS            (PureJaxRL's NUM_STEPS differs)
  NORMALIZE_OBS     obs_normalization          OBS_NORMALIZATION
  COMPUTE_DTYPE     amp, amp_dtype             COMPUTE_DTYPE
  EPISODE_LENGTH    (env) episode_length       EPISODE_LENGTH       (physics steps)
  ACTION_REPEAT     (env) action_repeat        ACTION_REPEAT
  CRITIC_LR(_END)   critic_learning_rate(_end) CRITIC_LEARNING_RATE(_END)   (cosine start, end)
  ACTOR_LR(_END)    actor_learning_rate(_end)  ACTOR_LEARNING_RATE(_END)
  PRE_TANH_PENALTY  (none: 0)                  PRE_TANH_PENALTY     (see Actor)
Every other key is the reference flag upper-cased and the same FastTD3X key: NUM_ENVS,
NUM_EVAL_ENVS, BATCH_SIZE (all envs together), POLICY_FREQUENCY, NUM_ATOMS, V_MIN, V_MAX,
CRITIC_HIDDEN_DIM, ACTOR_HIDDEN_DIM, USE_CDQ, DISABLE_BOOTSTRAP, GAMMA, TAU, POLICY_NOISE,
NOISE_CLIP, STD_MIN, STD_MAX, WEIGHT_DECAY, INIT_SCALE. The floats in HPARAMS are traced:
`train(rng, hparams)` takes any of them as float32 scalars, so `jax.vmap` sweeps them.

Sections: ENVIRONMENT WRAPPERS, NETWORKS, OBSERVATION NORMALIZER, REPLAY BUFFER, C51 PROJECTION,
TRAIN, MAIN.
"""

import math
from typing import Any, NamedTuple

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

HPARAMS = (
    "CRITIC_LR",
    "ACTOR_LR",
    "CRITIC_LR_END",
    "ACTOR_LR_END",
    "GAMMA",
    "TAU",
    "POLICY_NOISE",
    "NOISE_CLIP",
    "STD_MIN",
    "STD_MAX",
    "V_MIN",
    "V_MAX",
    "WEIGHT_DECAY",
    "INIT_SCALE",
    "PRE_TANH_PENALTY",
)


# ================================================================================================
# ENVIRONMENT WRAPPERS (gymnax API: step(key, state, action, params) -> obs, state, r, done, info)
# ================================================================================================
class GymnaxWrapper:
    """Forwards unknown attributes to the wrapped env."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)


class GymnaxContinuous(GymnaxWrapper):
    """A continuous gymnax env stepped with `step_env`: gymnax's own reset-at-done is left out
    (ours below keeps the final observation). Flat float32 observations and actions."""

    def __init__(self, env_name):
        env, self.env_params = gymnax.make(env_name)
        super().__init__(env)
        space = env.action_space(self.env_params)
        self.action_shape = tuple(space.shape)
        self.action_size = int(np.prod(space.shape))
        self.observation_size = int(np.prod(env.observation_space(self.env_params).shape))
        bound = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32).reshape(-1), (self.action_size,))
        self.action_low, self.action_high = bound(space.low), bound(space.high)

    def reset(self, key, params=None):
        obs, state = self._env.reset_env(key, self.env_params)
        return jnp.ravel(obs).astype(jnp.float32), state

    def step(self, key, state, action, params=None):
        action = jnp.reshape(action, self.action_shape)
        obs, state, reward, done, _ = self._env.step_env(key, state, action, self.env_params)
        return (
            jnp.ravel(obs).astype(jnp.float32),
            state,
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(done, bool),
            {},
        )


class RawBraxWrapper:
    """A raw Brax env, without Brax's EpisodeWrapper (it keeps paying rewards after a
    termination) and AutoResetWrapper (it loses the final observation). The "mjx" backend is
    MuJoCo's own dynamics, run at highest matmul precision as the reference runs MJX."""

    def __init__(self, env_name, backend="mjx"):
        from brax import envs

        self._env = envs.get_environment(env_name=env_name, backend=backend)
        self.action_size = self._env.action_size
        self.observation_size = self._env.observation_size
        self.action_low = self.action_high = None  # Brax takes [-1, 1] as it is

    def reset(self, key, params=None):
        with jax.default_matmul_precision("highest"):
            state = self._env.reset(key)
        return state.obs, state

    def step(self, key, state, action, params=None):
        with jax.default_matmul_precision("highest"):
            state = self._env.step(state, action)
        return state.obs, state, state.reward, state.done > 0.5, {}


class ClipRescaleAction(GymnaxWrapper):
    """The agent acts in [-1, 1]; actions are clipped, then mapped onto the env's bounds."""

    def step(self, key, state, action, params=None):
        action = jnp.clip(action, -1.0, 1.0)
        if self._env.action_low is not None:
            low, high = self._env.action_low, self._env.action_high
            action = low + (action + 1.0) * 0.5 * (high - low)
        return self._env.step(key, state, action, params)


class ActionRepeat(GymnaxWrapper):
    """Each action is applied `repeat` times; rewards stop counting after a termination."""

    def __init__(self, env, repeat):
        super().__init__(env)
        self.repeat = repeat

    def step(self, key, state, action, params=None):
        def one(carry, key):
            state, terminated = carry
            obs, state, reward, done, info = self._env.step(key, state, action, params)
            return (state, terminated | done), (obs, jnp.where(terminated, 0.0, reward), info)

        keys = jax.random.split(key, self.repeat)
        (state, terminated), (obs, rewards, info) = jax.lax.scan(one, (state, jnp.bool_(False)), keys)
        obs, info = jax.tree.map(lambda x: x[-1], (obs, info))
        return obs, state, rewards.sum(), terminated, info


@struct.dataclass
class TimeLimitState:
    env_state: Any
    steps: jnp.ndarray  # physics steps into the episode


class TimeLimitAutoReset(GymnaxWrapper):
    """Ends episodes after `episode_length` physics steps and resets at every done, keeping the
    observation the step reached in info["final_obs"] and info["truncated"] (timed out and not
    terminated): bootstrapping at a time-out needs s_T, not the next episode's first state."""

    def __init__(self, env, episode_length, repeat):
        super().__init__(env)
        self.episode_length, self.repeat = episode_length, repeat

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs, TimeLimitState(state, jnp.int32(0))

    def step(self, key, state, action, params=None):
        key_step, key_reset = jax.random.split(key)
        obs, env_state, reward, terminated, info = self._env.step(key_step, state.env_state, action, params)
        steps = state.steps + self.repeat
        timed_out = steps >= self.episode_length
        info = {**info, "truncated": timed_out & ~terminated, "final_obs": obs}
        done = terminated | timed_out
        reset = self.reset(key_reset, params)
        obs, state = jax.tree.map(
            lambda r, s: jnp.where(done, r, s), reset, (obs, TimeLimitState(env_state, steps))
        )
        return obs, state, reward, done, info


def make_env(config):
    """(training env, eval env): the eval env has neither time limit nor reset."""
    name = config["ENV_NAME"]
    base = GymnaxContinuous(name) if name in gymnax.registered_envs else RawBraxWrapper(name)
    eval_env = ActionRepeat(ClipRescaleAction(base), config["ACTION_REPEAT"])
    return TimeLimitAutoReset(eval_env, config["EPISODE_LENGTH"], config["ACTION_REPEAT"]), eval_env


# ================================================================================================
# NETWORKS (PyTorch's default Linear init, which the reference relies on)
# ================================================================================================
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in):
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def mlp(x, hidden_dim, dtype):
    for width in (hidden_dim, hidden_dim // 2, hidden_dim // 4):
        dense = nn.Dense(
            width, dtype=dtype, kernel_init=torch_kernel_init, bias_init=torch_bias_init(x.shape[-1])
        )
        x = nn.relu(dense(x))
    return x


class Actor(nn.Module):
    """obs -> tanh action. The head starts at N(0, 1) and `train` scales it by INIT_SCALE. The
    pre-tanh output is returned for PRE_TANH_PENALTY: without it an actor can saturate its tanh
    so deeply that the gradient vanishes and it stays at the bound after the critic changes its
    mind (seen on gymnax Pendulum); a small penalty keeps pre-tanh outputs within a few units."""

    action_dim: int
    hidden_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs, with_pre_tanh=False):
        x = mlp(obs, self.hidden_dim, self.dtype)
        head = nn.Dense(
            self.action_dim, dtype=self.dtype, kernel_init=nn.initializers.normal(1.0), name="head"
        )
        pre_tanh = head(x).astype(jnp.float32)
        return (jnp.tanh(pre_tanh), pre_tanh) if with_pre_tanh else jnp.tanh(pre_tanh)


class Critic(nn.Module):
    """(obs, action) -> logits over NUM_ATOMS returns; twins are a leading param axis."""

    num_atoms: int
    hidden_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs, action):
        x = mlp(jnp.concatenate([obs, action], -1), self.hidden_dim, self.dtype)
        logits = nn.Dense(
            self.num_atoms,
            dtype=self.dtype,
            kernel_init=torch_kernel_init,
            bias_init=torch_bias_init(self.hidden_dim // 4),
        )(x)
        return logits.astype(jnp.float32)


# ================================================================================================
# OBSERVATION NORMALIZER (the reference's EmpiricalNormalization; updated on every call in training)
# ================================================================================================
class Normalizer(NamedTuple):
    mean: jnp.ndarray
    var: jnp.ndarray
    count: jnp.ndarray


def normalizer_update(norm, x):
    x = x.reshape(-1, x.shape[-1])
    n = x.shape[0]
    count = norm.count + n
    mean = norm.mean + (x.mean(0) - norm.mean) * (n / count)
    delta = x.mean(0) - mean  # the reference's cross term uses the updated mean
    m2 = norm.var * norm.count + x.var(0) * n + delta**2 * (norm.count * n / count)
    return Normalizer(mean, m2 / count, count)


def normalize(norm, x):
    return (x - norm.mean) / (jnp.sqrt(norm.var) + 0.01)


# ================================================================================================
# REPLAY BUFFER: one time-major ring per env. Each observation is stored once (the next one is the
# following slot), except the true final observations of time-outs, kept in a small side ring.
# ================================================================================================
class Transition(NamedTuple):
    obs: jnp.ndarray  # observation the action was taken in
    action: jnp.ndarray  # unclipped, with exploration noise
    reward: jnp.ndarray
    done: jnp.ndarray
    truncated: jnp.ndarray  # timed out without terminating
    final_obs: jnp.ndarray  # what the step reached, before any reset


class Buffer(NamedTuple):
    obs: jnp.ndarray  # [slots, envs, obs_dim]
    action: jnp.ndarray
    reward: jnp.ndarray
    done: jnp.ndarray
    truncated: jnp.ndarray
    final_index: jnp.ndarray  # row of final_obs for a truncated slot
    final_obs: jnp.ndarray  # [ceil(slots / episode steps) + 1, envs, obs_dim]
    num_truncations: jnp.ndarray  # [envs]
    ptr: jnp.ndarray  # env steps written


class Batch(NamedTuple):
    obs: jnp.ndarray
    action: jnp.ndarray
    reward: jnp.ndarray  # discounted n-step sum
    next_obs: jnp.ndarray
    discount: jnp.ndarray  # gamma ** rewards summed
    bootstrap: jnp.ndarray  # 0 where the window ended in a termination


def buffer_add(buf, t):
    slot, envs = buf.ptr % buf.obs.shape[0], jnp.arange(buf.obs.shape[1])
    row = buf.num_truncations % buf.final_obs.shape[0]
    final = jnp.where(t.truncated[:, None], t.final_obs, buf.final_obs[row, envs])
    return Buffer(
        buf.obs.at[slot].set(t.obs),
        buf.action.at[slot].set(t.action),
        buf.reward.at[slot].set(t.reward),
        buf.done.at[slot].set(t.done),
        buf.truncated.at[slot].set(t.truncated),
        buf.final_index.at[slot].set(row),
        buf.final_obs.at[row, envs].set(final),
        buf.num_truncations + t.truncated,
        buf.ptr + 1,
    )


def nstep_return(rewards, dones, gamma):
    """Windows [..., n] stop at their first done: (reward sum, gamma**summed, last index)."""
    n = rewards.shape[-1]
    alive = jnp.cumprod(1.0 - dones, -1)
    mask = jnp.concatenate([jnp.ones_like(alive[..., :1]), alive[..., :-1]], -1)
    reward = (rewards * mask * gamma ** jnp.arange(n, dtype=jnp.float32)).sum(-1)
    last = jnp.where(dones.any(-1), jnp.argmax(dones, -1), n - 1)
    return reward, gamma ** mask.sum(-1), last


def buffer_sample(buf, key, per_env, n_step, gamma, disable_bootstrap):
    """`per_env` windows from every env, uniform over starts whose next observation is stored."""
    slots, num_envs = buf.obs.shape[:2]
    size = jnp.minimum(buf.ptr, slots)
    start = (
        (buf.ptr - size) % slots + jax.random.randint(key, (num_envs, per_env), 0, size - n_step)
    ) % slots
    envs = jnp.arange(num_envs)[:, None]
    window = (start[..., None] + jnp.arange(n_step)) % slots
    reward, discount, last = nstep_return(
        buf.reward[window, envs[..., None]], buf.done[window, envs[..., None]].astype(jnp.float32), gamma
    )
    end = (start + last) % slots
    done, truncated = buf.done[end, envs], buf.truncated[end, envs]
    final = buf.final_obs[buf.final_index[end, envs], envs]
    next_obs = jnp.where(truncated[..., None], final, buf.obs[(end + 1) % slots, envs])
    bootstrap = ~done if disable_bootstrap else truncated | ~done
    flat = lambda x: x.reshape(num_envs * per_env, *x.shape[2:])
    return Batch(
        flat(buf.obs[start, envs]),
        flat(buf.action[start, envs]),
        flat(reward),
        flat(next_obs),
        flat(discount),
        flat(bootstrap.astype(jnp.float32)),
    )


# ================================================================================================
# C51 PROJECTION: r + bootstrap * discount * z onto z = linspace(V_MIN, V_MAX, NUM_ATOMS)
# ================================================================================================
def categorical_projection(probs, reward, bootstrap, discount, v_min, v_max):
    num_atoms = probs.shape[-1]
    support = jnp.linspace(v_min, v_max, num_atoms)
    delta = (v_max - v_min) / (num_atoms - 1)
    b = (jnp.clip(reward[:, None] + (bootstrap * discount)[:, None] * support, v_min, v_max) - v_min) / delta
    lower = jnp.clip(jnp.floor(b), 0, num_atoms - 2)
    w = b - lower  # share of the upper neighbour

    def scatter(p, low, w):
        return jnp.zeros(num_atoms, p.dtype).at[low].add(p * (1.0 - w)).at[low + 1].add(p * w)

    return jax.vmap(scatter)(probs, lower.astype(jnp.int32), w)


# ================================================================================================
# TRAIN
# ================================================================================================
class TrainState(NamedTuple):
    actor_params: Any
    critic_params: Any  # twin critics stacked on a leading axis
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    obs_norm: Normalizer


class Runner(NamedTuple):
    train_state: TrainState
    env_state: Any
    obs: jnp.ndarray
    buffer: Buffer
    noise_std: jnp.ndarray  # [NUM_ENVS] exploration std, resampled at each done
    episode_return: jnp.ndarray
    rng: jnp.ndarray


def make_train(config):
    num_envs = config["NUM_ENVS"]
    config["NUM_UPDATES"] = config["TOTAL_TIMESTEPS"] // num_envs  # vector-env steps
    eval_every = config["EVAL_INTERVAL"] // num_envs
    num_evals = config["NUM_UPDATES"] // eval_every
    learning_starts = config["LEARNING_STARTS"] // num_envs
    slots = config["BUFFER_SIZE"] // num_envs
    per_env = config["BATCH_SIZE"] // num_envs
    n_step, updates = config["N_STEP"], config["UPDATES_PER_STEP"]
    assert config["TOTAL_TIMESTEPS"] < 2**31 and num_evals * eval_every == config["NUM_UPDATES"] > 0, (
        "TOTAL_TIMESTEPS must be a multiple of EVAL_INTERVAL, itself a multiple of NUM_ENVS"
    )
    assert config["BATCH_SIZE"] % num_envs == 0 and slots > n_step and n_step - 1 <= learning_starts

    env, eval_env = make_env(config)
    episode_steps = math.ceil(config["EPISODE_LENGTH"] / config["ACTION_REPEAT"])
    dtype = jnp.dtype(config.get("COMPUTE_DTYPE", "float32"))
    actor = Actor(env.action_size, config["ACTOR_HIDDEN_DIM"], dtype)
    critic = Critic(config["NUM_ATOMS"], config["CRITIC_HIDDEN_DIM"], dtype)
    twin_critic = jax.vmap(critic.apply, in_axes=(0, None, None))  # -> [2, batch, atoms]

    def train(rng, hparams=None):
        assert set(hparams or {}) <= set(HPARAMS), f"traced settings are {HPARAMS}"
        hp = {k: jnp.float32(config[k]) for k in HPARAMS}
        hp.update({k: jnp.asarray(v, jnp.float32) for k, v in (hparams or {}).items()})
        support = jnp.linspace(hp["V_MIN"], hp["V_MAX"], config["NUM_ATOMS"])
        tx = optax.inject_hyperparams(optax.adamw)(
            learning_rate=0.0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=hp["WEIGHT_DECAY"]
        )

        def observe(norm, x):  # update the statistics, then normalize
            if not config["NORMALIZE_OBS"]:
                return norm, x
            norm = normalizer_update(norm, x)
            return norm, normalize(norm, x)

        def apply_adamw(params, opt_state, grads, lr):
            opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        def cosine_lr(start, end, iteration):  # the reference steps its schedule every env step
            frac = jnp.minimum(iteration / config["NUM_UPDATES"], 1.0)
            return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))

        # INIT NETWORKS, ENVS AND BUFFER
        rng, k_actor, k_critic, k_env, k_std, k_eval = jax.random.split(rng, 6)
        obs_dim, act_dim = env.observation_size, env.action_size
        actor_params = actor.init(k_actor, jnp.zeros((1, obs_dim)))
        head = actor_params["params"]["head"]
        actor_params["params"]["head"] = {**head, "kernel": head["kernel"] * hp["INIT_SCALE"]}
        critic_params = jax.vmap(critic.init, in_axes=(0, None, None))(
            jax.random.split(k_critic, 2), jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        )
        train_state = TrainState(
            actor_params,
            critic_params,
            critic_params,
            tx.init(actor_params),
            tx.init(critic_params),
            Normalizer(jnp.zeros(obs_dim), jnp.ones(obs_dim), jnp.float32(0)),
        )
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, num_envs))
        eval_obs, eval_states = jax.vmap(eval_env.reset)(jax.random.split(k_eval, config["NUM_EVAL_ENVS"]))
        final_rows = math.ceil(slots / episode_steps) + 1
        buffer = Buffer(
            jnp.zeros((slots, num_envs, obs_dim)),
            jnp.zeros((slots, num_envs, act_dim)),
            jnp.zeros((slots, num_envs)),
            jnp.zeros((slots, num_envs), bool),
            jnp.zeros((slots, num_envs), bool),
            jnp.zeros((slots, num_envs), jnp.int32),
            jnp.zeros((final_rows, num_envs, obs_dim)),
            jnp.zeros(num_envs, jnp.int32),
            jnp.int32(0),
        )
        noise_std = jax.random.uniform(k_std, (num_envs,), minval=hp["STD_MIN"], maxval=hp["STD_MAX"])
        runner = Runner(train_state, env_state, obs, buffer, noise_std, jnp.zeros(num_envs), rng)

        # UPDATES
        def update_critic(ts, batch, obs, next_obs, key, lr):
            noise = jnp.clip(
                jax.random.normal(key, batch.action.shape) * hp["POLICY_NOISE"],
                -hp["NOISE_CLIP"],
                hp["NOISE_CLIP"],
            )
            next_action = jnp.clip(
                actor.apply(ts.actor_params, next_obs) + noise, -1.0, 1.0
            )  # no target actor
            probs = jax.nn.softmax(twin_critic(ts.target_critic_params, next_obs, next_action))
            project = lambda p: categorical_projection(
                p, batch.reward, batch.bootstrap, batch.discount, hp["V_MIN"], hp["V_MAX"]
            )
            targets = jax.vmap(project)(probs)
            if config["USE_CDQ"]:  # both critics learn the target with the lower mean
                values = targets @ support
                lower = jnp.where(values[0] < values[1], 1.0, 0.0)[:, None]
                chosen = lower * targets[0] + (1.0 - lower) * targets[1]
                targets = jnp.stack([chosen, chosen])

            def loss_fn(params):
                logits = twin_critic(params, obs, batch.action)
                loss = -(targets * jax.nn.log_softmax(logits)).sum(-1).mean(-1)
                return loss.sum(), (jax.nn.softmax(logits) @ support).mean()

            (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(ts.critic_params)
            params, opt_state = apply_adamw(ts.critic_params, ts.critic_opt_state, grads, lr)
            return ts._replace(critic_params=params, critic_opt_state=opt_state), loss, q_mean

        def update_actor(ts, obs, lr):
            def loss_fn(params):
                action, pre_tanh = actor.apply(params, obs, with_pre_tanh=True)
                q = jax.nn.softmax(twin_critic(ts.critic_params, obs, action)) @ support
                q = q.min(0) if config["USE_CDQ"] else q.mean(0)
                return -q.mean() + hp["PRE_TANH_PENALTY"] * jnp.square(pre_tanh).mean()

            loss, grads = jax.value_and_grad(loss_fn)(ts.actor_params)
            params, opt_state = apply_adamw(ts.actor_params, ts.actor_opt_state, grads, lr)
            return ts._replace(actor_params=params, actor_opt_state=opt_state), loss

        def learn(ts, buffer, key, iteration):
            critic_lr = cosine_lr(hp["CRITIC_LR"], hp["CRITIC_LR_END"], iteration)
            actor_lr = cosine_lr(hp["ACTOR_LR"], hp["ACTOR_LR_END"], iteration)
            key_sample, key_noise = jax.random.split(key)
            # One draw for all updates (the buffer does not change in between), split per update.
            batches = buffer_sample(
                buffer, key_sample, updates * per_env, n_step, hp["GAMMA"], config["DISABLE_BOOTSTRAP"]
            )
            batches = jax.tree.map(
                lambda x: (
                    x.reshape(num_envs, updates, per_env, *x.shape[1:])
                    .swapaxes(0, 1)
                    .reshape(updates, num_envs * per_env, *x.shape[1:])
                ),
                batches,
            )
            critic_loss = q_mean = actor_loss = jnp.float32(0.0)
            actor_updates = jnp.int32(0)
            for i, key_i in enumerate(jax.random.split(key_noise, updates)):
                batch = jax.tree.map(lambda x: x[i], batches)
                norm, obs = observe(ts.obs_norm, batch.obs)
                norm, next_obs = observe(norm, batch.next_obs)
                ts, loss, q = update_critic(
                    ts._replace(obs_norm=norm), batch, obs, next_obs, key_i, critic_lr
                )
                critic_loss, q_mean = critic_loss + loss, q_mean + q
                if updates > 1:  # the reference's delayed actor: update index i % freq == 1
                    if i % config["POLICY_FREQUENCY"] == 1:
                        ts, loss = update_actor(ts, obs, actor_lr)
                        actor_loss, actor_updates = actor_loss + loss, actor_updates + 1
                else:  # one update per step: the actor follows the step count
                    ts, loss, did = jax.lax.cond(
                        iteration % config["POLICY_FREQUENCY"] == 0,
                        lambda s: (*update_actor(s, obs, actor_lr), jnp.int32(1)),
                        lambda s: (s, jnp.float32(0.0), jnp.int32(0)),
                        ts,
                    )
                    actor_loss, actor_updates = actor_loss + loss, actor_updates + did
                target = optax.incremental_update(ts.critic_params, ts.target_critic_params, hp["TAU"])
                ts = ts._replace(target_critic_params=target)  # Polyak after every critic update
            return ts, (critic_loss, q_mean, jnp.int32(updates), actor_loss, actor_updates)

        def skip(ts, buffer, key, iteration):
            return ts, (jnp.float32(0.0), jnp.float32(0.0), jnp.int32(0), jnp.float32(0.0), jnp.int32(0))

        # ONE VECTOR-ENV STEP: act, step, store, learn
        def _env_step(runner, iteration):
            ts = runner.train_state
            rng, k_act, k_step, k_std, k_learn = jax.random.split(runner.rng, 5)
            norm, obs = observe(ts.obs_norm, runner.obs)
            ts = ts._replace(obs_norm=norm)
            mean_action = actor.apply(ts.actor_params, obs)
            action = mean_action + jax.random.normal(k_act, mean_action.shape) * runner.noise_std[:, None]
            next_obs, env_state, reward, done, info = jax.vmap(env.step)(
                jax.random.split(k_step, num_envs), runner.env_state, action
            )
            buffer = buffer_add(
                runner.buffer,
                Transition(runner.obs, action, reward, done, info["truncated"], info["final_obs"]),
            )
            fresh_std = jax.random.uniform(k_std, (num_envs,), minval=hp["STD_MIN"], maxval=hp["STD_MAX"])
            episode_return = runner.episode_return + reward
            # The step index is the same for every vmapped seed, so warm-up stays a real branch.
            ts, losses = jax.lax.cond(
                iteration > learning_starts, learn, skip, ts, buffer, k_learn, iteration
            )
            stats = (jnp.where(done, episode_return, 0.0).sum(), done.sum(dtype=jnp.int32), *losses)
            runner = Runner(
                ts,
                env_state,
                next_obs,
                buffer,
                jnp.where(done, fresh_std, runner.noise_std),
                jnp.where(done, 0.0, episode_return),
                rng,
            )
            return runner, stats

        # EVALUATION: one deterministic episode per eval env from the same start states every time
        def evaluate(ts):
            def running(carry):
                return (carry[0] < episode_steps) & carry[4].any()

            def step(carry):
                t, obs, states, returns, alive = carry
                action = actor.apply(
                    ts.actor_params, normalize(ts.obs_norm, obs) if config["NORMALIZE_OBS"] else obs
                )
                obs, states, reward, done, _ = jax.vmap(eval_env.step, in_axes=(None, 0, 0))(
                    jax.random.PRNGKey(0), states, action
                )
                return t + 1, obs, states, returns + jnp.where(alive, reward, 0.0), alive & ~done

            n = config["NUM_EVAL_ENVS"]
            init = (jnp.int32(0), eval_obs, eval_states, jnp.zeros(n), jnp.ones(n, bool))
            return jax.lax.while_loop(running, step, init)[3].mean()

        # TRAIN LOOP: NUM_UPDATES // eval_every chunks of eval_every steps, an evaluation after each
        def _eval_chunk(runner, chunk):
            runner, stats = jax.lax.scan(_env_step, runner, chunk * eval_every + jnp.arange(eval_every))
            ret, episodes, critic_loss, q_mean, critic_updates, actor_loss, actor_updates = jax.tree.map(
                jnp.sum, stats
            )
            metrics = {
                "timestep": (chunk + 1) * eval_every * num_envs,
                "eval_return": evaluate(runner.train_state),
                "train_return": ret / jnp.where(episodes > 0, episodes, jnp.nan),
                "critic_loss": critic_loss / critic_updates,
                "actor_loss": actor_loss / actor_updates,
                "q_mean": q_mean / critic_updates,
            }
            if config.get("DEBUG"):
                jax.debug.print(
                    "timestep {t}  eval return {r}", t=metrics["timestep"], r=metrics["eval_return"]
                )
            return runner, metrics

        runner, metrics = jax.lax.scan(_eval_chunk, runner, jnp.arange(num_evals))
        return {"runner_state": runner, "metrics": metrics}

    return train


# ================================================================================================
# MAIN
# ================================================================================================
if __name__ == "__main__":
    config = {  # gymnax Pendulum-v1, tuned on CPU; eight seeds at once
        "ENV_NAME": "Pendulum-v1",
        "NUM_ENVS": 16,
        "NUM_EVAL_ENVS": 16,
        "TOTAL_TIMESTEPS": 32_000,
        "EVAL_INTERVAL": 1_600,
        "LEARNING_STARTS": 160,
        "BUFFER_SIZE": 64_000,
        "BATCH_SIZE": 128,
        "UPDATES_PER_STEP": 2,
        "POLICY_FREQUENCY": 2,
        "N_STEP": 3,
        "NUM_ATOMS": 101,
        "CRITIC_HIDDEN_DIM": 128,
        "ACTOR_HIDDEN_DIM": 64,
        "USE_CDQ": True,
        "NORMALIZE_OBS": True,
        "DISABLE_BOOTSTRAP": False,
        "COMPUTE_DTYPE": "float32",
        "EPISODE_LENGTH": 200,
        "ACTION_REPEAT": 1,
        "CRITIC_LR": 1e-3,
        "ACTOR_LR": 1e-3,
        "CRITIC_LR_END": 1e-3,
        "ACTOR_LR_END": 1e-3,
        "GAMMA": 0.99,
        "TAU": 0.1,
        "POLICY_NOISE": 0.2,
        "NOISE_CLIP": 0.5,
        "STD_MIN": 0.05,
        "STD_MAX": 0.8,
        "V_MIN": -1000.0,
        "V_MAX": 0.0,
        "WEIGHT_DECAY": 0.0,
        "INIT_SCALE": 0.01,
        "PRE_TANH_PENALTY": 1e-2,
        "SEED": 0,
        "NUM_SEEDS": 8,
        "DEBUG": False,
    }
    rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])
    train_vjit = jax.jit(jax.vmap(make_train(config)))
    out = jax.block_until_ready(train_vjit(rngs))
    returns = np.asarray(out["metrics"]["eval_return"])  # [seeds, evals]
    for t, r in zip(np.asarray(out["metrics"]["timestep"][0]), returns.T):
        print(f"timestep {t:>7}  eval return " + " ".join(f"{x:8.1f}" for x in r))
    print(f"final eval return: mean {returns[:, -1].mean():.1f}, min {returns[:, -1].min():.1f}")
