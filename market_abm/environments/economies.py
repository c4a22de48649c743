"""Families of tabular economies, for judging mechanisms and learners beyond one tuned instance.

Each builder returns a `TabularMDP` (payoffs per step) from a seed and sizes:

- `random_economy`: random dynamics, private rewards in [0, 1], and an external harm that lies in
  the state an action leads to (a polluted or risky state hurts third parties);
- `coverage_chain`: a chain whose welfare-optimal path runs through states that laissez-faire never
  visits, so a principal must price cells it has never seen;
- `costly_compliance`: compensating transfers of `cost` per step, beyond the two-phase mechanism's
  first ceiling.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.mdp import TabularMDP
from market_abm.core.validation import check_int, check_number


def random_economy(seed, n_states=6, n_actions=3, horizon=8, concentration=0.3, harm=1.0):
    """Dirichlet(`concentration`) transitions, private rewards uniform in [0, 1], and an external
    reward `u(s, a) = -harm * E[damage(s')]` with each state's damage uniform in [0, 1]."""
    n_states, n_actions = check_int("n_states", n_states, low=1), check_int("n_actions", n_actions, low=1)
    horizon = check_int("horizon", horizon, low=1)
    concentration = check_number("concentration", concentration, low=0.0, low_open=True)
    rng = np.random.default_rng(seed)
    transition = rng.dirichlet(np.full(n_states, concentration), size=(n_states, n_actions))
    private = rng.uniform(0.0, 1.0, (n_states, n_actions))
    damage = rng.uniform(0.0, 1.0, n_states)
    external = -check_number("harm", harm, low=0.0) * transition @ damage
    return TabularMDP(transition, private, external, horizon, rng.dirichlet(np.ones(n_states)))


def coverage_chain(n_states=5, horizon=8, effort=0.3, benefit=0.6, slip=0.1):
    """States `0..S-1` in a line, every episode starting at 0. Action 0 (`rest`) earns 0.5 and slips
    back one state with probability `slip`; action 1 (`climb`) earns `0.5 - effort` and moves one
    state up. Third parties gain `benefit * s / (S - 1)` per step in state `s`, so society wants the
    firm to climb, while on its own it rests at the bottom and never sees the upper states."""
    n_states, horizon = check_int("n_states", n_states, low=2), check_int("horizon", horizon, low=1)
    effort, benefit = check_number("effort", effort, low=0.0, high=0.5), check_number("benefit", benefit, low=0.0)
    slip = check_number("slip", slip, low=0.0, high=1.0)
    s = np.arange(n_states)
    transition = np.zeros((n_states, 2, n_states))
    transition[s, 0, np.maximum(s - 1, 0)] += slip
    transition[s, 0, s] += 1.0 - slip
    transition[s, 1, np.minimum(s + 1, n_states - 1)] = 1.0
    private = np.column_stack([np.full(n_states, 0.5), np.full(n_states, 0.5 - effort)])
    external = np.repeat((benefit * s / (n_states - 1))[:, None], 2, axis=1)
    initial = np.eye(n_states)[0]
    return TabularMDP(transition, private, external, horizon, initial)


def costly_compliance(cost=3.0, horizon=6, n_states=2):
    """Compliance (action 1) costs the firm `cost` per step more than shirking (action 0) and gives
    third parties `cost + 1`, whatever the state (states are a fair coin, so the gap is `cost` at every
    step): the compensating transfer is `cost` per step."""
    cost = check_number("cost", cost, low=0.0, low_open=True)
    n_states, horizon = check_int("n_states", n_states, low=1), check_int("horizon", horizon, low=1)
    transition = np.full((n_states, 2, n_states), 1.0 / n_states)
    private = np.tile([0.5 * cost, -0.5 * cost], (n_states, 1))
    external = np.tile([-0.5 * (cost + 1.0), 0.5 * (cost + 1.0)], (n_states, 1))
    return TabularMDP(transition, private, external, horizon, np.full(n_states, 1.0 / n_states))
