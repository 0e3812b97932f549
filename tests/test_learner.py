"""The learner's module-level pieces called alone, against NumPy: one critic update and one actor
update (loss from a float64 forward pass, gradient signs from central differences through the
first AdamW step), the learning step's cadence and Polyak targets, the env step's buffer write and
exploration scales, and a chunk's metrics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejax_fasttd3 as ft
from fasttd3x import envs, networks
from numpy_reference import log_softmax, normalize, project, softmax

OBS, PRIVILEGED, ACTION, BATCH, ATOMS = 3, 2, 1, 8, 11
# Traced settings of the update tests: a support the targets spread over, non-zero decay and
# penalty so that every term of both losses and of the AdamW step is exercised.
HP = dict(V_MIN=-4.0, V_MAX=4.0, POLICY_NOISE=0.2, NOISE_CLIP=0.3, WEIGHT_DECAY=0.1, PRE_TANH_PENALTY=0.05)
LR = 3e-4
ADAM_EPS = 1e-8


@pytest.fixture(scope="module")
def setup():
    """An asymmetric critic (obs + privileged) with target parameters apart from the online
    ones, so that a wrong input or a wrong parameter set changes the numbers."""
    config = ft.make_config("Pendulum-v1", CRITIC_HIDDEN_DIM=16, ACTOR_HIDDEN_DIM=16, NUM_ATOMS=ATOMS)
    hp = {**ft.default_hparams(config), **{k: jnp.float32(v) for k, v in HP.items()}}
    dtype = jnp.dtype(config["COMPUTE_DTYPE"])
    nets = ft.Networks(networks.Actor(ACTION, 16, dtype), networks.DistributionalCritic(ATOMS, 16, dtype))
    keys = jax.random.split(jax.random.PRNGKey(0), 12)
    actor_params = nets.actor.init(keys[0], jnp.zeros((1, OBS)))
    critic_init = jax.vmap(nets.critic.init, in_axes=(0, None, None))
    critic_params = critic_init(
        jax.random.split(keys[1], 2), jnp.zeros((1, OBS + PRIVILEGED)), jnp.zeros((1, ACTION))
    )
    leaves = jax.tree.leaves(critic_params)
    shifted = [
        x + 0.1 * jax.random.normal(k, x.shape)
        for x, k in zip(leaves, jax.random.split(keys[11], len(leaves)))
    ]
    target_params = jax.tree.unflatten(jax.tree.structure(critic_params), shifted)
    ts = ft.TrainState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=target_params,
        actor_opt_state=ft.adamw(hp).init(actor_params),
        critic_opt_state=ft.adamw(hp).init(critic_params),
        obs_norm=ft.normalizer_init(OBS),
        critic_norm=ft.normalizer_init(OBS + PRIVILEGED),
    )
    normal = lambda i, *shape: jax.random.normal(keys[i], (BATCH, *shape))  # noqa: E731
    batch = ft.Batch(
        obs=normal(2, OBS),
        privileged=normal(3, PRIVILEGED),
        action=jax.random.uniform(keys[4], (BATCH, ACTION), minval=-1.0, maxval=1.0),
        reward=jax.random.uniform(keys[5], (BATCH,), minval=-3.0, maxval=3.0),
        next_obs=normal(6, OBS),
        next_privileged=normal(7, PRIVILEGED),
        discount=hp["GAMMA"] ** jax.random.randint(keys[8], (BATCH,), 1, 4).astype(jnp.float32),
        bootstrap=(jax.random.uniform(keys[9], (BATCH,)) > 0.3).astype(jnp.float32),
    )
    # Inputs as `critic_inputs` would give them for an asymmetric task, without normalization.
    inputs = ft.LearnerInputs(
        obs=batch.obs,
        next_obs=batch.next_obs,
        critic_obs=jnp.concatenate([batch.obs, batch.privileged], -1),
        next_critic_obs=jnp.concatenate([batch.next_obs, batch.next_privileged], -1),
    )
    return config, hp, nets, ts, batch, inputs, keys[10]


# -------------------------------------------------------------------------------- NumPy model
def _leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _layers(params, names, twin=None):
    dense = params["params"]
    pick = (lambda x: x) if twin is None else (lambda x: x[twin])
    return [
        (pick(np.asarray(dense[n]["kernel"], np.float64)), pick(np.asarray(dense[n]["bias"], np.float64)))
        for n in names
    ]


def _mlp(layers, x):
    for kernel, bias in layers[:-1]:
        x = np.maximum(x @ kernel + bias, 0.0)
    kernel, bias = layers[-1]
    return x @ kernel + bias


def np_actor(params, obs):
    """(action, pre-tanh output)."""
    pre_tanh = _mlp(_layers(params, ["Dense_0", "Dense_1", "Dense_2", "head"]), obs)
    return np.tanh(pre_tanh), pre_tanh


def np_critic_logits(params, twin, obs, action):
    layers = _layers(params, ["Dense_0", "Dense_1", "Dense_2", "Dense_3"], twin)
    return _mlp(layers, np.concatenate([obs, action], -1))


def _with_leaves(tree, leaves):
    return jax.tree.unflatten(jax.tree.structure(tree), leaves)


def central_differences(loss, tree, h=1e-6):
    """d loss / d every parameter of `tree`, in float64."""
    leaves = _leaves(tree)
    grads = []
    for i, leaf in enumerate(leaves):
        grad = np.zeros_like(leaf)
        for index in np.ndindex(leaf.shape):
            shifted = [x.copy() for x in leaves]
            shifted[i][index] += h
            up = loss(_with_leaves(tree, shifted))
            shifted[i][index] -= 2 * h
            grad[index] = (up - loss(_with_leaves(tree, shifted))) / (2 * h)
        grads.append(grad)
    return grads


def assert_first_adamw_step(before, after, grads, weight_decay):
    """AdamW's first step moves each parameter by -lr * (g / (|g| + eps) + decay * p): check
    g / (|g| + eps) against the NumPy gradient wherever its sign is well defined."""
    checked = 0
    for p0, p1, g in zip(_leaves(before), _leaves(after), grads):
        observed = -(p1 - p0) / LR - weight_decay * p0
        clear = np.abs(g) > max(1e-6, 1e-4 * np.abs(g).max())  # above float32 gradient noise
        np.testing.assert_allclose(observed[clear], (g / (np.abs(g) + ADAM_EPS))[clear], atol=2e-3)
        checked += clear.sum()
    assert checked > 0.5 * sum(g.size for g in grads)  # most parameters are checked


# ------------------------------------------------------------------------------------ tests
def test_critic_update_matches_numpy(setup):
    config, hp, nets, ts, batch, inputs, key = setup
    update = jax.jit(functools.partial(ft.critic_update, nets, config))
    new_ts, loss, q_mean = update(hp, ts, batch, inputs, key, jnp.float32(LR))

    b = {k: np.asarray(v, np.float64) for k, v in batch._asdict().items()}
    obs_c, next_obs_c = (
        np.asarray(inputs.critic_obs, np.float64),
        np.asarray(inputs.next_critic_obs, np.float64),
    )
    noise = np.asarray(jax.random.normal(key, batch.action.shape), np.float64)  # the update's draw
    smoothing = np.clip(noise * HP["POLICY_NOISE"], -HP["NOISE_CLIP"], HP["NOISE_CLIP"])
    next_action = np.clip(np_actor(ts.actor_params, b["next_obs"])[0] + smoothing, -1.0, 1.0)
    support = np.linspace(HP["V_MIN"], HP["V_MAX"], ATOMS)
    targets = [
        project(
            softmax(np_critic_logits(ts.target_critic_params, c, next_obs_c, next_action)),
            b["reward"], b["bootstrap"], b["discount"], HP["V_MIN"], HP["V_MAX"],
        )
        for c in (0, 1)
    ]  # fmt: skip
    # Clipped double Q: both critics learn the target distribution whose mean is lower.
    lower = np.where((targets[0] @ support < targets[1] @ support)[:, None], targets[0], targets[1])

    def np_loss(critic_params):
        total = 0.0
        for c in (0, 1):
            log_probs = log_softmax(np_critic_logits(critic_params, c, obs_c, b["action"]))
            total += -(lower * log_probs).sum(-1).mean()
        return total

    np.testing.assert_allclose(float(loss), np_loss(ts.critic_params), rtol=1e-5)
    q = [softmax(np_critic_logits(ts.critic_params, c, obs_c, b["action"])) @ support for c in (0, 1)]
    np.testing.assert_allclose(float(q_mean), np.mean(q), rtol=1e-5, atol=1e-6)
    assert_first_adamw_step(
        ts.critic_params,
        new_ts.critic_params,
        central_differences(np_loss, ts.critic_params),
        HP["WEIGHT_DECAY"],
    )
    for unchanged in ("actor_params", "target_critic_params", "actor_opt_state", "obs_norm", "critic_norm"):
        jax.tree.map(np.testing.assert_array_equal, getattr(new_ts, unchanged), getattr(ts, unchanged))


def test_actor_update_matches_numpy(setup):
    config, hp, nets, ts, batch, inputs, _ = setup
    new_ts, loss = jax.jit(functools.partial(ft.actor_update, nets, config))(hp, ts, inputs, jnp.float32(LR))
    obs, obs_c = np.asarray(inputs.obs, np.float64), np.asarray(inputs.critic_obs, np.float64)
    support = np.linspace(HP["V_MIN"], HP["V_MAX"], ATOMS)

    def np_loss(actor_params):
        action, pre_tanh = np_actor(actor_params, obs)
        q = [softmax(np_critic_logits(ts.critic_params, c, obs_c, action)) @ support for c in (0, 1)]
        return -np.minimum(*q).mean() + HP["PRE_TANH_PENALTY"] * np.mean(pre_tanh**2)

    np.testing.assert_allclose(float(loss), np_loss(ts.actor_params), rtol=1e-5)
    assert_first_adamw_step(
        ts.actor_params,
        new_ts.actor_params,
        central_differences(np_loss, ts.actor_params),
        HP["WEIGHT_DECAY"],
    )
    for unchanged in ("critic_params", "target_critic_params", "critic_opt_state"):
        jax.tree.map(np.testing.assert_array_equal, getattr(new_ts, unchanged), getattr(ts, unchanged))


def test_critic_inputs_normalize_in_the_reference_order(setup):
    """obs, then next obs through the actor normalizer; obs+privileged, then next, through the
    critic's; each call updates the statistics first."""
    config, _, _, ts, batch, _, _ = setup
    new_ts, inputs = ft.critic_inputs(config, ts, batch)
    norm = ft.normalizer_update(ft.normalizer_update(ts.obs_norm, batch.obs), batch.next_obs)
    np.testing.assert_allclose(new_ts.obs_norm.mean, norm.mean, rtol=1e-6)
    np.testing.assert_allclose(inputs.next_obs, normalize(norm, batch.next_obs), rtol=1e-5, atol=1e-6)
    once = ft.normalizer_update(ts.obs_norm, batch.obs)
    np.testing.assert_allclose(inputs.obs, normalize(once, batch.obs), rtol=1e-5, atol=1e-6)
    critic_obs = jnp.concatenate([batch.obs, batch.privileged], -1)
    critic_once = ft.normalizer_update(ts.critic_norm, critic_obs)
    np.testing.assert_allclose(inputs.critic_obs, normalize(critic_once, critic_obs), rtol=1e-5, atol=1e-6)
    assert float(new_ts.critic_norm.count) == 2 * BATCH


