"""`market-abm sweep SPEC.toml --out DIR` and `market-abm replay DIR [RUN_ID]`.

Bad input (spec, options, folder) raises a one-line `ValueError`: the CLI prints it and exits 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from market_abm.batch.spec import MAX_RUNS


def add_sweep(subparsers):
    sweep = subparsers.add_parser(
        "sweep", help="run a parameter sweep into a folder of Parquet files (resumable)",
        description="Run every run of a sweep spec (TOML) into DIR; running it again resumes.")
    sweep.add_argument("spec", type=Path, metavar="SPEC.toml",
                       help="sweep spec (TOML): scenario, steps, seeds, parameters, [grid]")
    sweep.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="runs at a time: 1 = serial (default), N = N local processes (or a Dask "
                            "LocalCluster of N workers with --backend dask)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask cluster, e.g. tcp://host:8786")
    sweep.add_argument("--backend", choices=("serial", "processes", "dask"),
                       help="default: serial for 1 worker, processes for more, dask with --scheduler")
    sweep.add_argument("--max-runs", type=int, default=MAX_RUNS, metavar="N",
                       help=f"refuse a spec of more than N runs (default {MAX_RUNS})")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=command_sweep)


def command_sweep(args):
    from market_abm.batch.spec import load_spec
    from market_abm.batch.sweep import run_sweep

    if args.workers < 1:
        raise ValueError(f"argument --workers: must be >= 1, got {args.workers}")
    if args.max_runs < 1:
        raise ValueError(f"argument --max-runs: must be >= 1, got {args.max_runs}")
    spec = load_spec(args.spec, max_runs=args.max_runs, progress=not args.quiet)
    report = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler, backend=args.backend,
                       progress=not args.quiet)
    print(f"sweep: {report.total} runs; {report.skipped} already done, {report.ran} run now, "
          f"{len(report.failed)} failed; wrote {args.out}")
    if report.failed:
        run_id, error = next(iter(report.failed.items()))
        last = error.strip().splitlines()[-1]
        print(f"market-abm: error: {len(report.failed)} runs failed (tracebacks in {args.out / 'manifest.json'}); "
              f"first, {run_id}: {last}", file=sys.stderr)
        return 1
    return 0


def add_replay(subparsers):
    replay = subparsers.add_parser("replay", help="re-run a run (one of a sweep, or a single run's folder) and "
                                                  "check its output is identical")
    replay.add_argument("dir", type=Path, metavar="DIR", help="a sweep's output folder, or a folder of market-abm run")
    replay.add_argument("run_id", nargs="?", metavar="RUN_ID",
                        help="for a sweep, the run's id (from the manifest; a unique prefix will do)")
    replay.add_argument("--quiet", action="store_true", help="no progress bar while a single run re-runs")
    replay.set_defaults(handler=command_replay)


def command_replay(args):
    from market_abm.batch.replay import replay_folder, replay_run

    if args.run_id is None:
        report = replay_folder(args.dir, progress=not args.quiet)
    else:
        report = replay_run(args.dir, args.run_id)
    if report.identical:
        print(f"replay {report.run_id}: identical ({report.rows} rows)")
        return 0
    print(f"replay {report.run_id}: DIFFERS: {report.difference}")
    return 1
