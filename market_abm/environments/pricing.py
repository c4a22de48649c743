"""Algorithmic pricing: Q-learning firms learn to collude; a market authority's rebates correct them.

Calvano, Calzolari, Denicolo and Pastorello (2020, AER). `n_firms` firms sell differentiated
products in one market with logit demand; each period every firm picks a price from a grid and
earns `(p - c) * q` (money per period, market of size 1). Each firm is a Q-learner whose state is
last period's prices, so today's price is tomorrow's state for rivals (a stateful externality),
and consumers lose surplus when prices are high. Sessions are independent markets, simulated
together: every array is indexed by session (and firm), and one period is a few numpy calls for
the whole batch. A market on a graph of independent markets is one more session.

The market authority maximises total surplus `W = consumer surplus + profits` (transfers cancel).
Its transfers are per-sale rebates `tau[s, p]` posted per (state, own price) cell and paid on
every unit sold, so a firm earns `(p - c + tau[s, p]) * q`. The scheme used here rebates the
target price in every state: the welfare-maximising grid price (`target="welfare"`) or the grid
price nearest the one-shot Nash price (`target="competitive"`).

Two-phase mechanism (the authority does not know demand or costs):
- Phase 1, batched search. A learner needs ~10^6 periods to converge, so instead of a sequential
  bisection each round runs `search_levels x search_replicates` sessions at once, each posting
  one rebate level. A session accepts when its converged (limit-cycle) play has the firms at the
  target price in a majority of firm-periods; a level is accepted when a share `accept_share` of
  its sessions, pooled over rounds, accept. Round 1 spreads levels over `(0, tau_max]`, with `tau_max` the price span
  of the grid (it makes the target a dominant, joint-profit-raising price); each later round
  spreads levels over the bracket between the highest refused and the lowest accepted level,
  whose upper end is retested as a confirmation. The estimate is the lowest level above which
  every tested level was accepted.
- Phase 2, steer. Fresh sessions learn with `estimate * (1 + rebate_margin)` posted on the
  target cells.
`oracle` posts the rebate computed from the known demand (see `oracle_rebate`) plus `ORACLE_EPS`. The laissez-faire
counterfactual runs in the same batch as the first search round, with the same per-session
random streams as `mechanism="none"`, so both runs report the same laissez-faire welfare.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from tqdm.auto import tqdm

from market_abm.metrics import regret_slope
from market_abm.core.validation import check_choice, check_int, check_number

MECHANISMS = ("none", "two_phase", "oracle")
TARGETS = ("welfare", "competitive")
STREAMS = {"laissez_faire": 0, "search": 1, "steer": 2}
MAX_TABLE_BYTES = 2e9
ORACLE_EPS = 1e-3  # money per unit sold, added to the oracle rebate


@dataclass(frozen=True)
class PricingParams:
    """Economy, learners and authority of the pricing scenario (Calvano et al. baseline by default).

    Economy: `n_firms` firms, product `quality` a_i, `outside_quality` a_0, horizontal
    differentiation `mu`, `marginal_cost` c (money per unit); `n_prices` prices evenly spaced from
    the Nash price minus `grid_extension` times the monopoly-Nash span to the monopoly price plus it.
    Learners: `discount` delta, `learning_rate` alpha, exploration `exp(-exploration_decay * t)`;
    a session stops once every greedy policy has been unchanged for `convergence_periods`
    periods (checked every `check_every` periods), or at `max_periods`.
    Authority: `target` price, search grid `search_levels x search_replicates` over
    `search_rounds` rounds, acceptance majority `accept_share`, posted margin `rebate_margin`.
    """

    n_firms: int = 2
    quality: float = 2.0
    outside_quality: float = 0.0
    mu: float = 0.25
    marginal_cost: float = 1.0
    n_prices: int = 15
    grid_extension: float = 0.1
    discount: float = 0.95
    learning_rate: float = 0.15
    exploration_decay: float = 4e-6
    convergence_periods: int = 100_000
    max_periods: int = 2_500_000
    check_every: int = 1_000
    record_every: int = 10_000
    target: str = "welfare"
    search_levels: int = 6
    search_replicates: int = 6
    search_rounds: int = 2
    accept_share: float = 0.75
    rebate_margin: float = 0.25

    def __post_init__(self):
        check_int("n_firms", self.n_firms, low=2, high=6)
        for name in ("quality", "outside_quality"):
            check_number(name, getattr(self, name))
        check_number("mu", self.mu, low=0.0, low_open=True)
        check_number("marginal_cost", self.marginal_cost)
        check_int("n_prices", self.n_prices, low=2)
        check_number("grid_extension", self.grid_extension, low=0.0)
        check_number("discount", self.discount, low=0.0, high=1.0)
        if self.discount >= 1.0:
            raise ValueError(f"discount: must be < 1, got {self.discount}")
        check_number("learning_rate", self.learning_rate, low=0.0, high=1.0, low_open=True)
        check_number("exploration_decay", self.exploration_decay, low=0.0, low_open=True)
        check_int("convergence_periods", self.convergence_periods, low=1)
        check_int("max_periods", self.max_periods, low=1)
        check_int("check_every", self.check_every, low=1)
        check_int("record_every", self.record_every, low=1)
        if self.record_every % self.check_every:
            raise ValueError(f"record_every: must be a multiple of check_every={self.check_every}")
        check_choice("target", self.target, TARGETS)
        check_int("search_levels", self.search_levels, low=1)
        check_int("search_replicates", self.search_replicates, low=1)
        check_int("search_rounds", self.search_rounds, low=1)
        check_number("accept_share", self.accept_share, low=0.0, high=1.0, low_open=True)
        check_number("rebate_margin", self.rebate_margin, low=0.0)
        if 8.0 * self.n_prices ** (self.n_firms + 1) * self.n_firms > MAX_TABLE_BYTES:
            raise ValueError(f"n_firms: Q-tables of n_prices**(n_firms+1) entries exceed {MAX_TABLE_BYTES:.0e} bytes")

    @property
    def n_states(self):
        """Number of states (= joint price profiles) `n_prices ** n_firms`."""
        return self.n_prices**self.n_firms


# --- economics -------------------------------------------------------------------------------


def logit_demand(prices, params):
    """Market shares `q_i = e_i / (sum_j e_j + e_0)`, `e_i = exp((a_i - p_i) / mu)`; prices `(..., n)`."""
    prices = np.asarray(prices, dtype=float)
    utility = (params.quality - prices) / params.mu
    outside = params.outside_quality / params.mu
    top = np.maximum(utility.max(axis=-1, keepdims=True), outside)
    weights = np.exp(utility - top)
    return weights / (weights.sum(axis=-1, keepdims=True) + np.exp(outside - top))


def firm_profits(prices, params):
    """Per-period profits `(p_i - c) * q_i`, shape `(..., n)` (money per period)."""
    prices = np.asarray(prices, dtype=float)
    return (prices - params.marginal_cost) * logit_demand(prices, params)


def consumer_surplus(prices, params):
    """Logit consumer surplus `mu * log(sum_j e_j + e_0) - a_0`, zero when every product is priced out."""
    prices = np.asarray(prices, dtype=float)
    utility = np.concatenate([(params.quality - prices) / params.mu,
                              np.full(prices.shape[:-1] + (1,), params.outside_quality / params.mu)], axis=-1)
    top = utility.max(axis=-1)
    log_sum = top + np.log(np.exp(utility - top[..., None]).sum(axis=-1))
    return params.mu * log_sum - params.outside_quality


def total_surplus(prices, params):
    """Welfare `W = consumer surplus + sum of profits` per period; transfers cancel."""
    return consumer_surplus(prices, params) + firm_profits(prices, params).sum(axis=-1)


def symmetric(price, params):
    """The price profile where all `n_firms` firms charge `price`."""
    return np.full(params.n_firms, float(price))


def nash_price(params):
    """Symmetric one-shot Nash price: solves the FOC `p - c = mu / (1 - q_i)`."""
    return solve_markup(params, lambda q: params.mu / (1.0 - q))


def monopoly_price(params):
    """Symmetric joint-profit-maximising price: solves the FOC `p - c = mu / (1 - n q_i)`."""
    return solve_markup(params, lambda q: params.mu / (1.0 - params.n_firms * q))


def solve_markup(params, markup):
    """Symmetric price solving `p - c = markup(q_i(p))` by Brent's method."""
    def gap(p):
        return p - params.marginal_cost - markup(logit_demand(symmetric(p, params), params)[0])
    low = params.marginal_cost + 1e-12
    return float(brentq(gap, low, low + 50.0 * params.mu + 10.0, xtol=1e-14, rtol=1e-14))


