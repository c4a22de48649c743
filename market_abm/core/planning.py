"""Optimistic backward induction for a population of model-based learners (UCB-VI), one compiled pass.

Each agent plans on its own estimates, the offers it faces, and an exploration bonus that makes
every value an upper bound while its data are scarce:

- a tried pair `(s, a)` is worth its mean reward, plus the offer, plus the expected value of the next
  state under its empirical transitions, plus the bonus
  `scale * (sqrt(2 L (var_r + var_V) / n) + (H - h) (high - low) L / n)` at step `h`, with
  `L = log(1 + S A T)`: the empirical-Bernstein bonus of UCB-VI (`n` visits of the pair, `T` steps the
  agent has taken, `var_r` the variance of the rewards it saw there, `var_V` the variance of the next
  step's value under its empirical transitions, `[low, high]` the range of its per-step payoff), small
  where outcomes hardly vary, while its second term keeps a pair seen only a few times near its
  upper bound;
- no value exceeds what the payoff range and the offers allow: `high + offer` now plus, at every
  later step, `high` and the largest offer posted then; an untried pair is worth exactly that bound.

With no bonus (`scale = 0`, `untried = low`) the same pass gives the greedy policy on the estimates,
an untried pair then being worth the least payoff `low` per remaining step plus its offer.

A continuing market (a `discount` per step, one decision step) is planned by discounted value
iteration instead: the same step, with the next state's value discounted, repeated from the agent's
last values until they change by at most `tolerance`; the bonus's `H - h` is then the effective
horizon `1 / (1 - discount)`, and the ceiling the discounted sum of `high` plus the largest offer.

Payoffs are per step, in float32. Agents are planned in blocks of up to `WIDTH` (fewer where their
transition estimates would exceed `BLOCK_FLOATS`), with the agent as the innermost (vectorised) loop.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.compiled import compiled

WIDTH = 256  # agents planned together at most: their estimates stay in cache across the horizon
BLOCK_FLOATS = 1 << 20  # transition estimates of one block at most (4 MB), whatever the sizes
UNTRIED = np.float32(1e9)  # the bonus rate of an untried pair while exploring: its value is the upper bound


def value_ceiling(offers, high, discount=None):
    """The most any agent of each group can earn from step `h` to the end, `(G, H + 1)` float32: `high`
    plus the largest offer posted at each remaining step. In a continuing market (`discount` given,
    `H = 1`) the discounted sum of that per step from now, and from the next step on."""
    best_offer = offers.reshape(offers.shape[0], offers.shape[1], -1).max(axis=-1)  # (G, H)
    if discount is not None:
        forever = (high + best_offer[:, 0]) / (1.0 - discount)
        return np.stack([forever, discount * forever], axis=1).astype(np.float32)
    steps = np.cumsum((high + best_offer)[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([steps, np.zeros((offers.shape[0], 1))], axis=1).astype(np.float32)


def unrolled(counts):
    """`(range(S), range(A))` of `counts (S, A, S, N)` as tuples, for `plan_block`: a kernel is compiled
    for each length of them (once per decision-problem size, then cached)."""
    n_s, n_a = counts.shape[:2]
    return tuple(range(n_s)), tuple(range(n_a))


@compiled
def plan_block(counts, visits, reward_sum, reward_squares, offers, groups, ceiling, scale, low, high, untried, growth,
               policy, epoch_ends, levels, choices, discount=1.0, values=None, tolerance=0.0, max_sweeps=0):
    """Plan every agent `i` of `counts (S, A, S, N)`, `visits`, `reward_sum` and `reward_squares`
    `(S, A, N)` facing `offers[groups[i]] (G, H, S, A)`, whose values are capped by
    `ceiling[groups[i]] (G, H + 1)` (see `value_ceiling`), with the bonus `scale` and an untried pair
    worth `untried` per remaining step beyond its offer (`UNTRIED`: the ceiling); writes `policy (H, S, N)`
    (lowest action on ties) and, unless `epoch_ends` is None (every visit ends an epoch), the visits
    `epoch_ends (S, A, N)` that end its new epoch (`growth` times the visits, one more at least).
    `levels` and `choices` are the tuples `unrolled(counts)`: their lengths are constants when this is
    compiled, so each agent's sums over actions and next states run unrolled, in registers.

    Continuing (`values (S, N)` given, `H = 1`): discounted value iteration from `values`, `discount`
    per step, until no value changes by more than `tolerance` or `max_sweeps` sweeps; `values` is
    overwritten with the result, the start of the next plan."""
    n_s, n_a, n = counts.shape[0], counts.shape[1], counts.shape[3]
    horizon = policy.shape[0]
    continuing = values is not None
    passes = max_sweeps if continuing else horizon
    weight = np.float32(discount)  # of the next step's value
    lasting = np.float32(1.0 / (1.0 - discount)) if continuing else np.float32(0.0)  # effective horizon
    zero, one, two = np.float32(0.0), np.float32(1.0), np.float32(2.0)
    growth, high, untried, scale = np.float32(growth), np.float32(high), np.float32(untried), np.float32(scale)
    span = np.float32(high - low)
    pairs = np.float32(n_s * n_a)
    shared = offers.shape[0] == 1
    width = max(1, min(WIDTH, n, BLOCK_FLOATS // (n_s * n_a * n_s)))
    prob = np.empty((n_s, n_a, n_s, width), np.float32)
    reward = np.empty((n_s, n_a, width), np.float32)
    spread = np.empty((n_s, n_a, width), np.float32)  # variance of the reward
    rate = np.empty((n_s, n_a, width), np.float32)  # L / n (0 for an untried pair)
    fresh = np.empty((n_s, n_a, width), np.float32)  # what an untried pair is worth per remaining step
    offered = np.empty((n_a, width), np.float32)
    cap = np.empty(width, np.float32)
    value, new_value = np.empty((n_s, width), np.float32), np.empty((n_s, width), np.float32)
    # the next step's value as seen from now: the value itself, or in a continuing market its discount
    later = np.empty((n_s, width), np.float32) if continuing else value
    confidence, inverse = np.empty(width, np.float32), np.empty(width, np.float32)
    for lo in range(0, n, width):
        b = min(width, n - lo)
        rows = slice(lo, lo + b)
        # estimates: mean and variance of the reward, transition probabilities, L / n
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
                seen, rewards, squares = visits[s, a, rows], reward_sum[s, a, rows], reward_squares[s, a, rows]
                for j in range(b):
                    v = seen[j]
                    tried = min(v, one)
                    inverse[j] = tried / max(v, one)
                    mean = np.float32(rewards[j]) * inverse[j]
                    reward[s, a, j] = mean
                    spread[s, a, j] = max(np.float32(squares[j]) * inverse[j] - mean * mean, zero)
                    rate[s, a, j] = tried * confidence[j] * inverse[j]
                    fresh[s, a, j] = (one - tried) * untried
                if epoch_ends is not None:
                    ends = epoch_ends[s, a, rows]
                    for j in range(b):
                        ends[j] = max(seen[j] * growth, seen[j] + one)
                for t in range(n_s):
                    row = counts[s, a, t, rows]
                    for j in range(b):
                        prob[s, a, t, j] = row[j] * inverse[j]
        # backward induction (or value iteration): one pass over the agents per (h, s), every action's
        # value in registers
        for t in range(n_s):
            for j in range(b):
                value[t, j] = zero
        if values is not None:
            for t in range(n_s):
                for j in range(b):
                    value[t, j] = values[t, lo + j]
                    later[t, j] = weight * value[t, j]
        for k in range(passes):
            h = 0 if continuing else horizon - 1 - k
            steps = lasting if continuing else np.float32(horizon - h)
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
                        ahead, second = zero, zero
                        for t in range(len(levels)):
                            ahead += prob[s, a, t, j] * later[t, j]
                            second += prob[s, a, t, j] * later[t, j] * later[t, j]
                        variance = spread[s, a, j] + max(second - ahead * ahead, zero)
                        lin = rate[s, a, j]
                        bonus = scale * (np.sqrt(two * variance * lin) + steps * span * lin) + steps * fresh[s, a, j]
                        expected = min(reward[s, a, j] + offered[a, j] + bonus + ahead, cap[j] + offered[a, j])
                        if a == 0 or expected > top:
                            top, choice = expected, np.int8(a)
                    new_value[s, j] = top
                    plan[j] = choice
            if not continuing:
                for t in range(n_s):
                    for j in range(b):
                        value[t, j] = new_value[t, j]
                continue
            change = zero
            for t in range(n_s):
                for j in range(b):
                    change = max(change, abs(new_value[t, j] - value[t, j]))
                    value[t, j] = new_value[t, j]
                    later[t, j] = weight * value[t, j]
            if change <= tolerance:
                break
        if values is not None:
            for t in range(n_s):
                for j in range(b):
                    values[t, lo + j] = value[t, j]
