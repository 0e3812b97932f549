"""No setting is silent: changing any config key changes the traced program or its result.

A key that no code reads would pass make_config, land in config.json and change nothing; these
tests fail for such a key, including any key added later without a use."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejax_fasttd3 as ft
from fasttd3x import configs, envs
from shared_configs import TINY_AGENT

BASE = dict(
    TINY_AGENT,
    NUM_EVAL_ENVS=3,
    LEARNING_STARTS=10,
    BUFFER_SIZE=30,
    BATCH_SIZE=16,
    NUM_UPDATES=2,
    NUM_STEPS=3,
    EPISODE_LENGTH=15,
)

# Another valid value of every static key (Pendulum-v1). POLICY_FREQUENCY=1 rather than 3:
# with NUM_UPDATES=2 the reference's cadence (inner index % freq == 1) is the same for 2 and 3.
STATIC_VARIANTS = {
    "NUM_ENVS": 8,
    "NUM_EVAL_ENVS": 2,
    "TOTAL_TIMESTEPS": 60,
    "LEARNING_STARTS": 12,
    "EVAL_INTERVAL": 10,
    "BUFFER_SIZE": 40,
    "BATCH_SIZE": 32,
    "NUM_UPDATES": 3,
    "POLICY_FREQUENCY": 1,
    "NUM_STEPS": 2,
    "NUM_ATOMS": 13,
    "CRITIC_HIDDEN_DIM": 24,
    "ACTOR_HIDDEN_DIM": 12,
    "USE_CDQ": False,
    "OBS_NORMALIZATION": False,
    "DISABLE_BOOTSTRAP": True,
    "COMPUTE_DTYPE": "bfloat16",
    "EPISODE_LENGTH": 25,
    "ACTION_REPEAT": 2,
    "RESET_MODE": "first_state",
    "USE_GRAD_NORM_CLIPPING": True,
    "REWARD_NORMALIZATION": True,
    "AGENT": "fasttd3_simbav2",
    "CRITIC_NUM_BLOCKS": 1,
    "ACTOR_NUM_BLOCKS": 2,
    "SIM_TYPE": "sim_both",
    "SIM_DIMENSION": 4,
    "ACTOR_SEQ_LEN": 3,
    "CRITIC_SEQ_LEN": 3,
}
# Keys read only under another setting: the variant is compared with BASE plus that setting.
REQUIRES = {
    "REWARD_NORMALIZATION": {"V_MAX": 10.0},  # Pendulum's V_MAX=0 leaves no return bound
    "CRITIC_NUM_BLOCKS": {"AGENT": "fasttd3_simbav2"},
    "ACTOR_NUM_BLOCKS": {"AGENT": "fasttd3_simbav2"},
    "SIM_DIMENSION": {"SIM_TYPE": "sim_both"},
    "ACTOR_SEQ_LEN": {"SIM_TYPE": "sim_actor"},
    "CRITIC_SEQ_LEN": {"SIM_TYPE": "sim_critic"},
}
# Keys that only a Playground task reads; each has its own test below, in test_envs.py or in
# test_reference_options.py (which also shows the refused keys refused).
PLAYGROUND_ONLY = {"IMPL", "PHYSICS_PRECISION", "USE_PUSH_RANDOMIZATION", "USE_TUNED_REWARD"}
REFUSED = {"USE_DOMAIN_RANDOMIZATION", "ACTION_BOUNDS"}  # only the default is allowed


def _program(config) -> str:
    return str(jax.make_jaxpr(ft.make_train(config))(jax.random.PRNGKey(0)))


def test_every_static_key_has_a_variant_here():
    """A new static key must be added above (and so shown to be read) or this fails."""
    assert set(configs.STATIC_DEFAULTS) - {"ENV_NAME"} == set(STATIC_VARIANTS) | PLAYGROUND_ONLY | REFUSED


@pytest.fixture(scope="module")
def base_program():
    return _program(ft.make_config("Pendulum-v1", **BASE))


@pytest.mark.parametrize("key", sorted(STATIC_VARIANTS))
def test_static_setting_changes_the_program(base_program, key):
    base = {**BASE, **REQUIRES.get(key, {})}
    config = ft.make_config("Pendulum-v1", **{**base, key: STATIC_VARIANTS[key]})
    assert config[key] != ft.make_config("Pendulum-v1", **base)[key]
    program = base_program if key not in REQUIRES else _required_program(tuple(REQUIRES[key].items()))
    assert _program(config) != program, f"{key} is read by no code"


@functools.lru_cache
def _required_program(items) -> str:
    return _program(ft.make_config("Pendulum-v1", **BASE, **dict(items)))


# Another value of every traced setting, chosen so a 40-iteration run must feel it
# (NOISE_CLIP well below POLICY_NOISE, so target smoothing is clipped).
HPARAM_VARIANTS = {
    "CRITIC_LEARNING_RATE": 3e-3,
    "ACTOR_LEARNING_RATE": 3e-3,
    "CRITIC_LEARNING_RATE_END": 1e-5,
    "ACTOR_LEARNING_RATE_END": 1e-5,
    "GAMMA": 0.9,
    "TAU": 0.5,
    "POLICY_NOISE": 0.5,
    "NOISE_CLIP": 0.01,
    "STD_MIN": 0.3,
    "STD_MAX": 0.9,
    "V_MIN": -500.0,
    "V_MAX": 10.0,
    "WEIGHT_DECAY": 0.5,
    "INIT_SCALE": 0.5,
    "PRE_TANH_PENALTY": 1.0,
    "MAX_GRAD_NORM": 0.01,  # read with USE_GRAD_NORM_CLIPPING, which this test turns on
}


def test_every_traced_setting_changes_the_result():
    """One vmapped program: the defaults, then each traced key changed alone."""
    assert set(HPARAM_VARIANTS) == set(ft.HPARAM_DEFAULTS)
    config = ft.make_config("Pendulum-v1", **BASE, USE_GRAD_NORM_CLIPPING=True)
    keys = sorted(HPARAM_VARIANTS)
    rows = [ft.default_hparams(config)]
    for key in keys:
        rows.append({**rows[0], key: jnp.float32(HPARAM_VARIANTS[key])})
        assert HPARAM_VARIANTS[key] != config[key], key
    grid = jax.tree.map(lambda *values: jnp.stack(values), *rows)
    out = jax.jit(jax.vmap(ft.make_train(config), in_axes=(None, 0)))(jax.random.PRNGKey(0), grid)
    flat = np.concatenate(
        [np.asarray(x).reshape(len(rows), -1) for x in jax.tree.leaves(out)], axis=1
    ).astype(np.float64)
    for i, key in enumerate(keys, start=1):
        assert not np.allclose(flat[i], flat[0], equal_nan=True), f"{key} is read by no code"


def test_impl_reaches_playground(monkeypatch):
    """IMPL is handed to MuJoCo Playground's loader."""
    from mujoco_playground import registry

    seen = {}

    def load(name, config_overrides):
        seen.update(config_overrides)
        raise RuntimeError("stop after recording")

    monkeypatch.setattr(registry, "load", load)
    for impl in ("jax", "warp"):
        with pytest.raises(RuntimeError, match="stop after recording"):
            envs.make_env(ft.make_config("CartpoleBalance", IMPL=impl))
        assert seen["impl"] == impl
