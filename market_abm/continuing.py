"""Continuing markets in `MarketModel`: review periods, the run's stopping rule, and many periods in
one compiled call.

A continuing market (`env.discount` set) has no episodes. Its states are drawn once, at the first
period, and never reset. The institution reviews its offers every `review_every` periods: it posts
them at the start of a review period (`post_offers()`) and learns at its end (`end_episode()`), and
it sees the public record of the last `observed_periods` periods of each one. A review period plays
the part of an episode for the data: the DataCollector collects once per review period, with its
books (`ReviewTotals`). When the learner has a convergence rule, a session (a connected component of
the graph, an independent market) whose agents have all converged stops learning, and a run to
convergence ends with one review period in which every session had stopped, the converged play
the summary measures.

Within a review period nothing outside the population needs to see each period as it happens
(the offers stand until the review ends), so where a compiled loop exists for the environment and
the learner (pricing with Calvano's learner), the model advances the whole review period in one
call: session by session, each for all of the periods, with the very stages of `step()` (the same
per-agent arithmetic, the same draws in the same order, the same books), keeping the public record
of the observed periods, which the institution is then shown period by period. The data are those
of stepping one period at a time.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from market_abm.core import StepRecord
from market_abm.core.calvano import CalvanoQ, choose_price, exploration_rate, learn_step
from market_abm.core.compiled import compiled
from market_abm.core.review import ReviewTotals
from market_abm.core.settlement import settle_step
from market_abm.core.validation import check_int
from market_abm.metrics import gap_closed
from market_abm.environments.pricing import PricingEnv, firm_outcome

DRAWS_PER_CALL = 1 << 21  # uniform draws taken at once by a compiled advance (16 MB)
SHARED_MIN = 64  # agents below which a helper thread costs more than it saves
LOCAL_VALUES = 1 << 16  # a session with at most this many action values is advanced on a gathered copy


class ContinuingMarket:
    """The continuing-market stages of `MarketModel` (a mixin: it uses the model's env, learner,
    mechanism and arrays).

    Attributes:
        period: periods completed.
        review: the books of the open review period (`ReviewTotals`); `last_review`: the last closed one.
        sessions: each agent's session `(N,)`; `session_stopped_at`: the period each session stopped
            learning (-1: still learning).
        compiled_periods: the compiled advance of this environment and learner, or None.
    """

    def setup_continuing(self):
        env, n = self.env, self.env.n_agents
        self.period, self.started = 0, False
        self.review, self.last_review = ReviewTotals(n, env.n_actions), None
        self.sessions = np.zeros(n, dtype=np.int64) if env.sessions is None else env.sessions
        self.session_stopped_at = np.full(int(self.sessions.max()) + 1, -1, dtype=np.int64)
        self.ran_to_convergence = False
        self.review_welfare = self.review_transfers = np.nan
        self.market_figures = env.review_figures(self.review)
        self.compiled_periods = CompiledPeriods.for_pair(env, self.learner)

    def continuing_reporters(self):
        reporters = {
            "review": "step_episode", "period": "period", "phase": "phase", "welfare": "review_welfare",
            "benchmark_welfare": "step_benchmark", "transfers": "review_transfers",
            "cumulative_regret": "cumulative_regret", "share_target": "target_share",
            "converged_share": "converged_share",
        }
        for a, name in enumerate(self.env.action_names):
            reporters[f"share_{name}"] = lambda m, a=a: float(m.action_shares[a])
        for key in self.market_figures:
            reporters[key] = lambda m, key=key: m.market_figures[key]
        return reporters

    @property
    def converged_share(self):
        """Share of sessions that have stopped learning by the learner's convergence rule."""
        return float(np.mean(self.session_stopped_at >= 0))

    def converged_figures(self):
        """The summary's figures of the last review period (after a run to convergence, one of converged
        play in every session that converged): welfare and the gap closed, the market's figures (mean
        price, profit gain, consumer surplus), and when sessions converged (those that did not are
        counted at the run's last period, and reported)."""
        final = self.last_review
        if final is None:
            return {}
        optimal, laissez_faire = self.benchmarks["optimal_welfare"], self.benchmarks["laissez_faire_welfare"]
        stopped = self.session_stopped_at
        out = {
            "final_welfare": final.welfare, "gap_closed": gap_closed(final.welfare, optimal, laissez_faire),
            "transfers_per_period": final.per_agent_period(final.transfers), "target_share": final.target_share,
            "converged_share": self.converged_share,
            "converged_periods": float(np.where(stopped >= 0, stopped, self.period).mean()),
            "sessions_not_converged": int((stopped < 0).sum()), "periods": self.period,
            "ran_to_convergence": self.ran_to_convergence,
        }
        out.update(self.env.review_figures(final))
        for key, value in self.benchmarks.get("laissez_faire", {}).items():
            out[f"laissez_faire_{key}"] = value
        return out

    # --- one period -------------------------------------------------------------------------------
    def step_period(self):
        """One period: the institution posts offers (at the start of a review period), agents act, the
        market clears, payoffs and transfers settle, agents learn, the institution records what it sees
        (late in the review period), converged sessions stop, and a review period may end."""
        env = self.env
        if not self.episode_open:
            self.begin_review()
        states = self.states
        self.actions = self.learner.act(0, states)
        next_states, self.private_rewards, self.external_rewards = env.step(self.actions, self.rng)
        self.settle_period(states)
        self.learner.update(0, states, self.actions, self.private_rewards, self.transfers, next_states)
        if self.review.periods > env.review_every - env.observed_periods:
            self.mechanism.record(StepRecord(0, env.groups, states, self.actions, next_states, self.external_rewards,
                                             self.transfers, env.public_observations()))
        self.states = next_states
        self.period += 1
        self.stop_converged_sessions()
        if self.review.periods == env.review_every:
            self.end_review()

    def begin_review(self):
        """Draw the first states (once: the market continues across reviews), post the institution's
        offers and let the learners read them."""
        if not self.started:
            self.states, self.started = self.env.reset(self.rng), True
        self.offers = self.mechanism.post_offers()
        self.learner.begin_episode(self.offers, self.env.groups)
        self.episode_targets = self.target_actions()
        self.period_offers = np.ascontiguousarray(self.offers[:, 0])
        self.period_targets = np.ascontiguousarray(self.episode_targets[:, 0])
        self.step_episode = self.episode
        self.episode_open = True

    def settle_period(self, states):
        """Pay the posted transfer for the price charged, and book the period in the review's totals."""
        chosen, on_target = settle_step(self.period_offers, self.period_targets, self.env.groups, states, self.actions,
                                        self.transfers, self.transfers_received)
        n = self.env.n_agents
        self.step_welfare = float(self.private_rewards.sum() + self.external_rewards.sum()) / n
        self.step_transfers = float(self.transfers.sum()) / n
        self.review.book(self.private_rewards, self.external_rewards, self.transfers, chosen, on_target)

    def stop_converged_sessions(self):
        """Sessions whose agents have all converged stop learning (the learner's convergence rule)."""
        converged = self.learner.converged()
        if converged is None:
            return
        learning = np.bincount(self.sessions, weights=~converged, minlength=self.session_stopped_at.size)
        newly = (learning == 0) & (self.session_stopped_at < 0)
        if newly.any():
            self.session_stopped_at[newly] = self.period
            self.learner.stop(newly[self.sessions])

    def end_review(self):
        """Book the review period's welfare and regret, collect its data, and let the institution learn."""
        totals = self.review
        self.review_welfare = totals.welfare
        self.review_transfers = totals.per_agent_period(totals.transfers)
        self.action_shares, self.target_share = totals.action_shares, totals.target_share
        self.market_figures = self.env.review_figures(totals)
        self.cumulative_regret += (self.optimal_welfare - self.review_welfare) * totals.periods
        self.episode_log.append((self.episode, self.review_welfare, np.nan, self.review_transfers,
                                 totals.per_agent_period(totals.private), self.cumulative_regret, np.nan,
                                 self.mechanism.phase))
        self.datacollector.collect(self)
        if self.agent_snapshot_every and (self.episode + 1) % self.agent_snapshot_every == 0:
            self.agent_snapshots.append((self.period, self.states.copy(), self.actions.copy(),
                                         self.private_rewards.copy(), self.transfers.copy()))
        self.last_review, self.review = totals, ReviewTotals(self.env.n_agents, self.env.n_actions)
        self.episode += 1
        self.episode_open = False
        self.mechanism.end_episode()

    # --- running ----------------------------------------------------------------------------------
    def run_periods(self, periods, progress=False):
        """Advance `periods` periods: in compiled calls up to the end of each review period where the
        environment and learner have them, else one `step()` at a time."""
        bar = self.progress_bar(periods, progress)
        left = periods
        while left > 0:
            if not self.episode_open:
                self.begin_review()
            if self.compiled_periods is not None:
                batch = min(left, self.env.review_every - self.review.periods)
                self.advance(batch)
            else:
                batch = 1
                self.step()
            left -= batch
            if bar is not None:
                bar.update(batch)
        if bar is not None:
            bar.close()

    def run_to_convergence(self, max_periods=None, progress=False):
        """Run whole review periods until every session has stopped learning and one more review period
        of converged play has been booked, or until `max_periods` (default the scenario's)."""
        limit = self.env.max_periods if max_periods is None else check_int("max_periods", max_periods, low=1)
        self.convergence_limit = limit
        bar = self.progress_bar(limit, progress)
        while self.period < limit:
            settled = self.learner.converged() is not None and self.converged_share == 1.0
            start = self.period
            self.run_periods(self.env.review_every - self.review.periods)
            if bar is not None:
                bar.update(self.period - start)
            if settled:
                self.ran_to_convergence = True
                break
        if bar is not None:
            bar.close()

    def progress_bar(self, total, progress):
        if not progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"{self.scenario_name}/{self.settings['mechanism']}", unit="period",
                    unit_scale=True, mininterval=0.5, leave=False)

    def advance(self, periods):
        """`periods` periods of the open review period in compiled calls. The calls keep the public
        record of the periods the institution observes, which it is then shown period by period (its
        offers stand until the review period ends, so it learns from them only then, as in `step()`)."""
        env, n = self.env, self.env.n_agents
        per_call = max(1, DRAWS_PER_CALL // n)
        buffer = np.empty((min(periods, per_call), n))
        while periods > 0:
            batch = min(periods, per_call)
            draws = self.rng.random(out=buffer[:batch])  # the draws `act` would take, period by period
            observed = env.review_every - env.observed_periods - self.review.periods  # first observed, this call
            for step in self.compiled_periods(self, draws, max(observed, 0)):
                self.mechanism.record(step)
            self.period += batch
            self.review.periods += batch
            periods -= batch
        if self.review.periods == env.review_every:
            self.end_review()


def usable_cores():
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_helper = None


def helper_thread():
    """The one helper thread advancing sessions (started on first use, and again in a forked child)."""
    global _helper
    if _helper is None:
        _helper = ThreadPoolExecutor(1, thread_name_prefix="market-abm-periods")
    return _helper


def _forget_helper():
    global _helper
    _helper = None


os.register_at_fork(after_in_child=_forget_helper)


class CompiledPeriods:
    """The compiled advance of one (environment, learner) pair: pricing markets with Calvano's learner.

    With independent sessions and a second core, a helper thread advances the second half of the
    sessions while the calling thread advances the first: sessions share nothing, so the data are the
    same either way (`threads=1` keeps everything on one core).

    Attributes:
        order, bounds: the agents sorted by session, and where each session's agents start and end.
        cut: the first session the helper thread advances (0: no helper).
    """

    def __init__(self, env, learner, threads=None):
        self.env, self.learner = env, learner
        order = np.argsort(env.sessions, kind="stable")
        self.order = order.astype(np.int64)
        self.bounds = np.searchsorted(env.sessions[order], np.arange(env.n_sessions + 1)).astype(np.int64)
        if threads is None:
            threads = 2 if env.n_agents >= SHARED_MIN and usable_cores() > 1 else 1
        # the helper's first session: half-way, where no cache line holds agents of both halves
        aligned = np.flatnonzero(self.bounds % 8 == 0)
        middle = int(aligned[np.abs(self.bounds[aligned] - env.n_agents / 2).argmin()])
        self.cut = middle if threads > 1 and 0 < middle < env.n_sessions else 0

    @classmethod
    def for_pair(cls, env, learner):
        return cls(env, learner) if isinstance(env, PricingEnv) and isinstance(learner, CalvanoQ) else None

    def __call__(self, model, draws, observed_from):
        """Advance `model` by `draws.shape[0]` periods; returns the public record (`StepRecord`s) of
        those from `observed_from` on."""
        env, learner = self.env, self.learner
        n, periods = env.n_agents, draws.shape[0]
        actions, profits, surplus, quantities = np.empty(n, np.int64), np.empty(n), np.empty(n), np.empty(n)
        observed = max(periods - observed_from, 0)
        record = (np.empty((observed, n), np.int64), np.empty((observed, n), np.int64),
                  np.empty((observed, n), np.int64), np.empty((observed, n)), np.empty((observed, n)),
                  np.empty((observed, n)))  # states, actions, next states, external rewards, transfers, quantities
        totals = model.review
        model.states = model.states.copy()  # moved on in place: the public record keeps the old array
        shared = (draws, *learner.compiled_state(), *env.market(), env.groups, model.period_offers, model.period_targets,
                  model.states, actions, profits, surplus, quantities, model.transfers, model.transfers_received,
                  totals.private, totals.external, totals.transfers)
        stopped_at, cut = model.session_stopped_at, self.cut
        if cut:
            counts = np.zeros_like(totals.action_counts), np.zeros_like(totals.on_target)
            helper = helper_thread().submit(advance_sessions, self.order, self.bounds[cut:], *shared, *counts,
                                            stopped_at[cut:], observed_from, *record)
            advance_sessions(self.order, self.bounds[:cut + 1], *shared, totals.action_counts, totals.on_target,
                             stopped_at[:cut + 1], observed_from, *record)
            helper.result()
            totals.action_counts += counts[0]
            totals.on_target += counts[1]
        else:
            advance_sessions(self.order, self.bounds, *shared, totals.action_counts, totals.on_target, stopped_at,
                             observed_from, *record)
        learner.learned(periods)
        env.quantities = quantities
        model.actions, model.private_rewards, model.external_rewards = actions, profits, surplus
        states, chosen, next_states, external, paid, sold = record
        return [StepRecord(0, env.groups, states[t], chosen[t], next_states[t], external[t], paid[t],
                           {"quantities": sold[t]}) for t in range(observed)]


@compiled
def advance_sessions(order, bounds, draws, q, greedy, last_change, stopped, alpha, discount, beta, convergence,
                     first_period, indptr, indices, weights, markups, mu, n_prices, pairs, groups, offers, targets,
                     states, actions, profits, surplus, quantities, transfers, received, private_total,
                     external_total, paid_total, action_counts, on_target, stopped_at, observed_from,
                     observed_states, observed_actions, observed_next, observed_external, observed_paid,
                     observed_sold):
    """`draws.shape[0]` periods of every session (agents `order[bounds[c]:bounds[c + 1]]`), one
    session after the other: see `advance_session`. Afterwards `actions`, `profits`, `surplus`,
    `quantities` and `transfers (N,)` hold the last period's, and the `observed_*` arrays `(T, N)`
    the public record of the periods from `observed_from` on."""
    n_periods = draws.shape[0]
    eps = np.empty(n_periods)
    for t in range(n_periods):
        eps[t] = exploration_rate(beta, first_period + t)
    paying = np.any(offers != 0.0)
    for c in range(bounds.shape[0] - 1):
        advance_session(order[bounds[c]:bounds[c + 1]], draws, eps, q, greedy, last_change, stopped, alpha, discount,
                        convergence, first_period, indptr, indices, weights, markups, mu, n_prices, pairs, groups,
                        offers, paying, targets, states, actions, profits, surplus, quantities, transfers, received,
                        private_total, external_total, paid_total, action_counts, on_target, stopped_at[c:c + 1],
                        observed_from, observed_states, observed_actions, observed_next, observed_external,
                        observed_paid, observed_sold)


@compiled
def advance_session(agents, draws, eps, q, greedy, last_change, stopped, alpha, discount, convergence, first_period,
                    indptr, indices, weights, markups, mu, n_prices, pairs, groups, offers, paying, targets, states,
                    actions, profits, surplus, quantities, transfers, received, private_total, external_total,
                    paid_total, action_counts, on_target, stopped_at, observed_from, observed_states,
                    observed_actions, observed_next, observed_external, observed_paid, observed_sold):
    """`draws.shape[0]` periods of one session, its `agents`: Calvano's learners act on their `draws`
    (exploring with probability `eps[t]`), the logit market clears, the posted `offers (G, S, A)`
    are paid and booked (nothing to pay or book when no offer is posted: `paying` False), the learners
    learn, and once its agents have all kept their greedy policy for `convergence` periods the session
    stops (`stopped_at[0]`: the periods completed then). Stages, arithmetic and books are those of
    `MarketModel.step_period`, agent by agent; the public record of the periods from `observed_from`
    on goes into the `observed_*` arrays `(T, N)`. A small session's columns of `q (S, A, N)` and
    `greedy (S, N)` are gathered into a contiguous block while it runs (the same values, in cache)."""
    size, n_states, n_actions = agents.shape[0], q.shape[0], q.shape[1]
    gathered = size * n_states * n_actions <= LOCAL_VALUES
    if gathered:
        session_q, session_greedy = np.empty((n_states, n_actions, size)), np.empty((n_states, size), greedy.dtype)
        for k in range(size):
            session_q[:, :, k] = q[:, :, agents[k]]
            session_greedy[:, k] = greedy[:, agents[k]]
        columns = np.arange(size)
    else:
        session_q, session_greedy, columns = q, greedy, agents
    paired = pairs.shape[0] > 0  # every firm has one rival: its period is looked up
    changed = -1  # the session's last greedy change
    for k in range(size):
        paired = paired and indptr[agents[k] + 1] - indptr[agents[k]] == 1
        changed = max(changed, last_change[agents[k]])
    last = draws.shape[0] - 1
    for t in range(draws.shape[0]):
        period = first_period + t
        for k in range(size):
            i = agents[k]
            actions[i] = choose_price(session_greedy[states[i], columns[k]], stopped[i], draws[t, i], eps[t], n_prices)
        for k in range(size):  # an agent's state is read only by its own update: it moves on at once
            i = agents[k]
            if paired:
                next_state = actions[i] * n_prices + actions[indices[indptr[i]]]
                profit, share, sold = pairs[next_state, 0], pairs[next_state, 1], pairs[next_state, 2]
            else:
                next_state, profit, share, sold = firm_outcome(i, actions, indptr, indices, weights, markups, mu,
                                                               n_prices)
            s, a, g = states[i], actions[i], groups[i]
            private_total[i] += profit
            external_total[i] += share
            action_counts[a] += 1
            on_target[0] += targets[g, s] == a
            paid = 0.0
            if paying:
                paid = offers[g, s, a]
                received[i] += paid
                paid_total[i] += paid
            if not stopped[i] and learn_step(session_q, session_greedy, columns[k], s, a, profit + paid, next_state,
                                             alpha, discount):
                last_change[i] = changed = period
            if t >= observed_from:
                r = t - observed_from
                observed_states[r, i], observed_actions[r, i], observed_next[r, i] = s, a, next_state
                observed_external[r, i], observed_paid[r, i], observed_sold[r, i] = share, paid, sold
            states[i] = next_state
            if t == last:
                profits[i], surplus[i], quantities[i], transfers[i] = profit, share, sold, paid
        if stopped_at[0] < 0 and period - changed >= convergence:
            stopped_at[0] = period + 1
            for k in range(size):
                stopped[agents[k]] = True
    if gathered:
        for k in range(size):
            q[:, :, agents[k]] = session_q[:, :, k]
            greedy[:, agents[k]] = session_greedy[:, k]
