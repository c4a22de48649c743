"""Algorithmic pricing: Q-learning firms learn to collude (Calvano et al. 2020); a market authority's
rebates restore competition; linking the markets on a graph changes how much they collude.

Runs, each to convergence (every session's greedy policies unchanged for 100,000 periods, then one
review period of converged play): `--agents` firms in independent duopolies (`cliques`) without
offers and under the two-phase market authority, and `--linked-agents` firms on a small world
(`watts_strogatz`), each selling in the logit market of itself and its neighbours. Writes to `--out`:

- `algorithmic_pricing.png`: mean price per review period, the profit gains of the duopolies after
  convergence, Calvano's impulse response (after convergence one firm deviates for one period to its
  one-shot best response; both firms' prices over the next 15 periods), and profit gain against the
  number of rivals in the linked markets;
- `algorithmic_pricing.csv` and `.md`: one row per run; `profit_gain_by_rivals.csv` and `.md`;
  `impulse_response.csv`; each run's `steps_<run>.parquet` and `summary_<run>.json`.

    python scenarios/algorithmic_pricing.py --out results/pricing [--agents 400] [--linked-agents 100] [--seed 11]
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

from market_abm import MarketModel  # noqa: E402
from market_abm.impulse import impulse_response  # noqa: E402
from market_abm.io import write_json, write_table  # noqa: E402

# A small economy for smoke runs: 5 prices, exploration gone after ~10^4 periods, short reviews.
QUICK = {"scenario_params": {"n_prices": 5, "review_every": 1000, "observed_periods": 50, "max_periods": 60_000},
         "learner_params": {"beta": 5e-4, "convergence_periods": 2000}}
COLUMNS = {
    "profit_gain": "profit gain", "mean_price": "mean price", "consumer_surplus": "consumer surplus",
    "final_welfare": "welfare per firm", "gap_closed": "gap closed", "transfers_per_period": "rebates per firm",
    "converged_share": "converged share", "converged_periods": "convergence period",
    "sessions_not_converged": "sessions not converged", "seconds": "run time (s)",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--agents", type=int, default=400, help="firms in the independent duopolies")
    parser.add_argument("--linked-agents", type=int, default=100, help="firms in the linked markets")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="smoke run on a small fast economy (not Calvano's)")
    return parser.parse_args(argv)


def runs(args):
    """The runs: label -> MarketModel keyword arguments."""
    extra = QUICK if args.quick else {}
    duopolies = {"scenario": "pricing", "n_agents": args.agents, "graph": "cliques", "rng": args.seed, **extra}
    linked = {**duopolies, "n_agents": args.linked_agents, "graph": "watts_strogatz"}
    return {"duopolies, laissez-faire": {**duopolies, "mechanism": "none"},
            "duopolies, two-phase authority": {**duopolies, "mechanism": "two_phase"},
            "linked markets, laissez-faire": {**linked, "mechanism": "none"}}


def run_all(args):
    """Run every model to convergence; returns `{label: (model, summary)}`, run time in the summary."""
    out = {}
    for label, params in tqdm(runs(args).items(), desc="runs", unit="run"):
        start = time.perf_counter()
        model = MarketModel(**params)
        model.run_to_convergence(progress=True)
        model.measure_laissez_faire(progress=True)
        summary = model.summary()
        summary["seconds"] = time.perf_counter() - start
        out[label] = (model, summary)
    return out


def results_table(results):
    rows = {label: {name: summary.get(key, np.nan) for key, name in COLUMNS.items()}
            for label, (_, summary) in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")


def by_rivals(model):
    """Profit gain against the number of rivals (the degree) after convergence."""
    env = model.env
    frame = env.profit_gain_by(model.last_review, env.rivals).rename(columns={"label": "rivals"})
    return frame.set_index("rivals")


def plot(results, response, degrees, path):
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.6), constrained_layout=True)
    prices, gains, impulse, linked = axes
    summary = next(iter(results.values()))[1]
    for label, (model, _) in results.items():
        steps = model.steps_frame()
        prices.plot(steps["period"], steps["mean_price"], label=label)
    for key, style in (("nash_price", ":"), ("monopoly_price", "--")):
        prices.axhline(summary[key], color="grey", linestyle=style, label=key.replace("_", " ") + " (duopoly)")
    prices.set(xlabel="period", ylabel="mean price", title="Mean price per review period")
    prices.legend(fontsize="small")
    bins = np.linspace(-0.4, 1.1, 31)
    for label, (model, _) in list(results.items())[:2]:
        session_gains = model.env.profit_gain_by(model.last_review, model.env.sessions)["profit_gain"]
        gains.hist(session_gains, bins=bins, alpha=0.6, label=label)
    gains.axvline(0.0, color="grey", linestyle=":", label="Nash")
    gains.axvline(1.0, color="grey", linestyle="--", label="monopoly")
    gains.set(xlabel="profit gain", ylabel="duopolies", title="Profit gain after convergence")
    gains.legend(fontsize="small")
    impulse.plot(response["period"], response["deviator_price"], "o-", label="deviating firm")
    impulse.plot(response["period"], response["rival_price"], "s-", label="rival")
    impulse.axvline(1, color="grey", linestyle=":", label="one-period deviation")
    impulse.set(xlabel="period after convergence", ylabel="mean price over duopolies",
                title="Impulse response: the punishment of a deviation")
    impulse.legend(fontsize="small")
    duopoly = results["duopolies, laissez-faire"][1]["profit_gain"]
    linked.bar(degrees.index.astype(str), degrees["profit_gain"], color="tab:purple", label="linked markets")
    for rivals, row in degrees.iterrows():
        linked.annotate(f"{int(row['firms'])} firms", (str(rivals), row["profit_gain"]), ha="center", va="bottom",
                        fontsize="small")
    linked.axhline(duopoly, color="tab:blue", linestyle="--", label="independent duopolies")
    linked.set(xlabel="rivals (neighbours on the small world)", ylabel="profit gain",
               title="Linked markets: profit gain against degree")
    linked.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_all(args)
    for label, (model, summary) in results.items():
        name = label.replace(", ", "_").replace(" ", "_")
        model.steps_frame().to_parquet(args.out / f"steps_{name}.parquet")
        write_json(summary, args.out / f"summary_{name}.json")
    response = impulse_response(results["duopolies, laissez-faire"][0])
    response.to_csv(args.out / "impulse_response.csv", index=False)
    degrees = by_rivals(results["linked markets, laissez-faire"][0])
    plot(results, response, degrees, args.out / "algorithmic_pricing.png")
    print(write_table(results_table(results), args.out, "algorithmic_pricing"))
    print(write_table(degrees, args.out, "profit_gain_by_rivals"))


if __name__ == "__main__":
    main()