def price_grid(params):
    """`n_prices` prices from `p_N - xi (p_M - p_N)` to `p_M + xi (p_M - p_N)` (money per unit)."""
    p_nash, p_monopoly = nash_price(params), monopoly_price(params)
    span = params.grid_extension * (p_monopoly - p_nash)
    return np.linspace(p_nash - span, p_monopoly + span, params.n_prices)


def benchmark_profits(params):
    """Per-firm profits at the symmetric Nash and monopoly prices (the profit-gain benchmarks)."""
    nash = firm_profits(symmetric(nash_price(params), params), params)[0]
    monopoly = firm_profits(symmetric(monopoly_price(params), params), params)[0]
    return float(nash), float(monopoly)


def profit_gain(profit, params):
    """Calvano's `Delta = (profit - pi_N) / (pi_M - pi_N)` for mean per-firm profits."""
    nash, monopoly = benchmark_profits(params)
    return (np.asarray(profit) - nash) / (monopoly - nash)


@dataclass(frozen=True)
class MarketTables:
    """Outcomes of every joint price profile; a profile index is also the next period's state.

    Attributes: `grid (m,)`, `actions (J, n)` price indices, `prices`, `shares`, `profits (J, n)`,
    `consumer_surplus`, `welfare (J,)`, `target` index of the target price, `optimal_welfare`.
    """

    grid: np.ndarray
    actions: np.ndarray
    prices: np.ndarray
    shares: np.ndarray
    profits: np.ndarray
    consumer_surplus: np.ndarray
    welfare: np.ndarray
    target: int
    optimal_welfare: float

    @classmethod
    def build(cls, params):
        grid = price_grid(params)
        m, n = params.n_prices, params.n_firms
        actions = np.stack(np.unravel_index(np.arange(m**n), (m,) * n), axis=-1)
        prices = grid[actions]
        welfare = total_surplus(prices, params)
        return cls(grid, actions, prices, logit_demand(prices, params), firm_profits(prices, params),
                   consumer_surplus(prices, params), welfare, target_index(grid, params), float(welfare.max()))


