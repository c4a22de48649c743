"""Optimistic backward induction for a population of model-based learners (UCB-VI), one compiled pass.

Each agent plans on its own estimates, the offers it faces, and an exploration bonus that makes
every value an upper bound while its data are scarce:

- a tried pair `(s, a)` is worth its mean reward, plus the offer, plus the bonus
  `(H - h) * (high - low) * (scale * sqrt(log(1 + S A T) / n) + 1 / n)` at step `h` (`n` visits of
  the pair, `T` steps the agent has taken, `[low, high]` the range of its per-step payoff: the
  Hoeffding term of UCB-VI, scaled, and the range term of a Bernstein bound, which keeps a pair
  seen only a few times near its upper bound), plus the expected value of the next state under its
  empirical transitions;
- no value exceeds what the payoff range and the offers allow: `high + offer` now plus, at every
  later step, `high` and the largest offer posted then; an untried pair is worth exactly that bound.

With no bonus (`scale = 0`, `untried = low`) the same pass gives the greedy policy on the estimates,
an untried pair then being worth the least payoff `low` per remaining step plus its offer.

Payoffs are per step, in float32. Agents are planned in blocks of `WIDTH`, with the agent as the
innermost (vectorised) loop.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.compiled import compiled

WIDTH = 256  # agents planned together: their estimates stay in cache across the horizon
UNTRIED = np.float32(1e9)  # the bonus of an untried pair while exploring: its value is the upper bound


def value_ceiling(offers, high):
    """The most any agent of each group can earn from step `h` to the end, `(G, H + 1)` float32: `high`
    plus the largest offer posted at each remaining step."""
    best_offer = offers.reshape(offers.shape[0], offers.shape[1], -1).max(axis=-1)  # (G, H)
    steps = np.cumsum((high + best_offer)[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([steps, np.zeros((offers.shape[0], 1))], axis=1).astype(np.float32)


def unrolled(counts):
    """`(range(S), range(A))` of `counts (S, A, S, N)` as tuples, for `plan_block`: a kernel is compiled
    for each length of them (once per decision-problem size, then cached)."""
    n_s, n_a = counts.shape[:2]
    return tuple(range(n_s)), tuple(range(n_a))


@compiled
def plan_block(counts, visits, reward_sum, offers, groups, ceiling, scale, low, high, untried, growth, policy,
               epoch_ends, levels, choices):
    """Plan every agent `i` of `counts (S, A, S, N)`, `visits`, `reward_sum (S, A, N)` facing
    `offers[groups[i]] (G, H, S, A)`, whose values are capped by `ceiling[groups[i]] (G, H + 1)` (see
    `value_ceiling`), with the bonus `scale` and an untried pair worth `untried` per remaining step beyond
    its offer (`UNTRIED`: the ceiling); writes `policy (H, S, N)` (lowest action on ties) and, unless
    `epoch_ends` is None
    (every visit ends an epoch), the visits `epoch_ends (S, A, N)` that end its new epoch (`growth`
    times the visits, one more at least). `levels` and `choices` are the tuples `unrolled(counts)`:
    their lengths are constants when this is compiled, so each agent's sums over actions and next
    states run unrolled, in registers."""
    n_s, n_a, n = counts.shape[0], counts.shape[1], counts.shape[3]
    horizon = policy.shape[0]
    one, growth, high, untried = np.float32(1.0), np.float32(growth), np.float32(high), np.float32(untried)
    span = np.float32(scale * (high - low))
    second = np.float32(high - low) if scale > 0 else np.float32(0.0)  # the range term, 0 for the greedy plan
    pairs = np.float32(n_s * n_a)
    shared = offers.shape[0] == 1
    prob = np.empty((n_s, n_a, n_s, WIDTH), np.float32)
    reward = np.empty((n_s, n_a, WIDTH), np.float32)
    spread = np.empty((n_s, n_a, WIDTH), np.float32)  # the bonus per remaining step
    offered = np.empty((n_a, WIDTH), np.float32)
    cap = np.empty(WIDTH, np.float32)
    value, new_value = np.empty((n_s, WIDTH), np.float32), np.empty((n_s, WIDTH), np.float32)
    confidence, inverse = np.empty(WIDTH, np.float32), np.empty(WIDTH, np.float32)
    for lo in range(0, n, WIDTH):
        b = min(WIDTH, n - lo)
        rows = slice(lo, lo + b)
        # estimates: mean reward, transition probabilities, and the bonus per remaining step
        for j in range(b):
            confidence[j] = 0.0
        for s in range(n_s):
            for a in range(n_a):
                seen = visits[s, a, rows]
                for j in range(b):
                    confidence[j] += seen[j]
        for j in range(b):
            confidence[j] = np.log(one + pairs * confidence[j])
        for s in range(n_s):
            for a in range(n_a):
                seen, rewards = visits[s, a, rows], reward_sum[s, a, rows]
                for j in range(b):
                    v = seen[j]
                    tried = min(v, one)
                    inverse[j] = tried / max(v, one)
                    reward[s, a, j] = np.float32(rewards[j]) * inverse[j]
                    spread[s, a, j] = tried * (span * np.sqrt(confidence[j] * inverse[j]) + second * inverse[j]) \
                        + (one - tried) * untried
                if epoch_ends is not None:
                    ends = epoch_ends[s, a, rows]
                    for j in range(b):
                        ends[j] = max(seen[j] * growth, seen[j] + one)
                for t in range(n_s):
                    row = counts[s, a, t, rows]
                    for j in range(b):
                        prob[s, a, t, j] = row[j] * inverse[j]
        # backward induction: one pass over the agents per (h, s), every action's value in registers
        for t in range(n_s):
            for j in range(b):
                value[t, j] = 0.0
        for h in range(horizon - 1, -1, -1):
            steps = np.float32(horizon - h)
            for j in range(b):
                cap[j] = high + ceiling[0 if shared else groups[lo + j], h + 1]
            for s in range(n_s):
                for a in range(n_a):
                    if shared:
                        posted = np.float32(offers[0, h, s, a])
                        for j in range(b):
                            offered[a, j] = posted
                    else:
                        for j in range(b):
                            offered[a, j] = offers[groups[lo + j], h, s, a]
                plan = policy[h, s, rows]
                for j in range(b):
                    top, choice = np.float32(0.0), np.int8(0)
                    for a in range(len(choices)):
                        expected = reward[s, a, j] + offered[a, j] + steps * spread[s, a, j]
                        for t in range(len(levels)):
                            expected += prob[s, a, t, j] * value[t, j]
                        expected = min(expected, cap[j] + offered[a, j])
                        if a == 0 or expected > top:
                            top, choice = expected, np.int8(a)
                    new_value[s, j] = top
                    plan[j] = choice
            for t in range(n_s):
                for j in range(b):
                    value[t, j] = new_value[t, j]
