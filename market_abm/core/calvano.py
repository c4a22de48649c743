"""Calvano, Calzolari, Denicolo and Pastorello's (2020) Q-learning pricing algorithm, for a population.

Each agent keeps a Q-table over (state, action) of a continuing discounted task and, every period:
- explores with probability `exp(-beta t)` (`t` counts periods from 0), picking an action uniformly
  at random, and otherwise plays its greedy action (the lowest action with the highest value);
- updates the value of the pair it played towards `r + tau + delta * max_b Q(s', b)` with step
  size `alpha`, where `r + tau` is its private payoff plus the transfer it received.
Q starts at the discounted payoff of each action against uniformly random rivals (`prior_payoff /
(1 - delta)`; zero without a prior). The convergence rule: an agent has converged once its greedy
policy has been unchanged for `convergence_periods` consecutive periods; an agent told to `stop`
plays its greedy policy from then on and learns no more.

One draw per agent and period decides both whether it explores and which action: it explores when
the draw `u < eps` and then plays `floor(u / eps * A)`. Arrays keep the agent on the last axis.
"""

from __future__ import annotations

import math

import numpy as np

from market_abm.core.compiled import compiled, inlined
from market_abm.core.learners import Learner
from market_abm.core.validation import check_array, check_int, check_number


class CalvanoQ(Learner):
    """Q-learning pricing algorithms (Calvano et al. 2020), vectorised over agents.

    Parameters: `alpha` step size; `beta` exploration decay per period; `discount` (Calvano's
    delta) the market's discount, given by the model; `convergence_periods` of an unchanged greedy
    policy that count as converged; `prior_payoff (A, N)` each agent's expected payoff per period of
    each action against uniformly random rivals (a scenario's prior, given by the model).

    Attributes:
        q: action values `(1, S, A, N)` (one decision step: the task is continuing).
        greedy: each agent's greedy action in each state `(S, N)`.
        period: periods learned so far; `last_change (N,)`: the period of each agent's last greedy
            change (-1: none yet); `stopped (N,)`: agents that learn no more.
    """

    name = "calvano_q"
    episodic = False  # it learns continuing markets only

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, discount=None, alpha=0.15, beta=4e-6,
                 convergence_periods=100_000, prior_payoff=None):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        if discount is None:
            raise ValueError("learner: 'calvano_q' learns continuing markets only (this one has episodes)")
        self.discount = self.continuing_discount(discount)
        self.alpha = check_number("alpha", alpha, low=0.0, high=1.0, low_open=True)
        self.beta = check_number("beta", beta, low=0.0)
        self.convergence_periods = check_int("convergence_periods", convergence_periods, low=1)
        shape = (self.n_actions, self.n_agents)
        prior = np.zeros(shape) if prior_payoff is None else check_array("prior_payoff", prior_payoff, shape)
        start = prior / (1.0 - self.discount)
        self.q = np.ascontiguousarray(np.broadcast_to(start, (1, self.n_states) + shape), dtype=float)
        self.greedy = np.ascontiguousarray(np.broadcast_to(start.argmax(axis=0), (self.n_states, self.n_agents)),
                                           dtype=np.int16 if self.n_actions < 2**15 else np.int64)
        self.period = 0
        self.last_change = np.full(self.n_agents, -1, dtype=np.int64)
        self.stopped = np.zeros(self.n_agents, dtype=bool)

    def exploration(self):
        """This period's exploration probability `exp(-beta t)`."""
        return exploration_rate(self.beta, self.period)

    def act(self, h, states):
        return choose_prices(self.greedy, self.stopped, states, self.rng.random(self.n_agents), self.exploration(),
                             self.n_actions)

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        learn_period(self.q[0], self.greedy, self.last_change, self.stopped, states, actions, private_rewards,
                     transfers, next_states, self.alpha, self.discount, self.period)
        self.period += 1

    def converged(self):
        """Agents whose greedy policy has been unchanged for `convergence_periods` periods `(N,)`."""
        return self.period - 1 - self.last_change >= self.convergence_periods

    def stop(self, agents):
        """The `agents` (a boolean mask `(N,)`) play their greedy policy from now on and learn no more."""
        self.stopped |= agents

    def compiled_state(self):
        """Its tables and parameters in the order a compiled loop over periods takes them (`learn_step`,
        `choose_price`): values `(S, A, N)`, greedy actions, last changes, stopped agents, `alpha`,
        `discount`, `beta`, `convergence_periods` and the period learned next."""
        return (self.q[0], self.greedy, self.last_change, self.stopped, self.alpha, self.discount, self.beta,
                self.convergence_periods, self.period)

    def learned(self, periods):
        """Count `periods` that a compiled loop ran on `compiled_state()`."""
        self.period += periods

    def greedy_policy(self):
        return self.greedy.T[:, None, :].astype(np.int64)

    def behaviour_policy(self):
        """This period's action probabilities `(N, 1, S, A)`: greedy with probability `1 - eps`, uniform
        with probability `eps` (greedy only for stopped agents)."""
        eps = np.where(self.stopped, 0.0, self.exploration())[:, None, None, None]
        greedy = np.eye(self.n_actions)[self.greedy_policy()]
        return (1.0 - eps) * greedy + eps / self.n_actions


