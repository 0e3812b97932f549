"""FastTD3 as one pure, vmappable JAX function (PureJaxRL style): the learner and the loop.

FastTD3 (Seo et al. 2025) is TD3 for massively parallel simulators: twin distributional (C51)
critics with clipped double Q, n-step returns, one exploration scale per environment, large
batches and empirical observation normalization. Here the whole loop, simulate -> act -> store
-> update -> evaluate, is one XLA program:

    config = make_config("Pendulum-v1")
    train = make_train(config)
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 8))   # 8 agents

Reading map (this file, top to bottom, is FastTD3; its parts live in the `fasttd3x` package):
    TRAIN STATE  `TrainState` (what is learned) and `Runner` (a run's complete state, the scan carry)
    LEARNER      one iteration's update: `learning_step` scans NUM_UPDATES times over
                 `critic_update` (C51 target, clipped double Q) then, on its cadence, `actor_update`
    ITERATION    `iteration_step` = `env_step` (act, step, store) + `learning_step` after warm-up;
                 `evaluate` runs the deterministic actor
    TRAIN LOOP   `make_train` -> `make_train_loop`: a scan of eval chunks, each a scan of iterations
    MAIN         `python purejax_fasttd3.py`: several Pendulum-v1 seeds at once
Read `make_train_loop` first for the shape of a run, then `iteration_step`, then `learning_step`.
Networks: fasttd3x/networks.py; replay buffer and n-step returns: fasttd3x/replay.py; the C51
projection: fasttd3x/distributional.py; normalizers: fasttd3x/normalizers.py; tasks:
fasttd3x/envs.py; settings: fasttd3x/configs.py.

`train(rng, hparams=None)` takes the traced settings (`default_hparams(config)`, any subset)
as a dict of float32 scalars, so `jax.vmap` runs hyperparameter grids as well as seeds.
`make_train_loop(config)` gives the two halves of `train` (`init`, then `run` for any number of
eval chunks) to save a run's complete state and continue it bit for bit (with the same
programs). Settings, their defaults and validation live in `fasttd3x/configs.py`; three keys keep
the reference's meanings, which are not PureJaxRL's (`make_config` refuses PureJaxRL-only keys
such as LR):

    key               here (reference FastTD3)                 in PureJaxRL
    TOTAL_TIMESTEPS   iterations: steps of all NUM_ENVS envs   env steps over all envs
    NUM_STEPS         n of the n-step return                   rollout length per update
    NUM_UPDATES       critic updates per iteration             outer training iterations
Semantics follow the reference PyTorch code (younggyoseo/FastTD3); section numbers (§) refer
to shared/reference/fasttd3_spec.md.
"""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fasttd3x import envs
from fasttd3x.configs import HPARAM_DEFAULTS, default_hparams, env_steps_at_evals, make_config
from fasttd3x.distributional import categorical_projection
from fasttd3x.networks import Networks, make_networks
from fasttd3x.normalizers import (
    Normalizer,
    RewardNormalizer,
    normalize,
    normalizer_init,
    normalizer_update,
    reward_normalizer_init,
    reward_normalizer_update,
    scale_reward,
)
from fasttd3x.progress import heartbeat_segments
from fasttd3x.replay import Batch, ReplayBuffer, buffer_add, buffer_for, buffer_sample


# ==================================================================================================
# TRAIN STATE
# ==================================================================================================
class TrainState(NamedTuple):
    """Everything learned; returned as `runner_state`."""

    actor_params: Any
    critic_params: Any  # twin critics stacked on a leading axis of size 2
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    obs_norm: Normalizer
    critic_norm: Normalizer  # full critic input (obs + privileged); unused if symmetric
    reward_norm: RewardNormalizer | None = None  # with REWARD_NORMALIZATION only


class Runner(NamedTuple):
    """A run's complete state: the scan carry of the training loop and, at an eval boundary,
    everything a run needs to go on (`TrainLoop.run`), so a saved one resumes bit for bit."""

    train_state: TrainState
    env_state: envs.EnvState  # batched over NUM_ENVS
    buffer: ReplayBuffer
    noise_scale: jax.Array  # [NUM_ENVS] exploration std, one per env
    episode_return: jax.Array  # [NUM_ENVS] return of the running episodes
    eval_states: envs.EnvState  # [max(NUM_EVAL_ENVS, 1)] start of every evaluation
    hparams: dict  # the traced settings of this run, float32 scalars
    # int32 eval chunks finished. It stays unbatched under vmap (it depends on no agent's data),
    # which keeps the warm-up gate and the actor cadence real branches; vmap `run` over a saved
    # state with `RUNNER_AXES` as its in and out axes to keep it so.
    evals_done: jax.Array
    rng: jax.Array


