"""Insurance with loss contagion: moral hazard, and premium discounts for prevention that correct it.

Insured households on a small-world network learn whether to pay for prevention; losses raise their
neighbours' risk. Runs each mechanism (laissez-faire, full experience rating, a flat discount and the
two-phase mechanism) over seeds, then sweeps the deductible to show moral hazard, and writes to
`--out`: `insurance_contagion.png` (welfare and prevention over episodes, prevention against the
deductible, the insurer's books), `insurance_contagion.csv` and `.md` (one row per mechanism, means
over seeds) and `insurance_deductible.csv` (one row per deductible and mechanism, also in the `.md`).

    python scenarios/insurance_contagion.py --out results/insurance [--seeds 0 1] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from market_abm.io import markdown_table  # noqa: E402
from market_abm import MarketModel  # noqa: E402
from market_abm.environments.insurance import InsuranceParams  # noqa: E402

MECHANISMS = ("none", "pigouvian", "subsidy", "two_phase")
COLUMNS = {
    "final_welfare": "welfare",
    "gap_closed": "gap closed",
    "prevention_rate": "prevention rate",
    "loss_rate": "loss rate",
    "premiums_per_episode": "premiums",
    "claims_per_episode": "claims",
    "discounts_per_episode": "discounts",
    "insurer_profit": "insurer profit",
    "seconds": "run time (s)",
}
QUICK = dict(episodes=400, seeds=[0], deductibles=[0.0, 0.3, 0.6])
SWEEP = {"final_welfare": "welfare", "optimal_welfare": "best local policy", "prevention_rate": "prevention rate",
         "loss_rate": "loss rate", "insurer_profit": "insurer profit"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--agents", type=int, default=400, help="households on the network")
    parser.add_argument("--graph", default="watts_strogatz")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--mechanisms", nargs="+", default=list(MECHANISMS), choices=MECHANISMS)
    parser.add_argument("--deductibles", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.45, 0.6],
                        help="deductibles swept under laissez-faire and two_phase (first seed)")
    parser.add_argument("--quick", action="store_true", help="a fast look: 400 episodes, one seed, three deductibles")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    return args


def run(args, mechanism, seed, **scenario_params):
    """One run; returns its summary (with run time) and its per-episode welfare and prevention."""
    start = time.perf_counter()
    model = MarketModel("insurance", n_agents=args.agents, graph=args.graph, mechanism=mechanism, rng=seed,
                        scenario_params=scenario_params)
    model.run_episodes(args.episodes)
    summary = model.summary()
    summary["seconds"] = time.perf_counter() - start
    ledger = model.env.ledger_frame()
    by_episode = ledger.groupby(np.arange(len(ledger)) // model.env.horizon).sum()
    episodes = model.episodes_frame().assign(
        prevention_rate=(by_episode["prevention"] / by_episode["agents"]).to_numpy(),
        loss_rate=(by_episode["losses"] / by_episode["agents"]).to_numpy(),
        mechanism=mechanism, seed=seed)
    return summary, episodes


def compare_mechanisms(args):
    """Every mechanism on every seed: the summaries `(mechanism, seed)` and the episodes frames."""
    summaries, episodes = [], []
    jobs = [(m, s) for m in args.mechanisms for s in args.seeds]
    for mechanism, seed in tqdm(jobs, desc="mechanisms x seeds", unit="run"):
        summary, frame = run(args, mechanism, seed)
        summaries.append({"mechanism": mechanism, "seed": seed, **summary})
        episodes.append(frame)
    return pd.DataFrame(summaries), pd.concat(episodes, ignore_index=True)


def sweep_deductible(args):
    """Prevention, losses and welfare against the deductible, without and with the mechanism."""
    rows = []
    jobs = [(d, m) for d in args.deductibles for m in ("none", "two_phase")]
    for deductible, mechanism in tqdm(jobs, desc="deductible sweep", unit="run"):
        summary, _ = run(args, mechanism, args.seeds[0], deductible=deductible)
        rows.append({"deductible": deductible, "mechanism": mechanism,
                     **{label: summary.get(key, np.nan) for key, label in SWEEP.items()}})
    return pd.DataFrame(rows)


def mechanism_table(summaries):
    """One row per mechanism: means over seeds of the figures in `COLUMNS`."""
    return summaries.groupby("mechanism", sort=False)[list(COLUMNS)].mean().rename(columns=COLUMNS)


def colour(mechanism):
    """One colour per mechanism across the panels."""
    return f"C{MECHANISMS.index(mechanism)}"


def plot_over_episodes(ax, episodes, column, ylabel, title, window=20):
    for mechanism, frame in episodes.groupby("mechanism", sort=False):
        mean = frame.groupby("episode")[column].mean()
        ax.plot(mean.index, mean.rolling(window, min_periods=1).mean(), label=mechanism, color=colour(mechanism))
    ax.set(xlabel="episode", ylabel=ylabel, title=title)


def plot(summaries, episodes, sweep, path):
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    ax = axes[0, 0]
    plot_over_episodes(ax, episodes, "welfare", "welfare per household per episode", "Welfare (20-episode mean)")
    ax.axhline(summaries["optimal_welfare"].mean(), color="grey", linestyle="--", label="best local policy")
    ax.axhline(summaries["laissez_faire_welfare"].mean(), color="grey", linestyle=":", label="laissez-faire")
    ax.legend(fontsize="small")
    ax = axes[0, 1]
    plot_over_episodes(ax, episodes, "prevention_rate", "share of households preventing", "Prevention")
    ax.legend(fontsize="small")
    ax = axes[1, 0]
    for mechanism, frame in sweep.groupby("mechanism", sort=False):
        ax.plot(frame["deductible"], frame["prevention rate"], marker="o", color=colour(mechanism),
                label=f"prevention, {mechanism}")
        ax.plot(frame["deductible"], frame["loss rate"], marker="x", linestyle=":", color=colour(mechanism),
                label=f"loss rate, {mechanism}")
    ax.set(xlabel="deductible (share of a loss the household keeps)", ylabel="share of household-steps",
           title="Moral hazard: prevention against the deductible")
    ax.legend(fontsize="small")
    ax = axes[1, 1]
    books = mechanism_table(summaries)[["premiums", "claims", "discounts", "insurer profit"]]
    books.plot.bar(ax=ax, rot=0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(xlabel="", ylabel="per household per episode (discounts < 0: surcharges)",
           title="The insurer's books (last 10% of episodes)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summaries, episodes = compare_mechanisms(args)
    sweep = sweep_deductible(args)
    table = mechanism_table(summaries)
    table.to_csv(args.out / "insurance_contagion.csv")
    sweep.to_csv(args.out / "insurance_deductible.csv", index=False)
    default = InsuranceParams()
    text = (f"## Mechanisms ({args.agents} households, {args.graph}, {args.episodes} episodes, seeds {args.seeds}; "
            f"deductible {default.deductible})\n\n{markdown_table(table)}\n"
            f"## Deductible sweep (seed {args.seeds[0]})\n\n{markdown_table(sweep.set_index('deductible'))}")
    (args.out / "insurance_contagion.md").write_text(text)
    plot(summaries, episodes, sweep, args.out / "insurance_contagion.png")
    print(text)


if __name__ == "__main__":
    main()