@pytest.mark.parametrize(
    "num_updates, iteration, actor_updates",
    # NUM_UPDATES > 1: the actor learns at inner indices i % 2 == 1 (1 of 3); with one update per
    # iteration, at even iterations.
    [(3, 21, 1), (1, 20, 1), (1, 21, 0)],
)
def test_learning_step_cadence_and_polyak_targets(num_updates, iteration, actor_updates):
    config = ft.make_config(
        "Pendulum-v1", NUM_ENVS=4, BATCH_SIZE=16, NUM_UPDATES=num_updates, POLICY_FREQUENCY=2,
        WEIGHT_DECAY=0.1, CRITIC_HIDDEN_DIM=8, ACTOR_HIDDEN_DIM=8, NUM_ATOMS=ATOMS, BUFFER_SIZE=20,
    )  # fmt: skip
    env = envs.make_env(config)
    nets = ft.make_networks(config, env.action_dim)
    runner = jax.jit(functools.partial(ft.init_runner, nets, env, config))(jax.random.PRNGKey(1))
    fill = jax.jit(lambda r, k: ft.env_step(nets, env, config, r, jax.random.split(k, 3))[0])
    for key in jax.random.split(jax.random.PRNGKey(2), 8):
        runner = fill(runner, key)
    ts = runner.train_state
    learn = jax.jit(functools.partial(ft.learning_step, nets, config))
    new_ts, stats = learn(runner.hparams, ts, runner.buffer, jax.random.PRNGKey(3), jnp.int32(iteration))

    assert int(stats.critic_updates) == num_updates and int(stats.actor_updates) == actor_updates
    actor_moved = any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(new_ts.actor_params), jax.tree.leaves(ts.actor_params))
    )
    assert actor_moved == (actor_updates > 0)
    # Each update normalizes obs and next obs of its batch.
    assert float(new_ts.obs_norm.count) == float(ts.obs_norm.count) + 2 * config["BATCH_SIZE"] * num_updates
    if num_updates == 1:  # Polyak after the one update: tau * online + (1 - tau) * old target
        tau = float(runner.hparams["TAU"])
        jax.tree.map(
            lambda target, online, old: np.testing.assert_allclose(
                target, tau * online + (1 - tau) * old, rtol=1e-5, atol=1e-7
            ),
            new_ts.target_critic_params,
            new_ts.critic_params,
            ts.target_critic_params,
        )