class UpdateStats(NamedTuple):
    """What one iteration's learning step adds up (zeros during warm-up)."""

    critic_loss: jax.Array  # sums over the iteration's updates
    q_mean: jax.Array
    critic_updates: jax.Array  # int32, like every count here: exact at any scale
    actor_loss: jax.Array
    actor_updates: jax.Array  # int32


class IterationStats(NamedTuple):
    """Scalars one iteration adds to its chunk's metrics."""

    finished_return: jax.Array  # sum of returns of episodes that ended
    finished_episodes: jax.Array  # int32
    updates: UpdateStats


# ==================================================================================================
# LEARNER: module-level pieces taking what they need (networks, static config, traced `hp`, state)
# ==================================================================================================


class LearnerInputs(NamedTuple):
    """A batch's network inputs, normalized: the actor's and the critic's (the same arrays
    unless the task has privileged observations)."""

    obs: jax.Array
    next_obs: jax.Array
    critic_obs: jax.Array
    next_critic_obs: jax.Array


def observe(config: dict, norm: Normalizer, x) -> tuple[Normalizer, jax.Array]:
    """Update-then-normalize, as every reference normalizer call in training does."""
    if not config["OBS_NORMALIZATION"]:
        return norm, x
    norm = normalizer_update(norm, x)
    return norm, normalize(norm, x)


def adamw(hp: dict) -> optax.GradientTransformation:
    """The reference's AdamW; the learning rate is set per update (`apply_adamw`)."""
    return optax.inject_hyperparams(optax.adamw)(
        learning_rate=0.0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=hp["WEIGHT_DECAY"]
    )


def clip_grad_norm(config: dict, hp: dict, grads):
    """With USE_GRAD_NORM_CLIPPING, torch's clip_grad_norm_ as the reference calls it before
    AdamW: one norm over all of a network's gradients (both critics together), scaled by
    min(1, MAX_GRAD_NORM / (norm + 1e-6)); MAX_GRAD_NORM 0 means no bound."""
    if not config["USE_GRAD_NORM_CLIPPING"]:
        return grads
    max_norm = jnp.where(hp["MAX_GRAD_NORM"] > 0, hp["MAX_GRAD_NORM"], jnp.inf)
    coef = jnp.minimum(max_norm / (optax.tree.norm(grads) + 1e-6), 1.0)
    return jax.tree.map(lambda g: g * coef, grads)


def apply_adamw(hp: dict, params, opt_state, grads, lr):
    opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
    updates, opt_state = adamw(hp).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def cosine_lr(config: dict, start, end, iteration):
    """The reference's per-iteration CosineAnnealingLR, held at `end` past the run."""
    progress_frac = jnp.minimum(iteration / config["TOTAL_TIMESTEPS"], 1.0)
    return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress_frac))


def critic_inputs(config: dict, ts: TrainState, batch: Batch) -> tuple[TrainState, LearnerInputs]:
    """Normalizes a batch in the reference's order; every call updates the stats."""
    obs_norm, obs = observe(config, ts.obs_norm, batch.obs)
    obs_norm, next_obs = observe(config, obs_norm, batch.next_obs)
    critic_norm = ts.critic_norm
    if batch.privileged.shape[-1] > 0:  # asymmetric: the critic sees obs + privileged
        critic_norm, critic_obs = observe(
            config, critic_norm, jnp.concatenate([batch.obs, batch.privileged], -1)
        )
        critic_norm, next_critic_obs = observe(
            config, critic_norm, jnp.concatenate([batch.next_obs, batch.next_privileged], -1)
        )
    else:  # the critic reads the actor-normalized observation
        critic_obs, next_critic_obs = obs, next_obs
    ts = ts._replace(obs_norm=obs_norm, critic_norm=critic_norm)
    return ts, LearnerInputs(obs, next_obs, critic_obs, next_critic_obs)


