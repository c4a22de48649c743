"""The contract of a model-level institution, and what a real principal may know.

An institution (regulator, insurer, market authority) is built from a `PrincipalView`: the sizes
and groups of the population, public bounds, and the external reward and dynamics only where the
scenario says the principal knows them. It never sees the agents' private rewards or a learner.
Each step it is shown the public record of that step, a `StepRecord`.

Every institution fulfils one contract (checked by `conformance.mechanism_api_test`):

- `post_offers() -> offers (G, H, S, A)`: the transfers posted for the next episode, one table per
  group of agents (also kept as `offers`).
- `record(step)`: the public record of one step (`StepRecord`), the transfers it paid included.
- `end_episode()`: learn from the episode just ended (in a continuing market, the review period).
- `targets() -> (G, H, S)`: the action it steers towards at each decision point, -1 where none.
- `estimates()`: its per-cell estimates of the compensating transfers (`CellEstimates`), or None.
- `summary() -> dict`: its figures for `summary.json`.
- `phase`: 0 for a fixed rule, 1 while estimating transfers, 2 while steering.

Transfers are in units of per-step payoff, paid to the agent (negative = tax).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np


def frozen(array):
    """A read-only copy of `array` (None stays None)."""
    if array is None:
        return None
    out = np.array(array, dtype=float if np.asarray(array).dtype.kind == "f" else None)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class PrincipalView:
    """What a real principal may know about the population it contracts with.

    Attributes:
        n_agents, n_states, n_actions, horizon: sizes (`horizon` is 1 in a continuing market).
        groups: the institution (principal) each agent faces, `(N,)`; `n_groups` of them.
        action_names, state_names: labels.
        subsidised_action: the action the scenario calls socially desirable (what a flat subsidy pays for).
        payoff_range: a public bound `(low, high)` on an agent's private payoff per step: a fact of the
            market (profits per step are at most so much), not the agents' rewards.
        external_range: a public bound `(low, high)` on the external reward one agent's step causes.
        discount: the per-step discount of a continuing market, None for an episodic one.
        transition: the local dynamics `P[s, a, s']` where the scenario says the principal knows them.
        external_reward: the external reward `u[s, a]` where the principal knows it.
        initial: the distribution of first states where the principal knows it.
        pigouvian: offers `(H, S, A)` of a tax at the known marginal external cost, where one exists.
        public: further public knowledge of the scenario, by name (e.g. a regulator's known marginal cost).
    """

    n_agents: int
    n_states: int
    n_actions: int
    horizon: int
    groups: np.ndarray
    n_groups: int
    action_names: tuple
    state_names: tuple
    subsidised_action: int = 0
    payoff_range: tuple = (-1.0, 1.0)
    external_range: tuple = (-1.0, 1.0)
    discount: float | None = None
    transition: np.ndarray | None = None
    external_reward: np.ndarray | None = None
    initial: np.ndarray | None = None
    pigouvian: np.ndarray | None = None
    public: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("groups", "transition", "external_reward", "initial", "pigouvian"):
            object.__setattr__(self, name, frozen(getattr(self, name)))
        object.__setattr__(self, "public", MappingProxyType(dict(self.public)))
        object.__setattr__(self, "action_names", tuple(self.action_names))
        object.__setattr__(self, "state_names", tuple(self.state_names))
        for name in ("payoff_range", "external_range"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))

    @property
    def model_known(self):
        """The principal knows the local dynamics and the external reward."""
        return self.transition is not None and self.external_reward is not None

    @property
    def payoff_span(self):
        """Width of the public payoff bound: no agent gains more than this per step from one action over another."""
        low, high = self.payoff_range
        return high - low


@dataclass(frozen=True)
class StepRecord:
    """The public record of one step, as the institution sees it; arrays are `(N,)`, by agent.

    Attributes:
        h: the step within the episode (0 in a continuing market).
        groups, states, actions, next_states: each agent's group, state, action and next state.
        external_rewards: the external reward each agent's step caused (owned by the principal).
        transfers: what the institution paid each agent this step (negative = tax collected).
        public: further public per-agent observations of the scenario, by name (e.g. quantities sold).
    """

    h: int
    groups: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    external_rewards: np.ndarray
    transfers: np.ndarray
    public: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CellEstimates:
    """An institution's estimates of the compensating transfer of each cell of its transfer scheme.

    Attributes:
        scheme: the `TransferScheme` whose cells are estimated.
        accept_share: the share of a cell's visits taking its action that counts as acceptance (it
            defines the exact counterpart of a pooled cell).
        searched: cells searched while estimating (Phase 1), `(G, n_cells)`.
        phase1: each cell's estimate when Phase 1 ended (NaN: not settled then; inf: refused at the
            highest offer allowed).
        current: each cell's estimate now (NaN: never settled).
        steered: cells whose estimate is posted now to steer the agents.
        at_ceiling: cells resolved at the highest offer allowed (their cost may lie above it).
        phase1_episodes: the episode at which Phase 1 ended (None while it runs).
    """

    scheme: object
    accept_share: float
    searched: np.ndarray
    phase1: np.ndarray
    current: np.ndarray
    steered: np.ndarray
    at_ceiling: np.ndarray
    phase1_episodes: int | None = None


class Mechanism:
    """Base class: posts one transfer table per group of agents (mean-field: anonymous within a group).

    Attributes:
        view: the `PrincipalView` it was built from.
        n_groups, horizon, n_states, n_actions: sizes.
        offers: the transfers posted `(G, H, S, A)`.
        episode: episodes ended.
    """

    name = "mechanism"
    phase = 0

    def __init__(self, view):
        if not isinstance(view, PrincipalView):
            raise ValueError(f"view: a mechanism is built from a PrincipalView, got {type(view).__name__}")
        self.view = view
        self.n_groups, self.horizon = view.n_groups, view.horizon
        self.n_states, self.n_actions = view.n_states, view.n_actions
        self.episode = 0
        self.offers = np.zeros((self.n_groups, self.horizon, self.n_states, self.n_actions))

    def post_offers(self):
        """Transfers `(G, H, S, A)` posted for the next episode."""
        return self.offers

    def record(self, step):
        """Observe the public record of one step (`StepRecord`)."""

    def end_episode(self):
        """Update after an episode (in a continuing market, a review period)."""
        self.episode += 1

    def targets(self):
        """The action steered towards at each `(group, h, s)`, `(G, H, S)`; -1 where none."""
        return np.full((self.n_groups, self.horizon, self.n_states), -1)

    def estimates(self):
        """Per-cell estimates of the compensating transfers (`CellEstimates`), or None."""
        return None

    def summary(self):
        """Mechanism-specific figures for `summary.json`."""
        return {}
