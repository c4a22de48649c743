"""Insurance with loss contagion: insured households on a network choose a costly prevention effort
each step; a node's risk level sets its chance of a loss, and a loss at a neighbour raises its risk
(fire, cyber or disease contagion). The insurer (principal) collects premiums, pays claims above a
deductible, and may post premium discounts for prevention. A low deductible creates moral hazard.

Units: losses, premiums, claims, prevention costs and discounts are payoffs per household per step;
risk is a level `0..levels-1` (0 = safe). Welfare is minus losses minus prevention costs (premiums,
claims and discounts are transfers and cancel). With one household on one node (no contagion) this
is `single_node_mdp(params)`: the same transitions, and rewards whose expectations are the MDP's
(losses are drawn, so each step's rewards are realised).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from market_abm.core.mdp import TabularMDP, cumulative, inverse_cdf
from market_abm.core.validation import check_array, check_distribution, check_int, check_number
from market_abm.environments.network import NetworkEnv

LEDGER = ("agents", "prevention", "losses", "premiums", "claims", "loss_amount", "prevention_cost")


@dataclass(frozen=True)
class InsuranceParams:
    """The default instance: 5 risk levels, 6 steps, no prevention or costly prevention.

    With the default deductible the household keeps a tenth of each loss, so it never finds
    prevention worth its cost, while society, which bears the whole loss and the contagion, wants
    prevention at every risk level above the safe one (at the last step only at the top level):
    laissez-faire is clearly inefficient (about -2.3 against -1.2 welfare per household per episode
    on a 400-node small world; -2.16 against -1.07 on one node).

    Attributes:
        levels: number of risk levels (0 = safe).
        horizon: steps per episode.
        action_names, costs: per action, its name and prevention cost per step (payoff).
        risk_down, risk_up: per action, the probability that the household's own risk falls / rises
            one level this step (prevention lowers it, neglect raises it).
        mitigation: per action, the share of this step's loss probability it removes.
        loss_probability: loss probability per step at risk level 0 and at the top level (linear between).
        loss_size: size of one loss (payoff).
        deductible: the part of each loss the household keeps; the insurer pays the claim above it.
        premium: premium per step (payoff); it moves money, not welfare.
        contagion: probability that a household's risk rises one extra level in a step in which all its
            neighbours had a loss (proportionally less when a share of them did).
        initial: distribution of the risk level at the start of an episode (default uniform).
    """

    levels: int = 5
    horizon: int = 6
    action_names: tuple = ("none", "prevent")
    costs: tuple = (0.0, 0.12)
    risk_down: tuple = (0.0, 0.7)
    risk_up: tuple = (0.5, 0.0)
    mitigation: tuple = (0.0, 0.3)
    loss_probability: tuple = (0.02, 0.5)
    loss_size: float = 1.0
    deductible: float = 0.1
    premium: float = 0.25
    contagion: float = 0.8
    initial: tuple | None = field(default=None)

    def __post_init__(self):
        check_int("levels", self.levels, low=2)
        check_int("horizon", self.horizon, low=1)
        n = len(self.action_names)
        per_action = {"costs": self.costs, "risk_down": self.risk_down, "risk_up": self.risk_up,
                      "mitigation": self.mitigation}
        if n < 2 or any(len(v) != n for v in per_action.values()):
            raise ValueError("costs: action_names, costs, risk_down, risk_up and mitigation must have one "
                             "entry per action, at least 2")
        for name, values in per_action.items():
            for v in values:
                check_number(name, v, low=0.0, high=1.0)
        for down, up in zip(self.risk_down, self.risk_up):
            if down + up > 1.0:
                raise ValueError("risk_down: risk_down + risk_up must be <= 1 for every action")
        if len(self.loss_probability) != 2:
            raise ValueError("loss_probability: must be (at the safe level, at the top level)")
        for p in self.loss_probability:
            check_number("loss_probability", p, low=0.0, high=1.0)
        check_number("loss_size", self.loss_size, low=0.0, high=1.0)
        check_number("deductible", self.deductible, low=0.0)
        check_number("premium", self.premium, low=0.0, high=1.0)
        check_number("contagion", self.contagion, low=0.0, high=1.0)
        if max(self.costs) + self.premium + min(self.deductible, self.loss_size) > 1.0:
            raise ValueError("premium: premium + deductible + cost must keep per-step payoffs within [-1, 1]")
        if self.initial is not None:
            check_distribution("initial", check_array("initial", self.initial, shape=(self.levels,)))

    @property
    def initial_distribution(self):
        return np.full(self.levels, 1.0 / self.levels) if self.initial is None else np.asarray(self.initial, float)

    @property
    def retained(self):
        """The part of a loss the household bears itself (the deductible, at most the loss)."""
        return min(self.deductible, self.loss_size)

    @property
    def claim(self):
        """The insurer's payment per loss."""
        return self.loss_size - self.retained

    def loss_chance(self, risk, actions):
        """Probability of a loss this step at a risk level under an action."""
        low, high = self.loss_probability
        base = low + (high - low) * np.asarray(risk, float) / (self.levels - 1)
        return base * (1.0 - np.asarray(self.mitigation)[actions])

    def loss_table(self):
        """Loss probability `(S, A)`."""
        return self.loss_chance(np.arange(self.levels)[:, None], np.arange(len(self.costs))[None, :])

    def rewards(self):
        """Expected private reward `r (S, A)` (minus premium, retained loss and prevention cost) and the
        insurer's expected reward `u (S, A)` (premium minus claims)."""
        loss = self.loss_table()
        private = -self.premium - self.retained * loss - np.asarray(self.costs)[None, :]
        return private, self.premium - self.claim * loss

    def next_risk_probabilities(self, risk, actions, bump):
        """Distribution of next risk levels `(..., S)` from `risk`, `actions` and the probability `bump`
        of a contagion step (all broadcast together)."""
        risk, actions, bump = np.broadcast_arrays(np.asarray(risk), np.asarray(actions), np.asarray(bump, float))
        down, up = np.asarray(self.risk_down)[actions], np.asarray(self.risk_up)[actions]
        levels = np.eye(self.levels)
        out = np.zeros(risk.shape + (self.levels,))
        for extra, chance in ((0, 1.0 - bump), (1, bump)):
            for move, move_chance in ((-1, down), (0, 1.0 - down - up), (1, up)):
                target = np.clip(risk + move + extra, 0, self.levels - 1)
                out += (chance * move_chance)[..., None] * levels[target]
        return out


