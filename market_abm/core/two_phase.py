"""The two-phase incentive mechanism: estimate the implementable transfers, then steer with them.

The principal does not know the agents' private reward. It learns, from the agents' choices under its
offers, what each cell of its transfer scheme must pay for the agents to take the cell's action, and
plans on the welfare it can estimate: its own external reward (known, or estimated from the record
with optimism while data are scarce) less those compensating transfers. A single-step scheme (`fine`)
prices its cells one by one (`CellSearch`, below); a pooled scheme learns each decision point's
threshold and chooses its amounts from them (`core.pooled_search`).

Phase 1 (estimating) lasts, for each group of agents, until the cells its plan posts carry a share
`settled_share` of the visits to its targets and are settled; Phase 2 (steering) follows, while the
mechanism keeps measuring acceptance and re-testing, so that it can always correct an estimate.

Transfers are in units of per-step payoff, paid to the agent (negative = tax).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

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

    Parameters (payoff units unless stated): `tau_max` the first ceiling of every bracket, and the least
    amount a slow group's steered cells are posted at; `tol` the bracket width at which a cell settles;
    `margin` added to the settled amount; `eps` the premium posted over an estimate; `min_visits` visits
    to a decision point per decision; `accept_share` the share of them taking the offered action that
    counts as acceptance; `warmup` episodes of laissez-faire before the first plan; `react_episodes`
    episodes ignored after an offer changes; `retest_after` accepted decisions before a steered cell's
    first downward re-test; `forget_after` episodes an answer about a cell that is not posted is trusted
    at first; `calibration_cells` the first tests of a group posted at the bound to learn how fast its
    agents answer; `slow_react` episodes a group that answers slowly is given to react to every new
    offer; `settled_share` the share of target visits on settled cells that ends Phase 1; `optimism` the
    principal's bonus on its estimated external reward, as a share of the public range of external
    rewards, while data are scarce (a pair never seen counts at the top of that range); `known_model`
    plans on the dynamics and external reward the view gives instead of estimates.

    Attributes: `search`, the scheme's search (its brackets and offers); `phase1_episodes`, the episode
    the last group entered Phase 2; `group_phase1 (G,)`, the episode each group did (-1: not yet).
    """

    name = "two_phase"

    def __init__(self, view, scheme, tau_max=2.0, tol=0.02, margin=0.02, eps=0.01, min_visits=4,
                 accept_share=0.6, warmup=50, react_episodes=0, retest_after=4, forget_after=200,
                 calibration_cells=4, slow_react=60, settled_share=0.95, optimism=0.2, known_model=False):
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
        self.calibration_cells = check_int("calibration_cells", calibration_cells, low=1)
        self.slow_react = check_int("slow_react", slow_react, low=0)
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
        self.offers = amounts[..., self.scheme.cell_of]  # each decision point's amounts (G, H, S, A)
        # decision points where only the balancing surplus is posted, on every action, still show the agents' own choice
        steered = np.where(balancing, 0.0, amounts)[..., self.scheme.cell_of]
        self.left_alone = ~(steered != 0).any(axis=-1, keepdims=True)
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

    def cell_visits(self):
        """Visits so far to each cell's decision points `(G, n_cells)`."""
        return self.cell_sum(np.broadcast_to(self.decision_visits[..., None], self.default_counts.shape))

    @cached_property
    def decision_cells(self):
        """The flat `(group, cell)` each `(group, h, s, a)` visit counts towards, in `visits.ravel()` order."""
        decision = np.arange(self.n_groups)[:, None, None] * self.scheme.n_groups + self.scheme.group_of
        return (decision[..., None] * self.n_actions + np.arange(self.n_actions)).ravel()

    # --- learning -----------------------------------------------------------------------
    def end_episode(self):
        """Count the episode, tally it, answer the tests its visits decide, and plan the next one."""
        self.episode += 1
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
        weight = self.cell_visits() * self.search.targets
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
            "groups_answering_slowly": int(search.slow().sum()),
        }