def critic_update(
    nets: Networks, config: dict, hp: dict, ts: TrainState, batch: Batch, inputs: LearnerInputs, key, lr
):
    """One distributional TD step of both critics: (train state, summed cross-entropy, mean Q)."""
    support = jnp.linspace(hp["V_MIN"], hp["V_MAX"], config["NUM_ATOMS"])
    smoothing = jnp.clip(
        jax.random.normal(key, batch.action.shape) * hp["POLICY_NOISE"], -hp["NOISE_CLIP"], hp["NOISE_CLIP"]
    )
    # No target actor: the online actor proposes the next action (spec §3.1).
    next_action = jnp.clip(nets.actor.apply(ts.actor_params, inputs.next_obs) + smoothing, -1.0, 1.0)
    target_probs = jax.nn.softmax(
        nets.twin_critic(ts.target_critic_params, inputs.next_critic_obs, next_action)
    )
    project = lambda p: categorical_projection(  # noqa: E731
        p, batch.reward, batch.bootstrap, batch.discount, hp["V_MIN"], hp["V_MAX"]
    )
    targets = jax.vmap(project)(target_probs)  # [2, B, atoms]
    if config["USE_CDQ"]:  # both critics learn the projected distribution with the lower mean
        values = targets @ support
        lower = jnp.where(values[0] < values[1], 1.0, 0.0)[:, None]
        chosen = lower * targets[0] + (1.0 - lower) * targets[1]
        targets = jnp.stack([chosen, chosen])

    def loss_fn(critic_params):
        logits = nets.twin_critic(critic_params, inputs.critic_obs, batch.action)
        cross_entropy = -(targets * jax.nn.log_softmax(logits)).sum(-1).mean(-1)
        q_mean = (jax.nn.softmax(logits) @ support).mean()
        return cross_entropy.sum(), q_mean

    (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(ts.critic_params)
    grads = clip_grad_norm(config, hp, grads)
    params, opt_state = apply_adamw(hp, ts.critic_params, ts.critic_opt_state, grads, lr)
    return ts._replace(critic_params=params, critic_opt_state=opt_state), loss, q_mean


def actor_update(nets: Networks, config: dict, hp: dict, ts: TrainState, inputs: LearnerInputs, lr):
    """One deterministic policy-gradient step on the critics' (lower) mean Q: (train state, loss)."""
    support = jnp.linspace(hp["V_MIN"], hp["V_MAX"], config["NUM_ATOMS"])

    def loss_fn(actor_params):
        action, pre_tanh = nets.actor.apply(actor_params, inputs.obs, with_pre_tanh=True)
        q = jax.nn.softmax(nets.twin_critic(ts.critic_params, inputs.critic_obs, action)) @ support
        q = q.min(0) if config["USE_CDQ"] else q.mean(0)
        return -q.mean() + hp["PRE_TANH_PENALTY"] * jnp.square(pre_tanh).mean()

    loss, grads = jax.value_and_grad(loss_fn)(ts.actor_params)
    grads = clip_grad_norm(config, hp, grads)
    params, opt_state = apply_adamw(hp, ts.actor_params, ts.actor_opt_state, grads, lr)
    return ts._replace(actor_params=params, actor_opt_state=opt_state), loss


def update_batches(config: dict, buffer: ReplayBuffer, key, gamma) -> Batch:
    """The batches of all NUM_UPDATES updates, [NUM_UPDATES, BATCH_SIZE, ...]: sampled at once
    (the buffer does not change in between), then split so each update gets every env's share."""
    num_envs, num_updates = config["NUM_ENVS"], config["NUM_UPDATES"]
    per_env = config["BATCH_SIZE"] // num_envs
    batches = buffer_sample(
        buffer, key, num_updates * per_env, config["NUM_STEPS"], gamma, config["DISABLE_BOOTSTRAP"]
    )
    return jax.tree.map(
        lambda x: (
            x.reshape(num_envs, num_updates, per_env, *x.shape[1:])
            .swapaxes(0, 1)
            .reshape(num_updates, num_envs * per_env, *x.shape[1:])
        ),
        batches,
    )


def learner_batches(config: dict, hp: dict, ts: TrainState, buffer: ReplayBuffer, key) -> Batch:
    """`update_batches` with, under REWARD_NORMALIZATION, every sampled n-step reward scaled by
    this iteration's return statistics (`scale_reward`), as the reference scales sampled rewards."""
    batches = update_batches(config, buffer, key, hp["GAMMA"])
    if not config["REWARD_NORMALIZATION"]:
        return batches
    return batches._replace(reward=scale_reward(ts.reward_norm, batches.reward, hp["V_MIN"], hp["V_MAX"]))


def learning_step(
    nets: Networks, config: dict, hp: dict, ts: TrainState, buffer: ReplayBuffer, key, iteration
):
    """One iteration's learning: NUM_UPDATES critic updates with Polyak targets, the delayed actor
    on the reference's cadence. Returns the train state and the losses summed in update order."""
    num_updates, policy_frequency = config["NUM_UPDATES"], config["POLICY_FREQUENCY"]
    critic_lr = cosine_lr(config, hp["CRITIC_LEARNING_RATE"], hp["CRITIC_LEARNING_RATE_END"], iteration)
    actor_lr = cosine_lr(config, hp["ACTOR_LEARNING_RATE"], hp["ACTOR_LEARNING_RATE_END"], iteration)
    key_sample, key_smooth = jax.random.split(key)
    batches = learner_batches(config, hp, ts, buffer, key_sample)

    def one_update(carry, update):
        ts, sums = carry
        batch, key_i, i = update
        ts, inputs = critic_inputs(config, ts, batch)
        ts, critic_loss, q_mean = critic_update(nets, config, hp, ts, batch, inputs, key_i, critic_lr)
        # The reference updates the actor when the inner index i % freq == 1, or, with one
        # update per iteration, when iteration % freq == 0. Both predicates are loop
        # counters, never vmapped data, so the cond stays a real branch under vmap.
        actor_turn = (i % policy_frequency == 1) if num_updates > 1 else (iteration % policy_frequency == 0)
        ts, actor_loss, actor_updates = jax.lax.cond(
            actor_turn,
            lambda s: (*actor_update(nets, config, hp, s, inputs, actor_lr), jnp.int32(1)),
            lambda s: (s, jnp.float32(0.0), jnp.int32(0)),
            ts,
        )
        target = optax.incremental_update(ts.critic_params, ts.target_critic_params, hp["TAU"])
        ts = ts._replace(target_critic_params=target)
        sums = UpdateStats(
            critic_loss=sums.critic_loss + critic_loss,
            q_mean=sums.q_mean + q_mean,
            critic_updates=sums.critic_updates + 1,
            actor_loss=sums.actor_loss + actor_loss,
            actor_updates=sums.actor_updates + actor_updates,
        )
        return (ts, sums), None

    # A scan, not a Python loop: compile time and program size stay flat in NUM_UPDATES.
    updates = (batches, jax.random.split(key_smooth, num_updates), jnp.arange(num_updates))
    (ts, sums), _ = jax.lax.scan(one_update, (ts, no_updates()), updates)
    return ts, sums


def no_updates() -> UpdateStats:
    zero, none = jnp.float32(0.0), jnp.int32(0)
    return UpdateStats(zero, zero, none, zero, none)


# ==================================================================================================
# ITERATION: act, step the envs, store, learn; evaluate
# ==================================================================================================
def env_step(nets: Networks, env: envs.Env, config: dict, runner: Runner, keys):
    """Act with per-env exploration noise, step every env, store the transitions, redraw the
    exploration scale of envs whose episode ended. Returns the runner and (sum of finished
    episodes' returns, their count)."""
    hp, ts = runner.hparams, runner.train_state
    k_act, k_step, k_scale = keys
    obs_norm, obs = observe(config, ts.obs_norm, runner.env_state.obs)
    policy_action = nets.actor.apply(ts.actor_params, obs)
    # Exploration noise is not clipped here; the env clips, the buffer keeps it raw.
    action = policy_action + jax.random.normal(k_act, policy_action.shape) * runner.noise_scale[:, None]
    num_envs = config["NUM_ENVS"]
    env_state, step = jax.vmap(env.step)(runner.env_state, action, jax.random.split(k_step, num_envs))
    buffer = buffer_add(runner.buffer, runner.env_state.obs, runner.env_state.privileged, action, step)
    fresh_scale = jax.random.uniform(k_scale, (num_envs,), minval=hp["STD_MIN"], maxval=hp["STD_MAX"])
    episode_return = runner.episode_return + step.reward
    ts = ts._replace(obs_norm=obs_norm)
    if config["REWARD_NORMALIZATION"]:
        ts = ts._replace(
            reward_norm=reward_normalizer_update(ts.reward_norm, step.reward, step.done, hp["GAMMA"])
        )
    runner = runner._replace(
        train_state=ts,
        env_state=env_state,
        buffer=buffer,
        noise_scale=jnp.where(step.done, fresh_scale, runner.noise_scale),
        episode_return=jnp.where(step.done, 0.0, episode_return),
    )
    finished = (jnp.where(step.done, episode_return, 0.0).sum(), step.done.sum(dtype=jnp.int32))
    return runner, finished


def iteration_step(nets: Networks, env: envs.Env, config: dict, runner: Runner, iteration):
    """One iteration: `env_step`, then (after LEARNING_STARTS) `learning_step`."""
    rng, k_act, k_step, k_scale, k_learn = jax.random.split(runner.rng, 5)
    runner, (finished_return, finished_episodes) = env_step(
        nets, env, config, runner, (k_act, k_step, k_scale)
    )
    learn = functools.partial(learning_step, nets, config, runner.hparams)
    skip = lambda ts, buffer, key, iteration: (ts, no_updates())  # noqa: E731
    # Warm-up gate: the predicate is the (unbatched) iteration index, so under vmap
    # this stays a real branch and warm-up iterations do no gradient work.
    ts, updates = jax.lax.cond(
        iteration > config["LEARNING_STARTS"],
        learn,
        skip,
        runner.train_state,
        runner.buffer,
        k_learn,
        iteration,
    )
    stats = IterationStats(finished_return, finished_episodes, updates)
    return runner._replace(train_state=ts, rng=rng), stats


def evaluate(nets: Networks, env: envs.Env, config: dict, ts: TrainState, eval_states: envs.EnvState):
    """Mean eval return with the deterministic actor and the normalizer frozen."""
    if config["NUM_EVAL_ENVS"] == 0:
        return jnp.float32(jnp.nan)
    normalized = (
        (lambda obs: normalize(ts.obs_norm, obs)) if config["OBS_NORMALIZATION"] else (lambda obs: obs)
    )
    return episode_returns(
        env, lambda obs: nets.actor.apply(ts.actor_params, normalized(obs)), eval_states
    ).mean()


def chunk_metrics(config: dict, chunk, stats: IterationStats, eval_return) -> dict:
    """An eval chunk's scalars from its iterations' stats (summed over the chunk)."""
    stats = jax.tree.map(jnp.sum, stats)
    updates = stats.updates
    # Env steps would overflow int32 at scale (16k envs x 150k iterations); the graph counts
    # iterations, and `env_steps_at_evals(config)` gives env steps exactly.
    return {
        "iteration": (chunk + 1) * config["EVAL_INTERVAL"],
        "eval_return": eval_return,
        "train_return": stats.finished_return
        / jnp.where(stats.finished_episodes > 0, stats.finished_episodes, jnp.nan),
        "critic_loss": updates.critic_loss / updates.critic_updates,
        "actor_loss": updates.actor_loss / updates.actor_updates,
        "q_mean": updates.q_mean / updates.critic_updates,
    }


def init_runner(nets: Networks, env: envs.Env, config: dict, rng, hparams=None) -> Runner:
    """The complete state before the first iteration (`TrainLoop.init`)."""
    hp = _resolve_hparams(config, hparams)
    num_envs = config["NUM_ENVS"]
    rng, k_actor, k_critic, k_env, k_noise, k_eval = jax.random.split(rng, 6)
    obs_dummy = jnp.zeros((1, env.obs_dim))
    critic_dummy = jnp.zeros((1, env.obs_dim + env.privileged_dim))
    act_dummy = jnp.zeros((1, env.action_dim))
    actor_params = nets.actor.init(k_actor, obs_dummy)
    actor_params = jax.tree_util.tree_map_with_path(  # head weights ~ N(0, INIT_SCALE)
        lambda path, x: x * hp["INIT_SCALE"] if _is_head_kernel(path) else x, actor_params
    )
    critic_params = jax.vmap(nets.critic.init, in_axes=(0, None, None))(
        jax.random.split(k_critic, 2), critic_dummy, act_dummy
    )
    train_state = TrainState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=critic_params,
        actor_opt_state=adamw(hp).init(actor_params),
        critic_opt_state=adamw(hp).init(critic_params),
        obs_norm=normalizer_init(env.obs_dim),
        critic_norm=normalizer_init(env.obs_dim + env.privileged_dim),
        reward_norm=reward_normalizer_init(num_envs) if config["REWARD_NORMALIZATION"] else None,
    )
    # One vmapped reset for the training and the evaluation envs: each reset call traces and
    # compiles the whole simulator's forward pass again (tens of seconds for an MJX robot).
    reset_keys = jnp.concatenate(
        [jax.random.split(k_env, num_envs), jax.random.split(k_eval, max(config["NUM_EVAL_ENVS"], 1))]
    )
    states = jax.vmap(env.reset)(reset_keys)
    runner = Runner(
        train_state=train_state,
        env_state=jax.tree.map(lambda x: x[:num_envs], states),
        buffer=buffer_for(config, env),
        noise_scale=jax.random.uniform(k_noise, (num_envs,), minval=hp["STD_MIN"], maxval=hp["STD_MAX"]),
        episode_return=jnp.zeros(num_envs),
        eval_states=jax.tree.map(lambda x: x[num_envs:], states),
        hparams=hp,
        evals_done=jnp.int32(0),
        rng=rng,
    )
    return strong_types(runner)


