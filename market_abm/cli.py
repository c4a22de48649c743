"""The `market-abm` command: run a scenario, start the visualizer, sweep and replay, list the choices.

Bad input exits with status 2 and one line naming the problem, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from market_abm.batch.cli import add_replay, add_sweep
from market_abm.core.validation import MAX_COUNT, check_seed
from market_abm.environments.graphs import graph_file
from market_abm.registry import GRAPHS, LEARNERS, MECHANISMS, SCENARIOS, SCHEMES, choices, takes_scheme
from market_abm.runner import NETWORK_EPISODES, PAPER_EPISODES


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
    run = subparsers.add_parser("run", help="run one scenario and write its data and summary")
    run.add_argument("scenario", choices=sorted(SCENARIOS))
    run.add_argument("--agents", type=int, help="number of learning agents (default 1, the paper setting; "
                                                "with --graph-file, the file's nodes)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--graph", help=f"one of {', '.join(GRAPHS)} (default watts_strogatz), or an edge-list "
                                       "file given as a path (./name, or a name with an extension)")
    where.add_argument("--graph-file", type=Path, metavar="PATH", help="an edge-list file (one 'u v' pair per line)")
    run.add_argument("--mechanism", default="two_phase", choices=sorted(MECHANISMS))
    run.add_argument("--scheme", choices=sorted(SCHEMES), help="transfer scheme of the two_phase mechanism (default fine)")
    run.add_argument("--learner", choices=sorted(LEARNERS),
                     help="default the scenario's: contract_aware, or calvano_q in a continuing market (pricing)")
    length = run.add_mutually_exclusive_group()
    length.add_argument("--episodes", type=int, help=f"episodes to run (default {PAPER_EPISODES} for one "
                                                     f"agent, {NETWORK_EPISODES} otherwise); review periods of a "
                                                     "continuing market (pricing), which by default runs until its "
                                                     "learners converge")
    length.add_argument("--steps", type=int, help="time steps (periods) to run instead of whole episodes")
    run.add_argument("--seed", type=int, required=True)
    run.add_argument("--out", type=Path, required=True, help="output folder (new, or with --overwrite an earlier run's)")
    run.add_argument("--overwrite", action="store_true", help="replace the earlier run in --out, whole")
    run.add_argument("--agents-every", type=int, default=0, metavar="K",
                     help="also write agents.parquet, a snapshot of every agent every K steps")
    for name in ("graph", "scenario", "learner", "mechanism"):
        run.add_argument(f"--{name}-params", type=json_object, default={}, metavar="JSON",
                         help=f"{name} parameters as a JSON object")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=command_run)


def command_run(args):
    from market_abm.results import check_out, write_run_folder
    from market_abm.runner import simulate

    check_counts(args)
    settings = model_settings(args)
    check_out(args.out, args.overwrite)
    tables, summary = simulate(settings, args.seed, progress=not args.quiet)
    write_run_folder(args.out, tables, summary, args.overwrite)
    report(summary, args.out)
    return 0


def check_counts(args):
    """Every count of `run` within its range, before anything is built."""
    limits = {"agents": (1, MAX_COUNT), "episodes": (1, MAX_COUNT), "steps": (1, MAX_COUNT),
              "agents_every": (0, MAX_COUNT)}
    for name, (low, high) in limits.items():
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            bounds = f">= {low}" if value < low else f"<= {high}"
            raise UsageError(f"argument --{name.replace('_', '-')}: must be {bounds}, got {value}")
    check_seed("argument --seed", args.seed)


def model_settings(args):
    """The `MarketModel` settings of `run` (see `market_abm.runner`); a flag that would mean nothing is refused."""
    if args.scheme is not None and not takes_scheme(args.mechanism):
        raise UsageError(f"argument --scheme: the {args.mechanism} mechanism takes no transfer scheme")
    graph = args.graph_file if args.graph_file is not None else args.graph or "watts_strogatz"
    if graph_file(graph) is not None:
        graph = os.path.abspath(graph)  # so that the run can be replayed from any folder
    settings = {"scenario": args.scenario, "n_agents": args.agents or 1, "graph": graph,
                "mechanism": args.mechanism, "scheme": args.scheme, "learner": args.learner,
                "graph_params": args.graph_params, "scenario_params": args.scenario_params,
                "learner_params": args.learner_params, "mechanism_params": args.mechanism_params,
                "agent_snapshot_every": args.agents_every}
    if args.steps is not None:
        settings["steps"] = args.steps
    else:
        settings["episodes"] = args.episodes
    return settings


def report(summary, out):
    keys = ("gap_closed", "regret_slope", "regret_decay", "profit_gain", "mean_price", "converged_share",
            "final_welfare", "optimal_welfare", "transfers_per_episode")
    print(" ".join(f"{k}={summary[k]:.3f}" for k in keys if isinstance(summary.get(k), float)))
    for warning in summary_warnings(summary):
        print(f"market-abm: warning: {warning}", file=sys.stderr)
    print(f"wrote {out}")


def summary_warnings(summary):
    """One line for each figure a summary should not be read without."""
    ceiling, unpriced = summary.get("cells_at_ceiling") or 0, summary.get("phase1_cells_unpriced") or 0
    if ceiling:
        yield (f"{ceiling} cells were refused at the highest offer allowed: their compensating transfer may lie "
               "above it (cells_at_ceiling)")
    if unpriced:
        yield (f"{unpriced} of {summary['phase1_cells_searched']} cells searched in Phase 1 had no estimate when it "
               "ended and are left out of phase1_max_abs_error (phase1_cells_unpriced)")
    if summary.get("mechanism") == "two_phase" and summary.get("phase1_episodes") is None:
        yield "Phase 1 did not end: the costs were still being estimated when the run ended"


def add_viz(subparsers):
    viz = subparsers.add_parser("viz", help="start the Solara visualizer")
    viz.add_argument("--fetch-assets", action="store_true",
                     help="fill Solara's front-end cache from the npm registry, for offline use, and exit")
    viz.add_argument("--port", type=int, default=8765)
    viz.set_defaults(handler=command_viz)


def command_viz(args):
    import subprocess

    from market_abm.visualization import APP
    from market_abm.visualization.assets import main_fetch_assets

    if not 0 <= args.port <= 65535:
        raise UsageError(f"argument --port: must be in [0, 65535], got {args.port}")
    if args.fetch_assets:
        return main_fetch_assets()
    command = [sys.executable, "-m", "solara", "run", APP, "--port", str(args.port)]
    return subprocess.call(command, env=dict(os.environ))


def add_list(subparsers):
    listing = subparsers.add_parser("list", help="list every registered choice: scenarios, graphs, learners, "
                                                 "mechanisms and transfer schemes")
    listing.set_defaults(handler=command_list)


def command_list(args):
    """Print the registered choices kind by kind, one line each: the name and what it is."""
    registered = choices()
    width = max(len(name) for _, name, _ in registered)
    for i, (kind, name, text) in enumerate(registered):
        if i == 0 or kind != registered[i - 1][0]:
            print(f"{kind}:" if i == 0 else f"\n{kind}:")
        print(f"  {name:<{width}}  {text}")
    return 0


COMMANDS = [add_run, add_viz, add_sweep, add_replay, add_list]


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
