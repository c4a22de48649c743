"""Continuing markets in `MarketModel`: review periods, the run's stopping rule, and whole review
periods in one compiled call.

A continuing market (`env.discount` set) has no episodes. Its states are drawn once, at the first
period, and never reset. The institution reviews its offers every `review_every` periods: it posts
them at the start of a review period (`post_offers()`) and learns at its end (`end_episode()`), and
it sees the public record of the last `observed_periods` periods of each one. A review period plays
the part of an episode for the data: the DataCollector collects once per review period, with its
books (`ReviewTotals`). When the learner has a convergence rule, a session (a connected component of
the graph, an independent market) whose agents have all converged stops learning, and a run to
convergence ends with one review period in which every session had stopped, the converged play
the summary measures.

Where a compiled loop exists for the environment and the learner (pricing with Calvano's learner,
`compiled_pricing`), the model advances a whole review period in one call, with the data of
stepping one period at a time.
"""

from __future__ import annotations

import numpy as np

from market_abm.compiled_pricing import CompiledPeriods
from market_abm.core import StepRecord
from market_abm.core.review import ReviewTotals
from market_abm.core.settlement import settle_step
from market_abm.core.validation import check_int
from market_abm.metrics import gap_closed

DRAWS_PER_CALL = 1 << 21  # uniform draws taken at once by a compiled advance (16 MB)


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
