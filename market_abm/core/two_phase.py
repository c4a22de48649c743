"""The two-phase incentive mechanism: estimate the implementable transfers, then steer.

It fulfils the institution contract of `core.institution` and is built from a `PrincipalView`.
Transfers are in units of per-step payoff, paid to the agent (negative = tax).
"""

from __future__ import annotations

import itertools
import math
from functools import cached_property

import numpy as np

from market_abm.core.compiled import compiled, lane_sums
from market_abm.core.institution import CellEstimates, Mechanism
from market_abm.core.mdp import backward_induction, policy_evaluation
from market_abm.core.validation import check_int, check_number

IDLE, SEARCHING, CONFIRMING, RESOLVED, UNCOVERED = range(5)
MAX_CANDIDATES = 50_000


def count(index, shape, weights=None):
    """Counts (or sums of `weights`) of flat `index` values, as an array of `shape`."""
    return np.bincount(index, weights, minlength=math.prod(shape)).reshape(shape)


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
    """Phase 1 estimates implementable transfers by a batched binary search per cell of the scheme;
    Phase 2 plans on the principal's payoff `u - tau_hat` and posts `tau_hat + eps` on its targets.

    Parameters (payoff units unless stated): `tau_max` search ceiling; `tol` bracket width at which a
    search stops; `margin` added to the accepted amount; `eps` premium over the estimate;
    `min_visits` counted visits per decision; `accept_share` share of visits taking the target that
    counts as acceptance; `warmup` episodes of laissez-faire before the zero test; `react_episodes`
    episodes ignored after each new offer; `max_wait` episodes without a decision before a cell is
    declared uncovered; `replan_every` episodes; `optimism` bonus scale while data are scarce;
    `known_model` plans on the environment's exact local model instead of estimates.

    A pooled scheme's offers interact (a subsidy in one state changes what the agent does in
    others), so its plan is verified by outcome: the `verify_top` best predicted target sets, and no
    offer at all, are each posted for `verify_episodes` episodes and the best realised principal
    payoff is kept.
    """

    name = "two_phase"

    def __init__(self, view, scheme, tau_max=2.0, tol=0.02, margin=0.02, eps=0.01, min_visits=4,
                 accept_share=0.6, warmup=50, react_episodes=0, max_wait=60, replan_every=10,
                 optimism=0.2, known_model=False, verify_top=4, verify_episodes=40):
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
        self.max_wait = check_int("max_wait", max_wait, low=1)
        self.replan_every = check_int("replan_every", replan_every, low=1)
        self.optimism = check_number("optimism", optimism, low=0.0)
        self.known_model = bool(known_model)
        self.verify_top = check_int("verify_top", verify_top, low=1)
        self.verify_episodes = check_int("verify_episodes", verify_episodes, low=1)
        if self.known_model and not view.model_known:
            raise ValueError("known_model: this scenario does not give its principal the local dynamics and "
                             "external reward")
        if not scheme.single_step and (self.n_actions + 1) ** scheme.n_groups > MAX_CANDIDATES:
            raise ValueError(f"scheme: {scheme.name!r} pools too many groups ({scheme.n_groups}) to plan over")
        g, c = self.n_groups, scheme.n_cells
        self.status = np.full((g, c), SEARCHING)
        self.lo, self.hi = np.zeros((g, c)), np.full((g, c), self.tau_max)
        self.probe, self.tau_hat = np.zeros((g, c)), np.full((g, c), np.nan)
        self.seen, self.taken, self.waited = np.zeros((g, c)), np.zeros((g, c)), np.zeros((g, c), dtype=int)
        self.rounds = [r for r in scheme.search_rounds()]
        self.round = -1  # -1: the zero test (laissez-faire) on every cell
        self.phase = 1
        self.phase1_episodes, self.phase1_estimates = None, None
        self.target_cells = np.zeros((g, c), dtype=bool)
        self.transition_counts = np.zeros((g, self.n_states, self.n_actions, self.n_states))
        self.external_sum = np.zeros((g, self.n_states, self.n_actions))
        self.action_counts = np.zeros((g, self.horizon, self.n_states, self.n_actions))
        self.first_states = np.zeros((g, self.n_states))
        self.episode_counts = np.zeros((self.horizon, g, self.n_states, self.n_actions, self.n_states))
        self.episode_external = np.zeros((self.horizon, g, self.n_states, self.n_actions))
        self.waited[:] = -self.warmup
        self.group_sizes = np.bincount(view.groups, minlength=g)
        self.episode_paid = np.zeros(g)
        self.trial, self.shortlist = None, None

    # --- posting ------------------------------------------------------------------------
    def post_offers(self):
        amounts = np.where(self.probing(), self.probe, 0.0)
        if self.phase == 2:
            steer = self.target_cells & (self.status == RESOLVED) & np.isfinite(self.tau_hat)
            amounts = np.where(steer, self.tau_hat + self.eps, amounts)
        self.offers = self.scheme.expand(amounts)
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
        states, laissez-faire choices), its payoff, and the offers' acceptance counts."""
        n_a = self.n_actions
        counts, external = self.episode_counts, self.episode_external
        self.transition_counts += counts.sum(axis=0)
        self.external_sum += external.sum(axis=0)
        visits = np.moveaxis(counts.sum(axis=-1), 0, 1)  # (G, H, S, A)
        self.first_states += visits[:, 0].sum(axis=-1)
        if self.round < 0 and self.episode >= self.warmup:
            self.action_counts += visits
        self.episode_payoff = (external.sum(axis=(0, 2, 3)) - self.episode_paid) / self.group_sizes
        self.episode_counts[:] = self.episode_external[:] = self.episode_paid[:] = 0.0
        counting = self.counting()
        if counting.any():
            taken = count(self.decision_cells, self.taken.shape, visits.ravel())
            self.taken += counting * taken
            self.seen += counting * np.repeat(taken.reshape(self.n_groups, -1, n_a).sum(axis=-1), n_a, axis=1)

    def probing(self):
        """Cells whose offer is currently under test."""
        return (self.status == SEARCHING) | (self.status == CONFIRMING)

    def counting(self):
        """Cells whose current offer is being measured: under test (past the reaction delay), or, in
        Phase 2, steered at their estimate (a refusal there reopens the search above it)."""
        steered = self.target_cells & (self.status == RESOLVED) & np.isfinite(self.tau_hat)
        return (self.probing() & (self.waited >= self.react_episodes)) | steered

    # --- learning -----------------------------------------------------------------------
    def end_episode(self):
        super().end_episode()
        self.tally()
        self.waited += self.probing()
        costs = self.cell_costs()
        self.decide()
        if self.phase == 1 and not self.probing().any():
            self.advance_round()
        elif self.phase == 2 and self.trial is not None:
            self.verify()
        elif self.phase == 2 and (np.any(costs != self.cell_costs()) or self.periodic_replan()):
            self.plan()

    def periodic_replan(self):
        """Fine plans are cheap and follow the data every `replan_every` episodes; a pooled plan, once
        verified, is kept until some cost changes."""
        return self.scheme.single_step and self.episode % self.replan_every == 0

    def decide(self):
        """Update every cell whose current offer has enough counted visits."""
        ready = self.counting() & (self.seen >= self.min_visits)
        if not ready.any():
            self.give_up()
            return
        accepted = self.taken >= self.accept_share * np.maximum(self.seen, 1)
        zero = ready & self.probing() & (self.probe == 0.0)
        confirm = ready & (self.status == CONFIRMING)
        search = ready & ~zero & (self.status == SEARCHING)
        refused = ready & ~accepted & (self.status == RESOLVED)
        # the zero test: accepted at no transfer resolves at 0, refused waits for its round
        self.resolve(zero & accepted, 0.0)
        self.status[zero & ~accepted] = IDLE
        # a bisection step
        self.hi = np.where(search & accepted, self.probe, self.hi)
        self.lo = np.where(search & ~accepted, self.probe, self.lo)
        # a confirmation: accepted is trusted (plus a margin), refused reopens the bracket above
        self.resolve(confirm & accepted, self.hi + self.margin)
        self.hi = np.where(refused, self.tau_hat + self.eps, self.hi)
        reopen = (confirm & ~accepted) | refused
        self.lo = np.where(reopen, self.hi, self.lo)
        self.hi = np.where(reopen, np.minimum(self.hi + 4 * self.tol, self.tau_max), self.hi)
        exhausted = reopen & (self.lo >= self.tau_max)
        self.resolve(exhausted, np.inf)
        narrow = (search | reopen) & ~exhausted
        done = narrow & (self.hi - self.lo <= self.tol)
        self.status[done] = CONFIRMING
        self.status[narrow & ~done] = SEARCHING
        self.probe = np.where(narrow, np.where(done, self.hi, self.next_probe()), self.probe)
        self.seen[ready] = self.taken[ready] = self.waited[ready] = 0
        self.give_up()

    def give_up(self):
        """Declare uncovered the cells that waited too long for a decision."""
        lost = self.counting() & (self.waited >= self.max_wait + self.react_episodes)
        self.status[lost] = UNCOVERED

    def resolve(self, mask, amount):
        self.tau_hat = np.where(mask, amount, self.tau_hat)
        self.status[mask] = RESOLVED

    def advance_round(self):
        """Open the next round of cells to search, or start Phase 2."""
        while self.round + 1 < len(self.rounds):
            self.round += 1
            cells = self.rounds[self.round]
            idle = np.zeros_like(self.status, dtype=bool)
            idle[:, cells] = self.status[:, cells] == IDLE
            if idle.any():
                self.open_search(idle)
                return
        self.phase, self.phase1_episodes = 2, self.episode
        self.phase1_estimates = np.where(self.status == RESOLVED, self.tau_hat, np.nan)
        self.plan()

    def next_probe(self):
        """Bisection in Phase 1; in Phase 2, where an offer above the agent's cost is a windfall that
        distorts its other choices, the probe also grows at most geometrically from below."""
        mid = 0.5 * (self.lo + self.hi)
        return mid if self.phase == 1 else np.minimum(mid, 2 * self.lo + self.tol)

    def open_search(self, cells):
        self.status[cells] = SEARCHING
        self.probe = np.where(cells, self.next_probe(), self.probe)
        self.seen[cells] = self.taken[cells] = self.waited[cells] = 0

    # --- Phase 2: planning ---------------------------------------------------------------------
    def principal_model(self):
        """Transitions `(G, S, A, S)` and external reward plus optimism `(G, S, A)` the principal plans on."""
        if self.known_model:
            view = self.view
            return (np.broadcast_to(view.transition, (self.n_groups,) + view.transition.shape),
                    np.broadcast_to(view.external_reward, (self.n_groups,) + view.external_reward.shape))
        visits = self.transition_counts.sum(axis=-1)
        seen = np.maximum(visits, 1.0)
        transition = np.where(visits[..., None] > 0, self.transition_counts / seen[..., None], 1.0 / self.n_states)
        reward = self.external_sum / seen + self.optimism / np.sqrt(visits + 1.0)
        return transition, reward

    def cell_costs(self):
        """What the principal expects to pay per use of each cell: the estimate, or the bracket's lower end while unsettled."""
        cost = np.where(self.status == RESOLVED, self.tau_hat, self.lo)
        return cost + self.eps

    def plan(self):
        """Choose target cells maximising the principal's payoff; unsettled targets are searched in place."""
        transition, reward = self.principal_model()
        cost = self.scheme.expand(self.cell_costs())
        if self.scheme.single_step:
            unaffordable = 1e3 * self.horizon  # keeps values finite where no action is implementable
            q, _ = backward_induction(transition, reward[:, None] - np.minimum(cost, unaffordable), self.horizon)
            cells = np.take_along_axis(self.scheme.cell_of[None], q.argmax(axis=-1)[..., None], axis=-1)
            self.target_cells = np.zeros_like(self.target_cells)
            np.put_along_axis(self.target_cells, cells.reshape(self.n_groups, -1), True, axis=1)
        else:
            self.target_cells = self.plan_pooled(transition, reward, cost)
        self.settle_targets()

    def settle_targets(self):
        """Pause searches the plan no longer needs; search unsettled targets in place."""
        self.status[self.probing() & ~self.target_cells] = UNCOVERED
        self.open_search(self.target_cells & (self.status == UNCOVERED))

    def default_policy(self):
        """What each group's agents chose most often at each `(h, s)` while no offer was posted (after
        the warm-up); at decision points never seen, their most common choice at that step."""
        counts = self.action_counts + 1e-9 * self.action_counts.sum(axis=2, keepdims=True)
        return counts.argmax(axis=-1)

    def plan_pooled(self, transition, reward, cost):
        """Enumerate one action (or none) per pooled group; return the target cells `(G, n_cells)` whose
        predicted policy pays the principal best."""
        assigned, takes = self.candidates  # (C, H, S), (C, H, S, A)
        default = self.default_policy()  # (G, H, S)
        policy = np.where(assigned[None] >= 0, assigned[None], default[:, None])  # (G, C, H, S)
        paid = np.where(takes[None], cost[:, None], 0.0)  # (G, C, H, S, A)
        affordable = np.isfinite(paid).all(axis=(2, 3, 4))
        paid = np.where(np.isfinite(paid), paid, 0.0)
        values = policy_evaluation(transition[:, None], reward[:, None, None] - paid, policy, self.horizon)
        start = np.einsum("gcs,gs->gc", values[:, :, 0], self.initial_distribution())
        ranked = np.argsort(-np.where(affordable, start, -np.inf), axis=1, kind="stable")
        top = ranked[:, : self.verify_top]
        extra = ranked[:, min(self.verify_top, ranked.shape[1] - 1)]
        laissez_faire = np.where((top == 0).any(axis=1), extra, 0)  # candidate 0 posts nothing
        self.shortlist = np.unique(np.column_stack([top, laissez_faire]), axis=1) if self.n_groups == 1 \
            else np.column_stack([top, laissez_faire])
        self.trial, self.trial_payoff = 0, np.zeros(self.shortlist.shape)
        return self.candidate_cells[self.shortlist[:, 0]]

    def verify(self):
        """Score the target set on trial by the principal's realised payoff; move on, or keep the best."""
        k = self.trial // self.verify_episodes
        self.trial_payoff[:, k] += self.episode_payoff
        self.trial += 1
        if self.trial % self.verify_episodes:
            return
        if self.trial < self.shortlist.shape[1] * self.verify_episodes:
            self.target_cells = self.candidate_cells[self.shortlist[:, k + 1]]
            return
        best = self.shortlist[np.arange(self.n_groups), self.trial_payoff.argmax(axis=1)]
        self.target_cells, self.trial = self.candidate_cells[best], None
        self.settle_targets()

    @cached_property
    def decision_cells(self):
        """The flat `(group, cell)` each `(group, h, s, a)` visit counts towards, in `visits.ravel()` order."""
        decision = np.arange(self.n_groups)[:, None, None] * self.scheme.n_groups + self.scheme.group_of
        return (decision[..., None] * self.n_actions + np.arange(self.n_actions)).ravel()

    @cached_property
    def candidates(self):
        """Every assignment of an action (or none, -1) to each pooled group, as `(C, H, S)` and its
        action indicator `(C, H, S, A)`."""
        assigned = self.candidate_choices[:, self.scheme.group_of]
        return assigned, np.arange(self.n_actions) == assigned[..., None]

    @cached_property
    def candidate_choices(self):
        return np.array(list(itertools.product(range(-1, self.n_actions), repeat=self.scheme.n_groups)))

    @cached_property
    def candidate_cells(self):
        """The target cells `(C, n_cells)` of each candidate assignment."""
        choices = self.candidate_choices
        cells = np.zeros((len(choices), self.scheme.n_cells), dtype=bool)
        rows, groups = np.nonzero(choices >= 0)
        cells[rows, groups * self.n_actions + choices[rows, groups]] = True
        return cells

    def initial_distribution(self):
        """Empirical distribution of first states per group `(G, S)`."""
        return self.first_states / np.maximum(self.first_states.sum(axis=-1, keepdims=True), 1.0)

    def targets(self):
        """The target action at each `(group, h, s)` while steering (Phase 2), -1 elsewhere."""
        steered = self.target_cells[:, self.scheme.cell_of]  # (G, H, S, A)
        if self.phase != 2:
            return np.full(steered.shape[:-1], -1)
        return np.where(steered.any(axis=-1), steered.argmax(axis=-1), -1)

    def estimates(self):
        searched = np.isfinite(self.phase1_estimates) if self.phase1_estimates is not None else \
            np.zeros_like(self.status, dtype=bool)
        phase1 = self.phase1_estimates if self.phase1_estimates is not None else np.full(self.status.shape, np.nan)
        current = np.where(self.status == RESOLVED, self.tau_hat, np.nan)
        steered = self.target_cells & (self.status == RESOLVED) & np.isfinite(self.tau_hat) & (self.phase == 2)
        return CellEstimates(self.scheme, self.accept_share, searched, phase1, current, steered,
                             (self.status == RESOLVED) & ~np.isfinite(self.tau_hat), self.phase1_episodes)

    def summary(self):
        searched = self.status == RESOLVED
        return {
            "phase1_episodes": self.phase1_episodes,
            "cells": int(self.scheme.n_cells),
            "cells_resolved": int(searched.sum()),
            "cells_uncovered": int((self.status == UNCOVERED).sum()),
        }
