"""Welfare gap closed by mechanism and topology, from a sweep dataset.

Runs (or resumes) the sweep of `sweep_gap_closed.toml` into `--out/sweep`, then writes to `--out`:
`sweep_gap_closed.png` (gap closed by mechanism and topology, mean and spread over seeds; mean
welfare per agent per episode over time by mechanism), `sweep_gap_closed.csv` (one row per mechanism
and topology) and `sweep_gap_closed.md` (gap closed, mechanisms x topologies). A folder whose sweep
is complete is only re-plotted.

    python scenarios/sweep_gap_closed.py --out results/gap_closed [--workers 2 | --scheduler tcp://host:8786]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from market_abm import load_dataset  # noqa: E402
from market_abm.batch import load_summaries, run_sweep  # noqa: E402

SPEC = Path(__file__).with_suffix(".toml")
NAME = "sweep_gap_closed"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (the sweep goes to OUT/sweep)")
    parser.add_argument("--spec", type=Path, default=SPEC, help=f"sweep spec (default {SPEC.name})")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, help="local worker processes")
    where.add_argument("--scheduler", help="address of an existing Dask cluster")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def gap_table(summaries):
    """One row per (mechanism, topology): gap closed over seeds (mean, sd, min, max), regret, transfers."""
    grouped = summaries.groupby(["mechanism", "graph"], sort=False)
    table = grouped["gap_closed"].agg(gap_closed="mean", gap_closed_sd="std", gap_closed_min="min",
                                      gap_closed_max="max", runs="size")
    table["total_welfare_regret"] = grouped["total_welfare_regret"].mean()
    table["transfers_per_episode"] = grouped["transfers_per_episode"].mean()
    return table.reset_index()


def markdown(table):
    """Gap closed (mean ± sd over seeds) as a mechanisms x topologies Markdown table."""
    cell = table.assign(cell=[f"{m:.3f} ± {0.0 if np.isnan(s) else s:.3f}"
                              for m, s in zip(table["gap_closed"], table["gap_closed_sd"])])
    pivot = cell.pivot(index="mechanism", columns="graph", values="cell")
    pivot = pivot.loc[table["mechanism"].unique(), table["graph"].unique()]
    header = "| mechanism | " + " | ".join(pivot.columns) + " |"
    rule = "|---|" + "---|" * len(pivot.columns)
    body = [f"| {name} | " + " | ".join(row) + " |" for name, row in pivot.iterrows()]
    return "\n".join(["Welfare gap closed (mean ± sd over seeds)", "", header, rule, *body]) + "\n"


def plot_gap(ax, table):
    mechanisms, graphs = table["mechanism"].unique(), table["graph"].unique()
    width = 0.8 / len(mechanisms)
    x = np.arange(len(graphs))
    for i, mechanism in enumerate(mechanisms):
        rows = table[table["mechanism"] == mechanism].set_index("graph").loc[graphs]
        spread = [rows["gap_closed"] - rows["gap_closed_min"], rows["gap_closed_max"] - rows["gap_closed"]]
        ax.bar(x + (i - (len(mechanisms) - 1) / 2) * width, rows["gap_closed"], width, yerr=spread,
               capsize=2, label=mechanism)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="optimum")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(x, [g.replace("_", " ") for g in graphs])
    ax.set(ylabel="welfare gap closed (mean; bars: min-max over seeds)", title="Gap closed by mechanism and topology",
           ylim=(min(-0.05, table["gap_closed_min"].min() - 0.05), 1.3))
    ax.legend(fontsize="small", loc="upper center", ncols=len(mechanisms) + 1)


def plot_welfare(ax, steps):
    """Mean welfare per agent per episode (the sum over the episode's steps), by mechanism."""
    horizon = steps["h"].nunique()
    steps = steps.assign(episode=(steps["step"] - 1) // horizon)
    grouped = steps.groupby(["mechanism", "run_id", "episode"], sort=False)["welfare"]
    per_episode = grouped.sum()[grouped.size() == horizon].reset_index()
    curves = per_episode.groupby(["mechanism", "episode"], sort=False)["welfare"].mean()
    for mechanism, curve in curves.groupby(level=0, sort=False):
        window = max(1, len(curve) // 50)
        ax.plot(curve.index.get_level_values("episode"), curve.rolling(window, min_periods=1).mean().to_numpy(),
                label=mechanism)
    optimum = steps.groupby("run_id")["benchmark_welfare"].first().mean() * horizon
    ax.axhline(optimum, color="grey", linestyle="--", linewidth=1, label="optimum (mean)")
    ax.set(xlabel="episode", ylabel="welfare per agent per episode", title="Welfare over time (all topologies)")
    ax.legend(fontsize="small", loc="center right")


def plot(table, steps, path):
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.8), constrained_layout=True)
    plot_gap(axes[0], table)
    plot_welfare(axes[1], steps)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    report = run_sweep(args.spec, args.out / "sweep", workers=args.workers, scheduler=args.scheduler,
                       progress=not args.quiet)
    if not report.complete:
        raise SystemExit(f"{len(report.failed)} runs failed; see {args.out / 'sweep' / 'manifest.json'}")
    table = gap_table(load_summaries(args.out / "sweep"))
    steps = load_dataset(args.out / "sweep", columns=["run_id", "mechanism", "step", "h", "welfare",
                                                      "benchmark_welfare"])
    table.to_csv(args.out / f"{NAME}.csv", index=False)
    (args.out / f"{NAME}.md").write_text(markdown(table))
    plot(table, steps, args.out / f"{NAME}.png")
    print(markdown(table))


if __name__ == "__main__":
    main()
