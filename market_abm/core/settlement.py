"""Settling one step: each agent is paid the transfer posted for its action, and the step's
welfare, transfers and action shares are booked. Transfers move money from the principal to the
agent, so welfare counts only private plus external rewards. Payoffs are per step."""

from __future__ import annotations

import numpy as np

from market_abm.core.compiled import compiled, lane_sums


@compiled
def settle_step(offers, targets, groups, states, actions, transfers, received):
    """Pay every agent `i` the transfer `offers[g, s, a] (G, S, A)` for its action in its state, into
    `transfers (N,)`, and add it to `received (N,)`. Returns the number of agents per action `(A,)`, as
    floats, and the number taking the action `targets[g, s] (G, S)`."""
    n, n_states, n_actions = states.shape[0], offers.shape[1], offers.shape[2]
    offers, targets = offers.ravel(), targets.ravel()  # flat (group, state[, action]) rows
    points = np.empty(n, np.int64)
    for i in range(n):
        points[i] = groups[i] * n_states + states[i]
    for i in range(n):
        transfers[i] = offers[points[i] * n_actions + actions[i]]
    for i in range(n):
        received[i] += transfers[i]
    chosen = lane_sums(actions, None, n_actions)
    on_target = 0
    for i in range(n):
        on_target += targets[points[i]] == actions[i]
    return chosen, on_target
