"""Transfer schemes: how finely the principal may condition a transfer on the step, state and action.

A scheme partitions the agent's decision points `(h, s)` into *groups*; a transfer *cell* is a
`(group, action)` pair and carries one amount, posted on every `(h, s)` of the group for that
action. `fine` conditions on everything, coarser schemes pool: they implement fewer policies but
have fewer amounts to learn.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.validation import check_int


class TransferScheme:
    """A partition of `(h, s)` into groups; cells are `(group, action)`.

    Attributes:
        name: registry name (`custom` for a user's own partition).
        horizon, n_states, n_actions: sizes of the decision problem it partitions.
        group_of: int array `(H, S)`, the group of each decision point.
        n_groups, n_cells: numbers of groups and of cells (`n_groups * A`).
        cell_of: int array `(H, S, A)`, the cell of each `(h, s, a)`.
        single_step: every group lies within one step `h`, so groups at one step can be searched together.
    """

    name = "custom"

    def __init__(self, group_of, n_actions):
        group_of = np.asarray(group_of)
        self.group_of = np.unique(group_of, return_inverse=True)[1].reshape(group_of.shape)
        self.horizon, self.n_states = self.group_of.shape
        self.n_actions = check_int("n_actions", n_actions, low=1)
        self.n_groups = int(self.group_of.max()) + 1
        self.n_cells = self.n_groups * self.n_actions
        self.cell_of = self.group_of[:, :, None] * self.n_actions + np.arange(self.n_actions)
        steps = [np.unique(np.nonzero(self.group_of == g)[0]) for g in range(self.n_groups)]
        self.single_step = all(len(s) == 1 for s in steps)
        self.step_of_group = np.array([s[0] for s in steps]) if self.single_step else None

    def cell_action(self, cells):
        """The action each cell pays for."""
        return np.asarray(cells) % self.n_actions

    def cell_group(self, cells):
        """The group of decision points each cell covers."""
        return np.asarray(cells) // self.n_actions

    def cell_totals(self, per_point):
        """A table `(H, S, A)` summed over each cell's decision points, `(n_cells,)`."""
        return np.bincount(self.cell_of.ravel(), np.ravel(per_point), minlength=self.n_cells)

    def expand(self, amounts):
        """Per-cell amounts `(..., n_cells)` as a transfer table `(..., H, S, A)`."""
        return np.asarray(amounts)[..., self.cell_of]

    def search_rounds(self):
        """Sets of cells whose transfers do not interact, searched in the same episodes.

        Single-step schemes search all groups of one step for one action at a time, latest step
        first; pooled schemes search one cell at a time.
        """
        if not self.single_step:
            return [np.array([c]) for c in range(self.n_cells)]
        rounds = []
        for h in range(self.horizon - 1, -1, -1):
            groups = np.nonzero(self.step_of_group == h)[0]
            rounds += [groups * self.n_actions + a for a in range(self.n_actions)]
        return rounds


def fine(horizon, n_states, n_actions):
    """One amount per `(h, s, a)`."""
    return _named("fine", np.arange(horizon * n_states).reshape(horizon, n_states), n_actions)


def stationary(horizon, n_states, n_actions):
    """One amount per `(s, a)`, the same at every step."""
    return _named("stationary", np.broadcast_to(np.arange(n_states), (horizon, n_states)), n_actions)


def per_action(horizon, n_states, n_actions):
    """One amount per action, whatever the step and state (e.g. a flat abatement subsidy)."""
    return _named("per_action", np.zeros((horizon, n_states), dtype=int), n_actions)


def threshold(horizon, n_states, n_actions, cutoff=None):
    """Two state bands (below / from `cutoff`, default the middle state) times the action."""
    cutoff = n_states // 2 if cutoff is None else check_int("cutoff", cutoff, low=1, high=n_states - 1)
    band = (np.arange(n_states) >= cutoff).astype(int)
    return _named("threshold", np.broadcast_to(band, (horizon, n_states)), n_actions)


def _named(name, group_of, n_actions):
    scheme = TransferScheme(group_of, n_actions)
    scheme.name = name
    return scheme

