"""How far a pooled scheme's plan can go with perfect data: the two-phase mechanism's pooled planner
given every decision point's exact threshold, separating the planner's own error from the error of
estimating thresholds from the agents' answers.

For each one-agent economy of the generality benchmark (`generality.economies`) and each pooled
scheme (`per_action`, `stationary`, `threshold`), the planner (`core.pooled_search.coordinate_ascent`,
as the mechanism calls it) is given the exact thresholds `Delta_h(s, a)`, the agent's exact own choice
(its best response with no offers), the exact dynamics and external reward, and re-plans until its
amounts hold. The figure is the gap closed, `(W - W_LF) / (W* - W_LF)`, by the exact best response to
the amounts it posts. A scheme that can express every policy of a coarser one (`stationary`,
`threshold` >= `per_action`) should close at least as much; where it does not with perfect data, the
planner's model of the agents' response (each point's threshold taken as fixed, whatever is offered at
the points after it) is what holds it back.

Writes `pooled_planning.csv`, `pooled_planning.md` (one row per economy and scheme) and
`pooled_planning.png` to `--out`.

    python benchmarks/pooled_planning.py --out results/pooled_planning [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from generality import economies, gap_heatmap
from tqdm.auto import tqdm

from market_abm.core.pooled_search import SWEEPS, coordinate_ascent, coordinate_moves
from market_abm.io import write_table
from market_abm.metrics import gap_closed
from market_abm.registry import make_scheme

SCHEMES = ("per_action", "stationary", "threshold")
PREMIUM = 0.01  # what the plan posts over a threshold (the mechanism's default `eps`)
MAX_PLANS = 50


def perfect_data_plan(mdp, scheme):
    """The pooled planner's amounts `(n_cells,)` from the exact thresholds, own choice and model of `mdp`,
    re-planned until they hold (at most `MAX_PLANS` plans)."""
    own = mdp.best_response()
    cost = np.where(np.arange(mdp.n_actions) == own[..., None], 0.0, mdp.agent_gap())[None]
    moves, points, action = coordinate_moves(scheme)
    model = [np.ascontiguousarray(x[None], dtype=float) for x in (mdp.transition, mdp.external_reward, mdp.initial)]
    amounts = np.zeros((1, scheme.n_cells))
    for _ in range(MAX_PLANS):
        planned = coordinate_ascent(amounts, moves, points, action, cost, PREMIUM, cost, own[None], scheme.cell_of,
                                    *model, SWEEPS)
        if np.allclose(planned, amounts):
            break
        amounts = planned
    return amounts[0]


def response_gap_closed(mdp, transfers):
    """Share of the welfare gap the exact best response to `transfers (H, S, A)` closes."""
    return gap_closed(mdp.policy_value(mdp.best_response(transfers), "welfare"), mdp.welfare_optimum()[0],
                      mdp.policy_value(mdp.best_response(), "welfare"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/pooled_planning"))
    parser.add_argument("--quick", action="store_true", help="the generality benchmark's quick economies")
    args = parser.parse_args(argv)
    one_agent = [(family, instance, kwargs["mdp"]) for family, instance, kwargs, _ in economies(args.quick)
                 if "mdp" in kwargs]
    rows = []
    for family, instance, mdp in tqdm(one_agent, desc="pooled planning", unit="economy"):
        for name in SCHEMES:
            scheme = make_scheme(name, mdp.horizon, mdp.n_states, mdp.n_actions)
            amounts = perfect_data_plan(mdp, scheme)
            rows.append({"family": family, "instance": instance, "scheme": name,
                         "gap_closed": response_gap_closed(mdp, scheme.expand(amounts)),
                         "amounts_posted": int((amounts > 0).sum())})
    frame = pd.DataFrame(rows)
    coarsest = frame[frame.scheme == "per_action"].set_index(["family", "instance"]).gap_closed
    frame["minus_per_action"] = frame.gap_closed - coarsest.loc[list(zip(frame.family, frame.instance))].to_numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_table(frame.set_index(["family", "instance", "scheme"]), args.out, "pooled_planning"))
    plot(frame, args.out / "pooled_planning.png")


def plot(frame, path):
    """Gap closed with perfect data, scheme by economy."""
    grid = frame.pivot_table(index="scheme", columns=["family", "instance"], values="gap_closed", sort=False)
    gap_heatmap(grid, path, "Pooled plans with perfect data: gap closed by the exact best response", vmin=0.0)


if __name__ == "__main__":
    main()
