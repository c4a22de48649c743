"""One run of a sweep, in whatever process executes it, and its Parquet file.

A run's file `runs/<run_id>.parquet` holds one row per step (the run's parameter columns, its seed,
and `MarketModel.steps_frame()`), and carries in its Parquet metadata the run's record: parameters,
seed, `model.summary()`, package version and git commit. The record holds nothing that differs from
one execution to the next (the run time goes to the manifest), so the same run gives the same bytes.
It is written whole under a temporary name and then renamed, so a file under its final name is a
completed run.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
import traceback
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from market_abm.batch.spec import SCALARS
from market_abm.io import atomic_write, jsonable

RECORD_KEY = b"market_abm.run"


def execute_run(task):
    """Run one sweep task (a plain dict from `Run.task()`); top-level, so spawn-safe and picklable.

    Returns `{"run_id", "frame", "record", "seconds"}`, or `{"run_id", "error"}` with the traceback if it failed.
    """
    start = time.perf_counter()
    try:
        model, frame = simulate(task["params"], task["seed"])
        summary = jsonable(model.summary())
    except Exception:  # a failed run is reported and redone on resume; the others go on
        return {"run_id": task["run_id"], "error": traceback.format_exc()}
    record = {"run_id": task["run_id"], "params": task["params"], "seed": task["seed"],
              "labels": task["labels"], "summary": summary, **provenance()}
    return {"run_id": task["run_id"], "frame": run_frame(task, frame), "record": record,
            "seconds": time.perf_counter() - start}


def simulate(params, seed):
    """`MarketModel(**params, rng=seed)` run for `params["steps"]` steps; returns it and its steps frame."""
    from market_abm.model import MarketModel

    model_params = {key: value for key, value in params.items() if key != "steps"}
    model = MarketModel(**model_params, rng=seed)
    model.run_steps(params["steps"])
    return model, model.steps_frame()


def run_frame(task, steps):
    """The run's rows: run id, parameter columns (the scalar parameters, then swept table entries in
    alphabetical order) and seed in front of the steps frame."""
    labels = task["labels"]
    ordered = [key for key in SCALARS if key in labels] + sorted(key for key in labels if key not in SCALARS)
    front = {"run_id": task["run_id"], **{key: labels[key] for key in ordered}, "seed": task["seed"]}
    columns = {key: [value] * len(steps) for key, value in front.items()}
    return pd.concat([pd.DataFrame(columns), steps.reset_index(drop=True)], axis=1)


@functools.cache
def provenance():
    """The package version and git commit of the code that runs (`git_commit` None outside a checkout)."""
    import market_abm

    here = Path(market_abm.__file__).resolve().parent

    def git(*args):
        try:
            out = subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"package_version": market_abm.__version__, "git_commit": commit,
            "git_dirty": None if dirty is None else bool(dirty)}


def write_run_file(path, frame, record):
    """The run's frame as Parquet with its record in the file metadata, atomically."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), RECORD_KEY: json.dumps(jsonable(record)).encode()}
    table = table.replace_schema_metadata(metadata)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_run_record(path):
    """The record stored in a run file, or None if the file is missing, unreadable or has none."""
    try:
        metadata = pq.read_schema(path).metadata or {}
        return json.loads(metadata[RECORD_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def as_stored(frame):
    """A frame as it reads back from Parquet (for exact comparisons with a stored run)."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return pq.read_table(pa.BufferReader(sink.getvalue())).to_pandas()


def clean_partial(runs_dir):
    """Remove temporary files left by an interrupted write; returns how many."""
    removed = 0
    for tmp in Path(runs_dir).glob(".*.tmp"):
        os.remove(tmp)
        removed += 1
    return removed
