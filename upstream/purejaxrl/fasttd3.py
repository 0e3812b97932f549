"""
PureJaxRL version of FastTD3 (Seo et al. 2025, github.com/younggyoseo/FastTD3): TD3 for
massively parallel simulators, with twin C51 critics and clipped double Q, n-step
returns, one exploration std per env and observation normalization, on gymnax and Brax.
Time counts as in the FastTD3 reference: TOTAL_TIMESTEPS and LEARNING_STARTS count
iterations (one step of all NUM_ENVS envs) and BUFFER_SIZE slots per env, so T env steps
are TOTAL_TIMESTEPS = T // NUM_ENVS. UPDATES_PER_STEP and N_STEP are the reference's
num_updates and num_steps (PureJaxRL's NUM_UPDATES and NUM_STEPS mean other things).
"""

import math
from typing import Any, NamedTuple

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from brax import envs
from wrappers import ClipAction, GymnaxWrapper, LogWrapper, VecEnv

MAX_ENV_STEPS = 2**32  # TOTAL_TIMESTEPS * NUM_ENVS above this is taken for env steps


class GymnaxContinuous(GymnaxWrapper):
    """A continuous gymnax env stepped with `step_env`, acting in [-1, 1]. Its own time
    limit is put out of reach: gymnax 0.0.x's `step_env` reports it as done (Pendulum's
    is_terminal is time >= max_steps_in_episode), which reads as a termination."""

    def __init__(self, env_name):
        env, params = gymnax.make(env_name)
        super().__init__(env)
        if hasattr(params, "max_steps_in_episode"):
            params = params.replace(max_steps_in_episode=2**31 - 1)
        self.params = params
        space = env.action_space(params)
        self.action_shape = tuple(space.shape)
        self.action_size = int(np.prod(space.shape))
        self.observation_size = int(np.prod(env.observation_space(params).shape))
        bound = lambda x: jnp.broadcast_to(jnp.float32(x), (self.action_size,))
        self.low, self.high = bound(space.low), bound(space.high)

    def reset(self, key, params=None):
        obs, state = self._env.reset_env(key, self.params)
        return jnp.ravel(obs).astype(jnp.float32), state

    def step(self, key, state, action, params=None):
        action = self.low + (action + 1.0) * 0.5 * (self.high - self.low)
        obs, state, reward, done, _ = self._env.step_env(
            key, state, jnp.reshape(action, self.action_shape), self.params
        )
        obs = jnp.ravel(obs).astype(jnp.float32)
        return obs, state, jnp.asarray(reward, jnp.float32), jnp.asarray(done, bool), {}


class RawBraxWrapper:
    """Brax without EpisodeWrapper (it pays rewards after a termination) and
    AutoResetWrapper (it drops the final observation). "mjx" is MuJoCo's dynamics, run
    at highest matmul precision as the reference runs MJX."""

    def __init__(self, env_name):
        self._env = envs.get_environment(env_name, backend="mjx")
        self.action_size = self._env.action_size
        obs = jax.eval_shape(self._env.reset, jax.random.PRNGKey(0)).obs  # traced
        self.observation_size = obs.shape[-1]

    def reset(self, key, params=None):
        with jax.default_matmul_precision("highest"):
            state = self._env.reset(key)
        return state.obs, state

    def step(self, key, state, action, params=None):
        with jax.default_matmul_precision("highest"):
            state = self._env.step(state, action)
        return state.obs, state, state.reward, state.done > 0.5, {}


class TimeLimitAutoReset(GymnaxWrapper):
    """Ends episodes after `episode_length` steps and resets at every done, keeping what
    the step reached in info["final_obs"] and flagging time-outs that are not
    terminations in info["truncated"]: bootstrapping there needs s_T, not a reset s_0.
    """

    def __init__(self, env, episode_length):
        super().__init__(env)
        self.episode_length = episode_length

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs, (state, jnp.int32(0))  # (env state, steps into the episode)

    def step(self, key, state, action, params=None):
        key_step, key_reset = jax.random.split(key)
        env_state, steps = state
        obs, env_state, reward, terminated, info = self._env.step(
            key_step, env_state, action, params
        )
        steps = steps + 1
        timed_out = steps >= self.episode_length
        info = {**info, "truncated": timed_out & ~terminated, "final_obs": obs}
        done = terminated | timed_out
        new = self.reset(key_reset, params)
        stepped = (obs, (env_state, steps))
        obs, state = jax.tree.map(lambda r, s: jnp.where(done, r, s), new, stepped)
        return obs, state, reward, done, info


