"""Tabular learners for a population: the contract's arrays are indexed by agent; the built-in
learners keep their own tables with the agent on the last axis and update them in compiled loops.

A learner decides at decision points `x = (h, s)`. The contract (checked by one conformance test
for every registered learner):

- `begin_episode(offers, groups)`: the posted contracts, `offers[groups[i]]` `(H, S, A)` for agent `i`.
- `act(h, states) -> actions (N,)`.
- `update(h, states, actions, private_rewards, transfers, next_states)`.
- `greedy_policy() -> (N, H, S)`, and `behaviour_policy() -> (N, H, S, A)` action probabilities.

Contract-aware learners read the posted transfers and plan on them: this module holds the default
one, `ContractAwareLearner`, with its planning pass. Model-free learners only see the payoff
`r + tau` after acting (`core.q_learning`, `core.calvano`). Rewards are in units of per-step payoff.

A continuing market (no episodes, a discount per step) builds its learner with `horizon=1` and
the keyword `discount`; a learner that takes no `discount` cannot learn one. Episodes are then the
institution's review periods. A learner with a convergence rule declares it with `converged()`,
and `stop(agents)` ends the agents' learning (see `core.calvano`).
"""

from __future__ import annotations

import numpy as np

from market_abm.core.compiled import compiled
from market_abm.core.validation import check_int, check_number, check_range


MAX_SWEEPS = 10_000  # value-iteration sweeps of one continuing plan at most


def resident_zeros(shape, dtype=float):
    """Zeros whose memory is written now: `np.zeros` maps pages lazily, and a large table's first
    writes would otherwise fault them in one at a time during the first steps."""
    return np.full(shape, 0, dtype=dtype)


class Learner:
    """Base class: a population of `n_agents` tabular learners on an `(H, S, A)` decision problem.

    Attributes:
        n_agents, n_states, n_actions, horizon: the problem's sizes.
        episode: number of episodes begun.
        contract_aware: whether the learner reads posted transfers before acting.
        episodic: whether it learns episodic markets.
    """

    name = "learner"
    contract_aware = False
    episodic = True  # it learns episodic markets (a continuing one if it also takes `discount`)

    def __init__(self, n_agents, n_states, n_actions, horizon, rng):
        self.n_agents = check_int("n_agents", n_agents, low=1)
        self.n_states = check_int("n_states", n_states, low=1)
        self.n_actions = check_int("n_actions", n_actions, low=1)
        self.horizon = check_int("horizon", horizon, low=1)
        self.rng = rng
        self.episode = 0
        self.rows = np.arange(self.n_agents)

    def begin_episode(self, offers, groups):
        """Start an episode under the posted `offers (G, H, S, A)`; `groups (N,)` maps agents to rows."""
        self.episode += 1

    def continuing_discount(self, discount):
        """The discount of a continuing market (`None` for an episodic one), which has one decision step."""
        if discount is None:
            return None
        if self.horizon != 1:
            raise ValueError(f"horizon: a continuing market has one decision step, got {self.horizon}")
        discount = check_number("discount", discount, low=0.0)
        if discount >= 1.0:
            raise ValueError(f"discount: must be < 1, got {discount}")
        return discount

    def act(self, h, states):
        """Actions `(N,)` at step `h` in `states (N,)`."""
        raise NotImplementedError

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        """Learn from one step: private rewards and transfers received `(N,)`, and the next states."""
        raise NotImplementedError

    def greedy_policy(self):
        """The current greedy policy `(N, H, S)`."""
        raise NotImplementedError

    def behaviour_policy(self):
        """Action probabilities `(N, H, S, A)` of the policy played in the current episode."""
        return np.eye(self.n_actions)[self.greedy_policy()]

    def converged(self):
        """Agents that have converged by the learner's own rule `(N,)`, or None for a learner without one."""
        return None

    def stop(self, agents):
        """End the learning of the `agents` (a boolean mask `(N,)`); only learners with a convergence rule do."""


