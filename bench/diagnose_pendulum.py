"""Why do some Pendulum-v1 agents get stuck? Train seeds, then look inside every final agent.

For each agent, on a grid of pendulum states (angle x angular velocity) it measures:

* actor saturation: the share of states where the deterministic action is within 1e-3 of a bound
  (tanh saturated, so the actor's gradient through tanh has all but vanished);
* critic preference: the share of states where the critic's own best action on a 41-point action
  grid beats the actor's action by more than 1 return unit (the critic knows better, the actor
  cannot follow);
* support clipping: the share of the critic's probability mass on the lowest atom (V_MIN), and
  the critic's mean value against the worst discounted return the task can produce.

    python bench/diagnose_pendulum.py [--seed 123] [--seeds 16] [--set KEY=VALUE ...] [--tag NAME]

Writes bench/results/diagnose_pendulum<tag>.json and plots/figures/diagnose_pendulum<tag>.png.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

import purejax_fasttd3 as ft
from common import RESULTS, ROOT, environment, parse_overrides, write
from fasttd3x import networks

SOLVED = -200.0


def state_grid(num_angles: int = 41, num_speeds: int = 33) -> jax.Array:
    """Pendulum observations [cos, sin, angular velocity] over the whole state space."""
    theta, speed = jnp.meshgrid(
        jnp.linspace(-jnp.pi, jnp.pi, num_angles), jnp.linspace(-8.0, 8.0, num_speeds), indexing="ij"
    )
    return jnp.stack([jnp.cos(theta), jnp.sin(theta), speed], -1).reshape(-1, 3)


def inspect_agent(config: dict, train_state: ft.TrainState, hparams: dict) -> dict:
    """Saturation, critic preference and support clipping of one trained agent."""
    actor = networks.Actor(1, config["ACTOR_HIDDEN_DIM"])
    critic = networks.DistributionalCritic(config["NUM_ATOMS"], config["CRITIC_HIDDEN_DIM"])
    support = jnp.linspace(hparams["V_MIN"], hparams["V_MAX"], config["NUM_ATOMS"])
    obs = ft.normalize(train_state.obs_norm, state_grid())
    action, pre_tanh = actor.apply(train_state.actor_params, obs, with_pre_tanh=True)  # [S, 1] each

    def q_values(a):  # min over the twins, as the actor's objective uses
        logits = jax.vmap(critic.apply, in_axes=(0, None, None))(train_state.critic_params, obs, a)
        probs = jax.nn.softmax(logits)
        return (probs @ support).min(0), probs[..., 0].mean()

    q_actor, floor_mass = q_values(action)
    candidates = jnp.linspace(-1.0, 1.0, 41)
    q_grid = jax.vmap(lambda a: q_values(jnp.full_like(action, a))[0])(candidates)  # [41, S]
    gap = q_grid.max(0) - q_actor
    # Local slope of the critic at the actor's action: where the actor is saturated at the
    # wrong end, does the critic point back inside (the gradient vanishes in tanh) or outward
    # (a local optimum of the critic)?
    slope = jax.grad(lambda a: q_values(a)[0].sum())(action)
    saturated = jnp.abs(action) > 0.999
    stuck = saturated & (gap > 1.0)
    inward = jnp.sign(slope) == -jnp.sign(action)
    return {
        "saturated_share": float(saturated.mean()),
        "median_abs_pre_tanh": float(jnp.median(jnp.abs(pre_tanh))),
        "max_abs_pre_tanh": float(jnp.abs(pre_tanh).max()),
        "stuck_share": float(stuck.mean()),
        "stuck_slope_inward_share": float((stuck & inward).sum() / jnp.maximum(stuck.sum(), 1)),
        "critic_prefers_other_share": float((gap > 1.0).mean()),
        "mean_q_gap": float(gap.mean()),
        "floor_mass": float(floor_mass),
        "mean_q": float(q_actor.mean()),
        "min_q": float(q_actor.min()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=123, help="master seed (not a tuning seed)")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", default="")
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from the saved JSON")
    args = parser.parse_args()
    figure = ROOT / "plots" / "figures" / f"diagnose_pendulum{args.tag}.png"
    if args.plot_only:
        _plot(json.loads((RESULTS / f"diagnose_pendulum{args.tag}.json").read_text()), figure)
        return

    config = ft.make_config("Pendulum-v1", **parse_overrides(args.set))
    hparams = ft.default_hparams(config)
    train = jax.jit(jax.vmap(ft.make_train(config)))
    out = train(jax.random.split(jax.random.PRNGKey(args.seed), args.seeds))
    returns = np.asarray(out["metrics"]["eval_return"])
    agents = []
    for i in range(args.seeds):
        state = jax.tree.map(lambda x: x[i], out["runner_state"])
        agents.append({"final_return": float(returns[i, -1]), **inspect_agent(config, state, hparams)})
        print(
            f"seed {i:2d}: final {returns[i, -1]:8.1f}  saturated {agents[-1]['saturated_share']:.2f}  "
            f"critic prefers other {agents[-1]['critic_prefers_other_share']:.2f}  "
            f"mass at V_MIN {agents[-1]['floor_mass']:.3f}  mean Q {agents[-1]['mean_q']:.0f}  "
            f"|pre-tanh| median {agents[-1]['median_abs_pre_tanh']:.1f} "
            f"max {agents[-1]['max_abs_pre_tanh']:.0f}  "
            f"stuck {agents[-1]['stuck_share']:.2f} "
            f"(slope inward {agents[-1]['stuck_slope_inward_share']:.2f})"
        )
    gamma = float(config["GAMMA"])
    worst_reward = -(np.pi**2 + 0.1 * 8.0**2 + 0.001 * 2.0**2)
    solved = returns[:, -1] >= SOLVED
    print(f"solved {solved.mean():.2f}; worst discounted return {worst_reward / (1 - gamma):.0f}")
    result = {
        "benchmark": "diagnose_pendulum",
        "master_seed": args.seed,
        "seeds": args.seeds,
        "overrides": args.set,
        "config": {key: value for key, value in config.items() if isinstance(value, (int, float, str, bool))},
        "hparams": {key: float(value) for key, value in hparams.items()},
        "solved_threshold": SOLVED,
        "solved_share": float(solved.mean()),
        "worst_discounted_return": worst_reward / (1 - gamma),
        "eval_return": returns.tolist(),
        "env_steps": ft.env_steps_at_evals(config).tolist(),
        "agents": agents,
        **environment(),
    }
    write(f"diagnose_pendulum{args.tag}", result)
    _plot(result, figure)


def _plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = np.asarray(result["eval_return"])
    steps = np.asarray(result["env_steps"])
    solved = returns[:, -1] >= result["solved_threshold"]
    fig, (ax_curve, ax_sat, ax_pre) = plt.subplots(1, 3, figsize=(14, 3.8))
    for curve, ok in zip(returns, solved):
        ax_curve.plot(steps, curve, color="tab:blue" if ok else "tab:red", alpha=0.7, lw=1)
    ax_curve.axhline(result["solved_threshold"], color="k", ls=":", lw=1)
    ax_curve.set(xlabel="env steps per agent", ylabel="eval return", title="each seed (red: unsolved)")
    colours = np.where(solved, "tab:blue", "tab:red")
    final = returns[:, -1]
    agents = result["agents"]
    ax_sat.scatter([a["stuck_share"] for a in agents], final, c=colours)
    ax_sat.set(
        xlabel="share of states: action saturated, critic prefers another",
        ylabel="final eval return",
        title=" ".join(result["overrides"]) or "defaults",
    )
    ax_pre.scatter([a["median_abs_pre_tanh"] for a in agents], final, c=colours)
    ax_pre.set(xlabel="median |actor pre-tanh output| over states", ylabel="final eval return")
    ax_pre.set_xscale("log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
