"""Refining pooled amounts by revealed welfare: a change of amounts is kept only when the agents'
answers to it show that it raises welfare.

Agents that best-respond to posted amounts reveal what a change of amounts costs them. Under amounts
`x` they chose `pi_x` over `pi_y`, and under `y` they chose `pi_y` over `pi_x`, so the change of their
own payoff from `pi_x` to `pi_y` lies between what `y` would pay `pi_x` less what it pays `pi_y`, and
the same under `x`:

    -y . (occ_y - occ_x)  <=  V_A(pi_y) - V_A(pi_x)  <=  -x . (occ_y - occ_x)

with `occ` the expected visits per episode of every `(h, s, a)` and `x`, `y` the amounts on each. The
external reward of both policies is the principal's own, so the welfare change `W(y) - W(x)` has a
bracket read from the public record and the dynamics alone, whatever the amounts at later steps make
the agents give up (the context a point's own threshold ignores). Its width shrinks with the size of
the move. A move is kept when the lower end of its bracket is positive twice running: the principal
takes on no change it cannot show to be an improvement.

The moves are those of the principal's model (`core.pooled_search`): its own proposal, first in every
sweep, and, one move at a time, the cells of one action (or one cell) set to the nearest amount at
which the model expects a visited decision point to change its answer, above and then below. A sweep
that keeps nothing makes the next one wait twice as long, so trials grow rare once nothing improves.

Amounts are in units of per-step payoff; welfare in payoff per agent per episode.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.mdp import state_occupancy

PACE = -2  # the move that tests how fast the agents answer
PROPOSAL = -1  # the move that tries the model's proposal


def occupancy(policy, transition, start):
    """Expected visits per episode `(H, S, A)` of a policy `(H, S, A)` (action probabilities) on
    `transition (S, A, S)` from `start (S,)`."""
    return state_occupancy(transition, start, policy, policy.shape[0])[..., None] * policy


def empirical_policy(counts, fallback):
    """Action shares `(H, S, A)` from visit counts, `fallback (H, S, A)` where a point was not visited."""
    seen = counts.sum(axis=-1, keepdims=True)
    return np.where(seen > 0, counts / np.maximum(seen, 1e-12), fallback)


def welfare_bracket(occ_x, occ_y, paid_x, paid_y, external):
    """Bounds `(low, high)` on the welfare change from amounts `x` to `y`, from the visits each policy
    makes `(H, S, A)`, the amounts each posts on every `(h, s, a)` and the external reward `(S, A)`."""
    moved = occ_y - occ_x
    change = float((moved * external).sum())
    return change - float((paid_y * moved).sum()), change - float((paid_x * moved).sum())


class PaceTest:
    """Whether an agent answers a posted amount at once: the cell whose action is taken on less than
    `1 - accept_share` of its decision points' visits (the most visited such cell) is posted at the
    bound `(n_cells,)`, which any agent that best-responds to the posted amounts takes at once on every
    visit. An agent that does not answers slowly (it notices an offer only by trying the action)."""

    def __init__(self, scheme, bound, accept_share):
        self.scheme, self.bound, self.accept_share = scheme, bound, accept_share
        self.points, self.action = None, None

    def trial(self, amounts, base):
        """The amounts of the test, from the incumbent `amounts` and the visits `base (H, S, A)` under it."""
        scheme = self.scheme
        cells = np.arange(scheme.n_cells)
        points = scheme.group_of[None] == scheme.cell_group(cells)[:, None, None]  # (C, H, S)
        actions = scheme.cell_action(cells)
        seen = base.sum(axis=-1)
        visits = scheme.cell_totals(np.repeat(seen[..., None], scheme.n_actions, axis=-1))
        share = scheme.cell_totals(base) / np.maximum(visits, 1)
        rare = (visits > 0) & (share < 1 - self.accept_share)
        cell = int(np.argmax(np.where(rare, visits, -1)))
        self.points, self.action = points[cell] & (seen > 0) & rare.any(), actions[cell]
        out = np.array(amounts, float)
        out[cell] = self.bound[cell]
        return out

    def seen(self, window):
        """Visits in `window (H, S, A)` to the test's decision points."""
        return window[self.points].sum()

    def answered(self, window):
        """Whether the agents took the test's action on a share `accept_share` of those visits."""
        seen = self.seen(window)
        return bool(seen > 0 and window[self.points][:, self.action].sum() >= self.accept_share * seen)