def test_env_step_stores_the_transition_and_redraws_ended_envs_scales():
    config = ft.make_config(
        "Pendulum-v1", NUM_ENVS=4, EPISODE_LENGTH=3, CRITIC_HIDDEN_DIM=8, ACTOR_HIDDEN_DIM=8, BUFFER_SIZE=10
    )
    env = envs.make_env(config)
    nets = ft.make_networks(config, env.action_dim)
    runner = jax.jit(functools.partial(ft.init_runner, nets, env, config))(jax.random.PRNGKey(4))
    runner = runner._replace(episode_return=jnp.array([1.0, 2.0, 3.0, 4.0]))
    step = jax.jit(functools.partial(ft.env_step, nets, env, config))
    for t in range(3):  # every episode times out at its third step
        keys = jax.random.split(jax.random.PRNGKey(10 + t), 3)
        before = runner
        runner, (finished_return, finished_episodes) = step(before, keys)
        buffer = runner.buffer
        assert int(buffer.ptr) == t + 1
        np.testing.assert_array_equal(buffer.obs[t], before.env_state.obs)  # raw observations
        # The action: the actor on the observation normalized after updating the statistics,
        # plus unclipped noise at each env's own scale.
        norm = ft.normalizer_update(before.train_state.obs_norm, before.env_state.obs)
        mean_action = np_actor(before.train_state.actor_params, normalize(norm, before.env_state.obs))[0]
        noise = (
            np.asarray(jax.random.normal(keys[0], mean_action.shape))
            * np.asarray(before.noise_scale)[:, None]
        )
        np.testing.assert_allclose(buffer.action[t], mean_action + noise, rtol=1e-5, atol=1e-6)
        reward = np.asarray(buffer.reward[t])
        running = np.asarray(before.episode_return) + reward
        ended = t == 2
        np.testing.assert_array_equal(buffer.done[t], ended)
        np.testing.assert_array_equal(buffer.truncated[t], ended)
        if ended:
            fresh = jax.random.uniform(
                keys[2], (4,), minval=runner.hparams["STD_MIN"], maxval=runner.hparams["STD_MAX"]
            )
            np.testing.assert_array_equal(runner.noise_scale, fresh)
            np.testing.assert_array_equal(runner.episode_return, 0.0)
            np.testing.assert_allclose(float(finished_return), running.sum(), rtol=1e-6)
            assert int(finished_episodes) == 4
        else:
            np.testing.assert_array_equal(runner.noise_scale, before.noise_scale)
            np.testing.assert_allclose(runner.episode_return, running, rtol=1e-6)
            assert float(finished_return) == 0.0 and int(finished_episodes) == 0


