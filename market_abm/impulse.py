"""Calvano et al.'s impulse response: how learned pricing strategies punish a deviation.

After the learners have converged, every duopoly starts from the state its greedy play has reached.
In period 1 one firm deviates to its one-shot best response to the price its rival charges then;
from period 2 on both play their greedy strategies again. Collusive strategies punish: the rival's
price drops after the deviation and then returns towards the pre-deviation price. Prices are
money per unit; the response is read from the learners' greedy policies (an experiment on the
learned strategies, not something a market authority could see).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def impulse_response(model, periods=15, deviator=0):
    """Mean prices of the deviating firm and its rival, per period from 0 (before the deviation) to
    `periods`, over every two-firm session of a pricing `model` (`cliques` of size 2); one row per
    period, with the share of sessions whose rival charged less than before the deviation."""
    env = model.env
    if not (env.rivals == 1).all() or env.n_sessions * 2 != env.n_agents:
        raise ValueError("graph: the impulse response needs two-firm markets (graph 'cliques', size 2)")
    greedy = model.learner.greedy_policy()[:, 0, :]  # (N, S)
    order = np.argsort(env.sessions, kind="stable").reshape(-1, 2)  # the two firms of each session
    firm, rival = order[:, deviator], order[:, 1 - deviator]
    states = model.states.copy()
    prices = np.empty((periods + 1, 2, env.n_sessions))
    for t in range(periods + 1):
        actions = greedy[np.arange(env.n_agents), states]
        if t == 1:
            actions[firm] = best_response(env, actions, firm)
        prices[t] = env.grid[actions[firm]], env.grid[actions[rival]]
        states = env.dynamics(None, actions, None)[0]
    frame = pd.DataFrame({"period": np.arange(periods + 1), "deviator_price": prices[:, 0].mean(axis=1),
                          "rival_price": prices[:, 1].mean(axis=1),
                          "rival_below_before": (prices[:, 1] < prices[0, 1]).mean(axis=1)})
    return frame


def best_response(env, actions, firms):
    """Each of `firms`' one-period profit-maximising price index against the others' `actions (N,)`."""
    candidates = np.repeat(actions[:, None], env.n_actions, axis=1)  # one world per own price
    candidates[firms] = np.arange(env.n_actions)
    _, profits, _ = env.dynamics(None, candidates, None)
    return profits[firms].argmax(axis=1)
