"""Pollution on a network: 400 firms whose emissions diffuse to their neighbours, one regulator.
Compares the mechanisms and transfer schemes on two topologies, and maps the pollution stock at
every node without the mechanism and with it.

Writes `pollution_network.png` (welfare per episode against the network benchmark, per topology),
`pollution_network_maps.png` (nodes coloured by their late-run mean stock, laissez-faire beside
two-phase) and `pollution_network.csv` / `.md`.

    python scenarios/pollution_network.py --out results/pollution_network
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from market_abm import MarketModel  # noqa: E402
from market_abm.io import write_table  # noqa: E402

TOPOLOGIES = ("watts_strogatz", "barabasi_albert")
RUNS = [("laissez-faire", "none", None), ("pigouvian", "pigouvian", None), ("flat subsidy", "subsidy", None),
        ("two-phase fine", "two_phase", "fine"), ("two-phase stationary", "two_phase", "stationary"),
        ("two-phase per-action", "two_phase", "per_action")]
SUMMARY = ["gap_closed", "final_welfare", "optimal_welfare", "laissez_faire_welfare", "regret_slope",
           "transfers_per_episode", "phase1_episodes"]


def run(graph, label, mechanism, scheme, agents, episodes, seed):
    """One run; returns its summary row, welfare per episode, and the late-run mean stock per node."""
    model = MarketModel(n_agents=agents, graph=graph, mechanism=mechanism, scheme=scheme, rng=seed,
                        agent_snapshot_every=1)
    model.run_episodes(episodes)
    summary = model.summary()
    row = {"graph": graph, "run": label, **{k: summary.get(k) for k in SUMMARY}}
    curve = model.episodes_frame()[["episode", "welfare"]].assign(graph=graph, run=label)
    snapshots = model.agents_frame()
    late = snapshots[snapshots["step"] > 0.9 * snapshots["step"].max()]
    return row, curve, late.groupby("agent")["state"].mean(), model


def plot_welfare(curves, table, path):
    fig, axes = plt.subplots(1, len(TOPOLOGIES), figsize=(13, 4.5), sharey=True)
    for ax, graph in zip(axes, TOPOLOGIES):
        for label, frame in curves[curves["graph"] == graph].groupby("run", sort=False):
            ax.plot(frame["episode"], frame["welfare"].rolling(25, min_periods=1).mean(), label=label)
        bench = table[table["graph"] == graph].iloc[0]
        ax.axhline(bench["optimal_welfare"], color="k", ls="--", label="best local policy")
        ax.axhline(bench["laissez_faire_welfare"], color="grey", ls=":", label="mean-field laissez-faire")
        ax.set(title=graph, xlabel="episode", ylabel="welfare per firm per episode (25-episode mean)")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_maps(maps, path):
    """Nodes coloured by late-run mean stock: laissez-faire (left) and two-phase (right), per topology."""
    fig, axes = plt.subplots(len(TOPOLOGIES), 2, figsize=(11, 10))
    for row, graph in enumerate(TOPOLOGIES):
        model = maps[(graph, "laissez-faire")][1]
        layout = nx.spring_layout(model.env.topology.to_networkx(), seed=0)
        for col, label in enumerate(("laissez-faire", "two-phase fine")):
            stock, _ = maps[(graph, label)]
            ax = axes[row, col]
            nx.draw_networkx_edges(model.env.topology.to_networkx(), layout, ax=ax, alpha=0.15, width=0.5)
            drawn = nx.draw_networkx_nodes(model.env.topology.to_networkx(), layout, ax=ax, node_size=18,
                                           node_color=stock.to_numpy(), cmap="inferno", vmin=0,
                                           vmax=model.env.n_states - 1)
            ax.set_title(f"{graph}\n{label}: mean stock {stock.mean():.2f}", fontsize=10)
            ax.axis("off")
    fig.colorbar(drawn, ax=axes, shrink=0.6, label="pollution stock (late-run mean)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/pollution_network"))
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows, curves, maps = [], [], {}
    jobs = [(graph, *spec) for graph in TOPOLOGIES for spec in RUNS]
    for graph, label, mechanism, scheme in tqdm(jobs, desc="pollution network runs", unit="run"):
        row, curve, stock, model = run(graph, label, mechanism, scheme, args.agents, args.episodes, args.seed)
        rows.append(row)
        curves.append(curve)
        if label in ("laissez-faire", "two-phase fine"):
            maps[(graph, label)] = (stock, model)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_welfare(pd.concat(curves), table, args.out / "pollution_network.png")
    plot_maps(maps, args.out / "pollution_network_maps.png")
    print(write_table(table.set_index(["graph", "run"]), args.out, "pollution_network"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
