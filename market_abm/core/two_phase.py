"""The two-phase incentive mechanism: estimate the implementable transfers, then steer with them.

The principal does not know the agents' private reward. It learns, from the agents' choices under its
offers, what each cell of its transfer scheme must pay for the agents to take the cell's action, and
plans on the welfare it can estimate: its own external reward (known, or estimated from the record
with optimism while data are scarce) less those compensating transfers. A single-step scheme (`fine`)
prices its cells one by one (`core.cell_search`); a pooled scheme learns each decision point's
threshold and chooses its amounts from them (`core.pooled_search`).

Phase 1 (estimating) lasts, for each group of agents, until the cells its plan posts carry a share
`settled_share` of the visits to its targets and are settled; Phase 2 (steering) follows, while the
mechanism keeps measuring acceptance and re-testing, so that it can always correct an estimate.

Transfers are in units of per-step payoff, paid to the agent (negative = tax).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from market_abm.core.cell_search import CellSearch
from market_abm.core.compiled import compiled, lane_sums
from market_abm.core.institution import CellEstimates, Mechanism
from market_abm.core.pooled_search import PooledSearch
from market_abm.core.validation import check_int, check_number


@compiled
def count_transitions(counts, external_sum, groups, states, actions, next_states, external_rewards):
    """Add every agent's step to its group's transition counts `(G, S, A, S)` and external reward `(G, S, A)`."""
    n, n_s, n_a = states.shape[0], counts.shape[1], counts.shape[2]
    pairs, cells = np.empty(n, np.int64), np.empty(n, np.int64)  # flat (group, state, action[, next state])
    for i in range(n):
        pairs[i] = (groups[i] * n_s + states[i]) * n_a + actions[i]
    for i in range(n):
        cells[i] = pairs[i] * n_s + next_states[i]
    counts_flat, external_flat = counts.reshape(-1), external_sum.reshape(-1)
    counts_flat += lane_sums(cells, None, counts.size)
    external_flat += lane_sums(pairs, external_rewards, external_sum.size)


class TwoPhaseMechanism(Mechanism):
    """Estimates each cell's compensating transfer from the agents' choices under its offers, and
    steers with the estimates (see the module docstring and the two searches).

    Parameters (payoff units unless stated): `tau_max` the first ceiling of every bracket; `tol` the
    bracket width at which a cell settles; `margin` added to the settled amount; `eps` the premium
    posted over an estimate; `min_visits` visits to a decision point per decision; `accept_share` the
    share of them taking the offered action that counts as acceptance; `warmup` episodes of
    laissez-faire before the first plan; `react_episodes` episodes ignored after an offer changes;
    `retest_after` accepted decisions before a steered cell's first downward re-test; `forget_after`
    episodes an answer about a cell that is not posted is trusted at first; `settled_share` the share of
    target visits on settled cells that ends Phase 1; `optimism` the principal's bonus on its
    estimated external reward, as a share of the public range of external rewards, while data are scarce
    (a pair never seen counts at the top of that range); `known_model`
    plans on the dynamics and external reward the view gives instead of estimates.

    Attributes: `search`, the scheme's search (its brackets and offers); `phase1_episodes`, the episode
    the last group entered Phase 2; `group_phase1 (G,)`, the episode each group did (-1: not yet).
    """

    name = "two_phase"

    def __init__(self, view, scheme, tau_max=2.0, tol=0.02, margin=0.02, eps=0.01, min_visits=4,
                 accept_share=0.6, warmup=50, react_episodes=0, retest_after=4, forget_after=200,
                 settled_share=0.95, optimism=0.2, known_model=False):
        super().__init__(view)
        self.scheme = scheme
        self.tau_max = check_number("tau_max", tau_max, low=0.0, low_open=True)
        self.tol = check_number("tol", tol, low=0.0, low_open=True)
        self.margin = check_number("margin", margin, low=0.0)
        self.eps = check_number("eps", eps, low=0.0, low_open=True)
        self.min_visits = check_int("min_visits", min_visits, low=1)
        self.accept_share = check_number("accept_share", accept_share, low=0.5, high=1.0)
        self.warmup = check_int("warmup", warmup, low=0)
        self.react_episodes = check_int("react_episodes", react_episodes, low=0)
        self.retest_after = check_int("retest_after", retest_after, low=1)
        self.forget_after = check_int("forget_after", forget_after, low=1)
        self.settled_share = check_number("settled_share", settled_share, low=0.0, high=1.0)
        self.optimism = check_number("optimism", optimism, low=0.0)
        self.known_model = bool(known_model)
        if not scheme.single_step and self.warmup < 1:
            raise ValueError("warmup: a pooled scheme posts on every decision point, so it must watch the agents' "
                             "own choices for at least one episode first")
        if self.known_model and not view.model_known:
            raise ValueError("known_model: this scenario does not give its principal the local dynamics and "
                             "external reward")
        g, c = self.n_groups, scheme.n_cells
        self.react = np.full(g, self.react_episodes)
        self.transition_counts = np.zeros((g, self.n_states, self.n_actions, self.n_states))
        self.external_sum = np.zeros((g, self.n_states, self.n_actions))
        self.default_counts = np.zeros((g, self.horizon, self.n_states, self.n_actions))
        self.decision_visits = np.zeros((g, self.horizon, self.n_states))  # visits per (h, s), pooled
        self.first_states = np.zeros((g, self.n_states))
        self.episode_counts = np.zeros((self.horizon, g, self.n_states, self.n_actions, self.n_states))
        self.episode_external = np.zeros((self.horizon, g, self.n_states, self.n_actions))
        self.episode_paid = np.zeros(g)
        self.group_sizes = np.bincount(view.groups, minlength=g)
        self.left_alone = np.ones((g, self.horizon, self.n_states, 1), dtype=bool)
        self.phase = 1
        self.phase1_episodes = None
        self.group_phase1 = np.full(g, -1)
        self.phase1_estimates = np.full((g, c), np.nan)
        search = CellSearch if scheme.single_step else PooledSearch
        self.search = search(self, np.broadcast_to(self.cell_bound(), (g, c)).astype(float))

    def cell_bound(self):
        """The highest offer each cell `(n_cells,)` is ever tested at: no rational agent gives up more than
        the payoff span times the steps left from the cell's earliest decision point, and an offer just
        above that (by `tol`) is strictly preferred by any of them."""
        scheme = self.scheme
        first = np.array([np.nonzero((scheme.group_of == k).any(axis=1))[0].min() for k in range(scheme.n_groups)])
        steps = self.horizon - first[scheme.cell_group(np.arange(scheme.n_cells))]
        return steps * self.view.payoff_span + self.tol

    # --- posting ------------------------------------------------------------------------
    def post_offers(self):
        amounts, balancing = self.search.amounts(balance=self.episode >= self.warmup)
        self.offers = self.scheme.expand(amounts)
        # decision points where only the balancing surplus is posted, on every action, still show the agents' own choice
        self.left_alone = ~(self.scheme.expand(np.where(balancing, 0.0, amounts)) != 0).any(axis=-1, keepdims=True)
        return self.offers

    # --- observing ----------------------------------------------------------------------
    def record(self, step):
        """Count one step of every agent: its transitions and external reward, by step, and what was
        paid, by group; `tally` pools the episode when it ends."""
        count_transitions(self.episode_counts[step.h], self.episode_external[step.h], step.groups, step.states,
                          step.actions, step.next_states, step.external_rewards)
        self.episode_paid += np.bincount(step.groups, step.transfers, minlength=self.n_groups)

    def tally(self):
        """Pool the episode's counts into the principal's data (transitions, external reward, first
        states, the agents' choices where nothing was offered) and its payoff; returns the episode's
        visits `(G, H, S, A)`."""
        counts, external = self.episode_counts, self.episode_external
        self.transition_counts += counts.sum(axis=0)
        self.external_sum += external.sum(axis=0)
        visits = np.moveaxis(counts.sum(axis=-1), 0, 1)  # (G, H, S, A)
        self.first_states += visits[:, 0].sum(axis=-1)
        self.decision_visits += visits.sum(axis=-1)
        # the agents' own choices, recent ones weighing more: a decision point seen again without offers
        # forgets a little of what it showed before; one not seen so keeps it
        seen_alone = self.left_alone & (visits.sum(axis=-1, keepdims=True) > 0)
        self.default_counts = np.where(seen_alone, 0.99 * self.default_counts + visits, self.default_counts)
        self.episode_payoff = (external.sum(axis=(0, 2, 3)) - self.episode_paid) / self.group_sizes
        self.episode_counts[:] = self.episode_external[:] = self.episode_paid[:] = 0.0
        return visits

    def cell_sum(self, per_point):
        """Sum a `(G, H, S, A)` array over each cell's decision points, `(G, n_cells)`."""
        return np.bincount(self.decision_cells, per_point.ravel(), minlength=self.n_groups * self.scheme.n_cells
                           ).reshape(self.n_groups, -1)

    @cached_property
    def decision_cells(self):
        """The flat `(group, cell)` each `(group, h, s, a)` visit counts towards, in `visits.ravel()` order."""
        decision = np.arange(self.n_groups)[:, None, None] * self.scheme.n_groups + self.scheme.group_of
        return (decision[..., None] * self.n_actions + np.arange(self.n_actions)).ravel()

    # --- learning -----------------------------------------------------------------------
    def end_episode(self):
        super().end_episode()
        visits = self.tally()
        self.search.observe(visits)
        if self.episode < self.warmup:
            return
        self.search.decide(self.group_phase1 < 0)
        self.search.forget()
        self.search.plan(*self.principal_model(), self.default_policy())
        self.update_phase()

    def update_phase(self):
        """A group enters Phase 2 once the settled cells carry `settled_share` of the visits to its plan's
        targets; the mechanism is in Phase 2 once every group is."""
        if self.phase == 2:
            return
        weight = self.cell_sum(np.broadcast_to(self.decision_visits[..., None], self.default_counts.shape))
        weight = weight * self.search.targets
        done = (weight * self.search.settled()).sum(axis=1) >= self.settled_share * weight.sum(axis=1)
        entering = done & (self.group_phase1 < 0)
        self.group_phase1[entering] = self.episode
        self.phase1_estimates[entering] = self.current_estimates()[entering]
        if (self.group_phase1 >= 0).all():
            self.phase, self.phase1_episodes = 2, int(self.group_phase1.max())

    def current_estimates(self):
        """Each cell's estimated compensating transfer now `(G, n_cells)` (NaN: none; inf: at the ceiling)."""
        return self.search.estimates()

    # --- the principal's model -----------------------------------------------------------------
    def principal_model(self):
        """What the principal plans on: transitions `(G, S, A, S)`, external reward plus optimism
        `(G, S, A)`, and the weight `(G, S, A)` it puts, while data on a pair are scarce, on that pair
        leading to the best next state (1 for a pair never seen: optimism over unknown dynamics)."""
        if self.known_model:
            view = self.view
            shape = (self.n_groups,) + view.external_reward.shape
            return (np.broadcast_to(view.transition, (self.n_groups,) + view.transition.shape),
                    np.broadcast_to(view.external_reward, shape), np.zeros(shape))
        visits = self.transition_counts.sum(axis=-1)
        seen = np.maximum(visits, 1.0)
        transition = np.where(visits[..., None] > 0, self.transition_counts / seen[..., None], 1.0 / self.n_states)
        low, high = self.view.external_range
        mean = np.where(visits > 0, self.external_sum / seen, high)  # a pair never seen: the best it could be
        reward = np.minimum(mean + self.optimism * (high - low) / np.sqrt(visits + 1.0), high)
        return transition, reward, (visits == 0).astype(float)

    def default_policy(self):
        """Action probabilities `(G, H, S, A)` of the agents where nothing is offered (recent choices;
        uniform where never seen)."""
        counts = self.default_counts + 1e-9
        return counts / counts.sum(axis=-1, keepdims=True)

    def initial_distribution(self):
        """Empirical distribution of first states per group `(G, S)`."""
        return self.first_states / np.maximum(self.first_states.sum(axis=-1, keepdims=True), 1.0)

    # --- the contract's declarations -------------------------------------------------------------
    def targets(self):
        """The action steered towards at each `(group, h, s)`: the plan's target, -1 where none."""
        steered = self.search.targets[:, self.scheme.cell_of]  # (G, H, S, A)
        return np.where(steered.any(axis=-1), steered.argmax(axis=-1), -1)

    def estimates(self):
        search = self.search
        return CellEstimates(self.scheme, self.accept_share, search.searched.copy(), self.phase1_estimates.copy(),
                             search.settled_estimates(), search.steered(), search.ceiling_cells(),
                             self.phase1_episodes)

    def summary(self):
        search = self.search
        return {
            "phase1_episodes": self.phase1_episodes,
            "cells": int(self.scheme.n_cells),
            "cells_targeted": int(search.targets.sum()),
            "cells_testing": int(search.testing().sum()),
        }
