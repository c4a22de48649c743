"""Wall time of Calvano's baseline as a MarketModel scenario, and its speed against a plain numpy
reference loop of the same sessions.

1. `market-abm run pricing --agents N --graph cliques --mechanism M --seed S` in a fresh process,
   for each mechanism (default `none` and `two_phase`), `--repeats` times: wall time (process start,
   imports and writing the outputs included), and the summary's profit gain, mean price, converged
   share and gap closed.
2. The same sessions for the first `--reference-periods` periods, in this process, through the model
   (compiled periods between the observed stretches) and through the plain numpy loop of
   `tests/calvano_reference.py`, from the same seed: the two must agree draw for draw (the values
   are compared), and the ratio of their times is reported, with the reference's time for a whole
   run extrapolated from its time per period.

The machine's load average is printed beside every timing: these 2-core machines are shared, so
take medians on an idle machine for figures to compare.

    python benchmarks/pricing_speed.py [--agents 400] [--seed 11] [--repeats 3] [--reference-periods 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from calvano_reference import calvano_duopolies  # noqa: E402

from market_abm import MarketModel  # noqa: E402


def load():
    return "load %.2f" % os.getloadavg()[0]


def cli_run(agents, mechanism, seed):
    """Wall time of one `market-abm run` in a fresh process, and its summary."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "market_abm.cli", "run", "pricing", "--agents", str(agents), "--graph",
                   "cliques", "--mechanism", mechanism, "--seed", str(seed), "--out", out, "--quiet"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - start
        summary = json.loads((Path(out) / "summary.json").read_text())
    return wall, summary


def reference_ratio(agents, seed, periods):
    """Seconds for `periods` periods through the model and through the numpy reference (same draws)."""
    MarketModel(scenario="pricing", n_agents=4, graph="cliques", mechanism="none", rng=0).run_periods(20_000)
    model = MarketModel(scenario="pricing", n_agents=agents, graph="cliques", mechanism="none", rng=seed)
    start = time.perf_counter()
    model.run_periods(periods)
    compiled = time.perf_counter() - start
    env, learner = model.env, model.learner
    m = env.n_actions
    start = time.perf_counter()
    q, states, _, _ = calvano_duopolies(env.pairs[:, 0].reshape(m, m), env.learner_priors()["prior_payoff"], periods,
                                        np.random.default_rng(seed), alpha=learner.alpha, beta=learner.beta,
                                        discount=learner.discount, convergence=learner.convergence_periods)
    reference = time.perf_counter() - start
    if not (np.array_equal(q, learner.q[0]) and np.array_equal(states, model.states)):
        raise AssertionError("the model and the numpy reference disagree")
    return compiled, reference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--mechanisms", nargs="+", default=["none", "two_phase"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-periods", type=int, default=50_000)
    parser.add_argument("--skip-cli", action="store_true", help="skip the command-line runs")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; {args.agents} firms in {args.agents // 2} duopolies, seed {args.seed}")
    periods = {}
    for mechanism in [] if args.skip_cli else args.mechanisms:
        walls = []
        for repeat in range(args.repeats):
            before = load()
            wall, summary = cli_run(args.agents, mechanism, args.seed)
            walls.append(wall)
            periods[mechanism] = summary["periods"]
            print(f"  {mechanism:9s} run {repeat + 1}: {wall:6.1f} s wall ({before}, then {load()}); "
                  f"profit gain {summary['profit_gain']:.3f}, mean price {summary['mean_price']:.3f}, "
                  f"converged share {summary['converged_share']:.3f}, gap closed {summary['gap_closed']:.3f}, "
                  f"{summary['periods']:,} periods", flush=True)
        print(f"{mechanism}: median {statistics.median(walls):.1f} s wall over {len(walls)} runs")
    before = load()
    compiled, reference = reference_ratio(args.agents, args.seed, args.reference_periods)
    print(f"first {args.reference_periods:,} periods ({before}, then {load()}): model {compiled:.2f} s, numpy "
          f"reference {reference:.2f} s, identical values: {reference / compiled:.1f}x")
    if "none" in periods:
        whole = reference / args.reference_periods * periods["none"]
        print(f"the numpy reference would take about {whole:.0f} s for the {periods['none']:,} periods of the "
              "laissez-faire run")


if __name__ == "__main__":
    main()
