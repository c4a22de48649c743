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
    """Model-based optimism (UCB-VI style): estimates its own reward and dynamics, and at the start of
    each episode plans on them plus the posted transfers and a per-step bonus `bonus / sqrt(n + 1)`
    (an untried action is valued at the best reward seen so far).

    It reacts to a new offer at once. The dynamics are stationary, so counts pool over steps.
    """

    name = "contract_aware"
    contract_aware = True

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, bonus=0.1):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        self.bonus = check_number("bonus", bonus, low=0.0)
        n, s, a = self.n_agents, self.n_states, self.n_actions
        self.visits = np.zeros((n, s, a), dtype=np.int32)
        self.reward_sum = np.zeros((n, s, a))
        self.transition_counts = np.zeros((n, s, a, s), dtype=np.int32)
        self.policy = np.zeros((n, self.horizon, s), dtype=np.int8)

    def begin_episode(self, schedule, groups):
        super().begin_episode(schedule, groups)
        tried = self.visits > 0
        seen = np.maximum(self.visits, 1)
        reward = self.reward_sum / seen
        best_seen = np.where(tried, reward, -np.inf).max(axis=(1, 2), keepdims=True)
        reward = np.where(tried, reward, np.where(np.isfinite(best_seen), best_seen, 0.0))
        n, s, a = self.n_agents, self.n_states, self.n_actions
        transition = self.transition_counts.astype(float)  # in place below: this is the large array
        transition /= seen[..., None]
        transition[~tried] = 1.0 / s
        transition = transition.reshape(n, s * a, s)
        reward = reward + self.bonus / np.sqrt(self.visits + 1.0)
        offers = schedule[0] if len(schedule) == 1 else None  # one institution: no per-agent gather
        value = np.zeros((n, s, 1))
        for h in range(self.horizon - 1, -1, -1):
            q = reward + (offers[h] if offers is not None else schedule[groups, h])
            q += (transition @ value).reshape(n, s, a)
            self.policy[:, h] = q.argmax(axis=-1)
            value = q.max(axis=-1)[..., None]

    def act(self, h, states):
        return self.policy[self.rows, h, states].astype(np.int64)

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        self.visits[self.rows, states, actions] += 1
        self.reward_sum[self.rows, states, actions] += private_rewards
        self.transition_counts[self.rows, states, actions, next_states] += 1

    def greedy_policy(self):
        return self.policy.astype(np.int64)


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

    def act(self, h, states):
        probs = self.behaviour_probs(self.q[self.rows, h, states])
        draws = self.rng.random(self.n_agents)
        return (draws[:, None] >= np.cumsum(probs, axis=-1)).sum(axis=-1).clip(max=self.n_actions - 1)

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
        n = self.visits[self.rows, h, states, actions] + 1
        self.visits[self.rows, h, states, actions] = n
        step = (self.horizon + 1.0) / (self.horizon + n)
        future = self.q[self.rows, h + 1, next_states].max(axis=-1)
        target = private_rewards + transfers + future
        if self.exploration == "optimistic":
            log_term = np.log(self.episode + 1.0)
            target = target + self.bonus * np.sqrt(self.horizon**3 * log_term / n)
        old = self.q[self.rows, h, states, actions]
        self.q[self.rows, h, states, actions] = old + step * (target - old)

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