class ContractAwareLearner(Learner):
    """Model-based optimism (UCB-VI, Azar et al. 2017): estimates its own reward and dynamics, and
    plans on them plus the posted offers and an exploration bonus that keeps every value an upper
    bound while data are scarce (see the planning section below). It reads the offers before acting, so it
    reacts to a new offer at once.

    Parameters: `bonus`, the scale of the empirical-Bernstein exploration bonus
    `bonus * (sqrt(2 L (var_r + var_V) / n) + (H - h) (high - low) L / n)`, `L = log(1 + S A T)` (see
    the planning section below; the default reaches the agent's own optimum within 3,000 episodes on random MDPs
    of up to 8 states, see `benchmarks/learner_soundness.py`; larger explores longer, 0 not at all);
    `payoff_range`, the bounds `(low, high)` of its per-step private payoff (the model passes the
    scenario's); `epoch_growth`, when it re-plans: at the start of an episode when the offers it faces
    have changed, or when one of its visit counts has grown by this share (and by one visit at least)
    since its last plan. The episodic default 0 re-plans after every episode (UCB-VI); 1 waits for a doubling,
    as UCRL2 does, and re-plans rarely (faster, but slower to follow neighbours whose behaviour
    changes). The dynamics are stationary, so counts pool over steps. Arrays keep the agent on the
    last axis, so planning runs over contiguous rows.

    In a continuing market (`discount` given by the model) it plans by discounted value iteration,
    each plan starting from its last values (see the planning section below), and its epochs are UCRL2's (Jaksch,
    Ortner and Auer 2010): an agent re-plans as soon as the visits of the pair it just played have
    grown by `epoch_growth` (1 if not given: a doubling), and when a review changes the offers it faces.
    """

    name = "contract_aware"
    contract_aware = True
    chunk = 65536  # agents gathered at once when only some re-plan: bounds the copies at large N

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, bonus=0.03, payoff_range=(-1.0, 1.0),
                 epoch_growth=None, discount=None):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        self.bonus = check_number("bonus", bonus, low=0.0)
        self.payoff_range = check_range("payoff_range", payoff_range)
        self.discount = self.continuing_discount(discount)
        if epoch_growth is None:
            epoch_growth = 0.0 if self.discount is None else 1.0
        self.epoch_growth = check_number("epoch_growth", epoch_growth, low=0.0)
        n, s, a = self.n_agents, self.n_states, self.n_actions
        self.transition_counts = resident_zeros((s, a, s, n), np.float32)  # whole counts, exact below 2**24
        self.visits = resident_zeros((s, a, n), np.float32)  # visits of each state-action pair
        self.reward_sum = resident_zeros((s, a, n))
        self.reward_squares = resident_zeros((s, a, n))
        # the visits that end each agent's epoch; without growth, any visit does (then all agents are due
        # together, for they all step together)
        self.epoch_ends = (resident_zeros((s, a, n), np.float32) if self.epoch_growth > 0 or self.discount is not None
                           else None)
        self.stepped = False  # a step was learned since the last plan
        self.policy = resident_zeros((self.horizon, s, n), np.int8)
        # a continuing market's values of each state under the last plan, with and without the bonus
        self.values = None if self.discount is None else resident_zeros((s, n), np.float32)
        self.greedy_values = None if self.discount is None else resident_zeros((s, n), np.float32)
        self.offers = None  # the offers (G, H, S, A) the current plans were made on
        self.replans = 0  # agent plans made so far
        self.steps_learned = 0
        self._greedy = None  # (replans, steps learned) and the greedy policy planned then

    def begin_episode(self, offers, groups):
        super().begin_episode(offers, groups)
        if self.epoch_ends is None:
            due = np.full(self.n_agents, self.stepped)
        else:
            due = (self.visits >= self.epoch_ends).any(axis=(0, 1))
        if self.offers is None or self.offers.shape != offers.shape:
            due[:] = True
        else:
            changed = (offers != self.offers).any(axis=(1, 2, 3))
            if changed.any():
                due |= changed[groups]
        self.offers, self.groups = offers.copy(), groups
        self.plan(offers, groups, slice(None) if due.all() else np.flatnonzero(due))
        self.stepped = False

    def plan(self, offers, groups, agents):
        """Start a new epoch for the `agents` (a slice or index array): optimistic backward induction on
        their current estimates and the posted `offers (G, H, S, A)`."""
        low, high = self.payoff_range
        ceiling, offers = value_ceiling(offers, high, self.discount), offers.astype(np.float32)
        knobs = (self.bonus, low, high, UNTRIED, 1.0 + self.epoch_growth)
        shape = unrolled(self.transition_counts)
        rows = self.rows[agents]
        if len(rows) == self.n_agents:  # everyone, in place
            plan_block(*self.tables(), offers, groups, ceiling, *knobs, self.policy, self.epoch_ends, *shape,
                       *self.iteration(self.values))
        else:
            for start in range(0, len(rows), self.chunk):  # a subset is gathered, a chunk at a time
                part = rows[start: start + self.chunk]
                policy = self.policy[..., part]
                ends = None if self.epoch_ends is None else self.epoch_ends[..., part]
                values = None if self.values is None else self.values[..., part]
                plan_block(*(np.take(table, part, axis=-1) for table in self.tables()), offers, groups[part],
                           ceiling, *knobs, policy, ends, *shape, *self.iteration(values))
                self.policy[..., part] = policy
                if ends is not None:
                    self.epoch_ends[..., part] = ends
                if values is not None:
                    self.values[..., part] = values
        self.replans += len(rows)

    def iteration(self, values):
        """`plan_block`'s last arguments: episodic backward induction, or a continuing market's value
        iteration from `values (S, N)` to a change of at most a thousandth of the payoff range per sweep."""
        if self.discount is None:
            return ()
        low, high = self.payoff_range
        return self.discount, values, 1e-3 * (high - low), MAX_SWEEPS

    def tables(self):
        """The agent's statistics, agent last: transition counts `(S, A, S, N)`, and visits, reward sums
        and sums of squared rewards `(S, A, N)`."""
        return self.transition_counts, self.visits, self.reward_sum, self.reward_squares

    def act(self, h, states):
        return choose(self.policy[h], states)

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        count_step(*self.tables(), states, actions, private_rewards, next_states)
        self.stepped = True
        self.steps_learned += 1
        if self.discount is not None and self.offers is not None:  # a continuing epoch ends on a doubling
            due = self.visits[states, actions, self.rows] >= self.epoch_ends[states, actions, self.rows]
            if due.any():
                self.plan(self.offers, self.groups, np.flatnonzero(due))

    def greedy_policy(self):
        """The best response to the posted offers on the current estimates without the exploration bonus
        (what the agent has learned); `behaviour_policy` is the optimistic plan it plays."""
        key = (self.replans, self.steps_learned)
        if self._greedy is None or self._greedy[0] != key:
            low, high = self.payoff_range
            offers = np.zeros((1, self.horizon, self.n_states, self.n_actions)) if self.offers is None else self.offers
            groups = np.zeros(self.n_agents, np.int64) if self.offers is None else self.groups
            policy = np.zeros_like(self.policy)
            plan_block(*self.tables(), offers.astype(np.float32), groups, value_ceiling(offers, high, self.discount),
                       0.0, low, high, low, 1.0, policy, None, *unrolled(self.transition_counts),
                       *self.iteration(self.greedy_values))
            self._greedy = key, np.moveaxis(policy, -1, 0).astype(np.int64)
        return self._greedy[1]

    def behaviour_policy(self):
        return np.eye(self.n_actions)[np.moveaxis(self.policy, -1, 0)]