def target_index(grid, params):
    """Grid index of the authority's target price: welfare-maximising (lowest above cost) or nearest Nash."""
    if params.target == "competitive":
        return int(np.abs(grid - nash_price(params)).argmin())
    symmetric_welfare = [total_surplus(symmetric(p, params), params) for p in grid]
    return int(np.argmax(symmetric_welfare))


# --- Q-learning sessions -------------------------------------------------------------------------


def initial_q(tables, params):
    """Calvano's initial Q `(n, m)`: discounted payoff of each own price against uniformly random rivals."""
    m, n = params.n_prices, params.n_firms
    q0 = np.empty((n, m))
    for firm in range(n):
        q0[firm] = np.bincount(tables.actions[:, firm], weights=tables.profits[:, firm], minlength=m)
    return q0 / (m ** (n - 1) * (1.0 - params.discount))


def session_generators(seed_sequence, stream, count, round_=0):
    """One independent numpy Generator per session of a stream, keyed by (stream, round, session)."""
    return [np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        seed_sequence.entropy, spawn_key=(STREAMS[stream], round_, k)))) for k in range(count)]


class SessionBatch:
    """Independent pricing sessions learning together, one numpy call per step for all of them.

    Attributes: `q (S*n*J, m)` Q-values (row = session, firm, state), `greedy (S*n*J,)` greedy
    price indices, `state (S,)` last joint profile, `last_change (S,)` period of the last greedy
    change, `stopped_at (S,)` period the session converged (or -1), `rebates (S, J, m)` per-sale
    rebates per (state, own price) cell, `recorded (S,)` sessions whose play enters the steps record.
    """

    def __init__(self, params, tables, rebates, generators, recorded=None):
        self.params, self.tables, self.generators = params, tables, generators
        n, m, n_states = params.n_firms, params.n_prices, params.n_states
        self.size = len(generators)
        self.rebates = np.asarray(rebates, dtype=float).reshape(self.size, n_states, m)
        self.has_rebates = bool(np.any(self.rebates))
        # rebates aligned with the rows of `q` and flattened, or None without rebates
        self.row_rebates = np.repeat(self.rebates[:, None], n, axis=1).reshape(-1) if self.has_rebates else None
        self.q = np.tile(initial_q(tables, params)[:, None, :], (self.size, n_states, 1)).reshape(-1, m)
        self.greedy = self.q.argmax(axis=1)
        self.session_of_row = np.repeat(np.arange(self.size), n)
        self.row_base = np.arange(self.size * n) * n_states
        self.state = np.zeros(self.size, dtype=np.intp)
        self.last_change = np.full(self.size, -1)
        self.stopped_at = np.full(self.size, -1)
        self.recorded = np.ones(self.size, bool) if recorded is None else np.asarray(recorded, bool)
        self.period = 0

    @property
    def active(self):
        """Sessions still learning (not converged)."""
        return self.stopped_at < 0

    def run(self, phase, round_=0, progress=True):
        """Learn until every session converged or `max_periods`; returns the steps record (DataFrame)."""
        records, block = [], BlockTotals()
        bar = tqdm(total=self.params.max_periods, desc=phase, unit="period", disable=not progress,
                   unit_scale=True, leave=False)
        while self.active.any() and self.period < self.params.max_periods:
            start = self.period
            joint, changed, states = self.learn_chunk(min(self.params.check_every, self.params.max_periods - start))
            block.add(self.chunk_outcomes(joint, states), self.exploration(self.period - 1))
            self.check_convergence(changed, start)
            block.converged = float(1.0 - self.active[self.recorded].mean()) if self.recorded.any() else np.nan
            done = not self.active.any() or self.period >= self.params.max_periods
            if done or self.period % self.params.record_every == 0:
                records.append(block.record(self.period, phase, round_))
                block = BlockTotals()
            bar.update(self.period - start)
        bar.close()
        return pd.DataFrame.from_records(records)

    def exploration(self, period):
        """Exploration probability `exp(-beta t)` at period `t` (0-based)."""
        return np.exp(-self.params.exploration_decay * np.asarray(period, dtype=float))

    def explore_actions(self, length):
        """Random price indices where a firm explores this chunk, -1 where it plays greedy `(T, S*n)`."""
        n, m = self.params.n_firms, self.params.n_prices
        uniforms = np.stack([g.random((length, n)) for g in self.generators], axis=1)
        eps = np.maximum(self.exploration(self.period + np.arange(length)), 1e-300)[:, None, None]
        explore = (uniforms < eps) & self.active[None, :, None]
        random_price = np.minimum((uniforms / eps * m).astype(np.intp), m - 1)
        return np.where(explore, random_price, -1).reshape(length, -1)

    def learn_chunk(self, length):
        """`length` periods of play and Q-learning; returns joint profiles, greedy changes and states."""
        p, tables = self.params, self.tables
        m, n, size = p.n_prices, p.n_firms, self.size
        explore = self.explore_actions(length)
        rate = p.learning_rate * np.repeat(self.active, n).astype(float)
        place = (m ** np.arange(n - 1, -1, -1)).astype(np.intp)
        q, q_flat, greedy, sess, base = self.q, self.q.reshape(-1), self.greedy, self.session_of_row, self.row_base
        profits, shares, rebates = tables.profits, tables.shares, self.row_rebates
        joint_log = np.empty((length, size), dtype=np.intp)
        changed_log = np.empty((length, size * n), dtype=bool)
        states = np.empty((length, size), dtype=np.intp)
        states[0] = self.state
        rows = base + self.state[sess]
        for t in range(length):
            old = greedy[rows]
            action = np.where(explore[t] >= 0, explore[t], old)
            cell = rows * m + action
            joint = action.reshape(size, n) @ place
            payoff = profits[joint].reshape(-1)
            if rebates is not None:
                payoff += rebates[cell] * shares[joint].reshape(-1)
            next_rows = base + joint[sess]
            payoff += p.discount * q_flat[next_rows * m + greedy[next_rows]]
            value = q_flat[cell]
            q_flat[cell] = value + rate * (payoff - value)
            new = np.take(q, rows, axis=0).argmax(axis=1)
            changed_log[t] = new != old
            greedy[rows] = new
            joint_log[t] = joint
            rows = next_rows
        states[1:] = joint_log[:-1]
        self.state = joint_log[-1].copy()
        self.period += length
        return joint_log, changed_log, states

    def check_convergence(self, changed, start):
        """Stop sessions whose greedy policies have not changed for `convergence_periods` periods."""
        length = changed.shape[0]
        any_change = changed.reshape(length, self.size, -1).any(axis=2)
        last = length - 1 - any_change[::-1].argmax(axis=0)
        self.last_change = np.where(any_change.any(axis=0), start + last, self.last_change)
        stable = self.period - 1 - self.last_change
        newly = self.active & (stable >= self.params.convergence_periods)
        self.stopped_at[newly] = self.period

    def transfers(self, states, joint):
        """Per-sale rebates paid to all firms of each session, `(..., S)` (money per period)."""
        own_price = self.tables.actions[joint]
        session = np.arange(self.size)[:, None]
        rate = self.rebates[session, states[..., None], own_price]
        return (rate * self.tables.shares[joint]).sum(axis=-1)

    def chunk_outcomes(self, joint, states):
        """Per-period, per-session prices, profits, consumer surplus, welfare and transfers of a chunk."""
        keep = self.recorded
        t = self.tables
        return {
            "price": t.prices[joint].mean(axis=-1)[:, keep],
            "profit": t.profits[joint].mean(axis=-1)[:, keep],
            "consumer_surplus": t.consumer_surplus[joint][:, keep],
            "welfare": t.welfare[joint][:, keep],
            "transfers": self.transfers(states, joint)[:, keep] if self.has_rebates else np.zeros((len(joint), keep.sum())),
        }

    def greedy_profile(self, state):
        """Joint profile each session plays from `state (S,)` with greedy prices and no exploration."""
        action = self.greedy[self.row_base + state[self.session_of_row]]
        return action.reshape(self.size, -1) @ (self.params.n_prices ** np.arange(self.params.n_firms - 1, -1, -1))

    def limit_cycle(self):
        """Mean outcomes `(S,)` over the cycle that greedy play enters from the final state."""
        state = self.state.copy()
        for _ in range(self.params.n_states):
            state = self.greedy_profile(state)
        start, open_ = state.copy(), np.ones(self.size, bool)
        sums = dict.fromkeys(("price", "profit", "consumer_surplus", "welfare", "transfers", "at_target"), 0.0)
        length = np.zeros(self.size)
        for _ in range(self.params.n_states):
            joint = self.greedy_profile(state)
            for key, value in self.profile_outcomes(state, joint).items():
                sums[key] = sums[key] + np.where(open_, value, 0.0)
            length += open_
            state = joint
            open_ &= state != start
            if not open_.any():
                break
        out = {key: value / length for key, value in sums.items()}
        out["cycle_length"] = length
        return out

    def profile_outcomes(self, states, joint):
        """Outcomes of one period per session, given last states and chosen profiles `(S,)`."""
        t = self.tables
        return {
            "price": t.prices[joint].mean(axis=-1),
            "profit": t.profits[joint].mean(axis=-1),
            "consumer_surplus": t.consumer_surplus[joint],
            "welfare": t.welfare[joint],
            "transfers": self.transfers(states[None], joint[None])[0],
            "at_target": (t.actions[joint] == t.target).mean(axis=-1),
        }

    def outcomes(self):
        """Per-session converged outcomes (DataFrame): limit-cycle means, profit gain, stopping period."""
        frame = pd.DataFrame(self.limit_cycle())
        frame["profit_gain"] = profit_gain(frame["profit"], self.params)
        frame["converged"] = self.stopped_at >= 0
        frame["stopped_at"] = np.where(frame["converged"], self.stopped_at, self.period)
        frame["rebate"] = self.rebates[:, :, self.tables.target].max(axis=1)
        return frame


