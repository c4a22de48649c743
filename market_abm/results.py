"""A run's outputs on disk: episodes and steps as Parquet, agent snapshots, and `summary.json`."""

from __future__ import annotations

from pathlib import Path

from market_abm.io import write_json, write_parquet


def write_run(model, out):
    """Write a finished model's data to folder `out` (each file atomically); returns the summary."""
    out = Path(out)
    summary = model.summary()
    write_parquet(model.episodes_frame(), out / "episodes.parquet")
    write_parquet(model.steps_frame(), out / "steps.parquet")
    if model.agent_snapshot_every:
        write_parquet(model.agents_frame(), out / "agents.parquet")
    write_json(summary, out / "summary.json")
    return summary
