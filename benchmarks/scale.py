"""Scale: the pollution model with N learning firms on a Watts-Strogatz graph, build plus T steps,
with wall time and peak resident memory. Target at N = 1,000,000 and T = 20: under 60 s and 3 GB.

Above 100,000 nodes agents are not placed on Mesa `Network` cells (their cost is minutes and
gigabytes at this size); the network itself lives in a sparse CSR operator.

    python benchmarks/scale.py --agents 1000000 --steps 20
"""

from __future__ import annotations

import argparse
import resource
import time

from market_abm import MarketModel


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kilobytes on Linux


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = MarketModel(n_agents=args.agents, graph="watts_strogatz", mechanism="two_phase", rng=0)
    built = time.perf_counter()
    model.run_steps(args.steps)
    done = time.perf_counter()
    print(f"N={args.agents:,}: build {built - start:.1f} s, {args.steps} steps {done - built:.1f} s, "
          f"total {done - start:.1f} s, peak RSS {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
