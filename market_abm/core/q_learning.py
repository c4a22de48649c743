"""Model-free Q-learners for a population: they see only the payoff `r + tau` after acting, so they
notice an offer only by trying the action it pays for. Tables keep the agent on the last axis and are
updated in compiled loops (the contract is `core.learners.Learner`'s).

A continuing market (a `discount`, one decision step) makes them bootstrap on `discount * max_b
Q(s', b)` across steps; episodes are then the institution's review periods.
"""

from __future__ import annotations

import inspect

import numpy as np

from market_abm.core.compiled import compiled, inlined
from market_abm.core.learners import Learner, resident_zeros
from market_abm.core.validation import check_number, check_range


class QLearner(Learner):
    """Model-free Q-learning on the payoff `r + tau`, with step size `(H + 1) / (H + n)`.

    `exploration="epsilon"`: epsilon-greedy with `epsilon_k = epsilon / (1 + k / decay)` in episode `k`.
    `exploration="boltzmann"`: softmax with temperature `temperature * (high - low) * (H - h) / (1 + k / decay)`
    at step `h`: `temperature` is a share of the range of values still ahead (the private payoff's bounds
    `payoff_range`, which the model passes from the scenario, times the steps left), so the same share
    explores alike whatever the units of the payoff and the length of the horizon.
    `exploration="optimistic"`: greedy on values initialised at `H - h` plus a Hoeffding bonus
    `bonus * sqrt(H^3 log(k + 1) / n)` (Jin et al. 2018).

    With a `discount` (a continuing market, `horizon=1`) the target is `r + tau + discount * max_b
    Q(s', b)` and `H` above is the effective horizon `1 / (1 - discount)`; episodes are review periods.
    """

    name = "q_learning"

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, exploration="epsilon",
                 epsilon=1.0, temperature=0.75, decay=200.0, bonus=0.05, payoff_range=(0.0, 1.0), discount=None):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        self.discount = self.continuing_discount(discount)
        # steps ahead that matter: the horizon, or the effective horizon of the discount
        self.span = float(self.horizon) if self.discount is None else 1.0 / (1.0 - self.discount)
        if exploration not in EXPLORATIONS:
            raise ValueError(f"exploration: must be 'epsilon', 'boltzmann' or 'optimistic', got {exploration!r}")
        self.exploration = exploration
        self.epsilon = check_number("epsilon", epsilon, low=0.0, high=1.0)
        self.temperature = check_number("temperature", temperature, low=0.0, low_open=True)
        self.decay = check_number("decay", decay, low=0.0, low_open=True)
        self.bonus = check_number("bonus", bonus, low=0.0)
        self.payoff_range = check_range("payoff_range", payoff_range)
        shape = (self.horizon + 1, self.n_states, self.n_actions, self.n_agents)  # agent last, like every learner
        steps_left = self.horizon - np.arange(self.horizon + 1) if self.discount is None else np.array([self.span, 0])
        start = steps_left if exploration == "optimistic" else np.zeros(self.horizon + 1)
        self.q = np.broadcast_to(start[:, None, None, None], shape).astype(float).copy()
        self.visits = resident_zeros((self.horizon, self.n_states, self.n_actions, self.n_agents), np.int32)

    def schedule_factor(self):
        """How much exploration is left in the current episode (1 at the start, decaying)."""
        return 1.0 / (1.0 + max(self.episode - 1, 0) / self.decay)

    def values_ahead(self, h):
        """The range of values still ahead at step `h`, in payoff units: the payoff span times the steps
        left (in a continuing market, the effective horizon)."""
        low, high = self.payoff_range
        return (high - low) * (self.span if self.discount is not None else self.horizon - h)

    def exploration_now(self, h):
        """The exploration rule at step `h` as the kernels take it: its index in `EXPLORATIONS`, then this
        episode's epsilon and temperature."""
        factor = self.schedule_factor()
        temperature = self.temperature * max(self.values_ahead(h), 1e-12) * factor
        return EXPLORATIONS.index(self.exploration), self.epsilon * factor, temperature

    def act(self, h, states):
        return sample_actions(self.q, h, states, self.rng.random(self.n_agents), *self.exploration_now(h))

    def behaviour_probs(self, q):
        """Action probabilities for action values `q (N, H, S, A)`."""
        probs = np.empty(q.shape)
        for h in range(q.shape[1]):
            rows = np.ascontiguousarray(q[:, h].reshape(-1, self.n_actions), dtype=float)
            probs[:, h] = behaviour_table(rows, *self.exploration_now(h)).reshape(q[:, h].shape)
        return probs

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        confidence = self.span**3 * np.log(self.episode + 1.0)
        ahead, weight = (h + 1, 1.0) if self.discount is None else (h, self.discount)
        q_step(self.q, self.visits, h, states, actions, private_rewards, transfers, next_states,
               self.exploration == "optimistic", self.bonus, confidence, ahead, weight, self.span)

    def greedy_policy(self):
        return np.moveaxis(self.q[: self.horizon].argmax(axis=2), -1, 0)

    def behaviour_policy(self):
        return self.behaviour_probs(np.moveaxis(self.q[: self.horizon], -1, 0))