class BlockTotals:
    """Running sums of per-period outcomes over a block of periods for the steps record."""

    def __init__(self):
        self.sums, self.periods, self.session_means = {}, 0, None
        self.exploration, self.converged = np.nan, np.nan

    def add(self, outcomes, exploration):
        """Add a chunk's per-period, per-session outcomes `(T, S)` (means over sessions are summed)."""
        for key, value in outcomes.items():
            self.sums[key] = self.sums.get(key, 0.0) + value.mean(axis=1).sum()
        self.periods += len(outcomes["price"])
        prices = outcomes["price"].sum(axis=0)
        self.session_means = prices if self.session_means is None else self.session_means + prices
        self.exploration = float(exploration)

    def record(self, period, phase, round_):
        """One steps row: block means per period per market, and the 10-90% range of session prices."""
        row = {"period": period, "phase": phase, "round": round_, "block_periods": self.periods}
        row.update({key: value / self.periods for key, value in self.sums.items()})
        per_session = self.session_means / self.periods
        row["price_q10"], row["price_q90"] = np.quantile(per_session, [0.1, 0.9]) if per_session.size else (np.nan, np.nan)
        row["exploration"], row["converged_share"] = self.exploration, self.converged
        return row


# --- the market authority -------------------------------------------------------------------------


