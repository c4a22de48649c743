"""Bring-your-own learner: a small numpy policy-gradient learner plays the firms of a pollution
network through the PettingZoo env, while the regulator's two-phase mechanism steers it.

Each firm runs its own tabular softmax policy over `(h, stock)`, reading the posted transfers as a
feature (a transfer is money: `pi(a) ~ exp(beta * (theta[h, s, a] + tau[a]))`), trained by
entropy-regularised REINFORCE with a running baseline. It is trained under laissez-faire and under
the two-phase mechanism, with the built-in contract-aware learner under two-phase for reference.
Writes to `--out`: `outside_learner.png` (welfare per episode and cumulative regret),
`outside_learner.csv` and `.md` (one row per run: welfare gap closed and more), and each run's data
(`<run>/steps.parquet`, `episodes.parquet`, `summary.json`).

    python scenarios/outside_learner.py --out results/outside_learner [--agents 8] [--episodes 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from market_abm.io import write_table  # noqa: E402
from market_abm.model import MarketModel  # noqa: E402
from market_abm.results import write_run  # noqa: E402
from market_abm.rl import parallel_env  # noqa: E402

COLUMNS = {
    "gap_closed": "gap closed",
    "final_welfare": "final welfare",
    "laissez_faire_welfare": "laissez-faire welfare",
    "optimal_welfare": "optimal welfare",
    "transfers_per_episode": "transfers per episode",
    "total_welfare_regret": "welfare regret",
    "phase1_episodes": "Phase 1 episodes",
    "seconds": "run time (s)",
}


class SoftmaxPolicyGradient:
    """One tabular softmax policy per agent, `pi(a | h, s) ~ exp(beta * (theta[h, s, a] + tau[a]))`,
    where `tau` is the transfer posted for each action (payoff units) and `1 / beta` the temperature.

    Trained by REINFORCE on the entropy-regularised return (reward `r + tau - log(pi) / beta`) with a
    running baseline per `(h, s)`; at its fixed point `theta` is the agent's soft action value net of
    the immediate transfer, so it answers a new offer at once. Arrays are indexed by agent.
    """

    def __init__(self, n_agents, horizon, n_states, n_actions, rng, learning_rate=0.05, beta=20.0,
                 baseline_rate=0.1):
        self.theta = np.zeros((n_agents, horizon, n_states, n_actions))
        self.baseline = np.zeros((n_agents, horizon, n_states))
        self.learning_rate, self.beta, self.baseline_rate = learning_rate, beta, baseline_rate
        self.rng, self.rows = rng, np.arange(n_agents)

    def probabilities(self, preferences):
        z = np.exp(self.beta * (preferences - preferences.max(axis=-1, keepdims=True)))
        return z / z.sum(axis=-1, keepdims=True)

    def policy(self, offers, groups):
        """The policy it will play under the posted `offers (G, H, S, A)`: `(N, H, S, A)` probabilities."""
        return self.probabilities(self.theta + offers[groups])

    def act(self, h, states, transfers):
        """Sampled actions `(N,)` and their probabilities `(N, A)` given the posted `transfers (N, A)`."""
        probs = self.probabilities(self.theta[self.rows, h, states] + transfers)
        draws = self.rng.random(len(states))[:, None]
        return (draws >= probs.cumsum(axis=-1)).sum(axis=-1).clip(max=probs.shape[-1] - 1), probs

    def learn(self, trajectory):
        """One REINFORCE update from an episode's `(h, states, actions, probs, rewards)` steps."""
        to_go = 0.0
        for h, states, actions, probs, rewards in reversed(trajectory):
            to_go = to_go + rewards - np.log(probs[self.rows, actions]) / self.beta
            advantage = to_go - self.baseline[self.rows, h, states]
            self.baseline[self.rows, h, states] += self.baseline_rate * advantage
            score = -probs
            score[self.rows, actions] += 1.0
            self.theta[self.rows, h, states] += self.learning_rate * advantage[:, None] * score