@inlined
def exploration_rate(beta, period):
    """`exp(-beta t)` at period `t`, computed the same way in every kernel."""
    return math.exp(-beta * period)


@inlined
def choose_price(greedy_action, stopped, draw, eps, n_actions):
    """An agent's action: uniformly random when it explores (`draw < eps`, never once stopped), else
    greedy (a select rather than a branch: exploring is a coin toss)."""
    explore = draw < eps and not stopped
    random_action = min(int(draw / eps * n_actions), n_actions - 1) if eps > 0.0 else 0
    return np.int64(random_action if explore else greedy_action)


@compiled
def choose_prices(greedy, stopped, states, draws, eps, n_actions):
    """Every agent's action `(N,)` from its greedy table `(S, N)`, its state and its draw."""
    actions = np.empty(states.shape[0], np.int64)
    for i in range(states.shape[0]):
        actions[i] = choose_price(greedy[states[i], i], stopped[i], draws[i], eps, n_actions)
    return actions


@inlined
def learn_step(q, greedy, i, state, action, payoff, next_state, alpha, discount):
    """Move agent `i`'s value of `(state, action)` towards `payoff + discount * max_b q[next_state, b]`
    and keep its greedy action in `state` up to date; returns whether that greedy action changed.

    Only one value moves, so the new greedy action is the old one or `action`, except when the old
    greedy action's value fell: then the state's values are scanned again."""
    best = greedy[state, i]
    target = payoff + discount * q[next_state, greedy[next_state, i], i]
    old = q[state, action, i]
    new = old + alpha * (target - old)
    q[state, action, i] = new
    if action == best:
        if new < old:
            top, arg = q[state, 0, i], 0
            for b in range(1, q.shape[1]):  # selects, not branches: values compare unpredictably
                value = q[state, b, i]
                better = value > top
                arg = b if better else arg
                top = value if better else top
            greedy[state, i] = arg
    elif new > q[state, best, i] or (new == q[state, best, i] and action < best):
        greedy[state, i] = action
    return greedy[state, i] != best


@compiled
def learn_period(q, greedy, last_change, stopped, states, actions, private_rewards, transfers, next_states,
                 alpha, discount, period):
    """One period's update of every agent that has not stopped, on `q (S, A, N)` and `greedy (S, N)`;
    an agent whose greedy action changed has `last_change[i] = period`."""
    for i in range(states.shape[0]):
        if stopped[i]:
            continue
        payoff = private_rewards[i] + transfers[i]
        if learn_step(q, greedy, i, states[i], actions[i], payoff, next_states[i], alpha, discount):
            last_change[i] = period