def single_node_mdp(params=None):
    """One household on one node (no neighbours, so no contagion), as an exact `TabularMDP`."""
    params = params or InsuranceParams()
    s, a = np.arange(params.levels)[:, None], np.arange(len(params.costs))[None, :]
    transition = params.next_risk_probabilities(s, a, 0.0)
    private, external = params.rewards()
    return TabularMDP(transition, private, external, params.horizon, params.initial_distribution)


def split_uniform(uniforms, chance):
    """An event of probability `chance` from uniform draws, and fresh uniforms independent of it."""
    event = uniforms < chance
    rest = np.where(event, uniforms / np.maximum(chance, 1e-300),
                    (uniforms - chance) / np.maximum(1.0 - chance, 1e-300))
    return event, np.clip(rest, 0.0, np.nextafter(1.0, 0.0))


class InsuranceEnv(NetworkEnv):
    """Insured households on the nodes of a network; each observes its own risk level and the step.

    Attributes:
        params: the `InsuranceParams`.
        private, external: expected private and insurer rewards `(S, A)`.
        costs, prevents: prevention cost of each action `(A,)`, and whether it counts as prevention (cost > 0).
        ledger: per live step, the population's totals of `LEDGER` (agents, prevention, losses,
            premiums, claims, loss amount, prevention cost); benchmark simulations are not booked.
        losses: which households had a loss in the last live step `(N,)`.
    """

    name = "insurance"

    def __init__(self, topology, params=None):
        self.params = params or InsuranceParams()
        p = self.params
        super().__init__(topology, p.levels, len(p.costs), p.horizon)
        self.action_names = list(p.action_names)
        self.state_names = [f"risk {s}" for s in range(p.levels)]
        self.subsidised_action = int(np.argmax(np.asarray(p.risk_down) - np.asarray(p.risk_up)))
        self.private, self.external = p.rewards()
        self.costs = np.asarray(p.costs, float)
        self.prevents = self.costs > 0.0
        self._down, self._up = np.asarray(p.risk_down, float), np.asarray(p.risk_up, float)
        self._initial_cdf = cumulative(p.initial_distribution)
        degree = np.asarray(topology.adjacency.sum(axis=1)).ravel()
        self._neighbour_mean = 1.0 / np.maximum(degree, 1.0)
        self.ledger, self.losses = [], np.zeros(self.n_agents, dtype=bool)

    def initial_states(self, uniforms):
        return inverse_cdf(self._initial_cdf, uniforms)

    def neighbour_share(self, values):
        """Mean of `values (N, ...)` over each node's neighbours (0 for an isolated node)."""
        values = np.asarray(values, float)
        mean = self.topology.adjacency @ values.reshape(self.n_agents, -1)
        return (mean * self._neighbour_mean[:, None]).reshape(values.shape)

    def dynamics(self, states, actions, uniforms):
        return self.outcomes(states, actions, uniforms)[:3]

    def outcomes(self, states, actions, uniforms):
        """Draw losses, spread them to neighbours' risk, then move each risk level by its own action.

        Returns `(next_states, private_rewards, external_rewards, losses)`; one uniform per household
        is split into independent draws for its loss, its contagion step and its own risk move.
        """
        p = self.params
        losses, rest = split_uniform(uniforms, p.loss_chance(states, actions))
        bump, rest = split_uniform(rest, p.contagion * self.neighbour_share(losses))
        move = (rest >= 1.0 - self._up[actions]).astype(np.int64) - (rest < self._down[actions])
        next_states = np.clip(states + move + bump, 0, self.n_states - 1)
        private = -p.premium - p.retained * losses - self.costs[actions]
        external = p.premium - p.claim * losses
        return next_states, private, external, losses

    def step(self, actions, rng):
        """A live step: as `dynamics`, and book premiums, claims, losses and prevention in the ledger."""
        self.states, private, external, self.losses = self.outcomes(self.states, actions, rng.random(self.states.shape))
        p, lost = self.params, float(self.losses.sum())
        self.ledger.append((self.n_agents, float(self.prevents[actions].sum()), lost, p.premium * self.n_agents,
                            p.claim * lost, p.loss_size * lost, float(self.costs[actions].sum())))
        return self.states, private, external

    def deviation_counts(self, states, actions):
        """Expected counts `(S, A, S)` of next risk levels had each household taken each action alone."""
        counts = np.zeros((self.n_states, self.n_actions, self.n_states))
        np.add.at(counts, states, self.deviation_probabilities(states, actions))
        return counts

    def deviation_probabilities(self, states, actions):
        """Each household's next-risk distribution `(N, A, S)` had it alone taken each action: its own
        action does not change its neighbours' losses this step, so its next risk follows its own move
        plus the contagion step driven by its neighbours' expected losses."""
        bump = self.params.contagion * self.neighbour_share(self.params.loss_chance(states, actions))
        b = np.arange(self.n_actions)[None, :]
        return self.params.next_risk_probabilities(states[:, None], b, bump[:, None])

    def single_node_mdp(self):
        return single_node_mdp(self.params)

    @property
    def agents_independent(self):
        return super().agents_independent or self.params.contagion == 0.0

    def external_range(self):
        """The insurer collects the premium each step and pays at most one claim."""
        p = self.params
        return p.premium - p.claim, p.premium

    def payoff_range(self):
        """A household pays at least the premium each step, and at most premium, deductible and prevention cost."""
        p = self.params
        return -p.premium - p.retained - float(self.costs.max()), -p.premium

    def pigouvian_offers(self):
        """Full experience rating: each household is charged the insurer's expected claim on it, so it
        bears its whole expected loss (contagion to neighbours is not priced)."""
        return np.broadcast_to(self.external - self.params.premium, (self.horizon,) + self.external.shape).copy()

    def ledger_frame(self):
        """One row per live step: population totals of premiums, claims, losses and prevention."""
        return pd.DataFrame(self.ledger, columns=list(LEDGER))

    def summary_extras(self, steps):
        """Over the last 10% of steps: prevention and loss rates (shares of household-steps with
        prevention, with a loss), and the insurer's books per household per episode, where insurer
        profit = premiums - claims - discounts (the mechanism's transfers)."""
        ledger = self.ledger_frame()
        if ledger.empty:
            return {}
        tail = ledger.iloc[-max(1, len(ledger) // 10):]
        totals = tail.sum()
        per_episode = self.horizon / totals["agents"]
        discounts = float(steps["transfers"].iloc[-len(tail):].sum()) * self.n_agents
        premiums, claims = totals["premiums"] * per_episode, totals["claims"] * per_episode
        return {
            "prevention_rate": float(totals["prevention"] / totals["agents"]),
            "loss_rate": float(totals["losses"] / totals["agents"]),
            "premiums_per_episode": float(premiums),
            "claims_per_episode": float(claims),
            "discounts_per_episode": float(discounts * per_episode),
            "insurer_profit": float(premiums - claims - discounts * per_episode),
        }
