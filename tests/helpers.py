"""Shared test helpers: random MDPs, brute-force values, an exactly best-responding learner, and a
command-line run's summary."""

from __future__ import annotations

import itertools
import json

import numpy as np
from hypothesis import strategies as st

from market_abm.cli import main
from market_abm.core import Learner, TabularMDP


def random_mdp(seed, n_states, n_actions, horizon, reward_range=(-1.0, 1.0)):
    """A random episodic MDP with private rewards in `reward_range` and external rewards in [-1, 1]."""
    rng = np.random.default_rng(seed)
    transition = rng.dirichlet(np.ones(n_states) * 0.7, size=(n_states, n_actions))
    return TabularMDP(transition, rng.uniform(*reward_range, (n_states, n_actions)),
                      rng.uniform(-1, 1, (n_states, n_actions)), horizon, rng.dirichlet(np.ones(n_states)))


@st.composite
def mdps(draw, max_states=3, max_actions=3, max_horizon=3):
    """Hypothesis strategy for small random MDPs."""
    return random_mdp(draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, max_states)),
                      draw(st.integers(1, max_actions)), draw(st.integers(1, max_horizon)))


def enumerated_value(mdp, policy, reward):
    """Expected total reward by summing over every trajectory (no dynamic programming)."""
    total = 0.0
    for path in itertools.product(range(mdp.n_states), repeat=mdp.horizon):
        prob, value = mdp.initial[path[0]], 0.0
        for h, s in enumerate(path):
            a = policy[h][s]
            value += reward[h, s, a]
            if h + 1 < mdp.horizon:
                prob *= mdp.transition[s, a, path[h + 1]]
        total += prob * value
    return total


def all_policies(mdp):
    """Every deterministic policy `(H, S)`."""
    for flat in itertools.product(range(mdp.n_actions), repeat=mdp.horizon * mdp.n_states):
        yield np.array(flat).reshape(mdp.horizon, mdp.n_states)


class ExactLearner(Learner):
    """A test double: every agent plays the exact best response of `mdp` to the posted transfers."""

    name = "exact"
    contract_aware = True

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, mdp=None):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        self.mdp = mdp
        self.policy = np.zeros((n_agents, horizon, n_states), dtype=int)

    def begin_episode(self, offers, groups):
        super().begin_episode(offers, groups)
        responses = np.stack([self.mdp.best_response(table) for table in offers])
        self.policy = responses[groups]

    def act(self, h, states):
        return self.policy[self.rows, h, states]

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        pass

    def greedy_policy(self):
        return self.policy


def cli_summary(tmp_path, *args):
    """`market-abm run *args` into a folder of `tmp_path` named after the arguments; its `summary.json`."""
    out = tmp_path / "_".join(a.strip("-") for a in args)
    assert main(["run", *args, "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "summary.json").read_text())