# PyTorch's default Linear init, which the reference relies on; flax's defaults differ.
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in):
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype: jax.random.uniform(
        key, shape, dtype, -bound, bound
    )


def mlp(x, hidden_dim):
    for width in (hidden_dim, hidden_dim // 2, hidden_dim // 4):
        bias_init = torch_bias_init(x.shape[-1])
        dense = nn.Dense(width, kernel_init=torch_kernel_init, bias_init=bias_init)
        x = nn.relu(dense(x))
    return x


class Actor(nn.Module):
    """obs -> tanh action; the head starts at N(0, INIT_SCALE). PRE_TANH_PENALTY (0 in
    the reference) keeps the actor from saturating its tanh until its gradient vanishes.
    """

    action_dim: int
    hidden_dim: int

    @nn.compact
    def __call__(self, obs, with_pre_tanh=False):
        normal = nn.initializers.normal(1.0)
        head = nn.Dense(self.action_dim, kernel_init=normal, name="head")
        pre_tanh = head(mlp(obs, self.hidden_dim))
        return (jnp.tanh(pre_tanh), pre_tanh) if with_pre_tanh else jnp.tanh(pre_tanh)


class Critic(nn.Module):
    """(obs, action) -> logits over NUM_ATOMS returns."""

    num_atoms: int
    hidden_dim: int

    @nn.compact
    def __call__(self, obs, action):
        x = mlp(jnp.concatenate([obs, action], -1), self.hidden_dim)
        init = torch_bias_init(self.hidden_dim // 4)
        dense = nn.Dense(self.num_atoms, kernel_init=torch_kernel_init, bias_init=init)
        return dense(x)


def observe(norm, x):
    """Update (mean, var, count) with x, then normalize x, as the reference does."""
    old_mean, old_var, old_count = norm
    y = x.reshape(-1, x.shape[-1])
    n = y.shape[0]
    count = old_count + n
    mean = old_mean + (y.mean(0) - old_mean) * (n / count)
    delta = y.mean(0) - mean  # the reference's cross term uses the updated mean
    m2 = old_var * old_count + y.var(0) * n + delta**2 * (old_count * n / count)
    return (mean, m2 / count, count), (x - mean) / (jnp.sqrt(m2 / count) + 0.01)


class Transition(NamedTuple):  # the buffer holds one per slot: [BUFFER_SIZE, NUM_ENVS]
    obs: jnp.ndarray
    action: jnp.ndarray  # with exploration noise, unclipped
    reward: jnp.ndarray
    done: jnp.ndarray
    truncated: jnp.ndarray
    next_obs: jnp.ndarray  # s_T at a time-out, else the next state acted in


class Batch(NamedTuple):
    obs: jnp.ndarray
    action: jnp.ndarray
    reward: jnp.ndarray  # discounted n-step sum
    next_obs: jnp.ndarray
    discount: jnp.ndarray  # gamma ** rewards summed, 0 after a termination


def buffer_sample(buf, ptr, key, per_env, config):
    """`per_env` n-step windows from every env, stopping at their first done, with
    uniform starts among the oldest size - N_STEP slots."""
    slots, num_envs = buf.obs.shape[:2]
    n_step, gamma = config["N_STEP"], config["GAMMA"]
    size = jnp.minimum(ptr, slots)
    offset = jax.random.randint(key, (num_envs, per_env), 0, size - n_step)
    start = ((ptr - size) % slots + offset) % slots
    envs = jnp.arange(num_envs)[:, None]
    window = (start[..., None] + jnp.arange(n_step)) % slots, envs[..., None]
    dones = buf.done[window]
    alive = jnp.cumprod(1.0 - dones, -1)
    mask = jnp.concatenate([jnp.ones_like(alive[..., :1]), alive[..., :-1]], -1)
    powers = gamma ** jnp.arange(n_step, dtype=jnp.float32)
    end = (start + jnp.where(dones.any(-1), jnp.argmax(dones, -1), n_step - 1)) % slots
    bootstrap = buf.truncated[end, envs] | ~buf.done[end, envs]
    flat = lambda x: x.reshape(num_envs * per_env, *x.shape[2:])
    return Batch(
        flat(buf.obs[start, envs]),
        flat(buf.action[start, envs]),
        flat((buf.reward[window] * mask * powers).sum(-1)),
        flat(buf.next_obs[end, envs]),
        flat(bootstrap.astype(jnp.float32) * gamma ** mask.sum(-1)),
    )


def categorical_projection(probs, batch, v_min, v_max):
    """C51: r + discount * z projected onto z = linspace(v_min, v_max)."""
    num_atoms = probs.shape[-1]
    support = jnp.linspace(v_min, v_max, num_atoms)
    delta = (v_max - v_min) / (num_atoms - 1)
    target = batch.reward[:, None] + batch.discount[:, None] * support
    b = (jnp.clip(target, v_min, v_max) - v_min) / delta
    lower = jnp.clip(jnp.floor(b), 0, num_atoms - 2)
    w = b - lower  # share of the upper neighbour

    def scatter(p, low, w):
        z = jnp.zeros(num_atoms, p.dtype)
        return z.at[low].add(p * (1.0 - w)).at[low + 1].add(p * w)

    return jax.vmap(scatter)(probs, lower.astype(jnp.int32), w)


class TrainState(NamedTuple):
    actor_params: Any
    critic_params: Any  # twin critics stacked on a leading axis
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    obs_norm: Any  # (mean, var, count)


def make_train(config):
    num_envs, updates = config["NUM_ENVS"], config["UPDATES_PER_STEP"]
    env_steps = config["TOTAL_TIMESTEPS"] * num_envs
    assert env_steps <= MAX_ENV_STEPS, (
        f"TOTAL_TIMESTEPS={config['TOTAL_TIMESTEPS']} counts iterations of all "
        f"NUM_ENVS={num_envs} envs, {env_steps:.3g} env steps in all (at most "
        f"{MAX_ENV_STEPS:.3g}): for T env steps set TOTAL_TIMESTEPS = T // NUM_ENVS"
    )
    per_env = config["BATCH_SIZE"] // num_envs
    assert per_env * num_envs == config["BATCH_SIZE"], "BATCH_SIZE % NUM_ENVS != 0"
    name = config["ENV_NAME"]
    is_gymnax = name in gymnax.registered_envs
    base = GymnaxContinuous(name) if is_gymnax else RawBraxWrapper(name)
    env = TimeLimitAutoReset(ClipAction(base), config["EPISODE_LENGTH"])
    env = VecEnv(LogWrapper(env))
    actor = Actor(base.action_size, config["ACTOR_HIDDEN_DIM"])
    critic = Critic(config["NUM_ATOMS"], config["CRITIC_HIDDEN_DIM"])
    twin_critic = jax.vmap(critic.apply, in_axes=(0, None, None))  # [2, batch, atoms]
    v_min, v_max = jnp.float32(config["V_MIN"]), jnp.float32(config["V_MAX"])
    tau = jnp.float32(config["TAU"])
    support = jnp.linspace(v_min, v_max, config["NUM_ATOMS"])
    tx = optax.inject_hyperparams(optax.adamw)(0.0, weight_decay=config["WEIGHT_DECAY"])

    def apply_adamw(params, opt_state, grads, lr):
        hyperparams = {**opt_state.hyperparams, "learning_rate": lr}
        opt_state = opt_state._replace(hyperparams=hyperparams)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def cosine_lr(key, iteration):  # the reference steps its schedule every iteration
        frac = jnp.minimum(iteration / config["TOTAL_TIMESTEPS"], 1.0)
        start, end = jnp.float32(config[key]), jnp.float32(config[key + "_END"])
        return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))

    def draw_std(key):
        low, high = config["STD_MIN"], config["STD_MAX"]
        return jax.random.uniform(key, (num_envs,), minval=low, maxval=high)

    def train(rng):
        # INIT NETWORKS, ENVS AND BUFFER (the sixth key is FastTD3X's evaluation key)
        rng, k_actor, k_critic, k_env, k_std, _ = jax.random.split(rng, 6)
        obs_dim, act_dim = base.observation_size, base.action_size
        actor_params = actor.init(k_actor, jnp.zeros((1, obs_dim)))
        head = actor_params["params"]["head"]
        head["kernel"] = head["kernel"] * config["INIT_SCALE"]
        x, a = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        critic_init = jax.vmap(critic.init, in_axes=(0, None, None))
        critic_params = critic_init(jax.random.split(k_critic, 2), x, a)
        opt_states = tx.init(actor_params), tx.init(critic_params)
        norm = (jnp.zeros(obs_dim), jnp.ones(obs_dim), jnp.float32(0))
        ts = TrainState(actor_params, critic_params, critic_params, *opt_states, norm)
        obs, env_state = env.reset(jax.random.split(k_env, num_envs), None)
        z, f = jnp.zeros(num_envs), jnp.zeros(num_envs, bool)
        slot = Transition(obs, jnp.zeros((num_envs, act_dim)), z, f, f, obs)
        slots = config["BUFFER_SIZE"]
        buffer = jax.tree.map(lambda x: jnp.zeros((slots, *x.shape), x.dtype), slot)
        runner_state = (ts, env_state, obs, buffer, draw_std(k_std), rng)

        def update_critic(ts, batch, obs, next_obs, key, lr):
            noise = jax.random.normal(key, batch.action.shape) * config["POLICY_NOISE"]
            noise = jnp.clip(noise, -config["NOISE_CLIP"], config["NOISE_CLIP"])
            # No target actor, as in the reference.
            next_action = actor.apply(ts.actor_params, next_obs) + noise
            next_action = jnp.clip(next_action, -1.0, 1.0)
            next_logits = twin_critic(ts.target_critic_params, next_obs, next_action)
            project = jax.vmap(categorical_projection, in_axes=(0, None, None, None))
            targets = project(jax.nn.softmax(next_logits), batch, v_min, v_max)
            # Clipped double Q: both critics learn the target with the lower mean.
            values = targets @ support
            target = jnp.where((values[0] < values[1])[:, None], targets[0], targets[1])
            target = jnp.stack([target, target])  # [2, batch, atoms], not broadcast

            def loss_fn(params):
                logits = twin_critic(params, obs, batch.action)
                loss = -(target * jax.nn.log_softmax(logits)).sum(-1).mean(-1)
                return loss.sum(), (jax.nn.softmax(logits) @ support).mean()

            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            (loss, q_mean), grads = grad_fn(ts.critic_params)
            params, opt = apply_adamw(ts.critic_params, ts.critic_opt_state, grads, lr)
            return ts._replace(critic_params=params, critic_opt_state=opt), loss, q_mean

        def update_actor(ts, obs, lr):
            def loss_fn(params):
                action, pre_tanh = actor.apply(params, obs, with_pre_tanh=True)
                q = jax.nn.softmax(twin_critic(ts.critic_params, obs, action)) @ support
                penalty = config["PRE_TANH_PENALTY"] * jnp.square(pre_tanh).mean()
                return -q.min(0).mean() + penalty

            grads = jax.grad(loss_fn)(ts.actor_params)
            params, opt = apply_adamw(ts.actor_params, ts.actor_opt_state, grads, lr)
            return ts._replace(actor_params=params, actor_opt_state=opt)

        def learn(ts, buffer, ptr, key, iteration):
            critic_lr = cosine_lr("CRITIC_LEARNING_RATE", iteration)
            actor_lr = cosine_lr("ACTOR_LEARNING_RATE", iteration)
            key_sample, key_noise = jax.random.split(key)
            # One draw for all updates, each taking per_env windows from every env.
            batches = buffer_sample(buffer, ptr, key_sample, updates * per_env, config)
            batches = jax.tree.map(
                lambda x: x.reshape(num_envs, updates, per_env, *x.shape[1:])
                .swapaxes(0, 1)
                .reshape(updates, num_envs * per_env, *x.shape[1:]),
                batches,
            )

            def _update(carry, update):
                ts, sums = carry
                batch, key, i = update
                norm, obs = observe(ts.obs_norm, batch.obs)
                norm, next_obs = observe(norm, batch.next_obs)
                ts = ts._replace(obs_norm=norm)
                ts, loss, q = update_critic(ts, batch, obs, next_obs, key, critic_lr)
                # The reference's delayed actor (iteration % freq == 0 if one update)
                freq = config["POLICY_FREQUENCY"]
                turn = (i % freq == 1) if updates > 1 else (iteration % freq == 0)
                actor_step = lambda s: update_actor(s, obs, actor_lr)
                ts = jax.lax.cond(turn, actor_step, lambda s: s, ts)
                target = ts.target_critic_params
                target = optax.incremental_update(ts.critic_params, target, tau)
                ts = ts._replace(target_critic_params=target)
                sums = (sums[0] + loss, sums[1] + q)
                return (ts, sums), None

            xs = (batches, jax.random.split(key_noise, updates), jnp.arange(updates))
            carry = (ts, (jnp.float32(0), jnp.float32(0)))
            carry, _ = jax.lax.scan(_update, carry, xs)
            ts, (loss, q) = carry
            return ts, {"critic_loss": loss / updates, "q_mean": q / updates}

        def skip(ts, buffer, ptr, key, iteration):
            return ts, {"critic_loss": jnp.float32(0), "q_mean": jnp.float32(0)}

        # TRAIN LOOP: each iteration steps all envs, stores what they did, then learns
        def _env_step(runner_state, iteration):
            ts, env_state, last_obs, buffer, noise_std, rng = runner_state
            rng, k_act, k_step, k_std, k_learn = jax.random.split(rng, 5)
            norm, obs = observe(ts.obs_norm, last_obs)
            ts = ts._replace(obs_norm=norm)
            action = actor.apply(ts.actor_params, obs)
            action += jax.random.normal(k_act, action.shape) * noise_std[:, None]
            obs, env_state, reward, done, info = env.step(
                jax.random.split(k_step, num_envs), env_state, action, None
            )
            truncated = info["truncated"]
            next_obs = jnp.where(truncated[:, None], info["final_obs"], obs)
            slot = Transition(last_obs, action, reward, done, truncated, next_obs)
            i = iteration % config["BUFFER_SIZE"]
            buffer = jax.tree.map(lambda b, x: b.at[i].set(x), buffer, slot)
            # The iteration is the same for all seeds: warm-up stays a real branch.
            learning = iteration > config["LEARNING_STARTS"]
            ts, losses = jax.lax.cond(
                learning, learn, skip, ts, buffer, iteration + 1, k_learn, iteration
            )
            noise_std = jnp.where(done, draw_std(k_std), noise_std)
            runner_state = (ts, env_state, obs, buffer, noise_std, rng)
            metrics = {
                "timestep": (iteration + 1) * num_envs,
                "returned_episode_returns": info["returned_episode_returns"],
                "returned_episode": info["returned_episode"],
                **losses,
            }
            return runner_state, metrics

        iterations = jnp.arange(config["TOTAL_TIMESTEPS"])
        runner_state, metrics = jax.lax.scan(_env_step, runner_state, iterations)
        return {"runner_state": runner_state, "metrics": metrics}

    return train