def target_rebates(level, tables, params):
    """Per-sale rebate `level` on the target price in every state, zero elsewhere, shape `(J, m)`."""
    rebates = np.zeros((params.n_states, params.n_prices))
    rebates[:, tables.target] = level
    return rebates


def oracle_rebate(tables, params):
    """Per-sale rebate computed from the known demand: the smallest that makes the target price a
    strict best reply to any rival prices and pays each firm, at the all-target profile, its share
    of the grid's maximal joint profit (the compensation for giving up collusion)."""
    profit, share = own_by_rivals(tables.profits[:, 0], tables, params), own_by_rivals(tables.shares[:, 0], tables, params)
    target = tables.target
    best_deviation = np.delete(profit, target, axis=0).max(axis=0)
    best_reply = np.max((best_deviation - profit[target]) / share[target])
    all_target = np.ravel_multi_index((target,) * params.n_firms, (params.n_prices,) * params.n_firms)
    collusive = tables.profits.sum(axis=1).max() / params.n_firms
    compensation = (collusive - tables.profits[all_target, 0]) / tables.shares[all_target, 0]
    return float(max(best_reply, compensation, 0.0))


def own_by_rivals(values, tables, params):
    """Firm 0's per-profile `values (J,)` as a table `(own price, rivals' profile)`; firms are symmetric."""
    m, n = params.n_prices, params.n_firms
    rivals = tables.actions[:, 1:] @ (m ** np.arange(n - 2, -1, -1))
    table = np.empty((m, m ** (n - 1)))
    table[tables.actions[:, 0], rivals] = values
    return table


