"""Tabular learners, vectorised over a population: every array's first axis is the agent.

A learner decides at decision points `x = (h, s)`. The contract (checked by one conformance test
for every registered learner):

- `begin_episode(schedule, groups)`: the posted contracts, `schedule[groups[i]]` `(H, S, A)` for agent `i`.
- `act(h, states) -> actions (N,)`.
- `update(h, states, actions, private_rewards, transfers, next_states)`.
- `greedy_policy() -> (N, H, S)`, and `behaviour_policy() -> (N, H, S, A)` action probabilities.

Contract-aware learners read the posted transfers and plan on them; model-free learners only see
the payoff `r + tau` after acting. Rewards are in units of per-step payoff.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.validation import check_int, check_number


UNSEEN = np.float32(1e9)  # stands in for minus infinity in float32 mask arithmetic


def agent_rows(array, agents):
    """The `agents` (a slice or index array) of an array with the agent on its last axis, contiguous."""
    return array[..., agents] if isinstance(agents, slice) else np.take(array, agents, axis=-1)


def first_argmax(q):
    """Argmax and max over axis 1 of `q (S, A, m)`, lowest action on ties, as `(S, m)` int8 and float32;
    branch-free, which beats `argmax` over a middle axis."""
    best = q[:, 0].astype(np.float32)
    choice = np.zeros(best.shape, dtype=np.int8)
    for a in range(1, q.shape[1]):
        better = q[:, a] > best
        choice += better * (np.int8(a) - choice)
        np.maximum(best, q[:, a], out=best)
    return choice, best


class Learner:
    """Base class: a population of `n_agents` tabular learners on an `(H, S, A)` decision problem.

    Attributes:
        n_agents, n_states, n_actions, horizon: the problem's sizes.
        episode: number of episodes begun.
        contract_aware: whether the learner reads posted transfers before acting.
    """

    name = "learner"
    contract_aware = False

    def __init__(self, n_agents, n_states, n_actions, horizon, rng):
        self.n_agents = check_int("n_agents", n_agents, low=1)
        self.n_states = check_int("n_states", n_states, low=1)
        self.n_actions = check_int("n_actions", n_actions, low=1)
        self.horizon = check_int("horizon", horizon, low=1)
        self.rng = rng
        self.episode = 0
        self.rows = np.arange(self.n_agents)

    def begin_episode(self, schedule, groups):
        """Start an episode under the posted transfer `schedule (G, H, S, A)`; `groups (N,)` maps agents to rows."""
        self.episode += 1

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


class ContractAwareLearner(Learner):
    """Model-based optimism (UCB-VI style): estimates its own reward and dynamics, and plans on them
    plus the posted transfers and a per-step bonus `bonus / sqrt(n + 1)` (an untried action is valued
    at the best reward seen so far and moves uniformly).

    An agent plans in epochs: it re-estimates and re-plans at the start of an episode when the offers
    it faces have changed, so it reacts to a new offer at once, or when one of its visit counts has
    grown by the share `epoch_growth` (and by one visit at least) since its last plan. The default 0
    re-plans after every episode (UCB-VI); 1 waits for a doubling, as UCRL2 does, and re-plans
    rarely (faster, but slower to follow neighbours whose behaviour changes). The dynamics are
    stationary, so counts pool over steps. Arrays keep the agent on the last axis, so planning runs
    over contiguous rows.
    """

    name = "contract_aware"
    contract_aware = True
    block = 65536  # agents planned at once: bounds the temporaries at large N

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, bonus=0.1, epoch_growth=0.0):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        self.bonus = check_number("bonus", bonus, low=0.0)
        self.epoch_growth = check_number("epoch_growth", epoch_growth, low=0.0)
        n, s, a = self.n_agents, self.n_states, self.n_actions
        self.transition_counts = np.zeros((s, a, s, n), dtype=np.float32)  # whole counts, exact below 2**24
        self.reward_sum = np.zeros((s, a, n))
        self.epoch_ends = np.zeros((s, a, n), dtype=np.float32)  # visits that end the agent's epoch
        self.policy = np.zeros((self.horizon, s, n), dtype=np.int8)
        self.offers = None  # the schedule (G, H, S, A) the current plans were made on
        self.replans = 0  # agent plans made so far
        self._scratch = None

    @property
    def visits(self):
        """Visits `(S, A, N)` of each state-action pair."""
        return self.transition_counts.sum(axis=2)

    def begin_episode(self, schedule, groups):
        super().begin_episode(schedule, groups)
        visits = self.visits
        due = (visits >= self.epoch_ends).any(axis=(0, 1))
        if self.offers is None or self.offers.shape != schedule.shape:
            due[:] = True
        else:
            changed = (schedule != self.offers).any(axis=(1, 2, 3))
            if changed.any():
                due |= changed[groups]
        self.offers = schedule.copy()
        if due.all():
            agents = [slice(i, i + self.block) for i in range(0, self.n_agents, self.block)]
        else:
            rows = np.flatnonzero(due)
            agents = [rows[i: i + self.block] for i in range(0, len(rows), self.block)]
        for block in agents:
            self.plan(visits, schedule, groups, block)

    def plan(self, visits, schedule, groups, agents):
        """Start a new epoch for the `agents` (a slice or index array): backward induction on their
        current estimates and the posted offers.

        Arithmetic on 0/1 masks rather than `np.where` (the masks are irregular across agents), into
        scratch arrays kept between episodes (fresh large temporaries cost page faults)."""
        visits = agent_rows(visits, agents)  # (S, A, m)
        counts = agent_rows(self.transition_counts, agents)  # (S, A, S, m)
        tried, untried, inverse_seen, reward, expected, term = self.scratch(visits.shape)
        np.minimum(visits, 1.0, out=tried)
        np.subtract(1.0, tried, out=untried)
        np.maximum(visits, 1.0, out=inverse_seen)
        np.divide(agent_rows(self.reward_sum, agents), inverse_seen, out=reward, casting="same_kind")
        best_seen = np.subtract(reward, np.multiply(untried, UNSEEN, out=term), out=term).max(axis=(0, 1))
        best_seen *= best_seen > -0.5 * UNSEEN  # nothing tried yet: 0
        reward *= tried
        reward += np.multiply(untried, best_seen, out=term)
        reward += np.divide(self.bonus, np.sqrt(np.add(visits, 1.0, out=term), out=term), out=term)
        np.divide(tried, inverse_seen, out=inverse_seen)
        if len(schedule) == 1:
            offers = schedule[0, ..., None].astype(np.float32)  # (H, S, A, 1)
        else:
            offers = np.moveaxis(schedule[groups[agents]], 0, -1).astype(np.float32)  # (H, S, A, m)
        value = np.zeros(counts.shape[2:], dtype=np.float32)  # (S, m)
        for h in range(self.horizon - 1, -1, -1):
            np.multiply(counts[:, :, 0], value[0], out=expected)
            for s_next in range(1, self.n_states):
                expected += np.multiply(counts[:, :, s_next], value[s_next], out=term)
            expected *= inverse_seen
            expected += np.multiply(untried, value.mean(axis=0), out=term)  # untried: uniform over next states
            expected += reward
            expected += offers[h]
            self.policy[h][:, agents], value = first_argmax(expected)
        grown = np.multiply(visits, 1.0 + self.epoch_growth, out=term)
        self.epoch_ends[..., agents] = np.maximum(grown, np.add(visits, 1.0, out=tried), out=term)
        self.replans += visits.shape[-1]

    def scratch(self, shape):
        """Six float32 arrays of `shape`, reused while the shape repeats."""
        if self._scratch is None or self._scratch[0].shape != shape:
            self._scratch = [np.empty(shape, dtype=np.float32) for _ in range(6)]
        return self._scratch

    def act(self, h, states):
        return np.take(self.policy[h], states * self.n_agents + self.rows).astype(np.int64)

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        pair = states * self.n_actions + actions
        self.reward_sum.ravel()[pair * self.n_agents + self.rows] += private_rewards
        self.transition_counts.ravel()[(pair * self.n_states + next_states) * self.n_agents + self.rows] += 1

    def greedy_policy(self):
        return np.moveaxis(self.policy, -1, 0).astype(np.int64)


class QLearner(Learner):
    """Model-free Q-learning on the payoff `r + tau`, with step size `(H + 1) / (H + n)`.

    `exploration="epsilon"`: epsilon-greedy with `epsilon_k = epsilon / (1 + k / decay)` in episode `k`.
    `exploration="boltzmann"`: softmax with temperature `temperature / (1 + k / decay)`.
    `exploration="optimistic"`: greedy on values initialised at `H - h` plus a Hoeffding bonus
    `bonus * sqrt(H^3 log(k + 1) / n)` (Jin et al. 2018).
    """

    name = "q_learning"

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, exploration="epsilon",
                 epsilon=1.0, temperature=0.5, decay=200.0, bonus=0.05):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        if exploration not in ("epsilon", "boltzmann", "optimistic"):
            raise ValueError(f"exploration: must be 'epsilon', 'boltzmann' or 'optimistic', got {exploration!r}")
        self.exploration = exploration
        self.epsilon = check_number("epsilon", epsilon, low=0.0, high=1.0)
        self.temperature = check_number("temperature", temperature, low=0.0, low_open=True)
        self.decay = check_number("decay", decay, low=0.0, low_open=True)
        self.bonus = check_number("bonus", bonus, low=0.0)
        shape = (self.n_agents, self.horizon + 1, self.n_states, self.n_actions)
        start = (self.horizon - np.arange(self.horizon + 1)) if exploration == "optimistic" else np.zeros(self.horizon + 1)
        self.q = np.broadcast_to(start[None, :, None, None], shape).astype(float).copy()
        self.visits = np.zeros((self.n_agents, self.horizon, self.n_states, self.n_actions), dtype=np.int64)

    def schedule_factor(self):
        """How much exploration is left in the current episode (1 at the start, decaying)."""
        return 1.0 / (1.0 + max(self.episode - 1, 0) / self.decay)

    def point(self, h, states):
        """Each agent's flat row `(agent, h, state)` in `q` viewed as `(N * (H + 1) * S, A)`."""
        return (self.rows * (self.horizon + 1) + h) * self.n_states + states

    def act(self, h, states):
        probs = self.behaviour_probs(np.take(self.q.reshape(-1, self.n_actions), self.point(h, states), axis=0))
        draws = self.rng.random(self.n_agents)
        passed, actions = probs[:, 0].copy(), np.zeros(self.n_agents, dtype=np.int64)
        for a in range(1, self.n_actions):  # inverse CDF, a column at a time: A is small
            actions += draws >= passed
            passed += probs[:, a]
        return actions

    def behaviour_probs(self, q):
        """Action probabilities for action values `q (..., A)`."""
        greedy = np.eye(self.n_actions)[q.argmax(axis=-1)]
        if self.exploration == "epsilon":
            eps = self.epsilon * self.schedule_factor()
            return (1.0 - eps) * greedy + eps / self.n_actions
        if self.exploration == "boltzmann":
            z = (q - q.max(axis=-1, keepdims=True)) / (self.temperature * self.schedule_factor())
            p = np.exp(z)
            return p / p.sum(axis=-1, keepdims=True)
        return greedy

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        visit = ((self.rows * self.horizon + h) * self.n_states + states) * self.n_actions + actions
        n = np.take(self.visits, visit) + 1
        self.visits.ravel()[visit] = n
        step = (self.horizon + 1.0) / (self.horizon + n)
        future = np.take(self.q.reshape(-1, self.n_actions), self.point(h + 1, next_states), axis=0)
        target = private_rewards + transfers + np.maximum.reduce(future.T)
        if self.exploration == "optimistic":
            log_term = np.log(self.episode + 1.0)
            target = target + self.bonus * np.sqrt(self.horizon**3 * log_term / n)
        cell = self.point(h, states) * self.n_actions + actions
        old = np.take(self.q, cell)
        self.q.ravel()[cell] = old + step * (target - old)

    def greedy_policy(self):
        return self.q[:, : self.horizon].argmax(axis=-1)

    def behaviour_policy(self):
        return self.behaviour_probs(self.q[:, : self.horizon])


