"""Tabular learners for a population: the contract's arrays are indexed by agent; the built-in
learners keep their own tables with the agent on the last axis and update them in compiled loops.

A learner decides at decision points `x = (h, s)`. The contract (checked by one conformance test
for every registered learner):

- `begin_episode(offers, groups)`: the posted contracts, `offers[groups[i]]` `(H, S, A)` for agent `i`.
- `act(h, states) -> actions (N,)`.
- `update(h, states, actions, private_rewards, transfers, next_states)`.
- `greedy_policy() -> (N, H, S)`, and `behaviour_policy() -> (N, H, S, A)` action probabilities.

Contract-aware learners read the posted transfers and plan on them; model-free learners only see
the payoff `r + tau` after acting. Rewards are in units of per-step payoff.

A continuing market (no episodes, a discount per step) builds its learner with `horizon=1` and
the keyword `discount`; a learner that takes no `discount` cannot learn one. The model-free
learners then bootstrap on `discount * max_b Q(s', b)` across steps, and episodes are the
institution's review periods. A learner with a convergence rule declares it with `converged()`,
and `stop(agents)` ends the agents' learning (see `core.calvano`).
"""

from __future__ import annotations

import inspect

import numpy as np

from market_abm.core.compiled import compiled, inlined
from market_abm.core.planning import UNTRIED, plan_block, unrolled, value_ceiling
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
    bound while data are scarce (see `core.planning`). It reads the offers before acting, so it
    reacts to a new offer at once.

    Parameters: `bonus`, the scale of the empirical-Bernstein exploration bonus
    `bonus * (sqrt(2 L (var_r + var_V) / n) + (H - h) (high - low) L / n)`, `L = log(1 + S A T)` (see
    `core.planning`; the default reaches the agent's own optimum within 3,000 episodes on random MDPs
    of up to 8 states, see `benchmarks/learner_soundness.py`; larger explores longer, 0 not at all);
    `payoff_range`, the bounds `(low, high)` of its per-step private payoff (the model passes the
    scenario's); `epoch_growth`, when it re-plans: at the start of an episode when the offers it faces
    have changed, or when one of its visit counts has grown by this share (and by one visit at least)
    since its last plan. The episodic default 0 re-plans after every episode (UCB-VI); 1 waits for a doubling,
    as UCRL2 does, and re-plans rarely (faster, but slower to follow neighbours whose behaviour
    changes). The dynamics are stationary, so counts pool over steps. Arrays keep the agent on the
    last axis, so planning runs over contiguous rows.

    In a continuing market (`discount` given by the model) it plans by discounted value iteration,
    each plan starting from its last values (see `core.planning`), and its epochs are UCRL2's (Jaksch,
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


class QLearner(Learner):
    """Model-free Q-learning on the payoff `r + tau`, with step size `(H + 1) / (H + n)`.

    `exploration="epsilon"`: epsilon-greedy with `epsilon_k = epsilon / (1 + k / decay)` in episode `k`.
    `exploration="boltzmann"`: softmax with temperature `temperature / (1 + k / decay)`.
    `exploration="optimistic"`: greedy on values initialised at `H - h` plus a Hoeffding bonus
    `bonus * sqrt(H^3 log(k + 1) / n)` (Jin et al. 2018).

    With a `discount` (a continuing market, `horizon=1`) the target is `r + tau + discount * max_b
    Q(s', b)` and `H` above is the effective horizon `1 / (1 - discount)`; episodes are review periods.
    """

    name = "q_learning"

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, exploration="epsilon",
                 epsilon=1.0, temperature=0.5, decay=200.0, bonus=0.05, discount=None):
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
        shape = (self.horizon + 1, self.n_states, self.n_actions, self.n_agents)  # agent last, like every learner
        steps_left = self.horizon - np.arange(self.horizon + 1) if self.discount is None else np.array([self.span, 0])
        start = steps_left if exploration == "optimistic" else np.zeros(self.horizon + 1)
        self.q = np.broadcast_to(start[:, None, None, None], shape).astype(float).copy()
        self.visits = resident_zeros((self.horizon, self.n_states, self.n_actions, self.n_agents), np.int32)

    def schedule_factor(self):
        """How much exploration is left in the current episode (1 at the start, decaying)."""
        return 1.0 / (1.0 + max(self.episode - 1, 0) / self.decay)

    def exploration_now(self):
        """The exploration rule as the kernels take it: its index in `EXPLORATIONS`, then this episode's
        epsilon and temperature."""
        factor = self.schedule_factor()
        return EXPLORATIONS.index(self.exploration), self.epsilon * factor, self.temperature * factor

    def act(self, h, states):
        return sample_actions(self.q, h, states, self.rng.random(self.n_agents), *self.exploration_now())

    def behaviour_probs(self, q):
        """Action probabilities for action values `q (..., A)`."""
        rows = np.ascontiguousarray(q.reshape(-1, self.n_actions), dtype=float)
        return behaviour_table(rows, *self.exploration_now()).reshape(q.shape)

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

