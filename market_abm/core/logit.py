"""Logit demand for differentiated products (Calvano, Calzolari, Denicolo and Pastorello 2020).

A market has a unit mass of consumers; each buys one unit of the product `i` that gives it the
highest utility `a_i - p_i + mu * eps_i`, or the outside good (utility `a_0 + mu * eps_0`), with
i.i.d. Gumbel tastes `eps`. So firm `i` sells the share `q_i = e_i / (e_0 + sum_j e_j)`,
`e_j = exp((a_j - p_j) / mu)`, earns `(p_i - c) q_i` and consumers keep the surplus
`mu log(e_0 + sum_j e_j) - a_0`. Prices, costs and surplus are money per period; quantities are
shares of the market. The functions serve the scenario's true economy and an authority's
estimated one alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from market_abm.core.validation import check_int, check_number


@dataclass(frozen=True)
class LogitDemand:
    """Symmetric logit demand.

    Attributes:
        quality: `a`, every product's quality (money).
        outside_quality: `a_0`, the outside good's quality (money).
        mu: horizontal differentiation (money); products are perfect substitutes as `mu -> 0`.
    """

    quality: float = 2.0
    outside_quality: float = 0.0
    mu: float = 0.25

    def __post_init__(self):
        check_number("quality", self.quality)
        check_number("outside_quality", self.outside_quality)
        check_number("mu", self.mu, low=0.0, low_open=True)

    def relative_weights(self, prices):
        """`e_j / e_0 = exp((a - a_0 - p_j) / mu)` for prices of any shape."""
        return np.exp((self.quality - self.outside_quality - np.asarray(prices, dtype=float)) / self.mu)

    def shares(self, prices):
        """Market shares `(..., n)` of the `n` firms of one market, prices `(..., n)`."""
        prices = np.asarray(prices, dtype=float)
        utility = (self.quality - prices) / self.mu
        outside = self.outside_quality / self.mu
        top = np.maximum(utility.max(axis=-1, keepdims=True), outside)
        weights = np.exp(utility - top)
        return weights / (weights.sum(axis=-1, keepdims=True) + np.exp(outside - top))

    def consumer_surplus(self, prices):
        """Consumer surplus `(...)` of one market with prices `(..., n)`: zero when every product is
        priced out."""
        prices = np.asarray(prices, dtype=float)
        utility = np.concatenate([(self.quality - prices) / self.mu,
                                  np.full(prices.shape[:-1] + (1,), self.outside_quality / self.mu)], axis=-1)
        top = utility.max(axis=-1)
        log_sum = top + np.log(np.exp(utility - top[..., None]).sum(axis=-1))
        return self.mu * log_sum - self.outside_quality

    def profits(self, prices, cost):
        """Per-period profits `(p_i - c) q_i`, `(..., n)`, at marginal cost `cost`."""
        prices = np.asarray(prices, dtype=float)
        return (prices - cost) * self.shares(prices)

    def welfare(self, prices, cost):
        """Total surplus of one market, consumer surplus plus profits, `(...)`."""
        return self.consumer_surplus(prices) + self.profits(prices, cost).sum(axis=-1)

    def share_against(self, own, rivals, n_rivals):
        """A firm's share at price `own` when `n_rivals` rivals all charge `rivals` (broadcasting)."""
        own_weight, rival_weight = self.relative_weights(own), self.relative_weights(rivals)
        return own_weight / (1.0 + own_weight + np.asarray(n_rivals) * rival_weight)

    def profit_against(self, own, rivals, n_rivals, cost):
        """A firm's profit at price `own` against `n_rivals` rivals all charging `rivals` (broadcasting)."""
        return (np.asarray(own, dtype=float) - cost) * self.share_against(own, rivals, n_rivals)

    def nash_price(self, cost, n_firms):
        """Symmetric one-shot Nash price of `n_firms` firms: solves `p - c = mu / (1 - q)`."""
        return self.symmetric_price(cost, n_firms, lambda q: self.mu / (1.0 - q))

    def monopoly_price(self, cost, n_firms):
        """Symmetric joint-profit-maximising price of `n_firms` firms: solves `p - c = mu / (1 - n q)`."""
        return self.symmetric_price(cost, n_firms, lambda q: self.mu / (1.0 - n_firms * q))

    def symmetric_price(self, cost, n_firms, markup):
        """The symmetric price solving `p - c = markup(q(p))` by Brent's method."""
        n_firms = check_int("n_firms", n_firms, low=1)

        def gap(p):
            return p - cost - markup(self.share_against(p, p, n_firms - 1))

        low = cost + 1e-12
        return float(brentq(gap, low, low + 50.0 * self.mu + 10.0, xtol=1e-14, rtol=1e-14))

    def price_grid(self, cost, n_firms, n_prices, extension):
        """`n_prices` prices evenly spaced from `p_N - xi (p_M - p_N)` to `p_M + xi (p_M - p_N)`, with
        `p_N`, `p_M` the Nash and monopoly prices of `n_firms` firms and `xi = extension`."""
        nash, monopoly = self.nash_price(cost, n_firms), self.monopoly_price(cost, n_firms)
        span = extension * (monopoly - nash)
        return np.linspace(nash - span, monopoly + span, n_prices)

    def benchmark_profits(self, cost, n_firms):
        """Per-firm profits at the symmetric Nash and monopoly prices of `n_firms` firms."""
        nash, monopoly = (float(self.profit_against(p, p, n_firms - 1, cost))
                          for p in (self.nash_price(cost, n_firms), self.monopoly_price(cost, n_firms)))
        return nash, monopoly


def symmetric(price, n_firms):
    """The price profile `(n_firms,)` where every firm charges `price`."""
    return np.full(n_firms, float(price))