# --- the search of a single-step scheme ---------------------------------------------------------
#
# Pricing the cells of a single-step transfer scheme (`fine`, or any scheme whose groups lie within
# one step): a bracket `[lo, hi]` on each cell's compensating transfer, learned from the agents'
# choices under the offers posted on it.
#
# - *Search what the plan needs.* Only the cells of the plan's targets are priced, all steps at once,
#   each as soon as its own decision points have been visited enough: a rare cell never holds up the
#   others.
# - *Generous first, never above worth.* A cell's first offer is what it is worth to the principal
#   (what the plan gains by the action over the agents' own choice), capped by the ceiling; later
#   offers bisect the bracket, never above worth. An unsettled cell counts in the plan at the least a
#   test of it posts, so a cell worth less than a test would pay is not tested.
# - *Never trust a ceiling.* An offer refused at the top of the bracket doubles it, up to the bound
#   that no compensating transfer of a rational agent can exceed. Cells refused there are at the ceiling.
# - *No ratchet.* A cell settles once its bracket is narrower than `tol`; its estimate is the middle of
#   the bracket, and it is posted at the top of the bracket plus a margin and the premium `eps`. Its acceptance is still measured: a
#   refusal reopens the bracket above (as soon as the refusals counted decide the window, however long
#   a record of acceptances made it), a run of acceptances tests below (twice as far after a re-test
#   that lowered the estimate; one step, after a run twice as long, after one that confirmed it), and
#   answers given while a cell is not posted are forgotten once older than their life (which doubles),
#   so a cell refused while the agents were still learning is priced again.
# - *Balanced surplus.* Where the plan leaves the agents alone, every action is paid the same surplus a
#   steered agent keeps, so every path gains alike, the agents' own choice there is not changed, and the
#   offers do not change what the agents would give up elsewhere.
# - *Tests keep the surplus.* While a decision point's target is tested, every action there is paid
#   the same surplus on top of the test's offer, so the agents keep at least that surplus there whether
#   they take the offer or not, as at a steered or a left-alone point. A test then does not change what
#   the agents give up at earlier steps, and their cells are priced in the context they are steered in.
#   This is done for a group of one agent once it is known to answer at once (below). In a group of
#   many, the agents differ: a steered point leaves each that takes its offer a different surplus and
#   the others none, so there is no common surplus to keep, and a test posts its offer alone; a slow
#   group is taxed instead.
# - *Learn how fast the agents answer.* A group's first `calibration_cells` tests, on its most
#   visited targets, post the bound, which any agent that best-responds to the posted offers takes
#   at once and on every visit. A group that does not take half of them or more so answers slowly:
#   its agents notice an offer only by trying the action (model-free learners), and need more than
#   their cost to move (a learning premium). Against such a group every offer is held `slow_react`
#   episodes before its answer counts; an offer is taken when the offered action is chosen more
#   often than any other (the agents' exploration caps any share); a test starts at what the cell is
#   worth, doubles at every refusal, and settles at its first acceptance, with no lower re-test (a
#   lower offer would be read late). Its answers are read within that factor of two: the plan counts
#   an open cell at half the highest offer refused, and a settled one at the highest offer refused,
#   never below half the offer taken (each plus half the settling width, within the bracket). A
#   refusal forgotten as stale is where the cell's next test starts. A target's amount is posted as
#   a tax on the other actions at its decision points, which the agents feel on the action they
#   already take, and a steered cell is posted at least `tau_max`: agents that keep exploring comply
#   more the further an offer exceeds their cost, and the plan counts on all of them.
#
# Amounts are in units of per-step payoff.

IDLE, TESTING, STEERED = range(3)
UNKNOWN, FAST, SLOW = range(3)  # how fast a group's agents answer offers


