"""Pollution control, the paper's simulation: can a regulator that does not know firms' profits
steer learning firms to the welfare optimum, and how much do coarse incentives lose?

Runs every mechanism and transfer scheme on the single firm / single node economy, each with
several independent replicas (seeds) in one vectorised run, then the model-free learners as the
harder case. Writes `pollution_control.png` (cumulative welfare regret on log-log axes beside
welfare per episode with the optimum) and `pollution_control.csv` / `.md` (summary figures).

    python scenarios/pollution_control.py --out results/pollution_control
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from market_abm import MarketModel  # noqa: E402
from market_abm.environments.pollution import single_node_mdp  # noqa: E402
from market_abm.io import write_table  # noqa: E402
from market_abm.metrics import replica_summaries  # noqa: E402

RUNS = [  # (label, mechanism, scheme, learner, mechanism parameters)
    ("laissez-faire", "none", None, "contract_aware", {}),
    ("pigouvian", "pigouvian", None, "contract_aware", {}),
    ("flat subsidy", "subsidy", None, "contract_aware", {"amount": 0.4}),
    ("oracle", "oracle", None, "contract_aware", {}),
    ("two-phase fine", "two_phase", "fine", "contract_aware", {}),
    ("two-phase stationary", "two_phase", "stationary", "contract_aware", {}),
    ("two-phase threshold", "two_phase", "threshold", "contract_aware", {}),
    ("two-phase per-action", "two_phase", "per_action", "contract_aware", {}),
]
MODEL_FREE = [
    (f"two-phase fine, {learner}", "two_phase", "fine", learner, {})
    for learner in ("epsilon_greedy", "optimistic_q", "boltzmann")
] + [(f"oracle, {learner}", "oracle", None, learner, {}) for learner in ("epsilon_greedy", "optimistic_q", "boltzmann")]


def run(label, mechanism, scheme, learner, params, episodes, replicas, seed):
    """One vectorised run of `replicas` independent firm/regulator pairs; returns per-replica rows
    and the mean curves."""
    model = MarketModel(mdp=single_node_mdp(), n_agents=replicas, mechanism=mechanism, scheme=scheme,
                        learner=learner, mechanism_params=params, rng=seed)
    model.run_episodes(episodes)
    table = replica_summaries(model).assign(run=label, mechanism=mechanism, scheme=scheme, learner=learner)
    welfare = np.asarray(model.replica_welfare).mean(axis=1)
    curves = pd.DataFrame({"run": label, "episode": np.arange(1, episodes + 1), "welfare": welfare,
                           "cumulative_regret": np.cumsum(model.benchmarks["optimal_welfare"] - welfare)})
    return table, curves, model.benchmarks


def plot(curves, benchmarks, path):
    """Cumulative welfare regret (log-log) beside welfare per episode with the optimum line."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for label, frame in curves.groupby("run", sort=False):
        regret = frame["cumulative_regret"].clip(lower=1e-3)
        left.loglog(frame["episode"], regret, label=label)
        smooth = frame["welfare"].rolling(200, min_periods=1).mean()
        right.plot(frame["episode"], smooth, label=label)
    right.axhline(benchmarks["optimal_welfare"], color="k", ls="--", label="welfare optimum")
    right.axhline(benchmarks["laissez_faire_welfare"], color="grey", ls=":", label="laissez-faire optimum")
    left.set(xlabel="episode", ylabel="cumulative welfare regret", title="Social-welfare regret")
    right.set(xlabel="episode", ylabel="expected welfare per episode (200-episode mean)",
              title="Welfare per episode")
    right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/pollution_control"))
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, default=4, help="independent seeds, run together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-model-free", action="store_true", help="only the default learner")
    args = parser.parse_args(argv)
    runs = RUNS + ([] if args.skip_model_free else MODEL_FREE)
    tables, curves = [], []
    for spec in tqdm(runs, desc="pollution control runs", unit="run"):
        table, curve, benchmarks = run(*spec, args.episodes, args.replicas, args.seed)
        tables.append(table)
        curves.append(curve)
    table = pd.concat(tables, ignore_index=True)
    columns = ["gap_closed", "total_welfare_regret", "regret_slope", "regret_decay", "final_max_abs_error",
               "cells_at_ceiling", "transfers_per_episode", "final_welfare"]
    summary = table.groupby("run", sort=False)[[c for c in columns if c in table]].agg(["mean", "std"]).round(3)
    summary.columns = [f"{name} {stat}" for name, stat in summary.columns]
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "pollution_control_replicas.csv", index=False)
    plot(pd.concat(curves[: len(RUNS)]), benchmarks, args.out / "pollution_control.png")
    print(write_table(summary, args.out, "pollution_control"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
