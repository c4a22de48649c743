"""Algorithmic pricing: firms on a graph set prices every period; Q-learning pricing algorithms learn
to collude (Calvano, Calzolari, Denicolo and Pastorello 2020); a market authority's rebates steer them.

Each firm sells in the logit market formed by itself and its neighbours (`core.logit`: a unit mass
of consumers choosing among them and an outside good), so its demand depends on its own price and
theirs. On the `cliques` graph every firm's market is its clique: `N / k` independent markets of
`k` firms, Calvano's sessions side by side. The market is continuing: there are no episodes, the
firms discount each period by `discount`, and the authority reviews its offers every
`review_every` periods.

State: a firm's own last price and its neighbours' last prices, discretised as `own * m +
neighbours` (`m` grid prices), where `neighbours` is the grid index nearest their mean last price
(the mean index rounded half up; a firm without neighbours counts its own price). With one
neighbour, as in a duopoly, that is both last prices, Calvano's state; whatever the degree a table
has `m^2` states. A session starts from prices drawn uniformly from the grid.

Payoffs per firm per period (money): the private reward is the profit `(p_i - c) q_i`; the external
reward is the consumer surplus of the firm's market in equal shares among its firms (on a clique,
the market's surplus split among the clique), so welfare `W` = profits + consumer surplus sums over
firms, and transfers cancel in it. The authority sees the posted prices (the actions), the
quantities sold (a public observation each period) and what it pays, and knows the marginal cost
and the price grid (public knowledge); it does not know demand.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components

from market_abm.core.compiled import compiled, inlined
from market_abm.core.logit import LogitDemand
from market_abm.core.market_authority import MarketAuthority
from market_abm.core.validation import check_int, check_number
from market_abm.environments.network import NetworkEnv

EXACT_PRIOR_PROFILES = 200_000  # rival profiles enumerated for the learners' prior; sampled above
PRIOR_SAMPLES = 100_000


@dataclass(frozen=True)
class PricingParams:
    """The economy and the market's clock (Calvano et al.'s baseline by default).

    Attributes:
        quality, outside_quality, mu: the logit demand (`core.logit.LogitDemand`), money.
        marginal_cost: `c`, money per unit.
        n_prices: `m`, prices evenly spaced from the Nash price minus `grid_extension` times the
            monopoly-Nash span to the monopoly price plus it, for a market of the graph's most common size.
        discount: the firms' discount per period (Calvano's delta).
        review_every: periods between two reviews of the authority's offers (a review period).
        observed_periods: the last periods of each review period whose public record the authority
            sees (its survey of the market).
        max_periods: periods after which a run to convergence stops even if some sessions have not converged.
    """

    quality: float = 2.0
    outside_quality: float = 0.0
    mu: float = 0.25
    marginal_cost: float = 1.0
    n_prices: int = 15
    grid_extension: float = 0.1
    discount: float = 0.95
    review_every: int = 10_000
    observed_periods: int = 100
    max_periods: int = 4_000_000

    def __post_init__(self):
        LogitDemand(self.quality, self.outside_quality, self.mu)  # checks them
        check_number("marginal_cost", self.marginal_cost)
        check_int("n_prices", self.n_prices, low=2, high=2**15 - 1)
        check_number("grid_extension", self.grid_extension, low=0.0)
        check_number("discount", self.discount, low=0.0)
        if self.discount >= 1.0:
            raise ValueError(f"discount: must be < 1, got {self.discount}")
        check_int("review_every", self.review_every, low=1)
        check_int("observed_periods", self.observed_periods, low=1, high=self.review_every)
        check_int("max_periods", self.max_periods, low=1)

    @property
    def demand(self):
        return LogitDemand(self.quality, self.outside_quality, self.mu)


class PricingEnv(NetworkEnv):
    """Pricing firms on the nodes of a graph, each in the logit market of itself and its neighbours.

    Attributes:
        params, demand: the `PricingParams` and their `LogitDemand`.
        grid: the price of each action `(m,)`; `rivals (N,)` each firm's number of neighbours and
            `market_size (N,)` the firms in its market.
        sessions: each firm's connected component `(N,)` (an independent market on `cliques`);
            `n_sessions` of them.
        discount, review_every, observed_periods, max_periods: the market's clock.
        quantities: what each firm sold in the last period `(N,)`.
    """

    name = "pricing"
    subsidised_action = 0  # the lowest price
    principal_knows_model = False
    mechanisms = {"two_phase": MarketAuthority}  # the two-phase mechanism of a market authority
    default_learner = "calvano_q"
    size_fields = ("n_prices", "n_prices", "review_every")  # what sets the states, actions and steps

    def __init__(self, topology, params=None):
        self.params = p = params or PricingParams()
        m = p.n_prices
        super().__init__(topology, m * m, m, 1)
        self.demand = p.demand
        self.discount, self.review_every = p.discount, p.review_every
        self.observed_periods, self.max_periods = p.observed_periods, p.max_periods
        self.rivals = topology.degree.astype(np.int64)
        self.market_size = self.rivals + 1
        self.grid_firms = int(np.bincount(self.market_size).argmax())
        self.grid = self.demand.price_grid(p.marginal_cost, self.grid_firms, m, p.grid_extension)
        self.weights = self.demand.relative_weights(self.grid)
        self.markups = self.grid - p.marginal_cost
        self.indptr = topology.adjacency.indptr.astype(np.int64)
        self.indices = topology.adjacency.indices.astype(np.int64)
        self.n_sessions, self.sessions = connected_components(topology.adjacency, directed=False)
        self.sessions = self.sessions.astype(np.int64)
        self.everyone = np.arange(self.n_agents)
        self.pairs = self.tabulate_pairs()
        self.quantities = np.zeros(self.n_agents)
        self.action_names = [f"p={price:.3f}" for price in self.grid]
        self.state_names = [f"own {self.grid[s // m]:.3f}, rivals {self.grid[s % m]:.3f}" for s in range(m * m)]
        sizes = range(1, self.market_size.max() + 1)
        nash, monopoly = zip(*(self.demand.benchmark_profits(p.marginal_cost, k) for k in sizes))
        self.nash_profit, self.monopoly_profit = np.array(nash)[self.rivals], np.array(monopoly)[self.rivals]

    # --- the market ---------------------------------------------------------------------------
    def market(self):
        """The arrays the compiled market kernels take, in their order."""
        return (self.indptr, self.indices, self.weights, self.markups, self.demand.mu, self.n_actions, self.pairs)

    def tabulate_pairs(self):
        """The period of a firm with one rival at every pair of prices, `(m * m, 3)` rows of (profit,
        surplus share, quantity) indexed by `own * m + rival` (also its next state), from `firm_outcome`
        itself, so a lookup gives exactly what the computation would."""
        m = self.n_actions
        own, rival = np.divmod(np.arange(m * m), m)
        prices = np.stack([own, rival], axis=1).ravel()
        firms = np.arange(0, 2 * m * m, 2)
        indptr = np.arange(2 * m * m + 1)
        indices = np.arange(2 * m * m) ^ 1  # firm 2k and 2k + 1 are each other's rival
        out = [np.zeros(2 * m * m, np.int64), np.zeros(2 * m * m), np.zeros(2 * m * m), np.zeros(2 * m * m)]
        market_period(firms, prices, indptr, indices, self.weights, self.markups, self.demand.mu, m, NO_PAIRS, *out)
        return np.stack([part[firms] for part in out[1:]], axis=1)

    def initial_states(self, uniforms):
        """Prices drawn uniformly from the grid; each state encodes the prices so drawn."""
        prices = np.minimum((uniforms * self.n_actions).astype(np.int64), self.n_actions - 1)
        return self.dynamics(None, prices, uniforms)[0]

    def step(self, actions, rng):
        """One period at prices `actions (N,)`: deterministic, so no draws are taken."""
        n = self.n_agents
        next_states, profits, surplus = np.empty(n, np.int64), np.empty(n), np.empty(n)
        self.quantities = np.empty(self.n_agents)
        market_period(self.everyone, actions, *self.market(), next_states, profits, surplus, self.quantities)
        self.states = next_states
        return next_states, profits, surplus

    def dynamics(self, states, actions, uniforms):
        """One period for prices `actions (N, ...)`, trailing axes independent worlds; the outcome does
        not depend on the last states (they are last period's prices)."""
        worlds = np.ascontiguousarray(actions.reshape(self.n_agents, -1).T)
        out = [np.empty(worlds.shape, np.int64), np.empty(worlds.shape), np.empty(worlds.shape)]
        quantities = np.empty(self.n_agents)
        for w in range(worlds.shape[0]):
            market_period(self.everyone, worlds[w], *self.market(), out[0][w], out[1][w], out[2][w], quantities)
        return tuple(part.T.reshape(actions.shape) for part in out)

    def public_observations(self):
        """The quantities each firm sold in the last period, which the authority observes."""
        return {"quantities": self.quantities}

    # --- what the principal and the learners know ------------------------------------------------
    def payoff_range(self):
        """A firm's profit per period lies between 0 and its markup at the highest price (it sells at
        most the whole market): a public bound from the grid and the cost."""
        return 0.0, float(self.markups.max())

    def public_knowledge(self):
        """The authority knows the marginal cost, the price grid, how each state encodes its own and its
        neighbours' last prices (grid indices `(S, 2)`), and the market map: each firm's number of rivals."""
        states = np.arange(self.n_states)
        return {"marginal_cost": self.params.marginal_cost, "prices": self.grid,
                "state_prices": np.stack([states // self.n_actions, states % self.n_actions], axis=1),
                "rivals": self.rivals}

    def learner_priors(self):
        """Calvano's prior: each firm's expected profit per period of each price `(A, N)` against rivals
        pricing uniformly at random on the grid."""
        by_rivals = {d: self.profit_against_uniform_rivals(d) for d in np.unique(self.rivals)}
        return {"prior_payoff": np.stack([by_rivals[d] for d in self.rivals], axis=1)}

    def profit_against_uniform_rivals(self, n_rivals):
        """Expected profit `(m,)` of each own price against `n_rivals` rivals with uniformly random
        grid prices: exact (over every multiset of rival prices, with its multinomial weight) while
        there are at most `EXACT_PRIOR_PROFILES` of them, else a fixed sample of `PRIOR_SAMPLES` profiles."""
        m = self.n_actions
        if n_rivals == 0:
            totals, probs = np.zeros(1), np.ones(1)
        elif math.comb(m + n_rivals - 1, n_rivals) <= EXACT_PRIOR_PROFILES:
            profiles = np.array(list(itertools.combinations_with_replacement(range(m), int(n_rivals))))
            counts = np.stack([(profiles == k).sum(axis=1) for k in range(m)], axis=1)
            ways = math.factorial(n_rivals) / np.prod([[math.factorial(c) for c in row] for row in counts], axis=1)
            totals, probs = self.weights[profiles].sum(axis=1), ways / m**n_rivals
        else:
            profiles = np.random.default_rng(int(n_rivals)).integers(0, m, (PRIOR_SAMPLES, int(n_rivals)))
            totals, probs = self.weights[profiles].sum(axis=1), np.full(PRIOR_SAMPLES, 1.0 / PRIOR_SAMPLES)
        shares = self.weights[:, None] / (1.0 + self.weights[:, None] + totals[None, :])
        return (self.markups[:, None] * shares) @ probs

    # --- benchmarks and figures -------------------------------------------------------------------
    def welfare_benchmarks(self, rng):
        """The optimum: the best uniform grid price (every firm charging it), welfare per firm per
        period. Laissez-faire is what the learners reach without offers, measured by the model."""
        welfare = [self.outcome_at(np.full(self.n_agents, k)) for k in range(self.n_actions)]
        best = int(np.argmax(welfare))
        return {"optimal_welfare": float(welfare[best]), "laissez_faire_welfare": np.nan,
                "benchmark": "best_uniform_price", "optimal_price": float(self.grid[best])}

    def outcome_at(self, prices):
        """Welfare per firm per period when the firms charge the grid prices `prices (N,)`."""
        _, profits, surplus = self.dynamics(None, prices, None)
        return float(profits.mean() + surplus.mean())

    def review_figures(self, totals):
        """A review period's market figures from its `ReviewTotals`, all per period: the mean price,
        profit per firm, Calvano's profit gain, and the consumer surplus of a firm's market."""
        profit = totals.per_agent_period(totals.private)
        return {
            "mean_price": float(totals.action_shares @ self.grid),
            "profit": profit,
            "profit_gain": self.profit_gain(profit),
            "consumer_surplus": totals.per_agent_period(totals.external * self.market_size),
        }

    def profit_gain(self, profit, firms=None):
        """Calvano's `(profit - pi_N) / (pi_M - pi_N)` for the mean profit of `firms` (default all),
        with the Nash and monopoly profits of each firm's market size."""
        firms = slice(None) if firms is None else firms
        nash, monopoly = self.nash_profit[firms].mean(), self.monopoly_profit[firms].mean()
        return float((profit - nash) / (monopoly - nash))

    def profit_gain_by(self, totals, labels):
        """Profit gain over a review period's totals of the firms sharing each label `(N,)` (a session,
        a number of rivals): a frame with the label, its firms and their profit gain."""
        rows = []
        for label in np.unique(labels):
            firms = labels == label
            profit = totals.per_agent_period(totals.private[firms])
            rows.append((label, int(firms.sum()), self.profit_gain(profit, firms)))
        return pd.DataFrame(rows, columns=["label", "firms", "profit_gain"])

    def summary_extras(self, steps):
        """The benchmarks of the default market size: Nash and monopoly prices and profits."""
        cost, k = self.params.marginal_cost, self.grid_firms
        return {"nash_price": self.demand.nash_price(cost, k), "monopoly_price": self.demand.monopoly_price(cost, k),
                "nash_profit": float(self.nash_profit.mean()), "monopoly_profit": float(self.monopoly_profit.mean()),
                "price_grid": self.grid.tolist(), "sessions": self.n_sessions, "firms_per_market": k}

    def local_mdp(self):
        return None

    def node_values(self, states, actions):
        """The market map colours each firm by the price it charged last."""
        return actions, "price", self.action_names


NO_PAIRS = np.zeros((0, 3))  # no table: every firm's period is computed


@inlined
def firm_outcome(i, actions, indptr, indices, weights, markups, mu, n_prices):
    """Firm `i`'s period at prices `actions (N,)` (grid indices): its next state, its profit, its
    share of its market's consumer surplus and the quantity it sold."""
    own = actions[i]
    start, end = indptr[i], indptr[i + 1]
    rival_weight, index_sum = 0.0, 0
    for k in range(start, end):
        rival_weight += weights[actions[indices[k]]]
        index_sum += actions[indices[k]]
    rivals = end - start
    denominator = 1.0 + weights[own] + rival_weight
    sold = weights[own] / denominator
    neighbours = own if rivals == 0 else (2 * index_sum + rivals) // (2 * rivals)
    return own * n_prices + neighbours, markups[own] * sold, mu * math.log(denominator) / (rivals + 1), sold


@inlined
def pair_outcome(own, rival, pairs, n_prices):
    """`firm_outcome` of a firm with one rival, looked up in `pairs` (`PricingEnv.tabulate_pairs`)."""
    row = own * n_prices + rival
    return row, pairs[row, 0], pairs[row, 1], pairs[row, 2]


@compiled
def market_period(firms, actions, indptr, indices, weights, markups, mu, n_prices, pairs, next_states, profits,
                  surplus, quantities):
    """The period of every firm in `firms`, into `next_states`, `profits`, `surplus` and `quantities`
    `(N,)`: looked up for a firm with one rival when the `pairs` table is given, else computed."""
    for i in firms:
        if indptr[i + 1] - indptr[i] == 1 and pairs.shape[0] > 0:
            outcome = pair_outcome(actions[i], actions[indices[indptr[i]]], pairs, n_prices)
        else:
            outcome = firm_outcome(i, actions, indptr, indices, weights, markups, mu, n_prices)
        next_states[i], profits[i], surplus[i], quantities[i] = outcome
