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

Amounts are in units of per-step payoff.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.mdp import policy_evaluation

SWEEPS = 2  # coordinate-ascent passes over the cells per plan


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
        self.stable = np.zeros(m.n_groups, dtype=int)
        self.searched = np.zeros((m.n_groups, m.scheme.n_cells), dtype=bool)
        self.ever_posted = np.zeros((m.n_groups, m.scheme.n_cells), dtype=bool)

    # --- posting ------------------------------------------------------------------------
    def amounts(self, balance):
        return self.amount, np.zeros(self.amount.shape, dtype=bool)

    # --- learning -----------------------------------------------------------------------
    def observe(self, visits):
        """Count the episode's visits `(G, H, S, A)` at points where an amount is posted."""
        self.waited += 1
        offered = self.m.scheme.expand(self.amount) > 0  # (G, H, S, A)
        counting = offered.any(axis=-1) & (self.waited >= self.m.react[:, None, None])
        self.seen += counting * visits.sum(axis=-1)
        self.taken += counting[..., None] * offered * visits

    def decide(self, in_phase1):
        """Update every point with enough counted visits: its bracket for each action offered there."""
        m = self.m
        ready = self.seen >= m.min_visits  # (G, H, S)
        if not ready.any():
            return
        offer = m.scheme.expand(self.amount)
        offered = ready[..., None] & (offer > 0)
        accepted = offered & (self.taken >= m.accept_share * np.maximum(self.seen, 1)[..., None])
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
        self.searched |= in_phase1[:, None] & (self.amount > 0)
        self.seen[ready] = 0
        self.taken[ready] = 0
        self.waited[ready] = 0

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
        start = m.initial_distribution()
        amounts = self.amount.copy()
        actions = m.scheme.cell_action(np.arange(m.scheme.n_cells))
        group_of_cell = m.scheme.cell_group(np.arange(m.scheme.n_cells))
        # moves: first every cell of one action together (one amount per action, so the plan is never
        # worse than the coarsest scheme's), then each cell alone
        moves = [actions == a for a in range(m.n_actions)]
        moves += [np.arange(m.scheme.n_cells) == cell for cell in range(m.scheme.n_cells)]
        for _ in range(SWEEPS):
            for cells in moves:
                action = int(actions[cells][0])
                points = np.isin(m.scheme.group_of, group_of_cell[cells])  # (H, S)
                options = np.where(points[None], probe[..., action] + m.eps, np.nan).reshape(m.n_groups, -1)
                current = amounts[:, cells][:, :1]
                candidates = np.concatenate([np.zeros((m.n_groups, 1)), current, options], axis=1)
                candidates = np.where(np.isfinite(candidates), candidates, 0.0)
                trial = np.repeat(amounts[:, None, :], candidates.shape[1], axis=1)  # (G, K, n_cells)
                trial[:, :, cells] = candidates[..., None]
                values, paid = self.welfare(trial, cost, own, transition, reward, start)
                best = (values >= values.max(axis=1, keepdims=True) - 1e-9) * (1.0 / (1.0 + paid))
                best = best.argmax(axis=1)
                keep = values[np.arange(m.n_groups), best] > values[:, 1] + 1e-9  # only a strict gain moves
                chosen = trial[np.arange(m.n_groups), best]
                amounts = np.where(keep[:, None] | (paid[np.arange(m.n_groups), best] < paid[:, 1] - 1e-12)[:, None],
                                   chosen, amounts)
        unchanged = np.all(np.isclose(amounts, self.amount), axis=1)
        self.stable = np.where(unchanged, self.stable + 1, 0)
        moved = m.scheme.expand(~np.isclose(amounts, self.amount)).any(axis=-1)  # points whose offers change
        self.seen[moved] = 0
        self.taken[moved] = 0
        self.waited[moved] = 0
        self.amount = amounts
        self.ever_posted |= amounts > 0

    def welfare(self, trial, cost, own, transition, reward, start):
        """Estimated welfare and payments per agent per episode `(G, K)` of each trial amount vector
        `(G, K, n_cells)`: the agents take, at each point, the offered action that most exceeds its
        threshold, else their own choice."""
        m = self.m
        offer = m.scheme.expand(trial)  # (G, K, H, S, A)
        finite = np.isfinite(cost)[:, None]
        surplus = np.where(finite, offer - np.where(finite, cost[:, None], 0.0), -np.inf)
        own_mask = np.arange(m.n_actions) == own[:, None, ..., None]
        surplus = np.where(own_mask, np.maximum(surplus, 0.0), np.where(offer > 0, surplus, -np.inf))
        policy = surplus.argmax(axis=-1)  # ties go to the lowest action; the agents' own choice has surplus >= 0
        chosen_own = np.take_along_axis(surplus, policy[..., None], axis=-1)[..., 0] <= 0
        policy = np.where(chosen_own, own[:, None], policy)
        compliance = np.where(np.isfinite(cost), cost, 0.0)[:, None]  # (G, 1, H, S, A)
        both = np.stack(np.broadcast_arrays(reward[:, None, None] - compliance, offer))  # welfare, payments
        values = policy_evaluation(transition[:, None], both, policy, m.horizon)
        return tuple(np.einsum("gks,gs->gk", v[:, :, 0], start) for v in values)

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

    def testing(self):
        return np.zeros(self.amount.shape, dtype=bool)

    def settled(self):
        """Cells whose costs count as estimated: posted under a plan that held."""
        return self.ever_posted & (self.stable[:, None] >= 3)

    @property
    def targets(self):
        return self.amount > 0
