"""What model-free firms need to be steered: the two-phase mechanism's own contract, held fixed.

Pollution, 400 firms on a small world (`watts_strogatz`). The two-phase mechanism first runs against
the default (contract-aware) learner; the amounts it posts on its steered cells when that run ends
are its contract. That contract is then posted unchanged from the first episode against each
model-free learner:
- `subsidy`: the contract as it is, plus a premium on every steered amount;
- `tax on the rest`: the same incentive as a tax, the steered amount (plus the premium) charged on
  every other action at a steered decision point and nothing paid on the target, so an agent feels it
  on the action it already takes instead of only when it tries the target.

The two-phase mechanism itself and the Pigouvian tax run against the same learners for comparison.
So the table separates what the learners can be steered by from what the mechanism's search finds.
The contract comes from a run against another learner, so it is a diagnostic, not a mechanism.

Writes `slow_learners.csv`, `slow_learners.md` (gap closed and transfers per agent per episode, by
learner and row) and `slow_learners.png` to `--out`.

    python benchmarks/slow_learners.py --out results/slow_learners [--episodes 3000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from generality import gap_heatmap
from tqdm.auto import tqdm

from market_abm import MarketModel
from market_abm.core.institution import Mechanism
from market_abm.io import write_table

ECONOMY = {"scenario": "pollution", "n_agents": 400, "graph": "watts_strogatz"}
LEARNERS = ("epsilon_greedy", "optimistic_q", "boltzmann")
PREMIUMS = (0.0, 0.1, 0.3)


class StandingContract(Mechanism):
    """Posts one fixed transfer table `contract (G, H, S, A)` from the first episode: as a subsidy on
    each decision point's paid action (`tax=False`), or as a tax of the same amount on the point's
    other actions (`tax=True`); `premium` is added to every amount. Payoff units per step."""

    name = "standing_contract"

    def __init__(self, view, contract, premium=0.0, tax=False):
        super().__init__(view)
        contract = np.asarray(contract, dtype=float)
        paid = contract > 0
        amount = np.where(paid, contract + premium, 0.0)
        if tax:
            steered = paid.any(axis=-1, keepdims=True)
            amount = np.where(steered & ~paid, -amount.max(axis=-1, keepdims=True), 0.0)
        self.offers[:] = amount
        self.target = np.where(paid.any(axis=-1), paid.argmax(axis=-1), -1)

    def targets(self):
        return self.target


def two_phase_contract(episodes):
    """The amounts the two-phase mechanism posts on its steered cells after `episodes` against the
    default learner, `(G, H, S, A)` (zero elsewhere)."""
    model = MarketModel(**ECONOMY, mechanism="two_phase", rng=0)
    model.run_episodes(episodes)
    mechanism = model.mechanism
    steered = mechanism.scheme.expand(mechanism.estimates().steered)
    return np.where(steered, mechanism.post_offers(), 0.0), model.summary()["gap_closed"]


def runs(contract):
    """(learner, row label, mechanism, parameters) of every run."""
    out = []
    for learner in LEARNERS:
        out.append((learner, "two-phase", "two_phase", {}))
        out.append((learner, "pigouvian", "pigouvian", {}))
        for premium in PREMIUMS:
            for tax in (False, True):
                label = f"{'tax on the rest' if tax else 'subsidy'}, premium {premium:g}"
                out.append((learner, label, StandingContract, {"contract": contract, "premium": premium, "tax": tax}))
    return out


def run_one(task, episodes):
    learner, label, mechanism, params = task
    model = MarketModel(**ECONOMY, mechanism=mechanism, learner=learner, mechanism_params=params, rng=0)
    model.run_episodes(episodes)
    summary = model.summary()
    return {"learner": learner, "row": label, "gap_closed": summary["gap_closed"],
            "transfers": summary["transfers_per_episode"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/slow_learners"))
    parser.add_argument("--episodes", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    for name in ("episodes", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be at least 1")
    start = time.perf_counter()
    contract, default_gap = two_phase_contract(args.episodes)
    tasks = runs(contract)
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_one, task, args.episodes) for task in tasks]
        for future in tqdm(as_completed(futures), total=len(futures), desc="slow learners", unit="run"):
            rows.append(future.result())
    labels = list(dict.fromkeys(label for _, label, _, _ in tasks))  # the rows, in the order run
    table = (pd.DataFrame(rows).set_index(["learner", "row"])
             .sort_index(key=lambda s: s.map(labels.index) if s.name == "row" else s.map(LEARNERS.index)))
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_table(table, args.out, "slow_learners"))
    grid = table["gap_closed"].unstack("learner").reindex(index=labels, columns=list(LEARNERS))
    grid.columns = pd.MultiIndex.from_product([["pollution 400"], grid.columns])
    gap_heatmap(grid, args.out / "slow_learners.png", "Model-free firms: the two-phase contract held fixed", vmin=-0.2)
    print(f"the contract closes {default_gap:.3f} against the default learner; {len(tasks)} runs in "
          f"{time.perf_counter() - start:.0f} s on {args.workers} workers; wrote {args.out}")


if __name__ == "__main__":
    main()
