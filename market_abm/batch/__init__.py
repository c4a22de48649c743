"""Batch runs: parameter sweeps into a folder of Parquet files, resumable, on local processes or Dask.

    spec = load_spec("sweep.toml")            # validated in full before anything runs
    run_sweep(spec, "results/sweep", workers=2)
    frame = load_dataset("results/sweep")     # one row per (run, step)
    runs = load_summaries("results/sweep")    # one row per run: gap_closed, regret, ...

The same from the shell: `market-abm sweep sweep.toml --out DIR [--workers N | --scheduler ADDRESS]`,
and `market-abm replay DIR RUN_ID` re-runs one run and checks that its output is identical.
"""

from market_abm.batch.dataset import load_dataset, load_summaries
from market_abm.batch.replay import replay_run
from market_abm.batch.spec import SweepSpec, load_spec, parse_spec
from market_abm.batch.sweep import SweepReport, run_sweep

__all__ = ["SweepReport", "SweepSpec", "load_dataset", "load_spec", "load_summaries", "parse_spec",
           "replay_run", "run_sweep"]