def acceptance_by_level(outcomes):
    """Share of sessions (pooled over search rounds) accepting each tested rebate level, indexed by level."""
    accepts = outcomes["at_target"] > 0.5
    return accepts.groupby(outcomes["rebate"]).mean().sort_index()


def lowest_accepted(acceptance, params, fallback):
    """Lowest level above which every tested level has acceptance `>= accept_share` (or `fallback`)."""
    ok = acceptance >= params.accept_share - 1e-12
    refused = acceptance.index[~ok.to_numpy()]
    above = acceptance.index[ok.to_numpy() & (acceptance.index > (refused.max() if len(refused) else -np.inf))]
    return float(above.min()) if len(above) else fallback


# --- runs -------------------------------------------------------------------------------------------


def as_seed_sequence(rng):
    """A SeedSequence from an int seed, None, a SeedSequence or a Generator (drawn from once)."""
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(int(rng.integers(2**63)))
    if rng is not None:
        check_int("rng", rng, low=0)
    return np.random.SeedSequence(rng)


class PricingRun:
    """One run of the scenario: batches of sessions, their steps record and converged outcomes."""

    def __init__(self, params, sessions, seed_sequence, progress):
        self.params, self.sessions, self.seeds, self.progress = params, sessions, seed_sequence, progress
        self.tables = MarketTables.build(params)
        self.steps, self.search = [], []

    def batch(self, groups):
        """A SessionBatch from `(stream, round, levels, recorded)` groups of sessions."""
        gens, rebates, recorded = [], [], []
        for stream, round_, levels, record in groups:
            gens += session_generators(self.seeds, stream, len(levels), round_)
            rebates += [target_rebates(level, self.tables, self.params) for level in levels]
            recorded += [record] * len(levels)
        return SessionBatch(self.params, self.tables, np.stack(rebates), gens, recorded)

    def play(self, groups, phase, round_=0):
        """Run a batch to convergence, keep its steps record, return per-session outcomes with a `group` column."""
        batch = self.batch(groups)
        self.steps.append(batch.run(phase, round_, self.progress))
        outcomes = batch.outcomes()
        outcomes["group"] = np.repeat([g[0] for g in groups], [len(g[2]) for g in groups])
        return outcomes

    def laissez_faire(self):
        return self.play([("laissez_faire", 0, [0.0] * self.sessions, True)], "laissez_faire")

    def steer(self, level, extra=()):
        out = self.play([*extra, ("steer", 0, [level] * self.sessions, True)], "steer")
        return out[out.group == "steer"], out[out.group == "laissez_faire"]

    def two_phase(self):
        """Phase 1 batched search, then Phase 2 posting the inflated estimate; returns outcomes."""
        p, tables = self.params, self.tables
        tau_max = float(tables.grid[-1] - tables.grid[tables.target])
        low, high, trials, baseline = 0.0, tau_max, [], None
        for round_ in range(p.search_rounds):
            levels = np.linspace(low, high, p.search_levels + 1)[1:]
            groups = [("search", round_, np.repeat(levels, p.search_replicates), True)]
            if baseline is None:
                groups.insert(0, ("laissez_faire", 0, [0.0] * self.sessions, False))
            out = self.play(groups, "search", round_)
            baseline = out[out.group == "laissez_faire"] if baseline is None else baseline
            trials.append(out[out.group == "search"])
            acceptance = acceptance_by_level(pd.concat(trials))
            high = lowest_accepted(acceptance, p, fallback=tau_max)
            low = max([0.0] + [level for level in acceptance.index if level < high])
        self.search = [{"rebate": float(k), "acceptance": float(v)} for k, v in acceptance.items()]
        self.estimate = high
        final, _ = self.steer(high * (1.0 + p.rebate_margin))
        return final, baseline

    def oracle(self):
        self.estimate = oracle_rebate(self.tables, self.params)
        return self.steer(self.estimate + ORACLE_EPS, extra=[("laissez_faire", 0, [0.0] * self.sessions, False)])

    def steps_frame(self):
        """All batches' records on one timeline, with per-period regret and its cumulative sum."""
        offset, frames = 0, []
        for frame in self.steps:
            frame = frame.copy()
            frame["period"] += offset
            offset = int(frame["period"].iloc[-1])
            frames.append(frame)
        steps = pd.concat(frames, ignore_index=True)
        steps["welfare_regret"] = self.tables.optimal_welfare - steps["welfare"]
        steps["cumulative_regret"] = (steps["welfare_regret"] * steps["block_periods"]).cumsum()
        return steps


