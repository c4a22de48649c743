"""How the institutions do beyond one tuned instance: every mechanism row against every built-in
learner, on families of economies.

Families:
- `random S-A-H`: random tabular economies (`environments.economies.random_economy`, Dirichlet(0.3)
  dynamics, the external harm in the state an action leads to) of three sizes, each where
  laissez-faire loses at least 0.5 of welfare per episode;
- `coverage`: chains whose welfare-optimal path runs through states laissez-faire never visits;
- `ceiling`: compensating transfers of 3 per step, above the two-phase mechanism's first ceiling;
- `pollution 1`, `insurance 1`: the one-node scenarios (the paper setting);
- `pollution 400`, `insurance 400`: 400 agents on a small world (`watts_strogatz`).

Rows: two-phase with the fine, stationary and per-action schemes, the Pigouvian tax (where the
principal knows the external reward), the oracle (exact compensating transfers on the welfare
optimum, where the model is exact) and laissez-faire. One-agent economies run two independent
replicas (seeds) at once and report their mean. Columns: gap closed, regret slope, regret decay
(regret per episode in the last tenth over the second tenth), the episode Phase 1 ended (the costs
estimated; blank where it had not) and transfers paid per agent per episode.

Writes `generality.csv`, `generality.md` (one row per family, learner and mechanism) and
`generality.png` (gap closed, mechanism by family and learner) to `--out`.

    python benchmarks/generality.py --out results/generality [--quick] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from market_abm import MarketModel
from market_abm.environments.economies import costly_compliance, coverage_chain, random_economy
from market_abm.environments.insurance import single_node_mdp as insurance_mdp
from market_abm.environments.pollution import single_node_mdp as pollution_mdp
from market_abm.io import write_table
from market_abm.metrics import replica_summaries

LEARNERS = ("contract_aware", "epsilon_greedy", "optimistic_q", "boltzmann")
ROWS = [  # (label, mechanism, scheme)
    ("two-phase fine", "two_phase", "fine"),
    ("two-phase stationary", "two_phase", "stationary"),
    ("two-phase per-action", "two_phase", "per_action"),
    ("pigouvian", "pigouvian", None),
    ("oracle", "oracle", None),
    ("laissez-faire", "none", None),
]
REPLICAS = 2


def random_economies(sizes, per_size):
    """`per_size` random economies of each size `(S, A, H)` where laissez-faire loses >= 0.5 of welfare."""
    out = []
    for n_states, n_actions, horizon in sizes:
        seed, found = 0, 0
        while found < per_size:
            mdp = random_economy(seed, n_states, n_actions, horizon)
            laissez_faire = mdp.policy_value(mdp.agent_optimum()[1], "welfare")
            if mdp.welfare_optimum()[0] - laissez_faire >= 0.5:
                out.append((f"random {n_states}-{n_actions}-{horizon}", f"seed {seed}", {"mdp": mdp}))
                found += 1
            seed += 1
    return out


def economies(quick):
    """(family, instance, model keywords, episodes) of every economy of the benchmark."""
    single = 1500 if quick else 5000
    network = 300 if quick else 2000
    sizes = [(6, 3, 8)] if quick else [(4, 2, 5), (6, 3, 8), (12, 4, 12)]
    out = [(f, i, k, single) for f, i, k in random_economies(sizes, 2 if quick else 3)]
    out += [("coverage", "chain 5", {"mdp": coverage_chain(5, 8)}, single)]
    if not quick:
        out += [("coverage", "chain 8", {"mdp": coverage_chain(8, 12)}, single)]
    out += [("ceiling", "cost 3", {"mdp": costly_compliance(3.0)}, single)]
    out += [("pollution 1", "paper", {"mdp": pollution_mdp()}, single),
            ("insurance 1", "one node", {"mdp": insurance_mdp()}, single)]
    for scenario in ("pollution", "insurance"):
        out.append((f"{scenario} 400", "watts_strogatz",
                    {"scenario": scenario, "n_agents": 400, "graph": "watts_strogatz"}, network))
    return out


def runs(quick):
    """Every (economy, learner, row) run, skipping rows the economy cannot have."""
    out = []
    for family, instance, kwargs, episodes in economies(quick):
        exact = "mdp" in kwargs
        for learner in LEARNERS:
            for label, mechanism, scheme in ROWS:
                if mechanism == "oracle" and not exact:
                    continue
                out.append({"family": family, "instance": instance, "kwargs": kwargs, "episodes": episodes,
                            "learner": learner, "row": label, "mechanism": mechanism, "scheme": scheme})
    return out


def benchmarks_of(kwargs):
    """The welfare benchmarks of an economy, computed once for all its runs."""
    return MarketModel(**kwargs, mechanism="none", rng=0).benchmarks


def run_one(task, benchmarks):
    """One run; returns its summary figures (the mean over replicas for one-agent economies)."""
    kwargs = dict(task["kwargs"])
    if "mdp" in kwargs:
        kwargs["n_agents"] = REPLICAS
    start = time.perf_counter()
    model = MarketModel(**kwargs, mechanism=task["mechanism"], scheme=task["scheme"], learner=task["learner"],
                        rng=0, benchmark=benchmarks)
    model.run_episodes(task["episodes"])
    if "mdp" in kwargs:
        table = replica_summaries(model)
        figures = table[["gap_closed", "regret_slope", "regret_decay", "transfers_per_episode"]].mean().to_dict()
        figures["gap_closed_min"] = float(table["gap_closed"].min())
    else:
        summary = model.summary()
        figures = {key: summary[key] for key in ("gap_closed", "regret_slope", "regret_decay",
                                                  "transfers_per_episode")}
        figures["gap_closed_min"] = figures["gap_closed"]
    estimates = model.mechanism.estimates()
    figures["phase1_episodes"] = None if estimates is None else estimates.phase1_episodes
    figures["seconds"] = time.perf_counter() - start
    return {key: task[key] for key in ("family", "instance", "learner", "row", "episodes")} | figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/generality"))
    parser.add_argument("--quick", action="store_true", help="fewer economies and episodes")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    tasks = runs(args.quick)
    economies_seen = {}
    for task in tasks:
        key = (task["family"], task["instance"])
        if key not in economies_seen:
            economies_seen[key] = benchmarks_of(task["kwargs"])
    start = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_one, task, economies_seen[(task["family"], task["instance"])]) for task in tasks]
        for future in tqdm(as_completed(futures), total=len(futures), desc="generality", unit="run"):
            rows.append(future.result())
    frame = pd.DataFrame(rows)
    table = (frame.groupby(["family", "learner", "row"], sort=False)
             .agg(gap_closed=("gap_closed", "mean"), gap_closed_min=("gap_closed_min", "min"),
                  regret_slope=("regret_slope", "mean"), regret_decay=("regret_decay", "mean"),
                  phase1_episodes=("phase1_episodes", lambda x: x.max() if x.notna().all() else np.nan),
                  transfers=("transfers_per_episode", "mean"), instances=("instance", "count")))
    order = {label: i for i, (label, _, _) in enumerate(ROWS)}
    table = table.sort_values(["family", "learner", "row"], key=lambda s: s.map(order) if s.name == "row" else s)
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_table(table, args.out, "generality"))
    write_table(frame.drop(columns=["seconds"]), args.out, "generality_runs")
    plot(table, args.out / "generality.png")
    print(f"{len(tasks)} runs in {time.perf_counter() - start:.0f} s on {args.workers} workers; wrote {args.out}")


def plot(table, path):
    """Gap closed by mechanism (rows) and family x learner (columns)."""
    grid = table["gap_closed"].unstack(["family", "learner"])
    grid = grid.reindex([label for label, _, _ in ROWS if label in grid.index])
    gap_heatmap(grid, path, "Share of the welfare gap closed, by mechanism, economy family and learner", vmin=-0.2)


def gap_heatmap(grid, path, title, vmin):
    """A heatmap of gap closed, `grid`'s rows against its two-level columns, each cell labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8, 0.45 * grid.shape[1]), 0.5 * grid.shape[0] + 3))
    image = ax.imshow(grid.to_numpy(dtype=float), vmin=vmin, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xticks(range(grid.shape[1]), [f"{outer} / {inner}" for outer, inner in grid.columns], rotation=90)
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if value < 0.5 else "black")
    fig.colorbar(image, ax=ax, label="gap closed")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
