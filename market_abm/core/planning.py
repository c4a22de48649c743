"""Optimistic backward induction for a population of model-based learners, one compiled pass.

Each agent plans on its own estimates: mean reward per state-action pair plus the bonus
`bonus / sqrt(n + 1)` (an untried pair is valued at the agent's best mean reward and moves
uniformly), empirical transitions, and the offers it faces. Agents are handled in blocks of
`WIDTH`, with the agent as the innermost (vectorised) loop. Payoffs are per step, in float32.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.compiled import compiled

WIDTH = 256  # agents planned together: their estimates stay in cache across the horizon
UNSEEN = np.float32(1e9)  # stands in for minus infinity


@compiled
def plan_block(counts, visits, reward_sum, offers, groups, bonus, growth, policy, epoch_ends):
    """Plan every agent `i` of `counts (S, A, S, N)`, `visits`, `reward_sum (S, A, N)` facing
    `offers[groups[i]] (G, H, S, A)`; writes `policy (H, S, N)` (lowest action on ties) and the visits
    `epoch_ends (S, A, N)` that end its new epoch (`growth` times the visits, one more at least)."""
    n_s, n_a, _, n = counts.shape
    horizon = policy.shape[0]
    one, bonus, growth = np.float32(1.0), np.float32(bonus), np.float32(growth)
    shared = offers.shape[0] == 1
    prob = np.empty((n_s, n_a, n_s, WIDTH), np.float32)
    reward = np.empty((n_s, n_a, WIDTH), np.float32)
    untried = np.empty((n_s, n_a, WIDTH), np.float32)
    offer = np.empty((horizon, n_s, n_a, WIDTH), np.float32)
    value, new_value = np.empty((n_s, WIDTH), np.float32), np.empty((n_s, WIDTH), np.float32)
    mean, best, inverse = np.empty(WIDTH, np.float32), np.empty(WIDTH, np.float32), np.empty(WIDTH, np.float32)
    expected, choice = np.empty(WIDTH, np.float32), np.empty(WIDTH, np.int8)
    for lo in range(0, n, WIDTH):
        b = min(WIDTH, n - lo)
        rows = slice(lo, lo + b)
        # estimates: mean reward plus bonus, transition probabilities, the best mean reward seen
        for j in range(b):
            best[j] = -UNSEEN
        for s in range(n_s):
            for a in range(n_a):
                seen, rewards, ends = visits[s, a, rows], reward_sum[s, a, rows], epoch_ends[s, a, rows]
                for j in range(b):
                    v = seen[j]
                    tried = min(v, one)
                    inverse[j] = tried / max(v, one)
                    untried[s, a, j] = one - tried
                    r = np.float32(rewards[j]) * inverse[j]
                    best[j] = max(best[j], r - (one - tried) * UNSEEN)
                    reward[s, a, j] = r + bonus / np.sqrt(v + one)
                    ends[j] = max(v * growth, v + one)
                for t in range(n_s):
                    row = counts[s, a, t, rows]
                    for j in range(b):
                        prob[s, a, t, j] = row[j] * inverse[j]
        for j in range(b):
            best[j] *= best[j] > -0.5 * UNSEEN  # nothing tried yet: 0
        for s in range(n_s):
            for a in range(n_a):
                for j in range(b):
                    reward[s, a, j] += untried[s, a, j] * best[j]
        if not shared:
            for h in range(horizon):
                for s in range(n_s):
                    for a in range(n_a):
                        for j in range(b):
                            offer[h, s, a, j] = offers[groups[lo + j], h, s, a]
        # backward induction
        for t in range(n_s):
            for j in range(b):
                value[t, j] = 0.0
        for h in range(horizon - 1, -1, -1):
            for j in range(b):
                total = np.float32(0.0)
                for t in range(n_s):
                    total += value[t, j]
                mean[j] = total * np.float32(1.0 / n_s)
            for s in range(n_s):
                for a in range(n_a):
                    if shared:
                        posted = np.float32(offers[0, h, s, a])
                        for j in range(b):
                            expected[j] = reward[s, a, j] + posted + untried[s, a, j] * mean[j]
                    else:
                        for j in range(b):
                            expected[j] = reward[s, a, j] + offer[h, s, a, j] + untried[s, a, j] * mean[j]
                    for t in range(n_s):
                        for j in range(b):
                            expected[j] += prob[s, a, t, j] * value[t, j]
                    if a == 0:
                        for j in range(b):
                            best[j], choice[j] = expected[j], 0
                    else:
                        for j in range(b):
                            choice[j] += (expected[j] > best[j]) * (a - choice[j])
                            best[j] = max(best[j], expected[j])
                plan = policy[h, s, rows]
                for j in range(b):
                    new_value[s, j] = best[j]
                    plan[j] = choice[j]
            for t in range(n_s):
                for j in range(b):
                    value[t, j] = new_value[t, j]
