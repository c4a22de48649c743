"""Sweep throughput with 1 and 2 workers: a 32-run sweep (2 mechanisms x 2 sizes x 8 seeds of the
pollution scenario, about 1-2 s per run), timed end to end (worker start-up included) into a fresh
folder each time, alternating 1 and 2 workers. Prints runs per second (median over repeats) and the
speed-up, and checks that both give the same dataset.

    python benchmarks/sweep_scaling.py [--repeats 3] [--steps 6000] [--backend processes|dask] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from market_abm import load_dataset
from market_abm.batch import parse_spec, run_sweep

SPEC = """
description = "sweep_scaling benchmark: 32 runs"
scenario = "pollution"
steps = {steps}
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
graph = "watts_strogatz"
[grid]
mechanism = ["none", "two_phase"]
n_agents = [16, 32]
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6000, help="steps per run (6000 = 1000 episodes)")
    parser.add_argument("--backend", choices=("processes", "dask"), default="processes",
                        help="backend for 2 workers (1 worker is always the serial default)")
    parser.add_argument("--out", type=Path, help="also write sweep_scaling.csv and .md here")
    return parser.parse_args(argv)


def time_sweep(spec, workers, backend, folder):
    """Seconds to run the whole sweep into a new folder."""
    start = time.perf_counter()
    report = run_sweep(spec, folder, workers=workers, backend=None if workers == 1 else backend, progress=False)
    seconds = time.perf_counter() - start
    assert report.complete and report.ran == len(spec.runs())
    return seconds


def main(argv=None):
    args = parse_args(argv)
    spec = parse_spec(SPEC.format(steps=args.steps), source="sweep_scaling")
    n_runs = len(spec.runs())
    print(f"{n_runs} runs of {args.steps} steps; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for workers in (1, 2):
                folder = Path(tmp) / f"w{workers}_r{repeat}"
                seconds = time_sweep(spec, workers, args.backend, folder)
                rows.append({"repeat": repeat, "workers": workers, "seconds": seconds, "runs_per_s": n_runs / seconds})
                print(f"repeat {repeat}: {workers} worker(s): {seconds:.1f} s, {n_runs / seconds:.2f} runs/s")
        pd.testing.assert_frame_equal(load_dataset(Path(tmp) / "w1_r0"), load_dataset(Path(tmp) / "w2_r0"))
    frame = pd.DataFrame(rows)
    medians = frame.groupby("workers")[["seconds", "runs_per_s"]].median()
    ratio = medians.loc[2, "runs_per_s"] / medians.loc[1, "runs_per_s"]
    table = medians.assign(speedup=medians["runs_per_s"] / medians.loc[1, "runs_per_s"]).reset_index()
    text = (f"| workers | median seconds ({n_runs} runs) | runs/s | speed-up |\n|---|---|---|---|\n"
            + "".join(f"| {int(r.workers)} | {r.seconds:.1f} | {r.runs_per_s:.2f} | {r.speedup:.2f}x |\n"
                      for r in table.itertuples()))
    print(text + f"2 workers ({args.backend}) / 1 worker: {ratio:.2f}x throughput (datasets identical)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out / "sweep_scaling.csv", index=False)
        (args.out / "sweep_scaling.md").write_text(text)
    return ratio


if __name__ == "__main__":
    main()