def episode_returns(env: envs.Env, policy, states: envs.EnvState) -> jax.Array:
    """Undiscounted return of one episode per env from `states` (batched), acting with
    `policy(obs) -> action`; rewards count up to each env's first done or the time limit.

    Every evaluation in training starts from the same states, as the reference's does; the
    loop stops once every episode has ended.
    """
    num = states.steps.shape[0]

    def still_running(carry):
        t, _, _, alive = carry
        return (t < env.episode_iterations) & alive.any()

    def step(carry):
        t, states, returns, alive = carry
        states, reward, done = jax.vmap(env.eval_step)(states, policy(states.obs))
        # `where`, not `reward * alive`: a finished MJX episode may go on to NaN rewards.
        return t + 1, states, returns + jnp.where(alive, reward, 0.0), alive & ~done

    init = (jnp.int32(0), states, jnp.zeros(num), jnp.ones(num, bool))
    return jax.lax.while_loop(still_running, step, init)[2]


# ==================================================================================================
# TRAIN LOOP
# ==================================================================================================
def make_train(config: dict, progress=None, heartbeat=None):
    """Returns `train(rng, hparams=None)`, a pure function to `jax.jit` and `jax.vmap`.

    `train` is `TrainLoop.init` followed by `TrainLoop.run` over every eval chunk, in one
    program; `make_train_loop` gives the two halves to save a run and continue it.
    `progress(eval_index)` is called on the host after every evaluation (once per call, however
    many agents are vmapped), e.g. `ProgressPrinter(config)`; None reports nothing.
    `heartbeat(iterations_done)` is called on the host `heartbeat_segments(EVAL_INTERVAL)` times
    in every eval chunk (none below 1,000 iterations), e.g. `ProgressPrinter(config).heartbeat`,
    for runs whose chunks are long."""
    loop = make_train_loop(config, progress, heartbeat)

    def train(rng, hparams=None):
        runner, metrics = loop.run(loop.init(rng, hparams), loop.num_evals)
        return {"metrics": metrics, "runner_state": runner.train_state}

    return train


