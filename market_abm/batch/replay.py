"""Replay: re-run one run of a sweep from its manifest entry and check that its output is identical."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from market_abm.batch.runs import as_stored, execute_run, read_run_record
from market_abm.batch.sweep import RUNS, read_manifest


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
    folder = Path(folder)
    entry = find_run(read_manifest(folder), run_id)
    path = folder / RUNS / f"{entry['run_id']}.parquet"
    stored_record = read_run_record(path)
    if stored_record is None:
        raise ValueError(f"run_id: run {entry['run_id']} has not completed; resume the sweep first")
    task = {key: entry[key] for key in ("run_id", "params", "seed", "labels")}
    result = execute_run(task)
    if "error" in result:
        raise RuntimeError(f"run {entry['run_id']} failed on replay:\n{result['error']}")
    stored = pd.read_parquet(path)
    difference = frame_difference(stored, as_stored(result["frame"]))
    if not difference and result["record"]["summary"] != stored_record["summary"]:
        changed = sorted(k for k in result["record"]["summary"]
                         if result["record"]["summary"][k] != stored_record["summary"].get(k))
        difference = f"summary differs in {', '.join(changed) or 'its keys'}"
    return ReplayReport(entry["run_id"], not difference, len(stored), difference)


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
