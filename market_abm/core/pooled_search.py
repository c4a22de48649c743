"""Pricing a pooled transfer scheme (`stationary`, `per_action`, `threshold`): one amount per cell is
posted on every decision point of the cell's group, so the principal learns, point by point, what the
agents need, and chooses the amounts from that.

- *Every visit answers.* Under an amount `x` on a cell, each decision point of its group that the
  agents visit shows whether they take the cell's action there. Each point keeps a bracket on its own
  threshold (taken at `x`: at most `x`; refused: above `x`), so one pooled offer teaches many points.
- *Amounts from the points.* The plan chooses each cell's amount, one cell at a time given the
  others (coordinate ascent, a few sweeps), among no offer and the thresholds of the cell's points.
  It predicts that the agents take, at each point, the offered action that most exceeds its threshold
  (their own choice where none does), and maximises the welfare it can estimate: the external reward
  less the thresholds of the actions taken (what compliance costs the agents); of plans with the same
  estimated welfare it takes the one that pays least. A point whose bracket
  is still wide counts at its lower end (optimism) and is offered the middle of its bracket, so the
  plan goes where it is uncertain and every posted amount narrows some brackets.
- *Never trust a ceiling.* A point refused at the top of its bracket doubles it, up to the bound.
- *Refine by revealed welfare.* A point's threshold depends on the amounts paid at the points after
  it, which the plan ignores. So once a group's plan holds, and the group is one agent that answers a
  test at the bound at once, its amounts are refined by moves kept only when the agent's answers show
  that welfare rises (`core.welfare_ascent`). A point's brackets count only answers to the amounts
  kept, and to the moves tried.

Amounts are in units of per-step payoff.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.compiled import compiled, inlined
from market_abm.core.welfare_ascent import (
    PACE,
    PaceTest,
    WelfareAscent,
    empirical_policy,
    occupancy,
    welfare_bracket,
)

SWEEPS = 2  # coordinate-ascent passes over the cells per plan
REFINE_CALM = 50  # plans that keep a group's amounts before its refinement by revealed welfare starts
REFINE_WINDOW = 4  # episodes a refinement holds what it posts, in units of `min_visits`


@inlined
def trial_welfare(trial, g, cell_of, cost, own, transition, reward, start, next_values, values):
    """Estimated welfare and payments per agent per episode of group `g` under the amounts `trial
    (n_cells,)`, by policy evaluation on `transition (G, S, A, S)` from `start (G, S)` (`next_values`,
    `values` are `(2, S)` work arrays).

    At each point the agents take the action whose offer most exceeds its threshold `cost (G, H, S, A)`
    (inf: never; an action not offered is not taken unless it is their own choice `own (G, H, S)`, whose
    surplus is at least 0), the lowest such action on ties, and their own choice where no surplus is
    positive. Welfare is the external reward `(G, S, A)` less the thresholds of the actions taken (what
    compliance costs the agents)."""
    horizon, n_states, n_actions = cell_of.shape
    next_values[:] = 0.0
    for h in range(horizon - 1, -1, -1):
        for s in range(n_states):
            mine, taken, best = own[g, h, s], 0, -np.inf
            for a in range(n_actions):
                offer, threshold = trial[cell_of[h, s, a]], cost[g, h, s, a]
                surplus = offer - threshold if np.isfinite(threshold) else -np.inf
                if a == mine:
                    surplus = max(surplus, 0.0)
                elif not offer > 0:
                    surplus = -np.inf
                if surplus > best:
                    taken, best = a, surplus
            if best <= 0:
                taken = mine
            compliance = cost[g, h, s, taken] if np.isfinite(cost[g, h, s, taken]) else 0.0
            welfare, payment = reward[g, s, taken] - compliance, trial[cell_of[h, s, taken]]
            for t in range(n_states):
                welfare += transition[g, s, taken, t] * next_values[0, t]
                payment += transition[g, s, taken, t] * next_values[1, t]
            values[0, s], values[1, s] = welfare, payment
        next_values[:] = values
    welfare, payment = 0.0, 0.0
    for s in range(n_states):
        welfare += start[g, s] * next_values[0, s]
        payment += start[g, s] * next_values[1, s]
    return welfare, payment


@compiled
def coordinate_ascent(amounts, moves, move_points, move_action, probe, eps, cost, own, cell_of, transition, reward,
                      start, sweeps):
    """Each group's amounts `(G, n_cells)` improved by `sweeps` passes of coordinate ascent on the
    welfare the principal can estimate (`trial_welfare`). A move sets the cells `moves[m] (n_cells,)` to
    one amount: none, the first cell's current amount, or a test amount `probe (G, H, S, A)` plus `eps`
    of one of the move's points `move_points[m] (H, S)` for its action `move_action[m]`. Of the amounts
    whose welfare is within 1e-9 of the best, the one paying least is taken (the first on ties), if it
    gains welfare over the current amount or pays less."""
    n_groups, n_cells = amounts.shape
    horizon, n_states, _ = cell_of.shape
    out = amounts.copy()
    trial, candidates = np.empty(n_cells), np.empty(2 + horizon * n_states)
    welfare, paid = np.empty(candidates.shape[0]), np.empty(candidates.shape[0])
    next_values, values = np.empty((2, n_states)), np.empty((2, n_states))
    for g in range(n_groups):
        for _ in range(sweeps):
            for m in range(moves.shape[0]):
                first = np.argmax(moves[m])
                candidates[0], candidates[1], n = 0.0, out[g, first], 2
                for h in range(horizon):
                    for s in range(n_states):
                        if not move_points[m, h, s]:
                            continue
                        amount = probe[g, h, s, move_action[m]] + eps
                        amount = amount if np.isfinite(amount) else 0.0
                        fresh = True
                        for j in range(n):
                            fresh = fresh and candidates[j] != amount
                        if fresh:
                            candidates[n], n = amount, n + 1
                for k in range(n):
                    trial[:] = out[g]
                    for c in range(n_cells):
                        if moves[m, c]:
                            trial[c] = candidates[k]
                    welfare[k], paid[k] = trial_welfare(trial, g, cell_of, cost, own, transition, reward, start,
                                                        next_values, values)
                top, best = welfare[:n].max(), 0
                for k in range(n):
                    if welfare[k] >= top - 1e-9 and (welfare[best] < top - 1e-9 or paid[k] < paid[best]):
                        best = k
                if welfare[best] > welfare[1] + 1e-9 or paid[best] < paid[1] - 1e-12:
                    for c in range(n_cells):
                        if moves[m, c]:
                            out[g, c] = candidates[best]
    return out


def coordinate_moves(scheme):
    """The coordinate-ascent moves of a pooled plan: first every cell of one action together (one amount
    per action, so the plan is never worse than the coarsest scheme's), then each cell alone. Returns
    the cells each move sets `(M, n_cells)`, its decision points `(M, H, S)` and its action `(M,)`."""
    actions, cells = scheme.cell_action(np.arange(scheme.n_cells)), np.arange(scheme.n_cells)
    moves = np.array([actions == a for a in range(scheme.n_actions)] + [cells == c for c in cells])
    points = np.array([np.isin(scheme.group_of, scheme.cell_group(cells[move])) for move in moves])
    return moves, points, np.array([actions[move][0] for move in moves])


class PooledSearch:
    """Point brackets `(G, H, S, A)` and the posted amount of every `(group, cell)`.

    Attributes: `lo`, `hi` each point's bracket on its threshold for each action, `hi_tested` hi was
    taken (an upper bound, not a ceiling); `amount (G, n_cells)` the amounts posted; `stable (G,)`
    consecutive plans that kept every amount.
    """

    def __init__(self, mechanism, bound):
        m = self.m = mechanism
        shape = (m.n_groups, m.horizon, m.n_states, m.n_actions)
        self.point_bound = np.broadcast_to(m.scheme.expand(bound), shape)
        self.lo, self.hi = np.zeros(shape), np.minimum(m.tau_max, self.point_bound)
        self.hi_tested = np.zeros(shape, dtype=bool)
        self.at_ceiling = np.zeros(shape, dtype=bool)
        self.seen, self.taken = np.zeros(shape[:-1]), np.zeros(shape)
        self.waited = np.zeros(shape[:-1], dtype=int)
        self.amount = np.zeros((m.n_groups, m.scheme.n_cells))
        self.counted = np.zeros((m.n_groups, m.scheme.n_cells))  # the amounts the points' counts answer
        self.stable = np.zeros(m.n_groups, dtype=int)
        self.searched = np.zeros((m.n_groups, m.scheme.n_cells), dtype=bool)
        self.ever_posted = np.zeros((m.n_groups, m.scheme.n_cells), dtype=bool)
        self.moves = coordinate_moves(m.scheme)
        unique = np.sort(np.unique(self.moves[0], axis=0, return_index=True)[1])
        self.refine_moves = tuple(x[unique] for x in self.moves)
        self.calm = np.zeros(m.n_groups, dtype=int)
        self.slow_groups = np.zeros(m.n_groups, dtype=bool)
        self.ascents = [None] * m.n_groups
        self.cell_bound = bound

    # --- posting ------------------------------------------------------------------------
    def amounts(self, balance):
        return self.amount, np.zeros(self.amount.shape, dtype=bool)

    # --- learning -----------------------------------------------------------------------
    def observe(self, visits):
        """Count the episode's visits `(G, H, S, A)` at points where an amount is posted."""
        self.waited += 1
        offered = self.m.scheme.expand(self.counted) > 0  # (G, H, S, A)
        answering = np.all(self.amount == self.counted, axis=1)[:, None, None]
        counting = offered.any(axis=-1) & (self.waited >= self.m.react[:, None, None]) & answering
        self.seen += counting * visits.sum(axis=-1)
        self.taken += counting[..., None] * offered * visits
        for g, ascent in enumerate(self.ascents):
            if ascent is not None:
                ascent.count(visits[g])

    def decide(self, in_phase1):
        """Update every point with enough counted visits: its bracket for each action offered there."""
        m = self.m
        ready = self.seen >= m.min_visits  # (G, H, S)
        if not ready.any():
            return
        self.answer(ready, m.scheme.expand(self.counted), self.seen, self.taken)
        self.searched |= in_phase1[:, None] & (self.amount > 0)
        self.seen[ready] = 0
        self.taken[ready] = 0
        self.waited[ready] = 0

    def answer(self, ready, offer, seen, taken):
        """Narrow the brackets of the points `ready (G, H, S)` from their answers to the offers `(G, H, S, A)`:
        `seen (G, H, S)` visits, of which `taken (G, H, S, A)` took each action."""
        m = self.m
        offered = ready[..., None] & (offer > 0)
        accepted = offered & (taken >= m.accept_share * np.maximum(seen, 1)[..., None])
        refused = offered & ~accepted
        self.hi = np.where(accepted, np.minimum(self.hi, offer), self.hi)
        self.hi_tested |= accepted
        lo_before = self.lo
        self.lo = np.where(refused, np.maximum(self.lo, offer), self.lo)
        at_top = refused & ~self.hi_tested & (offer >= self.hi - 1e-12)
        self.at_ceiling |= at_top & (self.hi >= self.point_bound - 1e-12)
        grown = np.where(lo_before > 0, self.hi + 2 * (self.hi - lo_before), 2 * self.hi)
        self.hi = np.where(at_top, np.minimum(grown, self.point_bound), self.hi)
        # refused at or above an amount taken before: the threshold has moved up (the agents learnt, or
        # the offers elsewhere changed what they give up), so the old top no longer bounds it
        moved_up = refused & self.hi_tested & (offer >= self.hi - 1e-12)
        self.hi = np.where(moved_up, np.minimum(np.maximum(2 * offer, offer + 2 * m.tol), self.point_bound), self.hi)
        self.hi_tested &= ~moved_up
        self.lo = np.minimum(self.lo, self.hi)  # a bracket is never inverted

    def forget(self):
        """Pooled brackets are re-tested by every amount the plan posts; nothing goes stale here."""

    # --- planning -----------------------------------------------------------------------------
    def thresholds(self):
        """What each point needs for each action `(G, H, S, A)`, as the plan counts it, and the amount
        that would test it: a narrow bracket counts at its middle and is tested there; a wide one counts
        at its lower end (optimism) and is tested at its middle."""
        m = self.m
        top = self.hi
        middle = 0.5 * (self.lo + top)
        narrow = self.hi_tested & (top - self.lo <= m.tol + 1e-9)
        cost = np.where(narrow, middle, self.lo)
        probe = np.where(narrow, top, middle)
        return np.where(self.at_ceiling, np.inf, cost), probe

    def plan(self, transition, reward, unseen, default):
        """Choose every cell's amount by coordinate ascent on the welfare the principal can estimate."""
        m = self.m
        cost, probe = self.thresholds()
        own = default.argmax(axis=-1)  # (G, H, S) the agents' own choice
        is_own = np.arange(m.n_actions) == own[..., None]
        cost = np.where(is_own, 0.0, cost)
        moves, points, action = self.moves
        start = np.array([a.incumbent if a is not None else self.amount[g] for g, a in enumerate(self.ascents)])
        amounts = coordinate_ascent(start, moves, points, action, np.ascontiguousarray(probe), m.eps,
                                    np.ascontiguousarray(cost), np.ascontiguousarray(own), m.scheme.cell_of,
                                    *(np.ascontiguousarray(x, dtype=float) for x in
                                      (transition, reward, m.initial_distribution())), SWEEPS)
        amounts = self.refine(amounts, transition, reward, default, probe)
        unchanged = np.all(np.isclose(amounts, self.amount), axis=1)
        self.stable = np.where(unchanged, self.stable + 1, 0)
        counted = np.array([a.incumbent if a is not None else amounts[g] for g, a in enumerate(self.ascents)])
        moved = m.scheme.expand(~np.isclose(counted, self.counted)).any(axis=-1)  # points whose offers change
        self.counted = counted
        self.seen[moved] = 0
        self.taken[moved] = 0
        self.waited[moved] = 0
        self.amount = amounts
        self.ever_posted |= amounts > 0

    def levels(self, g, move, base, probe):
        """The amounts `(L,)` at which the model expects a decision point of move `move` (of the ascent's
        moves) visited in `base (H, S, A)` to change its answer: each point's test amount `probe (G, H, S,
        A)` plus the premium, and no offer."""
        m = self.m
        _, points, action = self.refine_moves
        at = points[move] & (base.sum(axis=-1) > 0)
        amounts = probe[g][at][:, action[move]] + m.eps
        return np.unique(np.append(amounts[np.isfinite(amounts)], 0.0))

    def refine(self, proposal, transition, reward, default, probe):
        """The amounts posted `(G, n_cells)`: the plan's `proposal`, or, for a group of one agent that
        answers at once, once the plan has held for `REFINE_CALM` plans, what its refinement by revealed
        welfare (`core.welfare_ascent`) posts; the plan's proposal is then one of the moves it tries.
        `probe (G, H, S, A)` are the points' test amounts."""
        m, scheme = self.m, self.m.scheme
        out = proposal.copy()
        calm = np.abs(proposal - self.amount).max(axis=1) <= m.tol / 2
        self.calm = np.where(calm, self.calm + 1, 0)
        start = m.initial_distribution()
        for g in range(m.n_groups):
            ascent = self.ascents[g]
            if ascent is None:
                if self.calm[g] < REFINE_CALM or m.group_sizes[g] != 1 or self.slow_groups[g]:
                    continue
                pace = PaceTest(scheme, self.cell_bound[g], m.accept_share)
                ascent = self.ascents[g] = WelfareAscent(self.refine_moves[0], self.amount[g],
                                                         REFINE_WINDOW * m.min_visits, pace, self.cell_bound[g],
                                                         m.min_visits)
            if ascent.fast is False:
                self.ascents[g] = None
                self.slow_groups[g] = True
                continue

            def judge(base, window, x, y, g=g):
                base_policy = empirical_policy(base, default[g])
                occ_x = occupancy(base_policy, transition[g], start[g])
                occ_y = occupancy(empirical_policy(window, base_policy), transition[g], start[g])
                return welfare_bracket(occ_x, occ_y, scheme.expand(x), scheme.expand(y), reward[g])

            if ascent.trial is not None and ascent.trial_move != PACE and ascent.due():
                self.answer_trial(g, ascent.window, scheme.expand(ascent.trial))
            ascent.update(proposal[g], judge, self.visits_per_cell,
                          lambda move, base, g=g: self.levels(g, move, base, probe))
            out[g] = ascent.posted()
        return out

    def answer_trial(self, g, window, offer):
        """The points of group `g` visited `min_visits` times in a trial's window `(H, S, A)` answer its
        offers `(H, S, A)`."""
        ready, seen = np.zeros(self.seen.shape, dtype=bool), np.zeros(self.seen.shape)
        taken, offers = np.zeros(self.taken.shape), np.zeros(self.taken.shape)
        seen[g], taken[g], offers[g] = window.sum(axis=-1), window, offer
        ready[g] = seen[g] >= self.m.min_visits
        self.answer(ready, offers, seen, taken)

    def visits_per_cell(self, visits):
        """Visits `(n_cells,)` to each cell's decision points, from visits `(H, S, A)`."""
        scheme = self.m.scheme
        return scheme.cell_totals(np.repeat(visits.sum(axis=-1)[..., None], scheme.n_actions, axis=-1))

    # --- what it tells ------------------------------------------------------------------------
    def estimates(self):
        """Each cell's amount in the sense of its exact counterpart: the least amount at which the points
        the agents visit take the cell's action on a share `accept_share` of the visits, from the points'
        estimated thresholds (NaN where the points' thresholds are not known; inf at the ceiling)."""
        m = self.m
        cost, _ = self.thresholds()
        known = self.hi_tested | self.at_ceiling
        threshold = np.where(known, np.where(self.at_ceiling, np.inf, 0.5 * (self.lo + self.hi)), np.nan)
        weight = m.decision_visits[..., None]  # (G, H, S, 1) visits of each point
        out = np.full(self.amount.shape, np.nan)
        group_of_cell = m.scheme.cell_group(np.arange(m.scheme.n_cells))
        for cell in range(m.scheme.n_cells):
            points = m.scheme.group_of == group_of_cell[cell]
            action = int(m.scheme.cell_action(cell))
            values = threshold[:, points, action]  # (G, P)
            w = np.broadcast_to(weight[:, points, 0], values.shape)
            for g in range(m.n_groups):
                v, wg = values[g], w[g]
                if wg.sum() == 0 or np.isnan(v[wg > 0]).any():
                    continue
                order = np.argsort(v)
                share = np.cumsum(wg[order]) / wg.sum()
                out[g, cell] = v[order][np.searchsorted(share, m.accept_share - 1e-12)]
        return out

    def settled_estimates(self):
        """The cells' estimates now (see `estimates`): a pooled cell is priced from its points."""
        return self.estimates()

    def ceiling_cells(self):
        """Cells posted now with a decision point refused at the bound `(G, n_cells)`."""
        m = self.m
        return m.cell_sum(self.at_ceiling & (m.scheme.expand(self.amount) > 0)) > 0

    def steered(self):
        return self.amount > 0

    def slow(self):
        """Groups of one agent that did not take the refinement's test at the bound at once (groups of many
        are not tested)."""
        return self.slow_groups.copy()

    def testing(self):
        return np.zeros(self.amount.shape, dtype=bool)

    def settled(self):
        """Cells whose costs count as estimated: posted under a plan that held."""
        return self.ever_posted & (self.stable[:, None] >= 3)

    @property
    def targets(self):
        return self.amount > 0