@compiled
def plan_targets(transition, reward, unseen, default, cost, cell_of, n_cells):
    """The principal's plan by backward induction: at each decision point `(g, h, s)`, the agents' own
    choice (`default (G, H, S, A)`, free) or the best action offered at its cell's `cost (G, H, S, A)`,
    on `transition (G, S, A, S)`, external reward `(G, S, A)` and the weight `unseen (G, S, A)` on a pair
    leading to the best next state. Returns the target cells `(G, n_cells)` and what each is worth (its
    action's value over the agents' own choice; of the decision points sharing a cell, the last one planned
    sets it)."""
    n_groups, n_states, n_actions = reward.shape
    targets, worth = np.zeros((n_groups, n_cells), np.bool_), np.zeros((n_groups, n_cells))
    value, ahead_value, q = np.zeros((n_groups, n_states)), np.empty((n_groups, n_states)), np.empty(n_actions)
    for h in range(default.shape[1] - 1, -1, -1):
        for g in range(n_groups):
            best_next = value[g].max()
            for s in range(n_states):
                alone, best, best_action = 0.0, -np.inf, 0
                for a in range(n_actions):
                    expected = 0.0
                    for t in range(n_states):
                        expected += transition[g, s, a, t] * value[g, t]
                    q[a] = reward[g, s, a] + (1.0 - unseen[g, s, a]) * expected + unseen[g, s, a] * best_next
                    alone += default[g, h, s, a] * q[a]
                    offered = q[a] - min(cost[g, h, s, a], 1e6)
                    if offered > best:
                        best, best_action = offered, a
                if best > alone:
                    ahead_value[g, s] = best
                    cell = cell_of[h, s, best_action]
                    targets[g, cell] = True
                    worth[g, cell] = q[best_action] - alone
                else:
                    ahead_value[g, s] = alone
        value[:] = ahead_value
    return targets, worth


