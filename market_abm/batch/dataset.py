"""A sweep folder as data: one row per (run, step), or one row per run.

`load_dataset(DIR)` reads every completed run in the manifest's order. The run files are plain
Parquet, so DuckDB (not a dependency) can query the folder directly:

    import duckdb
    duckdb.sql(\"\"\"
        SELECT mechanism, n_agents, avg(welfare) AS welfare, max(cumulative_regret) AS regret
        FROM read_parquet('DIR/runs/*.parquet', union_by_name = true)
        GROUP BY ALL ORDER BY ALL\"\"\").df()
    duckdb.sql("SELECT mechanism, graph, avg(gap_closed) FROM 'DIR/summaries.parquet' GROUP BY ALL")
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from market_abm.batch.runs import read_run_record
from market_abm.batch.sweep import RUNS, read_manifest, summaries_frame


def completed_paths(folder):
    """The completed run files of the sweep in `folder`, in the manifest's order (warns if some are missing)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    paths = [folder / RUNS / f"{run['run_id']}.parquet" for run in manifest["runs"]]
    done = [path for path in paths if path.exists()]
    if len(done) < len(paths):
        warnings.warn(f"{len(paths) - len(done)} of {len(paths)} runs in {folder} are not completed; "
                      "loading the completed ones", stacklevel=3)
    return done


def load_dataset(folder, columns=None):
    """Every completed run of the sweep in `folder` as one frame: one row per (run, step), with the
    run id, the parameter columns (scenario, n_agents, graph, mechanism, scheme, learner, and each swept
    table entry as `table.key`), the seed, the step and every model-level metric of `steps_frame()`."""
    if columns is not None and (not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns)):
        raise ValueError(f"columns: must be a list of column names, got {columns!r}")
    paths = completed_paths(folder)
    if not paths:
        raise ValueError(f"dir: no completed runs in {str(folder)!r}")
    tables = [read_run_table(path, columns) for path in paths]
    table = pa.concat_tables(tables, promote_options="default")
    return table.replace_schema_metadata(None).to_pandas()


def read_run_table(path, columns=None):
    """One run file as an Arrow table; a damaged file or an unknown column is a one-line `ValueError`."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise ValueError(unreadable(path, err)) from None
    missing = [column for column in columns or () if column not in schema.names]
    if missing:
        raise ValueError(f"columns: no column {missing[0]!r} in {os.fspath(path)!r}")
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise ValueError(unreadable(path, err)) from None


def unreadable(path, err):
    reason = " ".join(str(err).split()) or type(err).__name__
    return (f"dir: cannot read the run file {os.fspath(path)!r} ({reason}); running the sweep again redoes "
            "a damaged run")


def load_summaries(folder):
    """One row per completed run: its parameter columns, seed and the figures of `model.summary()`
    (`gap_closed`, `final_welfare`, `total_welfare_regret`, ...) and its run time in `seconds` (from the
    manifest)."""
    paths = completed_paths(folder)
    records = []
    for path in paths:
        record = read_run_record(path)
        if record is None:
            raise ValueError(unreadable(path, "no run record"))
        records.append(record)
    frame = summaries_frame(records)
    seconds = {run["run_id"]: run.get("seconds") for run in read_manifest(folder)["runs"]}
    frame["seconds"] = [seconds.get(record["run_id"]) for record in records]
    return frame
