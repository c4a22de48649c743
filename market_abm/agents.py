"""Mesa agents as readable handles onto the vectorised population.

A `LearningAgent` is one row of the learner's arrays (its state, action, payoff and policy); a
`Principal` is one group's view of the institution (what it posts and pays). Neither steps on its
own: the model advances the whole population at once.
"""

from __future__ import annotations

import mesa
import numpy as np
from mesa.discrete_space import FixedAgent


class LearningAgent(FixedAgent):
    """A firm, household or pricing algorithm; attributes read its row of the population arrays.

    Attributes:
        row: index of this agent in the population arrays.
        state, action: its local state and its last action.
        last_reward, last_transfer: its private reward and the transfer received in the last step.
        policy: its current greedy policy `(H, S)`; `q_values` `(H, S, A)` where the learner keeps them.
    """

    def __init__(self, model, row):
        super().__init__(model)
        self.row = row

    @property
    def state(self):
        return int(self.model.states[self.row])

    @property
    def action(self):
        return int(self.model.actions[self.row])

    @property
    def last_reward(self):
        return float(self.model.private_rewards[self.row])

    @property
    def last_transfer(self):
        return float(self.model.transfers[self.row])

    @property
    def policy(self):
        return self.model.learner.greedy_policy()[self.row]

    @property
    def q_values(self):
        """Action values `(H, S, A)` for learners that keep them (model-free ones), else None."""
        q = getattr(self.model.learner, "q", None)
        return None if q is None else q[: self.model.env.horizon, ..., self.row]  # the agent is q's last axis


class Principal(mesa.Agent):
    """A regulator, insurer or market authority: one group's view of the model-level institution.

    Attributes:
        group: the group of learning agents it contracts with.
        offers: the transfers it currently posts `(H, S, A)`.
        phase: 0 fixed rule, 1 estimating transfers, 2 steering.
        transfers_paid: total transfers paid to its agents so far.
    """

    def __init__(self, model, group):
        super().__init__(model)
        self.group = group

    @property
    def offers(self):
        return self.model.offers[self.group]

    @property
    def phase(self):
        return self.model.phase

    @property
    def transfers_paid(self):
        model = self.model
        return float(model.transfers_received[model.env.groups == self.group].sum())

    @property
    def estimated_transfers(self):
        """The institution's current estimate of each cell's compensating transfer (NaN where not yet
        settled), or None for an institution that estimates none."""
        estimates = self.model.mechanism.estimates()
        return None if estimates is None else np.asarray(estimates.current[self.group])
