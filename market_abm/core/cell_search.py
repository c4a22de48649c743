"""Pricing the cells of a single-step transfer scheme (`fine`, or any scheme whose groups lie within
one step): a bracket `[lo, hi]` on each cell's compensating transfer, learned from the agents'
choices under the offers posted on it.

- *Search what the plan needs.* Only the cells of the plan's targets are priced, all steps at once,
  each as soon as its own decision points have been visited enough: a rare cell never holds up the
  others.
- *Generous first, never above worth.* A cell's first offer is what it is worth to the principal
  (what the plan gains by the action over the agents' own choice), capped by the ceiling; later
  offers bisect the bracket, never above worth.
- *Never trust a ceiling.* An offer refused at the top of the bracket doubles it, up to the bound
  that no compensating transfer of a rational agent can exceed. Cells refused there are at the ceiling.
- *No ratchet.* A cell settles once its bracket is narrower than `tol`; its estimate is the middle of
  the bracket, and it is posted at the top of the bracket plus a margin and the premium `eps`. Its acceptance is still measured: a
  refusal reopens the bracket above, a run of acceptances tests below (twice as far after a re-test
  that lowered the estimate; one step, after a run twice as long, after one that confirmed it), and
  answers given while a cell is not posted are forgotten once older than their life (which doubles),
  so a cell refused while the agents were still learning is priced again.
- *Balanced surplus.* Where the plan leaves the agents alone, every action is paid the same surplus a
  steered agent keeps, so every path gains alike, the agents' own choice there is not changed, and the
  offers do not change what the agents would give up elsewhere.

Amounts are in units of per-step payoff.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.compiled import compiled

IDLE, TESTING, STEERED = range(3)


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
    `at_ceiling` refused at the bound; `priced` settled at least once; `tests` decisions taken.
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

    # --- posting ------------------------------------------------------------------------
    def amounts(self, balance):
        """Amounts `(G, n_cells)` to post, and the cells where only the balancing surplus is posted."""
        amounts = np.where(self.targets & (self.status == TESTING), self.probe, 0.0)
        amounts = np.where(self.targets & (self.status == STEERED), self.tau_hat + self.surplus, amounts)
        balancing = self.balancing_cells() if balance else np.zeros_like(self.targets)
        return np.where(balancing, self.surplus, amounts), balancing

    @property
    def surplus(self):
        """What a steered agent is paid per step over the estimate of its compensating transfer: half
        the settling width (the estimate is the middle of the bracket), the margin and the premium."""
        m = self.m
        return m.margin + m.eps + 0.5 * m.tol

    def balancing_cells(self):
        """Every cell of the groups of decision points the plan leaves alone, `(G, n_cells)`."""
        m = self.m
        free = ~self.targets.reshape(m.n_groups, -1, m.n_actions).any(axis=-1)  # (G, groups of decision points)
        return np.repeat(free, m.n_actions, axis=-1)

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
            self.taken += counting * m.cell_sum(visits)
            self.seen += counting * m.cell_sum(np.broadcast_to(visits.sum(axis=-1, keepdims=True), visits.shape))

    def decide(self, in_phase1):
        """Update every cell whose current offer has enough counted visits; `in_phase1 (G,)` marks the
        groups still estimating (their tested cells count as searched)."""
        m = self.m
        # a steered cell that has held up is refused only on more evidence: one noisy run does not reopen it
        needed = m.min_visits * np.where(self.status == STEERED, 1 + self.streak, 1)
        ready = self.counting() & (self.seen >= needed)
        if not ready.any():
            return
        accepted = ready & (self.taken >= m.accept_share * np.maximum(self.seen, 1))
        refused = ready & ~accepted
        testing, steered = self.status == TESTING, self.status == STEERED
        lo_before = self.lo.copy()
        # a test: accepted lowers the top of the bracket, refused raises the bottom, and refused at an
        # untried top (a ceiling) doubles the bracket above it, up to the bound
        test_accept, test_refuse = testing & accepted, testing & refused
        self.hi = np.where(test_accept, self.probe, self.hi)
        self.hi_tested |= test_accept
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
        retest = steer_accept & (self.streak >= self.retest_every)
        self.lo = np.where(retest, np.maximum(self.hi - self.down, 0.0), self.lo)
        self.retest_from = np.where(retest, self.tau_hat, self.retest_from)
        self.retesting = (self.retesting | retest) & ~steer_refuse
        reopen = steer_refuse | retest
        self.tau_hat[steer_refuse] = np.nan
        self.status[reopen] = TESTING
        self.streak[reopen] = 0
        self.searched |= in_phase1[:, None] & (testing | reopen)
        self.needs_probe |= ready
        self.tests += ready
        self.seen[ready] = self.taken[ready] = 0
        self.waited[ready] = 0

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
        self.tau_hat[stale_estimate] = np.nan
        self.life[stale] *= 2
        self.needs_probe |= stale

    # --- planning -----------------------------------------------------------------------------
    def costs(self):
        """The compensating transfer the plan counts for each cell: its point estimate (the middle of the
        settled bracket) or, while unsettled, the bracket's lower end (optimism); unaffordable at the
        ceiling. The surplus posted above them is paid on every path alike, so it does not change which
        plan is best: the plan is the welfare optimum under the estimates."""
        m = self.m
        cost = np.where(np.isfinite(self.tau_hat), self.tau_hat, self.lo)
        return np.where(self.at_ceiling, np.inf, np.maximum(cost, 0.0))

    def plan(self, transition, reward, unseen, default):
        """Backward induction on the principal's model (`transition (G, S, A, S)`, external reward
        `(G, S, A)`, and the weight `unseen` on a pair leading to the best next state) where each
        decision point may be left to the agents' own choice (`default` probabilities `(G, H, S, A)`,
        free) or offered one action at its cell's cost; then price the targets."""
        m = self.m
        cost = np.ascontiguousarray(m.scheme.expand(self.costs()))  # (G, H, S, A)
        model = (np.ascontiguousarray(x, dtype=float) for x in (transition, reward, unseen, default))
        targets, worth = plan_targets(*model, cost, m.scheme.cell_of, m.scheme.n_cells)
        self.set_targets(targets, worth)

    def set_targets(self, targets, worth):
        """Post the plan: unsettled targets are priced (first at their worth, capped by the ceiling; then
        by bisection, never above worth); cells the plan leaves are paused."""
        m = self.m
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
        floor = np.minimum(self.lo + 0.5 * m.tol, self.hi)  # each test must be able to narrow the bracket
        self.probe = np.where(due, np.maximum(np.minimum(middle, worth), floor), self.probe)
        self.needs_probe &= ~due
        fresh = due | changed
        self.seen[fresh] = self.taken[fresh] = 0
        self.waited[fresh] = 0

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
