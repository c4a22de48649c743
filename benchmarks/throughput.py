"""Agent-steps per second of the pollution network model (learning, diffusion, two-phase mechanism,
model-level collection every step) against Mesa's own `VirusOnNetwork` example at the same size,
measured in the same process. Only steps are timed; the example's drawing layout is skipped.

    python benchmarks/throughput.py --agents 10000 --steps 60 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

from functools import partial
from unittest.mock import patch

from mesa.discrete_space import Network
from mesa.examples import VirusOnNetwork
from mesa.examples.basic.virus_on_network import model as virus_model

from market_abm import MarketModel


def timed_steps(model, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.step()
    return time.perf_counter() - start


def virus_on_network(n, seed):
    """Mesa's example, built without its spring layout (positions only matter for drawing)."""
    with patch.object(virus_model, "Network", partial(Network, layout=None)):
        return VirusOnNetwork(num_nodes=n, avg_node_degree=4, rng=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--mesa-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    ours, theirs = [], []
    for seed in range(args.repeats):
        model = MarketModel(n_agents=args.agents, graph="watts_strogatz", mechanism="two_phase", rng=seed,
                            benchmark=False)  # the welfare benchmark is set-up work, not stepping
        ours.append(args.agents * args.steps / timed_steps(model, args.steps))
        example = virus_on_network(args.agents, seed)
        theirs.append(args.agents * args.mesa_steps / timed_steps(example, args.mesa_steps))
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"market_abm pollution, N={args.agents:,}: {ours_median:,.0f} agent-steps/s (median of {args.repeats})")
    print(f"mesa VirusOnNetwork,  N={args.agents:,}: {theirs_median:,.0f} agent-steps/s (median of {args.repeats})")
    print(f"ratio: {ours_median / theirs_median:.0f}x")


if __name__ == "__main__":
    main()
