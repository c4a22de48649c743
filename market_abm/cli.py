"""The `market-abm` command: run a scenario, start the visualizer, sweep and replay.

Bad input exits with status 2 and one line naming the problem, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from market_abm.batch.cli import add_replay, add_sweep
from market_abm.core.registry import LEARNERS, MECHANISMS, SCHEMES
from market_abm.environments.graphs import GRAPHS

PAPER_EPISODES = 10_000  # default episodes with one agent (the paper setting)
NETWORK_EPISODES = 1000  # default episodes with many agents


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2."""

    def error(self, message):
        raise UsageError(message)


def json_object(text):
    """A JSON object given on the command line (for parameter overrides)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def add_run(subparsers):
    from market_abm.environments.registry import SCENARIOS

    run = subparsers.add_parser("run", help="run one scenario and write its data and summary")
    run.add_argument("scenario", choices=sorted(SCENARIOS))
    run.add_argument("--agents", type=int, default=1, help="number of learning agents (1 = the paper setting)")
    run.add_argument("--graph", default="watts_strogatz",
                     help=f"one of {', '.join(GRAPHS)}, or an edge-list file")
    run.add_argument("--mechanism", default="two_phase", choices=sorted(MECHANISMS))
    run.add_argument("--scheme", default="fine", choices=sorted(SCHEMES))
    run.add_argument("--learner", choices=sorted(LEARNERS),
                     help="default contract_aware; calvano_q in a continuing market (pricing)")
    length = run.add_mutually_exclusive_group()
    length.add_argument("--episodes", type=int, help=f"episodes to run (default {PAPER_EPISODES} for one "
                                                     f"agent, {NETWORK_EPISODES} otherwise); review periods of a "
                                                     "continuing market (pricing), which by default runs until its "
                                                     "learners converge")
    length.add_argument("--steps", type=int, help="time steps (periods) to run instead of whole episodes")
    run.add_argument("--seed", type=int, required=True)
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--agents-every", type=int, default=0, metavar="K",
                     help="also write agents.parquet, a snapshot of every agent every K steps")
    for name in ("graph", "scenario", "learner", "mechanism"):
        run.add_argument(f"--{name}-params", type=json_object, default={}, metavar="JSON",
                         help=f"{name} parameters as a JSON object")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=command_run)


def command_run(args):
    from market_abm.model import MarketModel
    from market_abm.results import write_run

    if args.agents < 1:
        raise UsageError(f"argument --agents: must be >= 1, got {args.agents}")
    for name in ("episodes", "steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"argument --{name}: must be >= 1, got {value}")
    if args.agents_every < 0:
        raise UsageError(f"argument --agents-every: must be >= 0, got {args.agents_every}")
    model = MarketModel(
        scenario=args.scenario, n_agents=args.agents, graph=args.graph, mechanism=args.mechanism,
        scheme=args.scheme, learner=args.learner, rng=args.seed,
        graph_params=args.graph_params, scenario_params=args.scenario_params, learner_params=args.learner_params,
        mechanism_params=args.mechanism_params, agent_snapshot_every=args.agents_every,
    )
    progress = not args.quiet
    if args.steps is not None:
        model.run_steps(args.steps, progress=progress)
    elif model.continuing and args.episodes is None:
        model.run_to_convergence(progress=progress)
    else:
        default = PAPER_EPISODES if args.agents == 1 else NETWORK_EPISODES
        model.run_episodes(args.episodes or default, progress=progress)
    if model.continuing:
        model.measure_laissez_faire(progress=progress)
    report(write_run(model, args.out), args.out)
    return 0


def report(summary, out):
    keys = ("gap_closed", "profit_gain", "mean_price", "converged_share", "regret_slope", "final_welfare",
            "optimal_welfare", "transfers_per_episode")
    print(" ".join(f"{k}={summary[k]:.3f}" for k in keys if isinstance(summary.get(k), float)))
    print(f"wrote {out}")


def add_viz(subparsers):
    viz = subparsers.add_parser("viz", help="start the Solara visualizer")
    viz.add_argument("--fetch-assets", action="store_true",
                     help="fill Solara's front-end cache from the npm registry, for offline use, and exit")
    viz.add_argument("--port", type=int, default=8765)
    viz.set_defaults(handler=command_viz)


def command_viz(args):
    import os
    import subprocess

    from market_abm.viz_assets import main_fetch_assets

    if args.fetch_assets:
        return main_fetch_assets()
    app = Path(__file__).resolve().parent.parent / "visualization" / "app.py"
    if not app.exists():
        raise UsageError(f"visualizer app not found at {app}")
    command = [sys.executable, "-m", "solara", "run", str(app), "--port", str(args.port)]
    return subprocess.call(command, env=dict(os.environ))


COMMANDS = [add_run, add_viz, add_sweep, add_replay]


def build_parser():
    parser = Parser(prog="market-abm", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `market-abm` console script."""
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except (UsageError, ValueError) as err:
        print(f"market-abm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