class CellSearch:
    """Brackets, offers and decisions for every `(group, cell)` of a single-step scheme.

    Attributes (each `(G, n_cells)`): `lo`, `hi` the bracket; `hi_tested` hi was accepted (an upper
    bound, not a ceiling); `tau_hat` the estimate, the middle of the bracket it settled in (NaN: not
    settled); `status` IDLE, TESTING or
    STEERED; `targets` the plan's target cells; `worth` what each target is worth to the plan;
    `at_ceiling` refused at the bound; `priced` settled at least once; `tests` decisions taken;
    `refused_top` the highest offer refused; `refused_before` the highest offer refused before its answers
    went stale; `calibrating` a test posted at the bound to learn the pace.
    `pace (G,)` UNKNOWN, FAST or SLOW; `calibrations (G, 2)` the calibration tests taken on every visit, and the others.
    """

    def __init__(self, mechanism, bound):
        m = self.m = mechanism
        g, c = m.n_groups, m.scheme.n_cells
        self.bound = bound
        self.status = np.full((g, c), IDLE)
        self.lo, self.hi = np.zeros((g, c)), np.minimum(m.tau_max, bound)
        self.hi_tested = np.zeros((g, c), dtype=bool)
        self.probe, self.tau_hat = np.zeros((g, c)), np.full((g, c), np.nan)
        self.at_ceiling, self.priced = np.zeros((g, c), dtype=bool), np.zeros((g, c), dtype=bool)
        self.seen, self.taken, self.waited = np.zeros((g, c)), np.zeros((g, c)), np.zeros((g, c), dtype=int)
        self.streak, self.retest_every = np.zeros((g, c), dtype=int), np.full((g, c), m.retest_after)
        self.down = np.full((g, c), 2 * m.tol)  # how far below the estimate the next re-test looks
        self.retesting = np.zeros((g, c), dtype=bool)
        self.retest_from = np.zeros((g, c))  # the estimate a running re-test started from
        self.refused_in = np.full((g, c), -1)  # the episode of the refusal the lower end stands on
        self.settled_in = np.full((g, c), -1)  # the episode the estimate was set or last confirmed
        self.life = np.full((g, c), float(m.forget_after))  # episodes an unposted answer is trusted
        self.needs_probe = np.ones((g, c), dtype=bool)  # a new offer is due (first test, or a decision)
        self.tests = np.zeros((g, c))
        self.targets = np.zeros((g, c), dtype=bool)
        self.worth = np.zeros((g, c))
        self.searched = np.zeros((g, c), dtype=bool)
        self.cell_action = m.scheme.cell_action(np.arange(c))
        self.chosen = np.zeros((g, c, m.n_actions))  # the window's visits to each action at the cell's points
        self.refused_top = np.zeros((g, c))
        self.refused_before = np.zeros((g, c))
        self.calibrating = np.zeros((g, c), dtype=bool)
        self.calibrations = np.zeros((g, 2), dtype=int)
        self.pace = np.full(g, UNKNOWN)
        self.pace_known = self.any_slow = False  # every group's pace is known; some group answers slowly

    # --- posting ------------------------------------------------------------------------
    def amounts(self, balance):
        """Amounts `(G, n_cells)` to post, and the cells where only the balancing surplus is posted."""
        testing = self.testing()
        amounts = np.where(testing, self.probe, 0.0)
        steered = self.tau_hat + self.surplus
        if self.any_slow:  # slow agents are held well above their cost
            steered = np.where(self.slow()[:, None], np.maximum(steered, self.m.tau_max), steered)
        amounts = np.where(self.steered(), steered, amounts)
        if testing.any():
            amounts += self.surplus * self.tested_points(testing)
        balancing = self.balancing_cells() if balance else np.zeros_like(self.targets)
        amounts = np.where(balancing, self.surplus, amounts)
        return (self.as_taxes(amounts, balancing) if self.any_slow else amounts), balancing

    def as_taxes(self, amounts, balancing):
        """The amounts `(G, n_cells)` with each slow group's offers on a target moved to a tax of the same
        amount on every other action at the target's decision points."""
        m = self.m
        per_point = amounts.reshape(m.n_groups, -1, m.n_actions)
        offered = (self.targets & (amounts > 0) & ~balancing).reshape(per_point.shape)
        amount = np.where(offered, per_point, 0.0).sum(axis=-1, keepdims=True)
        taxed = self.slow()[:, None, None] & offered.any(axis=-1, keepdims=True)
        return np.where(taxed, np.where(offered, 0.0, -amount), per_point).reshape(amounts.shape)

    def slow(self):
        """Groups whose agents answer offers slowly `(G,)`."""
        return self.pace == SLOW

    @property
    def surplus(self):
        """What a steered agent is paid per step over the estimate of its compensating transfer: half
        the settling width (the estimate is the middle of the bracket), the margin and the premium."""
        m = self.m
        return m.margin + m.eps + 0.5 * m.tol

    def point_cells(self, cells):
        """Every cell of the groups of decision points where any of `cells (G, n_cells)` is set, `(G, n_cells)`."""
        m = self.m
        return np.repeat(cells.reshape(m.n_groups, -1, m.n_actions).any(axis=-1), m.n_actions, axis=-1)

    def tested_points(self, testing):
        """Every cell of the groups of decision points whose target is being tested (`testing (G, n_cells)`),
        in the groups of one agent known to answer at once, `(G, n_cells)`."""
        keeping = (self.pace == FAST) & (self.m.group_sizes == 1)
        return self.point_cells(testing) & keeping[:, None]

    def balancing_cells(self):
        """Every cell of the groups of decision points the plan leaves alone, `(G, n_cells)`."""
        return ~self.point_cells(self.targets)

    # --- learning -----------------------------------------------------------------------
    def counting(self):
        """Cells whose current offer is being measured: posted, and past the reaction delay."""
        return self.targets & (self.status != IDLE) & (self.waited >= self.m.react[:, None])

    def observe(self, visits):
        """Count the episode's visits `(G, H, S, A)` towards the cells being measured."""
        m = self.m
        self.waited += 1
        counting = self.counting()
        if counting.any():
            taken = m.cell_sum(visits)
            self.taken += counting * taken
            self.seen += counting * m.cell_sum(np.broadcast_to(visits.sum(axis=-1, keepdims=True), visits.shape))
            if self.any_slow:  # every action's visits at each cell's points, for the plurality rule
                by_point = taken.reshape(m.n_groups, -1, m.n_actions)
                self.chosen += counting[..., None] * np.repeat(by_point, m.n_actions, axis=1)

    def decide(self, in_phase1):
        """Update every cell whose current offer has enough counted visits; `in_phase1 (G,)` marks the
        groups still estimating (their tested cells count as searched)."""
        m = self.m
        # a steered cell that has held up is refused only on more evidence: one noisy run does not reopen it;
        # but once a window not yet full counts more refusals than a full one may hold, it is refused
        testing, steered = self.status == TESTING, self.status == STEERED
        needed = m.min_visits * np.where(steered, 1 + self.streak, 1)
        refusals = self.seen - self.taken
        refused_already = steered & (self.seen < needed) & (refusals > (1.0 - m.accept_share) * needed)
        ready = self.counting() & ((self.seen >= needed) | refused_already)
        if not ready.any():
            return
        slow = self.slow()[:, None]
        accepted = ready & (self.taken >= m.accept_share * np.maximum(self.seen, 1))
        if slow.any():  # a slow group's offer is taken when chosen more often than any other action
            rival = np.where(np.arange(m.n_actions) == self.cell_action[:, None], -1.0, self.chosen).max(axis=-1)
            accepted = np.where(slow, ready & (self.taken > rival), accepted)
        refused = ready & ~accepted
        calibrated = ready & self.calibrating
        if calibrated.any():  # a calibration at the bound tells the pace: its refusal does not bound the cost
            taken_every_time = calibrated & (self.taken >= self.seen)  # as any best responder takes the bound
            self.calibrations[:, 0] += taken_every_time.sum(axis=1)
            self.calibrations[:, 1] += (calibrated & ~taken_every_time).sum(axis=1)
            refused &= ~calibrated
            self.calibrating &= ~ready
        lo_before = self.lo.copy()
        # a test: accepted lowers the top of the bracket, refused raises the bottom, and refused at an
        # untried top (a ceiling) doubles the bracket above it, up to the bound
        test_accept, test_refuse = testing & accepted, testing & refused
        self.hi = np.where(test_accept, self.probe, self.hi)
        self.hi_tested |= test_accept
        self.lo = np.where(test_accept & slow, np.maximum(self.lo, self.probe - m.tol), self.lo)  # settles at once
        self.refused_top = np.where(test_refuse, np.maximum(self.refused_top, self.probe), self.refused_top)
        self.lo = np.where(test_refuse, np.maximum(self.lo, self.probe), self.lo)
        self.refused_in = np.where(test_refuse, m.episode, self.refused_in)
        at_top = test_refuse & ~self.hi_tested & (self.probe >= self.hi - 1e-12)
        self.at_ceiling |= at_top & (self.hi >= self.bound - 1e-12)
        grown = np.where(lo_before > 0, self.hi + 2 * (self.hi - lo_before), 2 * self.hi)
        self.hi = np.where(at_top, np.minimum(grown, self.bound), self.hi)
        settle = testing & self.hi_tested & (self.hi - self.lo <= m.tol + 1e-9)
        self.tau_hat = np.where(settle, 0.5 * (self.lo + self.hi), self.tau_hat)
        self.status[settle] = STEERED
        self.priced |= settle
        # a re-test that lowered the estimate looks twice as far down, and soon; one that confirmed it
        # looks one step down again, after twice as long
        lowered = settle & self.retesting & (self.tau_hat < self.retest_from - 1e-12)
        confirmed = settle & self.retesting & ~lowered
        self.down = np.where(lowered, 2 * self.down, np.where(confirmed, 2 * m.tol, self.down))
        self.retest_every = np.where(confirmed, 2 * self.retest_every, self.retest_every)
        self.retesting &= ~settle
        # a steered cell: refused reopens the bracket above the posted offer; accepted confirms it, and
        # after a run of acceptances (ever longer) the estimate is tested one step lower
        steer_refuse, steer_accept = steered & refused, steered & accepted
        self.streak = np.where(steer_accept, self.streak + 1, np.where(steer_refuse, 0, self.streak))
        self.settled_in = np.where(settle | steer_accept, m.episode, self.settled_in)
        self.lo = np.where(steer_refuse, self.tau_hat + self.surplus, self.lo)
        self.refused_in = np.where(steer_refuse, m.episode, self.refused_in)
        self.hi = np.where(steer_refuse, np.minimum(self.lo + 2 * m.tol, self.bound), self.hi)
        self.hi_tested &= ~steer_refuse
        retest = steer_accept & (self.streak >= self.retest_every) & ~slow
        self.lo = np.where(retest, np.maximum(self.hi - self.down, 0.0), self.lo)
        self.retest_from = np.where(retest, self.tau_hat, self.retest_from)
        self.retesting = (self.retesting | retest) & ~steer_refuse
        reopen = steer_refuse | retest
        self.tau_hat[steer_refuse] = np.nan
        self.status[reopen] = TESTING
        self.streak[reopen] = 0
        self.searched |= in_phase1[:, None] & (testing | reopen)
        self.learn_pace()
        self.needs_probe |= ready
        self.tests += ready
        self.seen[ready] = self.taken[ready] = 0
        if self.any_slow:
            self.chosen[ready] = 0
        self.waited[ready] = 0

    def learn_pace(self):
        """Decide a group's pace once its calibration tests are answered: slow if half or more were
        not taken on every visit. A slow group is given `slow_react` episodes to react to each offer, and
        its refusals so far (read too early) are forgotten."""
        m = self.m
        if self.pace_known:
            return
        decided = (self.pace == UNKNOWN) & (self.calibrations.sum(axis=1) >= m.calibration_cells)
        if not decided.any():
            return
        slow = decided & (2 * self.calibrations[:, 1] >= m.calibration_cells)
        self.pace[decided] = np.where(slow[decided], SLOW, FAST)
        self.pace_known, self.any_slow = bool((self.pace != UNKNOWN).all()), bool((self.pace == SLOW).any())
        m.react[slow] = max(m.react_episodes, m.slow_react)
        self.lo[slow] = 0.0
        self.refused_in[slow] = -1
        self.needs_probe[slow] = True

    def forget(self):
        """Answers go stale: agents that were still learning, or exploring, may have refused an offer
        they would take now, or accepted one they would now refuse. A cell not posted now forgets a
        refusal, and an estimate, once older than its life (its bracket restarts from zero, keeping the
        top it was accepted at, and the plan may price it again); its next answers are trusted twice as
        long."""
        episode, idle = self.m.episode, self.status == IDLE
        stale_lower = (self.refused_in >= 0) & (episode - self.refused_in > self.life) & idle
        stale_estimate = np.isfinite(self.tau_hat) & (episode - self.settled_in > self.life) & idle
        stale = stale_lower | stale_estimate
        self.lo[stale], self.refused_in[stale] = 0.0, -1
        self.refused_before[stale] = self.refused_top[stale]
        self.refused_top[stale] = 0.0
        self.tau_hat[stale_estimate] = np.nan
        self.life[stale] *= 2
        self.needs_probe |= stale

    # --- planning -----------------------------------------------------------------------------
    def least_test(self):
        """The least amount a test of each cell posts: half the settling width above the bracket's lower
        end (within the bracket), so that every test can narrow it."""
        return np.minimum(self.lo + 0.5 * self.m.tol, self.hi)

    def costs(self):
        """The compensating transfer the plan counts for each cell: its point estimate (the middle of the
        settled bracket) or, while unsettled, the least amount a test of it posts (optimism that a test
        can afford: a cell worth less than that is not tested); unaffordable at the ceiling. A slow
        group's answers are read within the factor of two its tests climb by (see the notes above). The
        surplus posted above them is paid on every path alike, so it does not change which plan is best:
        the plan is the welfare optimum under the estimates."""
        settled = np.isfinite(self.tau_hat)
        cost = np.where(settled, self.tau_hat, self.least_test())
        if self.any_slow:  # slow answers are read within the factor of two their tests climb by
            half_width = 0.5 * self.m.tol
            read = np.where(settled, np.clip(self.refused_top + half_width, 0.5 * self.tau_hat, self.tau_hat),
                            np.minimum(0.5 * self.lo + half_width, self.hi))
            cost = np.where(self.slow()[:, None], read, cost)
        return np.where(self.at_ceiling, np.inf, np.maximum(cost, 0.0))

    def plan(self, transition, reward, unseen, default):
        """Backward induction on the principal's model (`transition (G, S, A, S)`, external reward
        `(G, S, A)`, and the weight `unseen` on a pair leading to the best next state) where each
        decision point may be left to the agents' own choice (`default` probabilities `(G, H, S, A)`,
        free) or offered one action at its cell's cost; then price the targets."""
        m = self.m
        cost = np.ascontiguousarray(self.costs()[..., m.scheme.cell_of])  # (G, H, S, A)
        model = (np.ascontiguousarray(x, dtype=float) for x in (transition, reward, unseen, default))
        targets, worth = plan_targets(*model, cost, m.scheme.cell_of, m.scheme.n_cells)
        self.set_targets(targets, worth)

    def set_targets(self, targets, worth):
        """Post the plan: unsettled targets are priced (first at their worth, capped by the ceiling; then
        by bisection, never above worth; against a slow group, doubling from the worth, or from a refusal
        forgotten as stale; a calibration test posts the bound); cells the plan leaves are paused."""
        self.worth = worth
        changed = targets != self.targets
        self.targets = targets
        self.status[~targets] = IDLE
        start = targets & (self.status == IDLE) & ~self.at_ceiling
        settled_before = start & np.isfinite(self.tau_hat)
        self.status[settled_before] = STEERED
        self.status[start & ~settled_before] = TESTING
        due = targets & (self.status == TESTING) & (self.needs_probe | changed)
        middle = np.where(self.hi_tested, 0.5 * (self.lo + self.hi), self.hi)
        capped = np.minimum(middle, worth)
        if self.any_slow:  # a slow group's test climbs from its worth, doubling at each refusal
            climb = np.maximum(worth, np.maximum(2 * self.refused_top, self.refused_before))
            capped = np.where(self.slow()[:, None], np.where(self.hi_tested, middle, np.minimum(climb, self.hi)),
                              capped)
        probe = np.maximum(capped, self.least_test())
        calibrate = self.calibration_due(due)
        if calibrate.any() or self.calibrating.any():
            self.calibrating = np.where(due, calibrate, self.calibrating)
            probe = np.where(calibrate, self.bound, probe)
        self.probe = np.where(due, probe, self.probe)
        self.needs_probe &= ~due
        fresh = due | changed
        self.seen[fresh] = self.taken[fresh] = 0
        if self.any_slow:
            self.chosen[fresh] = 0
        self.waited[fresh] = 0

    def calibration_due(self, due):
        """The due first tests `(G, n_cells)` that calibrate their group's pace: while it is unknown, the
        most visited cells up to `calibration_cells` per group, counting those answered or running."""
        m = self.m
        if self.pace_known:
            return np.zeros_like(due)
        first = due & (self.pace == UNKNOWN)[:, None] & ~self.hi_tested
        if not first.any():
            return first
        room = m.calibration_cells - self.calibrations.sum(axis=1) - self.calibrating.sum(axis=1)  # (G,)
        order = np.argsort(-np.where(first, m.cell_visits(), -1.0), axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), axis=1)
        return first & (rank < np.maximum(room, 0)[:, None])

    # --- what it tells ------------------------------------------------------------------------
    def estimates(self):
        """Each cell's estimate now: settled, else the middle of a bracket whose top was accepted (NaN where
        nothing was accepted yet; inf where refused at the bound)."""
        pending = np.where(self.hi_tested, 0.5 * (self.lo + self.hi), np.nan)
        out = np.where(np.isfinite(self.tau_hat), self.tau_hat, pending)
        return np.where(self.at_ceiling, np.inf, out)

    def settled_estimates(self):
        """Each cell's settled estimate (NaN: not settled now; inf: at the ceiling)."""
        return np.where(self.at_ceiling, np.inf, self.tau_hat)

    def ceiling_cells(self):
        """Cells refused at the bound `(G, n_cells)`."""
        return self.at_ceiling.copy()

    def steered(self):
        return self.targets & (self.status == STEERED)

    def testing(self):
        return self.targets & (self.status == TESTING)

    def settled(self):
        """Cells whose costs count as estimated: settled at least once."""
        return self.priced