EXPLORATIONS = ("epsilon", "boltzmann", "optimistic")  # the kernels' `mode`: an index into this


@inlined
def exploration_probs(values, mode, epsilon, temperature, out):
    """Action probabilities `out (A,)` for action values `values (A,)`: epsilon-greedy (mode 0),
    softmax at `temperature` (1) or greedy (2); the greedy action is the lowest best one."""
    n_a = values.shape[0]
    best, top = 0, values[0]
    for a in range(1, n_a):  # selects, not branches: learned values compare unpredictably
        better = values[a] > top
        best = a if better else best
        top = values[a] if better else top
    if mode == 1:
        total = 0.0
        for a in range(n_a):
            out[a] = np.exp((values[a] - top) / temperature)
            total += out[a]
        for a in range(n_a):
            out[a] /= total
        return
    explore = epsilon if mode == 0 else 0.0
    for a in range(n_a):
        out[a] = (1.0 - explore) * (a == best) + explore / n_a


@compiled
def behaviour_table(values, mode, epsilon, temperature):
    """`exploration_probs` of every row of `values (M, A)`."""
    probs = np.empty_like(values)
    for row in range(values.shape[0]):
        exploration_probs(values[row], mode, epsilon, temperature, probs[row])
    return probs


@compiled
def sample_actions(q, h, states, draws, mode, epsilon, temperature):
    """Each agent's action at step `h` in its state, drawn from `exploration_probs` of its values
    `q (H + 1, S, A, N)` by inverse CDF on its uniform `draws[i]`."""
    values, probs = np.empty(q.shape[2]), np.empty(q.shape[2])
    actions = np.empty(states.shape[0], np.int64)
    for i in range(states.shape[0]):
        for a in range(values.shape[0]):
            values[a] = q[h, states[i], a, i]
        exploration_probs(values, mode, epsilon, temperature, probs)
        passed, action = probs[0], 0
        for a in range(1, probs.shape[0]):
            action += draws[i] >= passed
            passed += probs[a]
        actions[i] = action
    return actions


@compiled
def q_step(q, visits, h, states, actions, private_rewards, transfers, next_states, optimistic, bonus, confidence,
           ahead, weight, horizon):
    """One Q-learning update per agent towards `r + tau + weight * max_b q[ahead, s', b]` (episodic:
    `ahead = h + 1`, `weight = 1`; continuing: `ahead = h`, `weight = discount`), with step size
    `(H + 1) / (H + n)` for the `horizon` `H` and, if `optimistic`, the bonus `bonus * sqrt(confidence / n)`."""
    for i in range(states.shape[0]):
        s, a = states[i], actions[i]
        n = visits[h, s, a, i] + 1
        visits[h, s, a, i] = n
        best = q[ahead, next_states[i], 0, i]
        for b in range(1, q.shape[2]):
            best = max(best, q[ahead, next_states[i], b, i])
        target = private_rewards[i] + transfers[i] + weight * best
        if optimistic:
            target = target + bonus * np.sqrt(confidence / n)
        old = q[h, s, a, i]
        q[h, s, a, i] = old + (horizon + 1.0) / (horizon + n) * (target - old)


def q_learner_parameters(factory):
    """Give a Q-learner factory the signature it forwards to: `QLearner`'s, less the exploration rule
    that the factory fixes (so that `make_learner` checks its parameters)."""
    signature = inspect.signature(QLearner)
    factory.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name != "exploration"])
    return factory


@q_learner_parameters
def epsilon_greedy(n_agents, n_states, n_actions, horizon, rng, **params):
    """Q-learning with decaying epsilon-greedy exploration."""
    return _q_learner("epsilon_greedy", "epsilon", n_agents, n_states, n_actions, horizon, rng, params)


@q_learner_parameters
def optimistic_q(n_agents, n_states, n_actions, horizon, rng, **params):
    """Optimistic Q-learning with Hoeffding bonuses (Jin et al. 2018)."""
    return _q_learner("optimistic_q", "optimistic", n_agents, n_states, n_actions, horizon, rng, params)


@q_learner_parameters
def boltzmann(n_agents, n_states, n_actions, horizon, rng, **params):
    """Q-learning with softmax (Boltzmann) exploration."""
    return _q_learner("boltzmann", "boltzmann", n_agents, n_states, n_actions, horizon, rng, params)


def _q_learner(name, exploration, n_agents, n_states, n_actions, horizon, rng, params):
    learner = QLearner(n_agents, n_states, n_actions, horizon, rng, exploration=exploration, **params)
    learner.name = name
    return learner

