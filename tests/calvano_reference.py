"""A plain numpy statement of Calvano et al.'s Q-learning in independent duopolies, one period at a
time (the reference the compiled pricing periods are checked against, and timed against)."""

from __future__ import annotations

import numpy as np


def calvano_duopolies(profits, prior, periods, rng, alpha=0.15, beta=4e-6, discount=0.95, convergence=100_000):
    """Run `periods` periods of duopolies `(2k, 2k + 1)` of Calvano Q-learners from the draws of `rng`,
    taken as the model takes them: one uniform per firm for the first prices, then one per firm and period.

    `profits (m, m)`: a firm's profit at (own, rival) price; `prior (m, N)`: each firm's expected profit
    per price against a uniformly random rival. Returns the values `(m * m, m, N)` (state = own * m +
    rival), the last states `(N,)`, each duopoly's stopping period (-1: still learning) and the
    prices charged `(periods, N)`.
    """
    m, n = profits.shape[0], prior.shape[1]
    firms = np.arange(n)
    rival = firms ^ 1
    q = np.ascontiguousarray(np.broadcast_to(prior / (1.0 - discount), (m * m, m, n)))
    first = np.minimum((rng.random(n) * m).astype(np.int64), m - 1)
    state = first * m + first[rival]
    last_change = np.full(n, -1)
    stopped_at = np.full(n // 2, -1)
    prices = np.empty((periods, n), dtype=np.int64)
    for t in range(periods):
        draws = rng.random(n)
        eps = np.exp(-beta * t)
        stopped = np.repeat(stopped_at >= 0, 2)
        greedy = q[state, :, firms].argmax(axis=1)
        explore = (draws < eps) & ~stopped
        action = np.where(explore, np.minimum((draws / eps * m).astype(np.int64), m - 1), greedy)
        next_state = action * m + action[rival]
        payoff = profits[action, action[rival]]
        target = payoff + discount * q[next_state, :, firms].max(axis=1)
        old = q[state, action, firms]
        learning = ~stopped
        q[state[learning], action[learning], firms[learning]] = (old + alpha * (target - old))[learning]
        changed = learning & (q[state, :, firms].argmax(axis=1) != greedy)
        last_change[changed] = t
        newly = (stopped_at < 0) & (t - last_change.reshape(-1, 2).max(axis=1) >= convergence)
        stopped_at[newly] = t + 1
        prices[t] = action
        state = next_state
    return q, state, stopped_at, prices