class TrainLoop(NamedTuple):
    """`train` in two halves, so a run can stop at any eval boundary and go on later.

    `init(rng, hparams=None) -> Runner` is the complete state before the first iteration;
    `run(runner, num_evals) -> (runner, metrics)` trains `num_evals` more eval chunks (a static
    int) from wherever `runner` stands. Continuing a saved `Runner` with the same `run` programs
    gives the metrics and parameters of the run never stopped, bit for bit. Past `num_evals`
    chunks training goes on at the schedules' end values.
    """

    init: Any
    run: Any
    num_evals: int  # eval chunks in the configured run (TOTAL_TIMESTEPS // EVAL_INTERVAL)


def make_train_loop(config: dict, progress=None, heartbeat=None) -> TrainLoop:
    """The two halves of `make_train(config, progress, heartbeat)`'s `train`; see `TrainLoop`."""
    config = dict(config)  # our own copy: later edits by the caller change nothing here
    env = envs.make_env(config)
    nets = make_networks(config, env.action_dim)
    eval_interval = config["EVAL_INTERVAL"]

    def counted_iteration_step(carry, iteration):
        """`iteration_step` that also counts the iterations done (unbatched under vmap). A
        host callback runs as soon as its operand exists: given this count, which leaves
        the loop with its results, it reports work done, not work about to start."""
        runner, done = carry
        runner, stats = iteration_step(nets, env, config, runner, iteration)
        return (runner, done + 1), stats

    def reporting_segment(carry, iterations):
        """A segment of iterations, then a heartbeat with the iterations done."""
        carry, stats = jax.lax.scan(counted_iteration_step, carry, iterations)
        jax.debug.callback(heartbeat, carry[1])
        return carry, stats

    def eval_chunk(runner: Runner, _):
        """EVAL_INTERVAL iterations (in `segments` segments when reporting), then an evaluation."""
        chunk = runner.evals_done
        iterations = chunk * eval_interval + jnp.arange(eval_interval)
        carry = (runner, iterations[0])
        segments = 0 if heartbeat is None else heartbeat_segments(eval_interval)  # at trace time
        if segments == 0:
            (runner, done), stats = jax.lax.scan(counted_iteration_step, carry, iterations)
        else:
            (runner, done), stats = jax.lax.scan(reporting_segment, carry, iterations.reshape(segments, -1))
        eval_return = evaluate(nets, env, config, runner.train_state, runner.eval_states)
        metrics = chunk_metrics(config, chunk, stats, eval_return)
        if progress is not None:  # the chunk's index, from the count: after its iterations
            jax.debug.callback(progress, done // eval_interval - 1)
        return runner._replace(evals_done=chunk + 1), metrics

    def init(rng, hparams=None) -> Runner:
        return init_runner(nets, env, config, rng, hparams)

    def run(runner: Runner, num_evals: int):
        runner, metrics = jax.lax.scan(eval_chunk, runner, length=num_evals)
        return strong_types(runner), metrics

    return TrainLoop(init, run, config["TOTAL_TIMESTEPS"] // eval_interval)


# Vmap axes of a `Runner` whose agents share one eval counter (what `TrainLoop.init` gives under
# vmap): `jax.vmap(partial(loop.run, num_evals=k), in_axes=(RUNNER_AXES,), out_axes=(RUNNER_AXES, 0))`.
RUNNER_AXES = Runner(*(0,) * (len(Runner._fields) - 2), evals_done=None, rng=0)


def strong_types(tree):
    """`tree` with no weakly typed leaf (what Python scalars leave, e.g. an env's step counter).

    jit compiles one program per input signature, weak types included, and a state read back
    from a file has none: a `Runner` that kept some would meet a second compiled `run` after a
    resume, and a second program may round differently. So `init` and `run` give strong types."""
    return jax.tree.map(lambda x: x.astype(x.dtype), tree)


def _is_head_kernel(path) -> bool:
    names = [getattr(entry, "key", None) for entry in path]
    return names[-2:] == ["head", "kernel"]


def _resolve_hparams(config: dict, hparams) -> dict:
    """The config's traced settings, overridden by any the caller passes (scalars or tracers)."""
    hp = default_hparams(config)
    if hparams is None:
        return hp
    unknown = set(hparams) - set(HPARAM_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown hparams {sorted(unknown)}; traced settings are {sorted(HPARAM_DEFAULTS)}.")
    hp.update({key: jnp.asarray(value, jnp.float32) for key, value in hparams.items()})
    return hp


# ==================================================================================================
# MAIN: several Pendulum-v1 seeds at once on CPU
# ==================================================================================================
def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Pendulum-v1", help="task name")
    parser.add_argument("--seeds", type=int, default=8, help="agents trained at once (vmapped)")
    parser.add_argument("--seed", type=int, default=0, help="master PRNG seed")
    args = parser.parse_args()

    config = make_config(args.env)
    train = jax.jit(jax.vmap(make_train(config)))
    rngs = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    print(f"{args.env}: {args.seeds} agents x {config['NUM_ENVS']} envs on {jax.devices()[0]}")

    start = time.perf_counter()
    compiled = train.lower(rngs).compile()
    compile_s, start = time.perf_counter() - start, time.perf_counter()
    out = jax.block_until_ready(compiled(rngs))
    run_s = time.perf_counter() - start
    metrics = jax.tree.map(np.asarray, out["metrics"])
    print("\nenv steps/agent  eval return per seed")
    for i, steps in enumerate(env_steps_at_evals(config)):
        returns = "  ".join(f"{r:8.1f}" for r in metrics["eval_return"][:, i])
        print(f"{steps:>15,}  {returns}")
    final = metrics["eval_return"][:, -1]
    print(f"\nfinal eval return: mean {final.mean():.1f}, min {final.min():.1f}, max {final.max():.1f}")
    print(f"compile {compile_s:.1f} s, run {run_s:.1f} s ({args.seeds} agents)")


if __name__ == "__main__":
    main()
