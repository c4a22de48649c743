"""Pricing markets of Calvano learners advanced many periods in one compiled call.

Within a review period nothing outside the population needs to see each period as it happens (the
offers stand until the review ends), so `MarketModel` advances the whole review period of a pricing
market with Calvano's learners in one call: session by session, each for all of the periods, with
the very stages of `step()` (the same per-agent arithmetic, the same draws in the same order, the
same books), keeping the public record of the observed periods for the institution. The data are
those of stepping one period at a time (a test checks it bit for bit).
"""

from __future__ import annotations

import numpy as np

from market_abm.core import StepRecord
from market_abm.core.calvano import CalvanoQ, choose_price, exploration_rate, learn_step
from market_abm.core.compiled import compiled
from market_abm.environments.pricing import PricingEnv, firm_outcome, market_period, pair_outcome

LOCAL_VALUES = 1 << 16  # a session with at most this many action values is advanced on a gathered copy
REPLAY_PATH = 1024  # periods a stopped session's greedy play is followed, at most, to find its cycle


class CompiledPeriods:
    """The compiled advance of one (environment, learner) pair: pricing markets with Calvano's learner.

    Attributes:
        order, bounds: the agents sorted by session, and where each session's agents start and end.
        replay_path: periods a stopped session's play is followed, at most, to find the cycle it replays.
    """

    def __init__(self, env, learner, replay_path=REPLAY_PATH):
        self.env, self.learner, self.replay_path = env, learner, replay_path
        order = np.argsort(env.sessions, kind="stable")
        self.order = order.astype(np.int64)
        self.bounds = np.searchsorted(env.sessions[order], np.arange(env.n_sessions + 1)).astype(np.int64)

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
        advance_sessions(self.order, self.bounds, draws, *learner.compiled_state(), *env.market(), env.groups,
                         model.period_offers, model.period_targets, model.states, actions, profits, surplus,
                         quantities, model.transfers, model.transfers_received, totals.private, totals.external,
                         totals.transfers, totals.action_counts, totals.on_target, model.session_stopped_at,
                         observed_from, *record, self.replay_path)
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
                     observed_sold, replay_path):
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
                        observed_paid, observed_sold, replay_path)


@compiled
def advance_session(agents, draws, eps, q, greedy, last_change, stopped, alpha, discount, convergence, first_period,
                    indptr, indices, weights, markups, mu, n_prices, pairs, groups, offers, paying, targets, states,
                    actions, profits, surplus, quantities, transfers, received, private_total, external_total,
                    paid_total, action_counts, on_target, stopped_at, observed_from, observed_states,
                    observed_actions, observed_next, observed_external, observed_paid, observed_sold, replay_path):
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
    replaying = gathered
    for t in range(draws.shape[0]):
        if replaying and stopped_at[0] >= 0 and replay_stopped(
                agents, columns, session_greedy, t, draws.shape[0], indptr, indices, weights, markups, mu, n_prices,
                pairs, groups, offers, paying, targets, states, actions, profits, surplus, quantities,
                transfers, received, private_total, external_total, paid_total, action_counts, on_target,
                observed_from, observed_states, observed_actions, observed_next, observed_external, observed_paid,
                observed_sold, replay_path):
            break  # a stopped session plays on greedily: its cycle was replayed to the end
        replaying = replaying and stopped_at[0] < 0  # one try per call
        period = first_period + t
        for k in range(size):
            i = agents[k]
            draw = 1.0 if stopped[i] else draws[t, i]  # a stopped agent plays greedy: its draw is not read
            actions[i] = choose_price(session_greedy[states[i], columns[k]], stopped[i], draw, eps[t], n_prices)
        for k in range(size):  # an agent's state is read only by its own update: it moves on at once
            i = agents[k]
            if paired:
                next_state, profit, share, sold = pair_outcome(actions[i], actions[indices[indptr[i]]], pairs, n_prices)
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


@compiled
def replay_stopped(agents, columns, greedy, start, end, indptr, indices, weights, markups, mu, n_prices, pairs,
                   groups, offers, paying, targets, states, actions, profits, surplus, quantities,
                   transfers, received, private_total, external_total, paid_total, action_counts, on_target,
                   observed_from, observed_states, observed_actions, observed_next, observed_external,
                   observed_paid, observed_sold, replay_path):
    """Periods `start..end - 1` of a stopped session, its `agents`, in the books and record exactly as
    `advance_session` would write them period by period. Its agents play their `greedy (S, k)`
    policies and learn no more, so its joint state follows a path that enters a cycle: the path is
    played once, until a joint state repeats or the periods run out, then read off for each period.
    Returns False, having written nothing, when the path runs `replay_path` periods without repeating."""
    size, periods = agents.shape[0], end - start
    steps = min(periods, replay_path)
    path_states = np.empty((steps, size), np.int64)
    path_actions, path_next = np.empty((steps, size), np.int64), np.empty((steps, size), np.int64)
    path_profit, path_share = np.empty((steps, size)), np.empty((steps, size))
    path_sold, path_paid = np.empty((steps, size)), np.empty((steps, size))
    path_target = np.empty((steps, size), np.int64)
    current = np.empty(size, np.int64)
    for k in range(size):
        current[k] = states[agents[k]]
    n = actions.shape[0]  # the market's period, by firm, for the session's firms
    next_states, period_profit, period_share, period_sold = np.empty(n, np.int64), np.empty(n), np.empty(n), np.empty(n)
    length, cycle_start, found = steps, 0, False
    for u in range(steps):
        path_states[u] = current
        for k in range(size):
            actions[agents[k]] = greedy[current[k], columns[k]]
        market_period(agents, actions, indptr, indices, weights, markups, mu, n_prices, pairs, next_states,
                      period_profit, period_share, period_sold)
        for k in range(size):
            i = agents[k]
            s, a, g = current[k], actions[i], groups[i]
            path_actions[u, k], path_next[u, k] = a, next_states[i]
            path_profit[u, k], path_share[u, k], path_sold[u, k] = period_profit[i], period_share[i], period_sold[i]
            path_paid[u, k] = offers[g, s, a] if paying else 0.0
            path_target[u, k] = targets[g, s] == a
        for k in range(size):
            current[k] = path_next[u, k]
        for v in range(u + 1):
            same = True
            for k in range(size):
                same = same and path_states[v, k] == current[k]
            if same:
                length, cycle_start, found = u + 1, v, True
                break
        if found:
            break
    if not found and steps < periods:
        return False
    cycle = length - cycle_start  # read only past the path's end, which a found cycle makes possible
    for t in range(periods):
        u = t if t < length else cycle_start + (t - cycle_start) % cycle
        for k in range(size):
            i = agents[k]
            private_total[i] += path_profit[u, k]
            external_total[i] += path_share[u, k]
            action_counts[path_actions[u, k]] += 1
            on_target[0] += path_target[u, k]
            if paying:
                received[i] += path_paid[u, k]
                paid_total[i] += path_paid[u, k]
            if start + t >= observed_from:
                r = start + t - observed_from
                observed_states[r, i], observed_actions[r, i], observed_next[r, i] = (
                    path_states[u, k], path_actions[u, k], path_next[u, k])
                observed_external[r, i], observed_paid[r, i], observed_sold[r, i] = (
                    path_share[u, k], path_paid[u, k], path_sold[u, k])
            if t == periods - 1:
                states[i], actions[i] = path_next[u, k], path_actions[u, k]
                profits[i], surplus[i], quantities[i], transfers[i] = (
                    path_profit[u, k], path_share[u, k], path_sold[u, k], path_paid[u, k])
    return True

