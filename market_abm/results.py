"""A run's outputs on disk: episodes and steps as Parquet, agent snapshots, `summary.json`, and a
figure of its welfare regret and welfare per episode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from market_abm.io import atomic_write, write_json, write_parquet


def write_run(model, out):
    """Write a finished model's data to folder `out` (each file atomically); returns the summary."""
    out = Path(out)
    summary = model.summary()
    episodes = model.episodes_frame()
    write_parquet(episodes, out / "episodes.parquet")
    write_parquet(model.steps_frame(), out / "steps.parquet")
    if model.agent_snapshot_every:
        write_parquet(model.agents_frame(), out / "agents.parquet")
    write_json(summary, out / "summary.json")
    atomic_write(out / "figure.png", lambda tmp: plot_run(episodes, summary, tmp))
    return summary


def plot_run(episodes, summary, path):
    """Cumulative welfare regret (log-log) beside welfare per episode with the benchmarks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    welfare = episodes["expected_welfare"].where(episodes["expected_welfare"].notna(), episodes["welfare"])
    k = episodes["episode"].to_numpy() + 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.loglog(k, np.maximum(episodes["cumulative_regret"].to_numpy(), 1e-3))
    left.set(xlabel="episode", ylabel="cumulative welfare regret",
             title=f"regret slope {summary.get('regret_slope', np.nan):.2f}")
    right.plot(k, welfare.rolling(max(1, len(k) // 100), min_periods=1).mean(), label="welfare")
    right.axhline(summary["optimal_welfare"], color="k", ls="--", label="optimum")
    right.axhline(summary["laissez_faire_welfare"], color="grey", ls=":", label="laissez-faire")
    right.set(xlabel="episode", ylabel="welfare per agent per episode",
              title=f"{summary.get('scenario')} / {summary.get('mechanism')}: gap closed "
                    f"{summary.get('gap_closed', np.nan):.2f}")
    right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
