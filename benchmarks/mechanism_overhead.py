"""Episodes per second of the paper setting (one firm, one node) with and without the two-phase
mechanism: the institution should cost at most 1.5x. Runs alternate so both see the same load;
medians and the ratio are printed.

    python benchmarks/mechanism_overhead.py --episodes 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from market_abm import MarketModel


def episodes_per_second(mechanism, episodes, seed):
    model = MarketModel(n_agents=1, mechanism=mechanism, rng=seed)
    start = time.perf_counter()
    model.run_episodes(episodes)
    return episodes / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rates = {"none": [], "two_phase": []}
    for repeat in range(args.repeats):
        for mechanism in rates:
            rates[mechanism].append(episodes_per_second(mechanism, args.episodes, repeat))
    none, mechanism = statistics.median(rates["none"]), statistics.median(rates["two_phase"])
    print(f"laissez-faire: {none:,.0f} episodes/s (median of {args.repeats})")
    print(f"two-phase:     {mechanism:,.0f} episodes/s (median of {args.repeats})")
    print(f"mechanism overhead: {none / mechanism:.2f}x")


if __name__ == "__main__":
    main()
