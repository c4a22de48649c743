"""Agent-steps per second of the pollution network model (learning, diffusion, two-phase mechanism,
model-level collection every step) against Mesa's own `VirusOnNetwork` example at the same size,
measured in the same process. Only steps are timed; the example's drawing layout is skipped.

    python benchmarks/throughput.py --agents 10000 --steps 60 600 --repeats 5

Both models run on one core.
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


def warm_up(learner, learner_params):
    """Step a small instance of each model once: loading the compiled kernels (and Python's first
    calls) is start-up, not stepping."""
    MarketModel(n_agents=50, learner=learner, learner_params=learner_params, benchmark=False).run_steps(7)
    timed_steps(virus_on_network(50, 0), 7)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--steps", type=int, nargs="+", default=[60, 600],
                        help="run lengths from a fresh model; both models step the same number of times")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--learner", default="contract_aware", help="the firms' learner (default contract_aware)")
    parser.add_argument("--epoch-growth", type=float, help="contract-aware re-planning threshold (default 0)")
    args = parser.parse_args(argv)
    learner_params = {} if args.epoch_growth is None else {"epoch_growth": args.epoch_growth}
    warm_up(args.learner, learner_params)
    for steps in args.steps:
        ours, theirs = [], []
        for seed in range(args.repeats):
            model = MarketModel(n_agents=args.agents, graph="watts_strogatz", mechanism="two_phase", rng=seed,
                                learner=args.learner, learner_params=learner_params,
                                benchmark=False)  # the welfare benchmark is set-up work, not stepping
            ours.append(args.agents * steps / timed_steps(model, steps))
            example = virus_on_network(args.agents, seed)
            theirs.append(args.agents * steps / timed_steps(example, steps))
        ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
        print(f"{steps} steps from a fresh model, N={args.agents:,}, median of {args.repeats}:")
        print(f"  market_abm pollution ({args.learner}): {ours_median:,.0f} agent-steps/s")
        print(f"  mesa VirusOnNetwork:  {theirs_median:,.0f} agent-steps/s")
        print(f"  ratio: {ours_median / theirs_median:.1f}x")


if __name__ == "__main__":
    main()
