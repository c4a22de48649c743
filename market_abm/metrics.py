"""How well an institution steers learners: welfare gap closed, social-welfare regret and its growth
rate, and the accuracy of the estimated transfers against their exact counterparts."""

from __future__ import annotations

import numpy as np


def summarise(episodes, benchmarks):
    """Summary figures from an episodes frame (welfare per agent per episode) and the benchmarks.

    `gap_closed` compares the mean welfare of the last 10% of episodes with the benchmarks;
    `regret_slope` is the growth rate of cumulative welfare regret (see `regret_slope`);
    `regret_tail` is the mean welfare regret per episode over the last 10% of episodes and
    `regret_decay` that tail over the same mean in the second tenth (near 1: regret is not falling);
    `agent_regret` sums the agent's exact regret against the best response to the offers posted, where
    the model is exact, and `agent_regret_slope` is its growth rate.
    """
    optimal = float(benchmarks["optimal_welfare"])
    laissez_faire = float(benchmarks["laissez_faire_welfare"])
    assessed = episodes["expected_welfare"].where(episodes["expected_welfare"].notna(), episodes["welfare"])
    n = len(episodes)
    final = float(tenth(assessed, -1).mean()) if n else np.nan
    regret = episodes["cumulative_regret"].to_numpy()
    per_episode = optimal - assessed.to_numpy()
    out = {
        "optimal_welfare": optimal,
        "laissez_faire_welfare": laissez_faire,
        "final_welfare": final,
        "gap_closed": gap_closed(final, optimal, laissez_faire),
        "regret_slope": regret_slope(regret),
        "total_welfare_regret": float(regret[-1]) if n else 0.0,
        **regret_decay(per_episode),
        "transfers_per_episode": float(episodes["transfers"].mean()) if n else 0.0,
        "episodes": n,
    }
    agent = episodes["agent_regret"].to_numpy() if "agent_regret" in episodes else np.full(n, np.nan)
    if n and np.isfinite(agent).all():
        out["agent_regret"] = float(agent.sum())
        out["agent_regret_slope"] = regret_slope(np.cumsum(agent))
    return out


def tenth(values, which):
    """The `which`-th tenth of a series or array (negative counts from the end; at least one item)."""
    n = len(values)
    size = max(1, n // 10)
    start = which * size if which >= 0 else n + which * size
    return values[start: start + size]


def regret_decay(per_episode):
    """`regret_tail`, the mean welfare regret per episode over the last tenth of episodes, and
    `regret_decay`, that tail divided by the mean over the second tenth (NaN when that is not positive)."""
    per_episode = np.asarray(per_episode, float)
    if per_episode.size < 2:
        return {"regret_tail": float(per_episode.mean()) if per_episode.size else np.nan, "regret_decay": np.nan}
    tail, second = float(tenth(per_episode, -1).mean()), float(tenth(per_episode, 1).mean())
    return {"regret_tail": tail, "regret_decay": tail / second if second > 1e-12 else np.nan}


def gap_closed(final, optimal, laissez_faire):
    """Share of the welfare gap between laissez-faire and the optimum that is closed."""
    gap = optimal - laissez_faire
    return float((final - laissez_faire) / gap) if abs(gap) > 1e-12 else np.nan


def regret_slope(cumulative_regret, time=None):
    """Slope of log cumulative regret against log time (episode `1..K` by default) over the last
    decade of time (1 = linear growth; below 1 = sublinear)."""
    regret = np.asarray(cumulative_regret, float)
    k = np.arange(1, regret.size + 1) if time is None else np.asarray(time, float)
    window = (k >= max(k[-1] / 10, 1) if k.size else k > 0) & (regret > 0)
    if window.sum() < 2:
        return np.nan
    return float(np.polyfit(np.log(k[window]), np.log(regret[window]), 1)[0])


def exact_cell_transfer(mdp, scheme, cell, accept_share=0.6, tol=1e-7, tau_max=None):
    """The smallest amount on `cell` alone for which the exact best response takes the cell's action
    on a share `accept_share` of the cell's visit probability (for a `fine` cell: `Delta_h(s, a)`)."""
    action = int(scheme.cell_action(cell))
    inside = scheme.group_of == scheme.cell_group(cell)
    mask = scheme.cell_of == cell

    def share(amount):
        policy = mdp.best_response(np.where(mask, amount, 0.0))
        visits = mdp.occupancy(policy)[inside]
        weights = visits if visits.sum() > 0 else np.ones_like(visits)
        return float(weights @ (policy[inside] == action)) / float(weights.sum())

    if scheme.single_step:
        h, s = np.argwhere(inside)[0]
        return float(mdp.agent_gap()[h, s, action])
    lo, hi = 0.0, float(tau_max or 2 * mdp.horizon * np.ptp(mdp.agent_reward) + 1.0)
    if share(lo) >= accept_share:
        return 0.0
    if share(hi) < accept_share:
        return np.inf
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if share(mid) >= accept_share else (mid, hi)
    return hi


def phase1_errors(estimates, mdp):
    """`|tau_hat - exact|` per group and cell `(G, n_cells)` for cells settled in Phase 1 (as estimated
    then), NaN elsewhere; `estimates` is a mechanism's `CellEstimates`."""
    phase1 = estimates.phase1
    exact = np.full(estimates.scheme.n_cells, np.nan)
    for c in np.unique(np.nonzero(np.isfinite(phase1))[1]):
        exact[c] = exact_cell_transfer(mdp, estimates.scheme, c, estimates.accept_share)
    return np.abs(phase1 - exact[None, :])


def max_error(errors, axis=None):
    """Largest finite error (NaN if none)."""
    errors = np.where(np.isfinite(errors), errors, -np.inf).max(axis=axis)
    return np.where(np.isfinite(errors), errors, np.nan)


def replica_summaries(model):
    """One row per independent replica (agent with its own principal) of a tabular model: the
    summary figures computed from that replica's exact expected welfare per episode."""
    import pandas as pd

    welfare = np.asarray(model.replica_welfare)  # (episodes, replicas)
    agent_regret = np.asarray(model.replica_agent_regret)
    optimal = float(model.benchmarks["optimal_welfare"])
    regret = np.cumsum(optimal - welfare, axis=0)
    rows = []
    for r in range(welfare.shape[1]):
        frame = pd.DataFrame({"welfare": welfare[:, r], "expected_welfare": welfare[:, r],
                              "cumulative_regret": regret[:, r], "agent_regret": agent_regret[:, r],
                              "transfers": np.nan})
        rows.append({"replica": r, **summarise(frame, model.benchmarks)})
    table = pd.DataFrame(rows)
    table["transfers_per_episode"] = model.transfers_received / max(len(welfare), 1)
    errors = model.phase1_error_table()
    if errors is not None:
        table["phase1_max_abs_error"] = max_error(errors, axis=1)
        table["phase1_episodes"] = model.mechanism.estimates().phase1_episodes
    return table