@compiled
def choose(policy, states):
    """Each agent's planned action `policy (S, N)[states[i], i]`, as int64 `(N,)`."""
    actions = np.empty(states.shape[0], dtype=np.int64)
    for i in range(states.shape[0]):
        actions[i] = policy[states[i], i]
    return actions


@compiled
def count_step(transition_counts, visits, reward_sum, reward_squares, states, actions, rewards, next_states):
    """Add one step of every agent `i` to its counts `(S, A, S, N)`, visits, reward sums and sums of
    squared rewards `(S, A, N)`. One pass per array: the compiler can then keep each loop free of the
    others' memory traffic."""
    n_s, n_a, _, n = transition_counts.shape
    counts, seen, total = transition_counts.reshape(-1), visits.reshape(-1), reward_sum.reshape(-1)
    squares = reward_squares.reshape(-1)
    rows = np.empty(n, np.int64)  # (s, a) row of each agent, times N
    for i in range(n):
        rows[i] = (states[i] * n_a + actions[i]) * n
    for i in range(n):
        seen[rows[i] + i] += 1.0
    for i in range(n):
        total[rows[i] + i] += rewards[i]
    for i in range(n):
        squares[rows[i] + i] += rewards[i] * rewards[i]
    for i in range(n):
        counts[rows[i] * n_s + next_states[i] * n + i] += 1.0


# --- planning: optimistic backward induction, one compiled pass -----------------------------------
#
# Optimistic backward induction for a population of model-based learners (UCB-VI), one compiled pass.
#
# Each agent plans on its own estimates, the offers it faces, and an exploration bonus that makes
# every value an upper bound while its data are scarce:
#
# - a tried pair `(s, a)` is worth its mean reward, plus the offer, plus the expected value of the next
#   state under its empirical transitions, plus the bonus
#   `scale * (sqrt(2 L (var_r + var_V) / n) + (H - h) (high - low) L / n)` at step `h`, with
#   `L = log(1 + S A T)`: the empirical-Bernstein bonus of UCB-VI (`n` visits of the pair, `T` steps the
#   agent has taken, `var_r` the variance of the rewards it saw there, `var_V` the variance of the next
#   step's value under its empirical transitions, `[low, high]` the range of its per-step payoff), small
#   where outcomes hardly vary, while its second term keeps a pair seen only a few times near its
#   upper bound;
# - no value exceeds what the payoff range and the offers allow: `high + offer` now plus, at every
#   later step, `high` and the largest offer posted then; an untried pair is worth exactly that bound.
#
# With no bonus (`scale = 0`, `untried = low`) the same pass gives the greedy policy on the estimates,
# an untried pair then being worth the least payoff `low` per remaining step plus its offer.
#
# A continuing market (a `discount` per step, one decision step) is planned by discounted value
# iteration instead: the same step, with the next state's value discounted, repeated from the agent's
# last values until they change by at most `tolerance`; the bonus's `H - h` is then the effective
# horizon `1 / (1 - discount)`, and the ceiling the discounted sum of `high` plus the largest offer.
#
# Payoffs are per step, in float32. Agents are planned in blocks of up to `WIDTH` (fewer where their
# transition estimates would exceed `BLOCK_FLOATS`), with the agent as the innermost (vectorised) loop.

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
