"""A market authority that sees only the market: the two-phase mechanism specialised to price competition.

The authority of a pricing market does not know demand. It is built from the `PrincipalView` alone:
the price grid (the actions), how a state encodes a firm's own and its rivals' last prices, each
firm's number of rivals (the market map) and the marginal cost, which the regulator is stated to
know (`view.public`). From the public record of the periods it observes it takes each firm's price
(its action), its rivals' mean price (from the next state) and the quantity it sold (the scenario's
public observation `quantities`); it also knows what it pays. It never reads a firm's values,
greedy policy or convergence, nor the consumer surplus (the external reward): it estimates both.

- Phase 1, estimate. For `warmup` review periods it posts nothing and collects data, then fits a
  logit demand (`core.logit.LogitDemand`: the quality gap `a - a_0` and `mu`) to the mean quantity
  sold at each observed (own price, rivals' price, number of rivals), by least squares. Its target
  is the grid price that maximises its estimate of welfare (profits at the known cost plus consumer
  surplus) when every firm charges it. Its estimate of the implementable transfer is, for the
  estimated demand, the smallest per-period rebate on the target price that makes it a best reply
  to any rival price and pays at least the best symmetric (collusive) profit; it posts that with a
  relative `margin` on the target price in every state, and waits for the prices played to accept it.
- Acceptance is judged from the prices played alone: an offer is accepted in a review period when
  at least `accept_share` of the observed firm-periods are at the target price. The first
  acceptance ends Phase 1.
- Phase 2, steer. It keeps posting the rebate and keeps judging it. A refusal that does not mend
  (the share at the target below `accept_share`, and not above its share `patience` review periods
  earlier by `progress`) raises the rebate by `raise_factor`, up to the public payoff span
  (`view.payoff_span`, a rebate that makes any price dominant); refused there, it is reported as at
  the ceiling. The same rule applies while Phase 1 waits.

The rebate is the same in every state, so every transfer scheme can carry it: it is posted on each
cell of the scheme that pays for the target price. On the pricing scenario, `mechanism="two_phase"`
builds this mechanism (`PricingEnv.mechanisms`).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from market_abm.core.institution import CellEstimates, Mechanism
from market_abm.core.logit import LogitDemand
from market_abm.core.validation import check_int, check_number

REQUIRED = ("marginal_cost", "prices", "state_prices", "rivals")


class MarketAuthority(Mechanism):
    """The two-phase mechanism of a market authority in a logit pricing market (see the module).

    Parameters: `warmup` review periods of observation before the first offer; `margin` relative
    premium over the estimated rebate; `accept_share` share of observed firm-periods at the target
    that accepts an offer; a refusal whose share has not grown by `progress` over `patience` review
    periods raises the rebate by `raise_factor`.

    Attributes:
        scheme: the transfer scheme whose target-price cells carry the rebate.
        demand: the fitted `LogitDemand` (None before the first fit); `target`: the target price's
            grid index (-1 before it is chosen).
        estimate: the rebate estimated from the fitted demand; `rebate`: the rebate posted now
            (payoff per firm per period at the target price).
        shares: the share of observed firm-periods at the target in each review period since the
            first offer.
    """

    name = "two_phase"

    def __init__(self, view, scheme, warmup=1, margin=0.1, accept_share=0.6, patience=10, progress=0.02,
                 raise_factor=1.5):
        super().__init__(view)
        missing = [key for key in REQUIRED if key not in view.public]
        if missing:
            raise ValueError(f"mechanism: the market authority needs the public {missing[0]!r} of a pricing market")
        if view.horizon != 1:
            raise ValueError(f"mechanism: the market authority steers a continuing market, not {view.horizon} steps")
        self.scheme = scheme
        self.warmup = check_int("warmup", warmup, low=1)
        self.margin = check_number("margin", margin, low=0.0)
        self.accept_share = check_number("accept_share", accept_share, low=0.5, high=1.0)
        self.patience = check_int("patience", patience, low=1)
        self.progress = check_number("progress", progress, low=0.0)
        self.raise_factor = check_number("raise_factor", raise_factor, low=1.0, low_open=True)
        public = view.public
        self.cost, self.prices = float(public["marginal_cost"]), np.asarray(public["prices"], dtype=float)
        self.own_of_state, self.rival_of_state = np.asarray(public["state_prices"]).T
        self.rivals = np.asarray(public["rivals"], dtype=np.int64)
        self.ceiling = view.payoff_span
        m, top = len(self.prices), int(self.rivals.max()) + 1
        self.sold = np.zeros((top, m, m))  # quantity sold by (number of rivals, own price, rivals' price)
        self.seen = np.zeros((top, m, m))
        self.at_target = self.observed = 0
        self.demand, self.target = None, -1
        self.estimate = self.rebate = np.nan
        self.shares, self.raises, self.at_ceiling = [], 0, False
        self.phase, self.phase1_episodes, self.phase1_rebate = 1, None, np.nan

    # --- observing ----------------------------------------------------------------------------------
    def record(self, step):
        """Count each firm's quantity sold at its price and its rivals' mean price, and whether it
        charged the target price."""
        sold = step.public["quantities"]
        cells = (self.rivals, step.actions, self.rival_of_state[step.next_states])
        np.add.at(self.sold, cells, sold)
        np.add.at(self.seen, cells, 1.0)
        self.at_target += int(np.count_nonzero(step.actions == self.target))
        self.observed += step.actions.size

    # --- deciding -----------------------------------------------------------------------------------
    def end_episode(self):
        super().end_episode()
        if self.target < 0:
            if self.episode >= self.warmup and self.fit_demand():
                self.choose_target()
        else:
            self.judge(self.at_target / max(self.observed, 1))
        self.at_target = self.observed = 0
        self.post()

    def judge(self, share):
        """Accept or refuse the posted rebate on the share of observed firm-periods at the target."""
        earlier = self.shares[-self.patience:]
        self.shares.append(share)
        if share >= self.accept_share:
            if self.phase == 1:
                self.phase, self.phase1_episodes, self.phase1_rebate = 2, self.episode, self.rebate
            return
        stalled = len(earlier) == self.patience and share < earlier[0] + self.progress
        if stalled:
            if self.rebate >= self.ceiling:
                self.at_ceiling = True
            else:
                self.rebate = min(self.rebate * self.raise_factor, self.ceiling)
                self.raises += 1
                self.shares = []  # a new offer: its own record of acceptance

    def post(self):
        """The rebate on every cell of the scheme that pays for the target price."""
        amounts = np.where(self.target_cells(), self.rebate, 0.0)
        self.offers = np.broadcast_to(self.scheme.expand(amounts), self.offers.shape).copy()

    # --- estimating ---------------------------------------------------------------------------------
    def fit_demand(self):
        """Fit the logit demand to the mean quantity sold per observed cell; False while too few prices
        have been seen to identify it."""
        seen = self.seen > 0
        if np.unique(np.nonzero(seen)[1]).size < 3:
            return False
        rivals, own, other = np.nonzero(seen)
        mean_sold = self.sold[seen] / self.seen[seen]
        weight = np.sqrt(self.seen[seen])
        span = float(np.ptp(self.prices)) or 1.0

        def residuals(theta):
            demand = LogitDemand(quality=theta[0], outside_quality=0.0, mu=np.exp(theta[1]))
            return weight * (demand.share_against(self.prices[own], self.prices[other], rivals) - mean_sold)

        start = np.array([self.prices.mean(), np.log(span)])
        fit = least_squares(residuals, start, method="lm", xtol=1e-12, ftol=1e-12)
        self.demand = LogitDemand(quality=float(fit.x[0]), outside_quality=0.0, mu=float(np.exp(fit.x[1])))
        return True

    def choose_target(self):
        """The target price maximising estimated welfare, and the rebate estimated to implement it."""
        demand, prices = self.demand, self.prices
        sizes, firms = np.unique(self.rivals, return_counts=True)
        welfare = np.zeros(len(prices))
        for d, count in zip(sizes, firms):
            profit = demand.profit_against(prices, prices, d, self.cost)
            surplus = demand.mu * np.log1p((d + 1) * demand.relative_weights(prices)) / (d + 1)
            welfare += count * (profit + surplus)
        self.target = int(np.argmax(welfare))
        self.estimate = max(self.implementing_rebate(d) for d in sizes)
        self.rebate = min(self.estimate * (1.0 + self.margin), self.ceiling)

    def implementing_rebate(self, n_rivals):
        """For the fitted demand and `n_rivals` rivals charging alike: the rebate on the target that makes
        it a best reply to every rival price and pays at least the best symmetric profit."""
        prices, target = self.prices, self.target
        profit = self.demand.profit_against(prices[:, None], prices[None, :], n_rivals, self.cost)  # (own, rival)
        best_reply = float((profit.max(axis=0) - profit[target]).max())
        symmetric = np.diag(profit)
        return max(best_reply, float(symmetric.max() - symmetric[target]), 0.0)

    # --- the contract -------------------------------------------------------------------------------
    def targets(self):
        return np.full((self.n_groups, self.horizon, self.n_states), self.target)

    def target_cells(self):
        """The scheme's cells that pay for the target price `(n_cells,)` (none before it is chosen)."""
        cells = np.zeros(self.scheme.n_cells, dtype=bool)
        if self.target >= 0:
            cells[np.unique(self.scheme.cell_of[..., self.target])] = True
        return cells

    def estimates(self):
        cells = np.broadcast_to(self.target_cells(), (self.n_groups, self.scheme.n_cells))
        on_cells = lambda amount: np.where(cells, amount, np.nan)  # noqa: E731
        return CellEstimates(scheme=self.scheme, accept_share=self.accept_share, searched=cells.copy(),
                             phase1=on_cells(self.phase1_rebate), current=on_cells(self.rebate),
                             steered=cells & (self.target >= 0), at_ceiling=cells & self.at_ceiling,
                             phase1_episodes=self.phase1_episodes)

    def summary(self):
        fit = {} if self.demand is None else {"fitted_quality_gap": self.demand.quality, "fitted_mu": self.demand.mu}
        return {
            "authority": "market_authority",
            "target_price": float(self.prices[self.target]) if self.target >= 0 else None,
            "rebate_estimate": self.estimate, "rebate_posted": self.rebate, "rebate_raises": self.raises,
            "rebate_at_ceiling": self.at_ceiling, "phase1_episodes": self.phase1_episodes,
            "observed_target_share": self.shares[-1] if self.shares else None, **fit,
        }