def epsilon_greedy(n_agents, n_states, n_actions, horizon, rng, **params):
    """Q-learning with decaying epsilon-greedy exploration."""
    return _q_learner("epsilon_greedy", "epsilon", n_agents, n_states, n_actions, horizon, rng, params)


def optimistic_q(n_agents, n_states, n_actions, horizon, rng, **params):
    """Optimistic Q-learning with Hoeffding bonuses (Jin et al. 2018)."""
    return _q_learner("optimistic_q", "optimistic", n_agents, n_states, n_actions, horizon, rng, params)


def boltzmann(n_agents, n_states, n_actions, horizon, rng, **params):
    """Q-learning with softmax (Boltzmann) exploration."""
    return _q_learner("boltzmann", "boltzmann", n_agents, n_states, n_actions, horizon, rng, params)


def _q_learner(name, exploration, n_agents, n_states, n_actions, horizon, rng, params):
    learner = QLearner(n_agents, n_states, n_actions, horizon, rng, exploration=exploration, **params)
    learner.name = name
    return learner


LEARNERS = {
    "contract_aware": ContractAwareLearner,
    "epsilon_greedy": epsilon_greedy,
    "optimistic_q": optimistic_q,
    "boltzmann": boltzmann,
}


def make_learner(name, n_agents, n_states, n_actions, horizon, rng, **params):
    """The registered learner `name`, or a user's `Learner` subclass, for the population."""
    if isinstance(name, type) and issubclass(name, Learner):
        return name(n_agents, n_states, n_actions, horizon, rng, **params)
    if name not in LEARNERS:
        raise ValueError(f"learner: must be one of {sorted(LEARNERS)} or a Learner subclass, got {name!r}")
    try:
        return LEARNERS[name](n_agents, n_states, n_actions, horizon, rng, **params)
    except TypeError as err:
        raise ValueError(f"learner_params: {err}") from None