def play_episode(env, learner):
    """One episode of the env with the learner's actions; the learner learns at the end."""
    names = env.possible_agents
    observations, _ = env.reset()
    trajectory = []
    while env.agents:
        h = int(observations[names[0]]["h"])
        states = np.array([observations[a]["state"] for a in names])
        transfers = np.array([observations[a]["transfers"] for a in names])
        actions, probs = learner.act(h, states, transfers)
        observations, rewards, _, _, _ = env.step(dict(zip(names, actions)))
        trajectory.append((h, states, actions, probs, np.array([rewards[a] for a in names])))
    learner.learn(trajectory)


def model_settings(args, mechanism):
    return dict(scenario="pollution", n_agents=args.agents, graph="ring", mechanism=mechanism, rng=args.seed)


def train_outside_learner(args, mechanism):
    """The outside learner trained through the env; returns the env's model (which holds the data)."""
    learner = None
    env = parallel_env(policy=lambda offers, groups: learner.policy(offers, groups),
                       **model_settings(args, mechanism))
    sizes = env.model.env
    learner = SoftmaxPolicyGradient(sizes.n_agents, sizes.horizon, sizes.n_states, sizes.n_actions,
                                    np.random.default_rng(args.seed + 1))
    for _ in tqdm(range(args.episodes), desc=f"outside learner / {mechanism}", unit="episode",
                  mininterval=0.5, leave=False):
        play_episode(env, learner)
    return env.model


def train_builtin(args, mechanism, learner="contract_aware"):
    model = MarketModel(learner=learner, **model_settings(args, mechanism))
    model.run_episodes(args.episodes, progress=True)
    return model


def run_all(args):
    """`{run label: (model, summary)}`, each summary with its run time."""
    plans = {
        "policy gradient / none": lambda: train_outside_learner(args, "none"),
        "policy gradient / two_phase": lambda: train_outside_learner(args, "two_phase"),
        "contract_aware / two_phase": lambda: train_builtin(args, "two_phase"),
    }
    runs = {}
    for label, train in plans.items():
        start = time.perf_counter()
        model = train()
        summary = write_run(model, args.out / label.replace(" / ", "_").replace(" ", "_"), overwrite=True)
        summary["seconds"] = time.perf_counter() - start
        runs[label] = (model, summary)
    return runs


def results_table(runs):
    rows = {label: {name: summary.get(key) for key, name in COLUMNS.items()} for label, (_, summary) in runs.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("learner / mechanism").astype(float)


def plot(runs, path, window=100):
    fig, (welfare_ax, regret_ax) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for label, (model, _) in runs.items():
        episodes = model.episodes_frame()
        welfare = episodes["expected_welfare"].fillna(episodes["welfare"])
        welfare_ax.plot(episodes["episode"], welfare.rolling(window, min_periods=1).mean(), label=label)
        regret_ax.plot(episodes["episode"], episodes["cumulative_regret"], label=label)
        phase1 = model.mechanism.summary().get("phase1_episodes")
        if phase1 and label.startswith("policy gradient"):
            welfare_ax.axvline(phase1, color="grey", linestyle=":", label="end of Phase 1 (policy gradient)")
    summary = next(iter(runs.values()))[1]
    welfare_ax.axhline(summary["optimal_welfare"], color="black", linestyle="--", label="optimum")
    welfare_ax.axhline(summary["laissez_faire_welfare"], color="black", linestyle=":", label="laissez-faire")
    welfare_ax.set(xlabel="episode", ylabel=f"welfare per firm per episode ({window}-episode mean)",
                   title="Welfare")
    regret_ax.set(xlabel="episode", ylabel="cumulative welfare regret per firm", title="Welfare regret")
    welfare_ax.legend(fontsize="small")
    regret_ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--agents", type=int, default=8, help="firms on a ring network")
    parser.add_argument("--episodes", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = run_all(args)
    table = results_table(runs)
    plot(runs, args.out / "outside_learner.png")
    print(write_table(table, args.out, "outside_learner"))


if __name__ == "__main__":
    main()