class WelfareAscent:
    """The revealed-welfare refinement of one group's pooled amounts.

    Attributes: `incumbent (n_cells,)` the amounts kept; `trial` the amounts on test (None: the
    incumbent is posted); `base (H, S, A)` the visits of the last window under the incumbent; `window`
    and `episodes` those counted under what is posted now; `fast` whether the agents answered the pace
    test at once (None: not tested yet); `kept` the moves kept so far.
    """

    def __init__(self, moves, amounts, window_episodes, pace, bound, min_visits=1):
        self.moves = moves  # (M, n_cells) the cells each move sets
        self.min_visits = min_visits  # visits in a window for a cell's answer to count
        self.incumbent = np.array(amounts, float)
        self.window_episodes, self.pace, self.bound = window_episodes, pace, bound
        self.trial, self.trial_move, self.trial_sign, self.retry = None, 0, 1, None
        self.base, self.window, self.episodes = None, None, 0
        self.next_move, self.next_sign = 0, 1
        self.kept_in_sweep, self.rest, self.resting = False, 1, 0  # rest: windows held between sweeps
        self.kept, self.confirming, self.proposed = 0, False, False
        self.rejected = None  # the last proposal not shown to raise welfare
        self.fast = None

    def posted(self):
        return self.incumbent if self.trial is None else self.trial

    def count(self, visits):
        """Count one episode's visits `(H, S, A)` under what is posted."""
        self.window = visits.copy() if self.window is None else self.window + visits
        self.episodes += 1

    def due(self):
        """Whether the window under what is posted is complete (the pace test's as soon as its decision
        points are visited)."""
        if self.trial is not None and self.trial_move == PACE and self.window is not None:
            return self.pace.seen(self.window) > 0 or self.episodes >= self.window_episodes
        return self.episodes >= self.window_episodes

    def update(self, proposal, judge, visited, levels):
        """One plan: `proposal (n_cells,)` the model's amounts, `judge(base, window, x, y)` the bracket
        `(low, high)` on the welfare change from the incumbent `x` (visits `base`) to `y` (visits
        `window`), `visited(counts) (n_cells,)` the visits to each cell's points, `levels(move, counts)`
        the amounts at which the model expects a visited point of the move to change its answer."""
        if not self.due():
            return
        window, self.window, self.episodes = self.window, None, 0
        if self.trial is None:
            self.base = window
            self.choose(proposal, visited(window), lambda move: levels(move, window))
        elif self.trial_move == PACE:
            self.fast, self.trial = self.pace.answered(window), None
        else:
            self.judge(judge(self.base, window, self.incumbent, self.trial)[0], window)

    def judge(self, low, window):
        """Keep the trial if the lower end `low` of its welfare change is positive twice running (the
        incumbent measured again between), and set the next move."""
        if low > 0 and not self.confirming:
            self.confirming, self.retry, self.trial = True, self.trial, None
            return
        self.confirming = False
        move, sign = self.trial_move, self.trial_sign
        if low > 0:
            self.incumbent, self.base = self.trial, window
            self.kept_in_sweep, self.kept = True, self.kept + 1
            if move != PROPOSAL:
                self.next_move, self.next_sign = move, sign
        elif move == PROPOSAL:
            self.rejected = self.trial
        elif sign > 0:
            self.next_move, self.next_sign = move, -1
        else:
            self.next_move, self.next_sign = move + 1, 1
        self.trial = None

    def choose(self, proposal, visited, levels):
        """What to post after a window under the incumbent: the trial being confirmed, the pace test, a
        rest, the model's proposal (first in every sweep), or the next move of the search."""
        if self.confirming:
            self.trial, self.retry = self.retry, None
        elif self.fast is None:
            self.trial, self.trial_move = self.pace.trial(self.incumbent, self.base), PACE
        elif self.resting > 0:
            self.resting -= 1
        elif (self.next_move == 0 and self.next_sign > 0 and not self.proposed
              and not np.allclose(proposal, self.incumbent)
              and (self.rejected is None or not np.allclose(proposal, self.rejected))):
            self.trial, self.trial_move, self.trial_sign, self.proposed = proposal, PROPOSAL, 1, True
        else:
            self.proposed = False
            self.trial = self.next_trial(visited, levels)

    def next_trial(self, visited, levels):
        """The next move of the search (None: a sweep ended, and the incumbent rests): the move's cells
        whose points are visited `min_visits` times in a window (`visited (n_cells,)`) set to the nearest
        level above their visit-weighted amount, or else the nearest below."""
        while self.next_move < len(self.moves):
            move, sign = self.next_move, self.next_sign
            cells = self.moves[move] & (visited > 0) & (visited >= self.min_visits)
            if cells.any():
                options = levels(move)
                now = np.average(self.incumbent[cells], weights=visited[cells])
                if sign > 0:
                    options = options[(options > now + 1e-9) & (options <= self.bound[cells].min())]
                else:
                    options = options[options < now - 1e-9]
                if options.size:
                    self.trial = self.incumbent.copy()
                    self.trial[cells] = options.min() if sign > 0 else options.max()
                    self.trial_move, self.trial_sign = move, sign
                    return self.trial
            if sign > 0:
                self.next_sign = -1
            else:
                self.next_move, self.next_sign = move + 1, 1
        self.next_move, self.next_sign = 0, 1
        self.rest = 1 if self.kept_in_sweep else 2 * self.rest
        self.kept_in_sweep, self.resting = False, self.rest
        return None