def run_pricing(mechanism="none", n_agents=2, sessions=32, rng=None, max_periods=None, progress=True, **params):
    """Simulate `sessions` independent markets of `n_agents` Q-learning firms under `mechanism`.

    Returns `(steps, summary)`: one row per recorded block of periods (mean price, per-firm profit,
    consumer surplus, welfare, rebates paid, welfare regret, all per period per market), and the
    converged outcomes (see the module docstring). The same `rng` seed gives identical output.
    """
    check_choice("mechanism", mechanism, MECHANISMS)
    sessions = check_int("sessions", sessions, low=1)
    unknown = (set(params) - {f.name for f in dataclasses.fields(PricingParams)}) | ({"n_firms"} & set(params))
    if unknown:
        raise ValueError(f"params: unknown pricing parameters {sorted(unknown)} (firms are set by n_agents)")
    if max_periods is not None:
        params["max_periods"] = max_periods
    run = PricingRun(PricingParams(n_firms=n_agents, **params), sessions, as_seed_sequence(rng), progress)
    if mechanism == "none":
        final = baseline = run.laissez_faire()
    elif mechanism == "two_phase":
        final, baseline = run.two_phase()
    else:
        final, baseline = run.oracle()
    steps = run.steps_frame()
    return steps, summarise(run, mechanism, final, baseline, steps)


