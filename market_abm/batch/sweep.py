"""A sweep: every run of a spec written to `DIR/runs/<run_id>.parquet`, resumable, with progress.

`DIR/manifest.json` records the full spec, and per run its parameters, seed, status, package
version, git commit, run time and `summary()`. Running the same spec on the same folder again skips
the completed runs (a run file under its final name) and redoes the missing, failed or partial ones;
the resumed folder's Parquet files are byte for byte those of an uninterrupted sweep (run times are
only in the manifest). When every run is done, `DIR/summaries.parquet` holds one row per run.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from market_abm.batch.backends import choose_backend, open_backend
from market_abm.batch.runs import clean_partial, provenance, read_run_record, write_run_file
from market_abm.batch.spec import SweepSpec, load_spec
from market_abm.io import check_folder_path, jsonable, read_folder_json, write_json, write_parquet
from market_abm.results import SUMMARY

MANIFEST = "manifest.json"
LOCK = ".lock"
RUNS = "runs"
SUMMARIES = "summaries.parquet"
FORMAT = "market_abm.sweep/1"
MANIFEST_EVERY = 10.0  # seconds between manifest updates during a sweep


@dataclass
class SweepReport:
    """What a sweep did: runs in the spec, done before it started, run now, and failed (run id -> error)."""

    total: int
    skipped: int
    ran: int
    failed: dict

    @property
    def complete(self):
        return not self.failed and self.skipped + self.ran == self.total


def run_sweep(spec, out, workers=1, scheduler=None, backend=None, progress=True):
    """Run every run of `spec` (a `SweepSpec` or a TOML path) not yet completed in folder `out`.

    `workers` > 1 uses that many local processes (or a Dask LocalCluster with `backend="dask"`);
    `scheduler` ("tcp://host:port") uses an existing Dask cluster. Returns a `SweepReport`.
    """
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    out = Path(out)
    backend, workers = choose_backend(backend, workers, scheduler)
    runs = spec.runs()
    check_out(out, spec)
    with open_backend(backend, workers, scheduler) as results, locked(out):
        records = completed_records(out, runs)
        seconds = recorded_seconds(out, records)
        todo = [run for run in runs if run.run_id not in records]
        failed = {}
        manifest = Manifest(out, spec, runs, records, failed, seconds)
        manifest.write()
        bar = progress_bar(len(runs), len(records), progress, backend, workers)
        try:
            for result in results([run.task() for run in todo]):
                if "error" in result:
                    failed[result["run_id"]] = result["error"]
                else:
                    write_run_file(out / RUNS / f"{result['run_id']}.parquet", result["frame"], result["record"])
                    records[result["run_id"]] = result["record"]
                    seconds[result["run_id"]] = result["seconds"]
                bar.set_postfix_str(f"{len(runs) - bar.n - 1} left", refresh=False)
                bar.update()
                manifest.write(every=MANIFEST_EVERY)
        finally:
            bar.close()
            manifest.write()
        if len(records) == len(runs):
            write_parquet(summaries_frame(records[run.run_id] for run in runs), out / SUMMARIES)
    return SweepReport(len(runs), len(runs) - len(todo), len(todo) - len(failed), failed)


def check_out(out, spec):
    """`out` is a new or empty folder, or the folder of a sweep of the same spec (nothing is written here)."""
    check_folder_path("out", out)
    manifest = out / MANIFEST
    if not manifest.exists():
        if out.is_dir() and (out / RUNS).exists():
            raise ValueError(f"out: {os.fspath(out)!r} has a runs folder but no {MANIFEST}")
        if out.is_dir() and any(out.iterdir()):
            held = "a single run, not a sweep" if (out / SUMMARY).exists() else "something other than a sweep"
            raise ValueError(f"out: {os.fspath(out)!r} holds {held}; give a new or empty folder")
        return
    try:
        recorded = json.loads(manifest.read_text())["spec"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"out: cannot read the sweep manifest {os.fspath(manifest)!r}") from None
    if recorded != jsonable(spec.data):
        raise ValueError(f"out: {os.fspath(out)!r} holds a sweep of another spec; use a new folder")


@contextlib.contextmanager
def locked(out):
    """Hold `out/.lock` while sweeping, so two sweeps never write the same folder; the lock file is
    removed, while still held, on any exit."""
    (out / RUNS).mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = out / LOCK
    for _ in range(3):  # a sweep that just finished may remove the file we opened: open it again
        with open(path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise ValueError(f"out: another sweep is writing to {os.fspath(out)!r}") from None
            if not same_file(handle, path):
                continue
            try:
                yield
            finally:
                os.remove(path)
            return
    raise ValueError(f"out: another sweep is writing to {os.fspath(out)!r}")


def same_file(handle, path):
    """Whether the open file `handle` is still the file at `path`."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def recorded_seconds(out, records):
    """The run times the folder's earlier manifest gives for runs already completed (run id -> seconds)."""
    try:
        entries = json.loads((out / MANIFEST).read_text())["runs"]
        return {entry["run_id"]: entry["seconds"] for entry in entries
                if entry.get("run_id") in records and isinstance(entry.get("seconds"), (int, float))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def completed_records(out, runs):
    """The records of runs already completed in `out`; partial and unreadable files are removed."""
    clean_partial(out / RUNS)
    records = {}
    for run in runs:
        path = out / RUNS / f"{run.run_id}.parquet"
        if not path.exists():
            continue
        record = read_run_record(path)
        if record is not None and record.get("run_id") == run.run_id:
            records[run.run_id] = record
        else:
            os.remove(path)
    return records


class Manifest:
    """`DIR/manifest.json`: the spec, and each run's parameters, seed, status and record."""

    def __init__(self, out, spec, runs, records, failed, seconds):
        self.path, self.spec, self.runs = out / MANIFEST, spec, runs
        self.records, self.failed, self.seconds = records, failed, seconds
        self.written = 0.0

    def write(self, every=0.0):
        if time.monotonic() - self.written < every:
            return
        write_json(self.content(), self.path)
        self.written = time.monotonic()

    def content(self):
        runs = [self.entry(run) for run in self.runs]
        return {"format": FORMAT, "spec": self.spec.data, "spec_toml": self.spec.text,
                "spec_source": self.spec.source, "written_by": provenance(),
                "runs_total": len(runs), "runs_done": len(self.records), "runs": runs}

    def entry(self, run):
        entry = {"run_id": run.run_id, "seed": run.seed, "params": run.params, "labels": run.labels}
        record = self.records.get(run.run_id)
        if record is not None:
            entry["status"] = "done"
            entry.update({k: v for k, v in record.items() if k not in entry})
            entry["seconds"] = self.seconds.get(run.run_id)
        elif run.run_id in self.failed:
            entry["status"] = "failed"
            entry["error"] = self.failed[run.run_id]
        else:
            entry["status"] = "pending"
        return entry


def progress_bar(total, done, enabled, backend, workers):
    from tqdm.auto import tqdm

    where = "serial" if backend == "serial" else f"{backend} x{workers}"
    bar = tqdm(total=total, initial=done, unit="run", desc=f"sweep ({where})", disable=not enabled,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} runs done{postfix} "
                          "[{elapsed} elapsed, {remaining} to go]", postfix=f"{total - done} left")
    return bar


def summaries_frame(records):
    """One row per run: its parameter columns, seed, and the scalar figures of its `summary()`."""
    rows = []
    for record in records:
        row = {"run_id": record["run_id"], **record["labels"], "seed": record["seed"]}
        row.update({k: v for k, v in record["summary"].items()
                    if k not in row and (v is None or isinstance(v, (int, float, str, bool)))})
        rows.append(row)
    return pd.DataFrame(rows)


def read_manifest(folder):
    """The manifest of the sweep in `folder` (a one-line `ValueError` if there is none)."""
    manifest, path = read_folder_json(folder, MANIFEST, "sweep")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"dir: {os.fspath(path)!r} is not a market_abm sweep manifest")
    runs = manifest.get("runs")
    if not isinstance(runs, list) or not all(valid_entry(run) for run in runs):
        raise ValueError(f"dir: {os.fspath(path)!r} has no valid list of runs (each with run_id, params, seed "
                         "and labels)")
    return manifest


def valid_entry(run):
    """A manifest entry names its run and holds what re-running it takes."""
    return (isinstance(run, dict) and isinstance(run.get("run_id"), str) and isinstance(run.get("params"), dict)
            and isinstance(run.get("seed"), int) and isinstance(run.get("labels"), dict))