if __name__ == "__main__":
    config = {  # gymnax Pendulum-v1 on CPU, eight seeds at once
        "ENV_NAME": "Pendulum-v1",
        "NUM_ENVS": 16,
        "TOTAL_TIMESTEPS": 2_000,  # iterations: 32k env steps
        "LEARNING_STARTS": 10,
        "BUFFER_SIZE": 4_000,
        "BATCH_SIZE": 128,
        "UPDATES_PER_STEP": 2,
        "POLICY_FREQUENCY": 2,
        "N_STEP": 3,
        "NUM_ATOMS": 101,
        "CRITIC_HIDDEN_DIM": 128,
        "ACTOR_HIDDEN_DIM": 64,
        "EPISODE_LENGTH": 200,
        "CRITIC_LEARNING_RATE": 1e-3,
        "ACTOR_LEARNING_RATE": 1e-3,
        "CRITIC_LEARNING_RATE_END": 1e-3,
        "ACTOR_LEARNING_RATE_END": 1e-3,
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
    }
    rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])
    out = jax.jit(jax.vmap(make_train(config)))(rngs)
    metrics = jax.tree.map(np.asarray, out["metrics"])
    ended = metrics["returned_episode"][:, -config["TOTAL_TIMESTEPS"] // 10 :]
    returns = metrics["returned_episode_returns"][:, -config["TOTAL_TIMESTEPS"] // 10 :]
    per_seed = (returns * ended).sum((1, 2)) / ended.sum((1, 2))
    print("episode return in the last 10% of iterations, per seed:", per_seed.round(1))
    print(f"mean {per_seed.mean():.1f}, min {per_seed.min():.1f}")
