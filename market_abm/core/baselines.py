"""Benchmark institutions run through the same interface as the two-phase mechanism."""

from __future__ import annotations

import numpy as np

from market_abm.core.mechanism import Mechanism
from market_abm.core.validation import check_int, check_number


class LaissezFaire(Mechanism):
    """No transfers: agents learn on their private reward alone."""

    name = "none"


class Pigouvian(Mechanism):
    """A tax equal to the known marginal external cost, as the environment computes it."""

    name = "pigouvian"

    def __init__(self, env):
        super().__init__(env)
        self.table[:] = env.pigouvian_schedule()


class Oracle(Mechanism):
    """Exact compensating transfers `Delta + eps` on the welfare-optimal policy of the exact local model."""

    name = "oracle"

    def __init__(self, env, eps=0.01):
        super().__init__(env)
        mdp = env.require_local_mdp("oracle")
        self.eps = check_number("eps", eps, low=0.0, low_open=True)
        self.table[:] = mdp.compensating_transfers(mdp.welfare_optimum()[1], self.eps)


class FixedSubsidy(Mechanism):
    """A flat subsidy `amount` paid whenever an agent takes `action` (default: the environment's desirable one)."""

    name = "subsidy"

    def __init__(self, env, amount=0.2, action=None):
        super().__init__(env)
        self.amount = check_number("amount", amount)
        action = env.subsidised_action if action is None else action
        self.action = check_int("action", action, low=0, high=env.n_actions - 1)
        self.table[..., self.action] = self.amount
