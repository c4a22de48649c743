"""Benchmark institutions run through the same contract as the two-phase mechanism."""

from __future__ import annotations

import numpy as np

from market_abm.core.institution import Mechanism
from market_abm.core.validation import check_int, check_number


class LaissezFaire(Mechanism):
    """No transfers: agents learn on their private reward alone."""

    name = "none"


class Pigouvian(Mechanism):
    """A tax equal to the known marginal external cost (the view's `pigouvian` offers)."""

    name = "pigouvian"

    def __init__(self, view):
        super().__init__(view)
        if view.pigouvian is None:
            raise ValueError("mechanism: 'pigouvian' needs a known marginal external cost, which this scenario "
                             "does not give its principal")
        self.offers[:] = view.pigouvian


class Oracle(Mechanism):
    """Exact compensating transfers `Delta + eps` on the welfare-optimal policy: a benchmark that no
    real principal could run. The experimenter computes its offers from the `exact` local model; the
    institution keeps only the offers and the targets."""

    name = "oracle"

    def __init__(self, view, exact=None, eps=0.01):
        super().__init__(view)
        if exact is None:
            raise ValueError("mechanism: 'oracle' needs an exact local model, which this scenario does not have")
        self.eps = check_number("eps", eps, low=0.0, low_open=True)
        policy = exact.welfare_optimum()[1]
        self.offers[:] = exact.compensating_transfers(policy, self.eps)
        self.policy = policy

    def targets(self):
        return np.broadcast_to(self.policy, (self.n_groups,) + self.policy.shape).copy()


class FixedSubsidy(Mechanism):
    """A flat subsidy `amount` paid whenever an agent takes `action` (default: the scenario's desirable one)."""

    name = "subsidy"

    def __init__(self, view, amount=0.2, action=None):
        super().__init__(view)
        self.amount = check_number("amount", amount)
        action = view.subsidised_action if action is None else action
        self.action = check_int("action", action, low=0, high=view.n_actions - 1)
        self.offers[..., self.action] = self.amount

    def targets(self):
        return np.full((self.n_groups, self.horizon, self.n_states), self.action)
