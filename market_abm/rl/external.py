"""A learner whose actions come from outside the model: the seat an outside RL agent takes.

`MarketParallelEnv.step(actions)` hands the actions in, then runs one `MarketModel.step()`, so the
institution, the externality and the data collection run exactly as they do for built-in learners.
"""

from __future__ import annotations

import numpy as np

from market_abm.core.learners import Learner


class ExternalLearner(Learner):
    """A population of learning agents played by outside code.

    Attributes:
        pending: the actions `(N,)` handed in for the coming step (None once played).
        last_actions: the action most recently taken at each decision point `(N, H, S)` (-1: never).
        policy: optional callable `(offers (G, H, S, A), groups (N,)) -> (N, H, S, A)` action
            probabilities (or `(N, H, S)` actions) that the outside agents will play this episode; when
            given, the model's `expected_welfare` is exact where the scenario has an exact model.
    """

    name = "external"
    contract_aware = True

    def __init__(self, n_agents, n_states, n_actions, horizon, rng, policy=None, discount=None):
        super().__init__(n_agents, n_states, n_actions, horizon, rng)
        self.discount = discount  # a continuing market's: the outside learners discount as they choose
        if policy is not None and not callable(policy):
            raise ValueError(f"policy: must be a callable (offers, groups) -> probabilities, got {policy!r}")
        self.policy = policy
        self.pending = None
        self.declared = None
        self.last_actions = np.full((self.n_agents, self.horizon, self.n_states), -1, dtype=np.int8)

    def begin_episode(self, offers, groups):
        super().begin_episode(offers, groups)
        self.declared = None if self.policy is None else self.check_policy(self.policy(offers, groups))

    def check_policy(self, policy):
        """The declared policy as action probabilities `(N, H, S, A)`."""
        policy = np.asarray(policy)
        shape = (self.n_agents, self.horizon, self.n_states)
        if np.issubdtype(policy.dtype, np.integer) and policy.shape == shape:
            return np.eye(self.n_actions)[policy]
        if policy.shape != shape + (self.n_actions,):
            raise ValueError(f"policy: returned shape {policy.shape}, must be {shape + (self.n_actions,)}")
        return policy

    def hand_in(self, actions):
        """The actions `(N,)` the outside agents take at the coming step."""
        self.pending = actions

    def act(self, h, states):
        if self.pending is None:
            raise ValueError("actions: an ExternalLearner acts only through MarketParallelEnv.step(actions)")
        actions, self.pending = self.pending, None
        return actions

    def update(self, h, states, actions, private_rewards, transfers, next_states):
        self.last_actions[self.rows, h, states] = actions

    def greedy_policy(self):
        """The declared policy's most likely actions, else the actions last taken (-1: never visited)."""
        if self.declared is not None:
            return self.declared.argmax(axis=-1)
        return self.last_actions.astype(np.int64)

    def behaviour_policy(self):
        """The declared policy; unknown (NaN) otherwise, so the model books realised welfare instead."""
        if self.declared is not None:
            return self.declared
        return np.broadcast_to(np.nan, (self.n_agents, self.horizon, self.n_states, self.n_actions))
