"""Replay: re-run one run and check that its output is identical: a run of a sweep from its manifest
entry, or a single run's folder (`market-abm run`) from the settings and seed in its `summary.json`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from market_abm.batch.runs import as_stored, execute_run, read_run_record
from market_abm.batch.sweep import MANIFEST, RUNS, read_manifest


@dataclass
class ReplayReport:
    """The outcome of a replay: `identical`, the rows compared, and what differs (empty if nothing)."""

    run_id: str
    identical: bool
    rows: int
    difference: str = ""


def find_run(manifest, run_id):
    """The manifest entry whose run id is `run_id` or starts with it (a unique prefix)."""
    matches = [run for run in manifest["runs"] if run["run_id"].startswith(run_id)]
    if not run_id or not matches:
        raise ValueError(f"run_id: no run {run_id!r} in this sweep")
    if len(matches) > 1:
        raise ValueError(f"run_id: {run_id!r} matches {len(matches)} runs; give more digits")
    return matches[0]


def replay_run(folder, run_id):
    """Re-run `run_id` (or a unique prefix of it) of the sweep in `folder` and compare it with its file."""
    from market_abm.results import SUMMARY

    folder = Path(folder)
    if not (folder / MANIFEST).exists() and (folder / SUMMARY).exists():
        raise ValueError(f"run_id: {str(folder)!r} holds a single run; replay it without a run id")
    entry = find_run(read_manifest(folder), run_id)
    path = folder / RUNS / f"{entry['run_id']}.parquet"
    stored_record = read_run_record(path)
    if stored_record is None:
        raise ValueError(f"run_id: run {entry['run_id']} has not completed; resume the sweep first")
    task = {key: entry[key] for key in ("run_id", "params", "seed", "labels")}
    result = execute_run(task)
    if "error" in result:
        last = result["error"].strip().splitlines()[-1]
        raise ValueError(f"run_id: run {entry['run_id']} fails on replay: {last}")
    stored = pd.read_parquet(path)
    difference = frame_difference(stored, as_stored(result["frame"]))
    if not difference and result["record"]["summary"] != stored_record["summary"]:
        changed = sorted(k for k in result["record"]["summary"]
                         if result["record"]["summary"][k] != stored_record["summary"].get(k))
        difference = f"summary differs in {', '.join(changed) or 'its keys'}"
    return ReplayReport(entry["run_id"], not difference, len(stored), difference)


def replay_folder(folder, progress=False):
    """Re-run the single run in `folder` from its `summary.json` (with a progress bar if asked) and
    compare every table and the summary."""
    from market_abm.results import SUMMARY, as_recorded, read_run_summary
    from market_abm.runner import simulate

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"dir: no folder {str(folder)!r}")
    if (folder / MANIFEST).exists():
        raise ValueError(f"run_id: {str(folder)!r} holds a sweep; give the RUN_ID of one of its runs")
    stored_summary = read_run_summary(folder)
    tables, summary = simulate(stored_summary["settings"], stored_summary["seed"], progress)
    names = sorted({path.name for path in folder.glob("*.parquet")} | set(tables))
    difference = ""
    for name in names:
        if name not in tables or not (folder / name).exists():
            difference = f"{name}: only in the {'replayed' if name in tables else 'stored'} run"
        else:
            difference = frame_difference(pd.read_parquet(folder / name), as_stored(tables[name]))
            difference = f"{name}: {difference}" if difference else ""
        if difference:
            break
    if not difference:
        replayed = as_recorded(summary)
        changed = sorted(key for key in set(replayed) | set(stored_summary) if key != "written_by"
                         and replayed.get(key) != stored_summary.get(key))
        if changed:
            difference = f"{SUMMARY} differs in {', '.join(changed)}"
    rows = len(tables.get("steps.parquet", ()))
    return ReplayReport(folder.name, not difference, rows, difference)


def frame_difference(stored, replayed):
    """'' if the frames are identical (values, dtypes, NaN places); else where they first differ."""
    if list(stored.columns) != list(replayed.columns):
        return f"columns differ: stored {list(stored.columns)}, replayed {list(replayed.columns)}"
    if len(stored) != len(replayed):
        return f"row counts differ: stored {len(stored)}, replayed {len(replayed)}"
    for column in stored.columns:
        a, b = stored[column], replayed[column]
        if a.dtype != b.dtype:
            return f"column {column!r}: dtype stored {a.dtype}, replayed {b.dtype}"
        same = (a == b) | (a.isna() & b.isna())
        if not same.all():
            row = int((~same).to_numpy().argmax())
            return f"column {column!r} first differs at row {row}: stored {a.iloc[row]!r}, replayed {b.iloc[row]!r}"
    return ""