def summarise(run, mechanism, final, baseline, steps):
    """The summary dict: converged outcomes, welfare comparison and mechanism diagnostics."""
    p, t = run.params, run.tables
    nash, monopoly = benchmark_profits(p)
    lf, fw = float(baseline["welfare"].mean()), float(final["welfare"].mean())
    gap = t.optimal_welfare - lf
    summary = {
        "scenario": "pricing", "mechanism": mechanism, "n_agents": p.n_firms, "sessions": run.sessions,
        "seed_entropy": int(run.seeds.entropy),
        "profit_gain": float(final["profit_gain"].mean()),
        "mean_price": float(final["price"].mean()),
        "consumer_surplus": float(final["consumer_surplus"].mean()),
        "converged_periods": float(final["stopped_at"].mean()),
        "converged_share": float(final["converged"].mean()),
        "optimal_welfare": t.optimal_welfare, "laissez_faire_welfare": lf, "final_welfare": fw,
        "gap_closed": float((fw - lf) / gap) if gap > 1e-12 else float("nan"),
        "total_welfare_regret": float(steps["cumulative_regret"].iloc[-1]),
        "transfers_per_episode": float(final["transfers"].mean()),
        "regret_slope": regret_slope(steps["cumulative_regret"], steps["period"]),
        "periods": int(steps["period"].iloc[-1]),
        "laissez_faire_profit_gain": float(baseline["profit_gain"].mean()),
        "laissez_faire_price": float(baseline["price"].mean()),
        "target_share": float(final["at_target"].mean()),
        "nash_price": nash_price(p), "monopoly_price": monopoly_price(p),
        "nash_profit": nash, "monopoly_profit": monopoly,
        "target_price": float(t.grid[t.target]), "price_grid": t.grid.tolist(),
        "session_profit_gains": final["profit_gain"].round(6).tolist(),
        "session_prices": final["price"].round(6).tolist(),
        "params": dataclasses.asdict(p),
    }
    if mechanism != "none":
        summary["rebate_estimate"] = float(run.estimate)
        summary["rebate_posted"] = float(final["rebate"].mean())
        summary["oracle_rebate"] = oracle_rebate(t, p)
        summary["search"] = run.search
    return summary
