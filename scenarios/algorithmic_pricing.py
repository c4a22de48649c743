"""Algorithmic pricing: Q-learning firms learn to collude (Calvano et al. 2020); rebates correct them.

Runs the classic baseline (2 firms, logit demand, 15 prices) under each mechanism and writes to
`--out`: `algorithmic_pricing.png` (mean price paths with the 10-90% band over sessions, the
distribution of profit gains over sessions, cumulative welfare regret), `algorithmic_pricing.csv`
and `.md` (one row per mechanism), and each run's `steps_<mechanism>.parquet`.

    python scenarios/algorithmic_pricing.py --out results/pricing [--sessions 32] [--seed 0] [--quick]
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

from market_abm.io import write_table  # noqa: E402
from market_abm.environments.pricing import run_pricing  # noqa: E402

# A small economy for smoke runs: 5 prices, exploration gone after ~10^4 periods.
QUICK = dict(n_prices=5, exploration_decay=5e-4, convergence_periods=1_000, max_periods=30_000,
             check_every=500, record_every=1_000, search_levels=3, search_replicates=2)
COLUMNS = {
    "profit_gain": "profit gain",
    "profit_gain_sd": "profit gain sd",
    "mean_price": "mean price",
    "consumer_surplus": "consumer surplus",
    "final_welfare": "welfare",
    "gap_closed": "gap closed",
    "transfers_per_episode": "rebates per period",
    "rebate_posted": "rebate per sale",
    "converged_share": "converged share",
    "converged_periods": "convergence period",
    "seconds": "run time (s)",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--sessions", type=int, default=32, help="independent sessions per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-periods", type=int, default=None, help="cap on periods per batch of sessions")
    parser.add_argument("--mechanisms", nargs="+", default=["none", "two_phase"], choices=["none", "two_phase", "oracle"])
    parser.add_argument("--quick", action="store_true", help="smoke run on a small fast economy (not the baseline)")
    return parser.parse_args(argv)


def run_all(args):
    """Run every mechanism; returns `{mechanism: (steps, summary)}` with the run time in the summary."""
    runs = {}
    for mechanism in tqdm(args.mechanisms, desc="mechanisms", unit="run"):
        start = time.perf_counter()
        params = dict(QUICK) if args.quick else {}
        if args.max_periods is not None:
            params["max_periods"] = args.max_periods
        steps, summary = run_pricing(mechanism, sessions=args.sessions, rng=args.seed, **params)
        summary["seconds"] = time.perf_counter() - start
        summary["profit_gain_sd"] = float(np.std(summary["session_profit_gains"]))
        runs[mechanism] = (steps, summary)
    return runs


def results_table(runs):
    """One row per mechanism with the converged outcomes (all per period per market)."""
    rows = {mechanism: {label: summary.get(key, 0.0) for key, label in COLUMNS.items()}
            for mechanism, (_, summary) in runs.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("mechanism")


def shade_search(ax, steps):
    """Grey band over the periods of the mechanism's Phase 1 search rounds."""
    search = steps[steps["phase"] == "search"]
    if len(search):
        start = search["period"].iloc[0] - search["block_periods"].iloc[0]
        ax.axvspan(start, search["period"].iloc[-1], color="0.9", zorder=0, label="Phase 1 search")


def plot_price_paths(ax, runs):
    summary = next(iter(runs.values()))[1]
    for mechanism, (steps, _) in runs.items():
        line, = ax.plot(steps["period"], steps["price"], label=mechanism)
        ax.fill_between(steps["period"], steps["price_q10"], steps["price_q90"], color=line.get_color(), alpha=0.2)
    if "two_phase" in runs:
        shade_search(ax, runs["two_phase"][0])
    for key, style in (("nash_price", ":"), ("monopoly_price", "--")):
        ax.axhline(summary[key], color="grey", linestyle=style, label=key.replace("_", " "))
    ax.set(xlabel="period", ylabel="mean price (10-90% of sessions)", title="Price paths")
    ax.legend(fontsize="small")


def plot_profit_gains(ax, runs):
    bins = np.linspace(-0.6, 1.1, 35)
    for mechanism, (_, summary) in runs.items():
        ax.hist(summary["session_profit_gains"], bins=bins, alpha=0.6, label=mechanism)
    ax.axvline(0.0, color="grey", linestyle=":", label="Nash")
    ax.axvline(1.0, color="grey", linestyle="--", label="monopoly")
    ax.set(xlabel="profit gain Delta", ylabel="sessions", title="Profit gain after convergence")
    ax.legend(fontsize="small")


def plot_regret(ax, runs):
    for mechanism, (steps, _) in runs.items():
        ax.plot(steps["period"], steps["cumulative_regret"], label=mechanism)
    ax.set(xlabel="period", ylabel="cumulative welfare regret (per market)", title="Welfare regret")
    ax.legend(fontsize="small")


def plot(runs, path):
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), constrained_layout=True)
    plot_price_paths(axes[0], runs)
    plot_profit_gains(axes[1], runs)
    plot_regret(axes[2], runs)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = run_all(args)
    for mechanism, (steps, _) in runs.items():
        steps.to_parquet(args.out / f"steps_{mechanism}.parquet")
    table = results_table(runs)
    plot(runs, args.out / "algorithmic_pricing.png")
    print(write_table(table, args.out, "algorithmic_pricing"))


if __name__ == "__main__":
    main()