def test_chunk_metrics_are_means_over_updates_and_finished_episodes():
    config = {"EVAL_INTERVAL": 4}
    updates = ft.UpdateStats(
        critic_loss=jnp.array([0.0, 2.0, 4.0, 6.0]),
        q_mean=jnp.array([0.0, 1.0, 1.0, 1.0]),
        critic_updates=jnp.array([0, 2, 2, 2], jnp.int32),
        actor_loss=jnp.array([0.0, -3.0, 0.0, -5.0]),
        actor_updates=jnp.array([0, 1, 0, 1], jnp.int32),
    )
    stats = ft.IterationStats(
        jnp.array([0.0, -10.0, 0.0, -30.0]), jnp.array([0, 1, 0, 2], jnp.int32), updates
    )
    metrics = ft.chunk_metrics(config, jnp.int32(2), stats, jnp.float32(-7.0))
    assert int(metrics["iteration"]) == 12 and float(metrics["eval_return"]) == -7.0
    np.testing.assert_allclose(
        [metrics[k] for k in ("train_return", "critic_loss", "actor_loss", "q_mean")],
        [-40.0 / 3, 12.0 / 6, -8.0 / 2, 3.0 / 6],
        rtol=1e-6,
    )
    no_episodes = stats._replace(finished_episodes=jnp.zeros(4, jnp.int32))
    assert np.isnan(ft.chunk_metrics(config, jnp.int32(0), no_episodes, jnp.float32(0.0))["train_return"])


def test_cosine_lr_is_the_reference_schedule():
    config = {"TOTAL_TIMESTEPS": 100}
    lr = lambda i: float(ft.cosine_lr(config, 1.0, 0.1, jnp.float32(i)))  # noqa: E731
    expected = lambda i: 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(i, 100) / 100))  # noqa: E731
    for i in (0, 25, 50, 99, 100, 250):
        assert lr(i) == pytest.approx(expected(i), rel=1e-6)
