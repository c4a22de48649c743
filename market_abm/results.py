"""A run's outputs on disk: episodes and steps as Parquet, agent snapshots, `summary.json`, and a
figure of its welfare regret and welfare per episode.

A run's folder is written whole: its files go into a hidden temporary folder beside it, which is
renamed into place once every file is complete, so a folder under its final name is a finished run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from market_abm.io import atomic_folder, check_folder_path, jsonable, read_folder_json, write_json, write_parquet

SUMMARY = "summary.json"
RUN_FORMAT = "market_abm.run/1"  # the `format` of a summary.json that records how to re-run its run


def model_tables(model):
    """A finished model's tables by file name: episodes, steps, and agent snapshots if it took them."""
    tables = {"episodes.parquet": model.episodes_frame(), "steps.parquet": model.steps_frame()}
    if model.agent_snapshot_every:
        tables["agents.parquet"] = model.agents_frame()
    return tables


def write_run(model, out, overwrite=False):
    """Write a finished model's data to folder `out`, whole (see `write_run_folder`); returns the summary."""
    check_out(out, overwrite)
    summary = model.summary()
    write_run_folder(out, model_tables(model), summary, overwrite)
    return summary


def write_run_folder(out, tables, summary, overwrite=False):
    """Write `tables` (`{file name: frame}`), `summary.json` and, with an episodes table, the figure into
    folder `out`, all at once: `out` must be new, empty, or (with `overwrite`) an earlier run's folder."""
    out = Path(out)
    check_out(out, overwrite)
    with atomic_folder(out, overwrite) as folder:
        for name, frame in tables.items():
            write_parquet(frame, folder / name)
        write_json(summary, folder / SUMMARY)
        if "episodes.parquet" in tables:
            plot_run(tables["episodes.parquet"], summary, folder / "figure.png")


def check_out(out, overwrite=False):
    """Refuse an output folder a run could not replace whole, before the run starts (nothing is written):
    a file, a path under a file, an unwritable place, the current folder or one above it, a folder
    holding something other than a run, or one holding an earlier run unless `overwrite`."""
    out = Path(out)
    name = os.fspath(out)
    check_folder_path("out", out)
    here = Path.cwd().resolve()
    if out.resolve() in (here, *here.parents):
        raise ValueError(f"out: {name!r} holds the current folder, which a run's folder cannot replace; "
                         "give a folder below it")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / SUMMARY).is_file():
        raise ValueError(f"out: {name!r} is a folder that holds no run; give a new or empty folder")
    if not overwrite:
        raise ValueError(f"out: {name!r} holds an earlier run; give --overwrite to replace it, or a new folder")


def read_run_summary(folder):
    """The `summary.json` of the run folder `folder`, which must record how to re-run it."""
    summary, path = read_folder_json(folder, SUMMARY, "run")
    if not isinstance(summary, dict) or summary.get("format") != RUN_FORMAT:
        raise ValueError(f"dir: {os.fspath(path)!r} does not record how to re-run its run (written by an "
                         "earlier version, or not by market-abm run)")
    if not isinstance(summary.get("settings"), dict) or "seed" not in summary:
        raise ValueError(f"dir: {os.fspath(path)!r} has no settings or seed")
    return summary


def as_recorded(summary):
    """A summary as `summary.json` holds it (plain JSON: NaN and inf as null)."""
    return json.loads(json.dumps(jsonable(summary)))


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
