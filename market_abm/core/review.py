"""What a continuing market books over one review period of its institution.

A continuing market has no episodes: the institution reviews its offers every so many periods,
and a review period plays the part of an episode for the mechanism and for the data. Its books
are kept per agent and summed over agents only when the period ends, so that they do not depend on
the order in which agents (or independent markets) are advanced within it.
"""

from __future__ import annotations

import numpy as np


class ReviewTotals:
    """Sums over the periods of one review period.

    Attributes:
        periods: periods booked.
        private, external, transfers: each agent's private reward, external reward and transfer
            received, summed over the periods `(N,)` (payoff units).
        action_counts: agent-periods per action `(A,)`; `on_target`: agent-periods taking the
            institution's target action.
    """

    def __init__(self, n_agents, n_actions):
        self.periods = 0
        self.private, self.external, self.transfers = np.zeros(n_agents), np.zeros(n_agents), np.zeros(n_agents)
        self.action_counts = np.zeros(n_actions, dtype=np.int64)
        self.on_target = np.zeros(1, dtype=np.int64)  # an array, so that compiled loops add to it in place

    def book(self, private, external, transfers, chosen, on_target):
        """Add one period of every agent `(N,)`, with the agents per action `chosen (A,)` and the number
        of agents on target."""
        self.periods += 1
        self.private += private
        self.external += external
        self.transfers += transfers
        self.action_counts += chosen.astype(np.int64)
        self.on_target += on_target

    def per_agent_period(self, values):
        """A total `(N,)` as the mean per agent per period."""
        return float(values.sum()) / (values.size * max(self.periods, 1))

    @property
    def welfare(self):
        """Welfare per agent per period: private plus external rewards (transfers cancel)."""
        return self.per_agent_period(self.private) + self.per_agent_period(self.external)

    @property
    def action_shares(self):
        """Share of agent-periods taking each action `(A,)`."""
        return self.action_counts / max(int(self.action_counts.sum()), 1)

    @property
    def target_share(self):
        """Share of agent-periods taking the institution's target action."""
        return int(self.on_target[0]) / max(int(self.action_counts.sum()), 1)
