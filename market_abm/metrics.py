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


def estimate_errors(estimates, mdp):
    """`|estimate - exact counterpart|` per group and cell `(G, n_cells)` of a mechanism's
    `CellEstimates`: `phase1` for every cell searched while Phase 1 ran, as estimated when it ended,
    and `final` for the cells steered now; NaN elsewhere, and NaN for a searched cell that had no
    estimate yet (counted by `estimate_figures` as unpriced)."""
    needed = estimates.searched | estimates.steered
    exact = np.full(estimates.scheme.n_cells, np.nan)
    for c in np.unique(np.nonzero(needed)[1]):
        exact[c] = exact_cell_transfer(mdp, estimates.scheme, c, estimates.accept_share)
    with np.errstate(invalid="ignore"):
        phase1 = np.where(estimates.searched, np.abs(estimates.phase1 - exact[None]), np.nan)
        final = np.where(estimates.steered, np.abs(estimates.current - exact[None]), np.nan)
    return {"phase1": phase1, "final": final}


def estimate_figures(estimates, mdp=None):
    """The summary's figures on a mechanism's estimates: how many cells were searched in Phase 1, how
    many of them had no finite estimate when it ended (`phase1_cells_unpriced`: never accepted, or
    refused at the highest offer allowed), how many cells are steered and at the ceiling now, and,
    where the exact model is known, the largest errors against the exact counterparts (over the
    searched cells that had an estimate, and over the steered cells)."""
    searched = estimates.searched
    out = {
        "phase1_cells_searched": int(searched.sum()),
        "phase1_cells_unpriced": int((searched & ~np.isfinite(estimates.phase1)).sum()),
        "cells_steered": int(estimates.steered.sum()),
        "cells_at_ceiling": int(estimates.at_ceiling.sum()),
    }
    if mdp is not None:
        errors = estimate_errors(estimates, mdp)
        out["phase1_max_abs_error"] = float(max_error(errors["phase1"]))
        out["final_max_abs_error"] = float(max_error(errors["final"]))
    return out


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
    estimates, mdp = model.mechanism.estimates(), model.env.local_mdp()
    if estimates is not None and mdp is not None:
        errors = estimate_errors(estimates, mdp)
        table["phase1_max_abs_error"] = max_error(errors["phase1"], axis=1)
        table["final_max_abs_error"] = max_error(errors["final"], axis=1)
        table["cells_at_ceiling"] = estimates.at_ceiling.sum(axis=1)
        table["phase1_episodes"] = estimates.phase1_episodes
    return table
