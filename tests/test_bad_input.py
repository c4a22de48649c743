"""Every bad input gets one line that names the field, and writes nothing: `market-abm run`, `sweep`
and `replay` exit 2, the Python API raises a `ValueError`.

Each case runs in a fresh folder holding the inputs the cases refer to (edge-list files, specs, an
earlier run, sweep folders); the folder must be exactly as it was afterwards.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pytest

from market_abm import MarketModel, load_dataset
from market_abm.batch import parse_spec, run_sweep
from market_abm.cli import main
from market_abm.core import TabularEnv, TransferScheme
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import single_node_mdp
from market_abm.results import write_run

RUN = ["run", "pollution", "--out", "out", "--quiet", "--seed", "0"]
SWEEP = ["sweep", "spec.toml", "--out", "sweep", "--quiet"]
SPEC = 'scenario = "pollution"\nsteps = 6\nseeds = [0]\n'
HUGE_GRID = SPEC + "[grid]\nn_agents = [{}]\nscenario_params.decay = [{}]\n".format(
    ", ".join(str(n) for n in range(1, 101)), ", ".join(str(d / 1000) for d in range(1000)))


@dataclass(frozen=True)
class Case:
    """One bad input: CLI arguments (exit 2 expected) or a Python call on the folder (ValueError
    expected), the field its message must name, and a spec text to put in `spec.toml`."""

    field: str
    args: tuple = ()
    call: object = None
    spec: str = SPEC


def cli(field, *args, spec=SPEC):
    return Case(field, args=tuple(args), spec=spec)


def api(field, call):
    return Case(field, call=call)


def run(field, *args):
    return cli(field, *RUN, *args)


def sweep(field, spec, *args):
    return cli(field, *SWEEP, *args, spec=spec)


def tiny_model():
    return MarketModel(rng=0, benchmark=False)


CASES = {
    # market-abm run: counts and seeds
    "seed not a number": cli("--seed", "run", "pollution", "--out", "out", "--seed", "x"),
    "negative seed": cli("--seed", "run", "pollution", "--out", "out", "--seed", "-1"),
    "seed beyond int64": cli("--seed", "run", "pollution", "--out", "out", "--seed", str(2**64)),
    "no agents": run("--agents", "--agents", "0"),
    "agents beyond memory": run("n_agents", "--agents", "1000000000000"),
    "negative episodes": run("--episodes", "--episodes", "-5"),
    "episodes beyond int64": run("--episodes", "--episodes", str(2**64)),
    "episodes beyond memory": run("episodes", "--episodes", str(10**17)),
    "no steps": run("--steps", "--steps", "0"),
    "steps and episodes": run("--episodes", "--steps", "10", "--episodes", "10"),
    "negative snapshot interval": run("--agents-every", "--agents-every", "-1"),
    "unknown scenario": cli("scenario", "run", "volcano", "--out", "out", "--seed", "0"),
    "unknown mechanism": run("--mechanism", "--mechanism", "bribe"),
    "unknown learner": run("--learner", "--learner", "sage"),
    "unknown scheme": run("--scheme", "--scheme", "weekly"),
    "scheme without a scheme's mechanism": run("--scheme", "--mechanism", "none", "--scheme", "threshold"),
    "oracle without an exact model": run("mechanism", "--agents", "4", "--mechanism", "oracle"),
    # graphs
    "unknown graph": run("graph", "--graph", "moebius"),
    "a bare file name": run("graph", "--graph", "edges"),
    "missing edge-list file": run("graph", "--graph", "missing.txt"),
    "missing --graph-file": run("graph", "--graph-file", "nowhere.txt"),
    "--graph and --graph-file": run("--graph-file", "--graph", "ring", "--graph-file", "edges.txt"),
    "parameters for an edge-list file": run("graph_params", "--graph-file", "edges.txt", "--graph-params", '{"k": 2}'),
    "agents unlike the file's nodes": run("n_agents", "--graph-file", "edges.txt", "--agents", "5"),
    "unreadable edge-list file": run("graph", "--graph-file", "binary.bin"),
    "empty edge-list file": run("graph", "--graph-file", "empty.txt"),
    "lattice degree beyond the nodes": run("k", "--agents", "10", "--graph-params", '{"k": 1000000}'),
    "odd lattice degree": run("k", "--agents", "10", "--graph", "ring", "--graph-params", '{"k": 3}'),
    "unknown graph parameter": run("graph_params", "--agents", "10", "--graph", "ring", "--graph-params",
                                   '{"colour": 1}'),
    "boolean lattice degree": run("k", "--agents", "10", "--graph", "ring", "--graph-params", '{"k": true}'),
    "rewiring probability above 1": run("p", "--agents", "10", "--graph-params", '{"p": 1.5}'),
    "attachment beyond the nodes": run("m", "--agents", "5", "--graph", "barabasi_albert", "--graph-params",
                                       '{"m": 9}'),
    "complete graph beyond memory": run("graph", "--agents", "100000", "--graph", "complete"),
    # JSON parameters
    "parameters not JSON": run("--graph-params", "--graph-params", "not json"),
    "parameters not an object": run("--mechanism-params", "--mechanism-params", "[1]"),
    "reserved mechanism parameter": run("mechanism_params", "--mechanism-params", '{"env": 1}'),
    "scheme as a mechanism parameter": run("mechanism_params", "--mechanism-params", '{"scheme": "fine"}'),
    "boolean given as a string": run("known_model", "--mechanism-params", '{"known_model": "false"}'),
    "mechanism parameter out of range": run("tol", "--mechanism-params", '{"tol": 0}'),
    "parameter of another mechanism": run("mechanism_params", "--mechanism", "oracle", "--mechanism-params",
                                          '{"tol": 0.1}'),
    "reserved learner parameter": run("learner_params", "--learner-params", '{"n_agents": 2}'),
    "parameter a Q-learner fixes": run("learner_params", "--learner", "epsilon_greedy", "--learner-params",
                                       '{"exploration": "boltzmann"}'),
    "learner parameter out of range": run("bonus", "--learner-params", '{"bonus": -1}'),
    "learner payoff range reversed": run("payoff_range", "--learner-params", '{"payoff_range": [1, 0]}'),
    "levels beyond memory": run("levels", "--scenario-params", '{"levels": 100000}'),
    "names not a list": run("action_names", "--scenario-params", '{"action_names": 3}'),
    "number given as a word": run("decay", "--scenario-params", '{"decay": "fast"}'),
    "levels not whole": run("levels", "--scenario-params", '{"levels": 2.5}'),
    "unknown scenario parameter": run("scenario_params", "--scenario-params", '{"spin": 1}'),
    "initial distribution of the wrong size": run("initial", "--scenario-params", '{"initial": [1.0]}'),
    "NaN parameter": run("decay", "--scenario-params", '{"decay": NaN}'),
    "insurance premium too high": cli("premium", "run", "insurance", "--out", "out", "--quiet", "--seed", "0",
                                      "--scenario-params", '{"premium": 0.9}'),
    "pricing with an rng parameter": cli("scenario_params", "run", "pricing", "--out", "out", "--quiet", "--seed",
                                         "0", "--scenario-params", '{"rng": 1}'),
    "pricing with a Pigouvian tax": cli("mechanism", "run", "pricing", "--out", "out", "--seed", "0",
                                        "--mechanism", "pigouvian"),
    "pricing duopolies of an odd number of firms": cli("n_agents", "run", "pricing", "--out", "out", "--seed", "0",
                                                        "--agents", "401", "--graph", "cliques"),
    # --out
    "--out is a file": cli("out", "run", "pollution", "--out", "afile", "--seed", "0"),
    "--out under a file": cli("out", "run", "pollution", "--out", "afile/run", "--seed", "0"),
    "--out holds an earlier run": cli("out", "run", "pollution", "--out", "earlier", "--seed", "1"),
    "--overwrite of a folder that is no run": cli("out", "run", "pollution", "--out", "notrun", "--seed", "0",
                                                  "--overwrite"),
    "--out is the current folder": cli("out", "run", "pollution", "--out", ".", "--seed", "0", "--overwrite"),
    "--out holds the current folder": cli("out", "run", "pollution", "--out", "..", "--seed", "0"),
    "--out is the root folder": cli("out", "run", "pollution", "--out", "/", "--seed", "0"),
    # market-abm sweep
    "negative steps": sweep("steps", SPEC.replace("steps = 6", "steps = -3")),
    "steps as text": sweep("steps", SPEC.replace("steps = 6", 'steps = "6"')),
    "steps beyond memory": sweep("steps", SPEC.replace("steps = 6", f"steps = {10**15}")),
    "empty seeds": sweep("seeds", SPEC.replace("seeds = [0]", "seeds = []")),
    "repeated seed": sweep("seeds", SPEC.replace("seeds = [0]", "seeds = [1, 1]")),
    "negative seed in a spec": sweep("seeds[0]", SPEC.replace("seeds = [0]", "seeds = [-1]")),
    "unknown spec key": sweep("agents", SPEC + "agents = 4\n"),
    "spec without a scenario": sweep("scenario", SPEC.replace('scenario = "pollution"\n', "")),
    "unknown grid parameter": sweep("grid.learning_rate", SPEC + "[grid]\nlearning_rate = [1, 2]\n"),
    "wrong type in the grid": sweep("grid.n_agents[1]", SPEC + "[grid]\nn_agents = [4, 2.5]\n"),
    "grid beyond the run limit": sweep("grid", HUGE_GRID),
    "seeds beyond the run limit": sweep("seeds", SPEC.replace("seeds = [0]", f"seeds = {list(range(10_001))}")),
    "levels beyond memory in a spec": sweep("scenario_params.levels", SPEC + "[scenario_params]\nlevels = 100000\n"),
    "agents beyond memory in a spec": sweep("n_agents", SPEC + "n_agents = 1000000000000\n"),
    "unknown graph in a spec": sweep("graph", SPEC + 'graph = "moebius"\n'),
    "odd lattice degree in a spec": sweep("graph_params.k", SPEC + 'n_agents = 10\ngraph = "ring"\n'
                                                                   "[graph_params]\nk = 3\n"),
    "boolean as a string in a spec": sweep("mechanism_params.known_model",
                                           SPEC + '[mechanism_params]\nknown_model = "false"\n'),
    "malformed TOML": sweep("spec.toml", "steps = \n"),
    "missing spec file": cli("spec", "sweep", "nowhere.toml", "--out", "sweep"),
    "no runs allowed": sweep("--max-runs", SPEC, "--max-runs", "0"),
    "no workers": sweep("--workers", SPEC, "--workers", "0"),
    "workers beyond reason": sweep("workers", SPEC, "--workers", "100000"),
    "sweep --out is a file": cli("out", "sweep", "spec.toml", "--out", "afile"),
    "sweep --out under a file": cli("out", "sweep", "spec.toml", "--out", "afile/sweep"),
    "sweep --out holds something else": cli("out", "sweep", "spec.toml", "--out", "notrun"),
    "sweep --out holds a single run": cli("out", "sweep", "spec.toml", "--out", "earlier"),
    "sweep --out holds another spec": cli("out", "sweep", "spec.toml", "--out", "sweepdir",
                                          spec=SPEC.replace("steps = 6", "steps = 7")),
    # market-abm replay
    "replay of no folder": cli("dir", "replay", "nowhere"),
    "replay of a folder that is no run": cli("dir", "replay", "notrun"),
    "replay of a single run with a run id": cli("run_id", "replay", "earlier", "abc"),
    "replay of a sweep without a run id": cli("run_id", "replay", "sweepdir"),
    "replay of an unknown run id": cli("run_id", "replay", "sweepdir", "zzzz"),
    "replay of a manifest without runs": cli("dir", "replay", "norunsdir", "abc"),
    "replay of a summary without settings": cli("dir", "replay", "oldrun"),
    "replay of unknown settings": cli("settings", "replay", "badsettings"),
    # the Python API
    "rng negative": api("rng", lambda: MarketModel(rng=-1)),
    "rng a word": api("rng", lambda: MarketModel(rng="abc")),
    "rng a fraction": api("rng", lambda: MarketModel(rng=1.5)),
    "rng a boolean": api("rng", lambda: MarketModel(rng=True)),
    "learner_params a list": api("learner_params", lambda: MarketModel(rng=0, learner_params=[1])),
    "n_agents beyond memory": api("n_agents", lambda: MarketModel(rng=0, n_agents=10**12)),
    "n_agents as text": api("n_agents", lambda: MarketModel(rng=0, n_agents="4")),
    "replicas beyond memory": api("n_agents", lambda: MarketModel(rng=0, mdp=single_node_mdp(), n_agents=10**12)),
    "levels beyond memory in Python": api("levels", lambda: MarketModel(rng=0, scenario_params={"levels": 100000})),
    "names not a list in Python": api("action_names", lambda: MarketModel(rng=0, scenario_params={"action_names": 3})),
    "reserved name in Python": api("mechanism_params", lambda: MarketModel(rng=0, mechanism_params={"env": 1})),
    "boolean as a string in Python": api("known_model", lambda: MarketModel(
        rng=0, mechanism_params={"known_model": "false"})),
    "benchmark as a string": api("benchmark", lambda: MarketModel(rng=0, benchmark="false")),
    "lattice degree beyond the nodes in Python": api("k", lambda: MarketModel(
        rng=0, n_agents=10, graph="watts_strogatz", graph_params={"k": 10**6})),
    "parameters for a networkx graph": api("graph_params", lambda: MarketModel(
        rng=0, graph=nx.path_graph(3), graph_params={"k": 2})),
    "mdp of the wrong type": api("mdp", lambda: MarketModel(rng=0, mdp="not an mdp")),
    "scenario parameters for a custom mdp": api("scenario_params", lambda: MarketModel(
        rng=0, mdp=single_node_mdp(), scenario_params={"decay": 0.1})),
    "shared principal without replicas": api("shared_principal", lambda: MarketModel(rng=0, shared_principal=True)),
    "scheme a number": api("scheme", lambda: MarketModel(rng=0, scheme=3)),
    "transfer scheme of other sizes": api("scheme", lambda: MarketModel(
        rng=0, scheme=TransferScheme(np.zeros((2, 2), dtype=int), 2))),
    "scenario of an unknown kind": api("scenario", lambda: MarketModel(rng=0, scenario=single_node_mdp())),
    "own environment with other agents": api("n_agents", lambda: MarketModel(
        rng=0, scenario=TabularEnv(single_node_mdp(), 3), n_agents=4)),
    "graph parameters for an own environment": api("graph_params", lambda: MarketModel(
        rng=0, scenario=TabularEnv(single_node_mdp(), 3), graph_params={"k": 2})),
    "shared principal for an own environment": api("shared_principal", lambda: MarketModel(
        rng=0, scenario=TabularEnv(single_node_mdp(), 3), shared_principal=True)),
    "an mdp and an own environment": api("mdp", lambda: MarketModel(
        rng=0, scenario=TabularEnv(single_node_mdp(), 3), mdp=single_node_mdp())),
    "learner a list": api("learner", lambda: MarketModel(rng=0, learner=[1])),
    "episodes beyond memory in Python": api("episodes", lambda: tiny_model().run_episodes(10**17)),
    "steps a fraction": api("steps", lambda: tiny_model().run_steps(1.5)),
    "graph file missing in Python": api("graph", lambda: make_topology("./missing", 1, np.random.default_rng(0))),
    "truncated run file": api("dir", lambda: load_dataset("truncdir")),
    "dataset without runs in the manifest": api("dir", lambda: load_dataset("norunsdir")),
    "unknown dataset column": api("columns", lambda: load_dataset("sweepdir", columns=["nope"])),
    "grid beyond the run limit in Python": api("grid", lambda: parse_spec(HUGE_GRID)),
    "sweep into a file in Python": api("out", lambda: run_sweep(parse_spec(SPEC), "afile", progress=False)),
    "write over an earlier run in Python": api("out", lambda: write_run(tiny_model(), "earlier")),
}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A finished single run and a finished one-run sweep to copy into each case's folder."""
    folder = tmp_path_factory.mktemp("templates")
    assert main(["run", "pollution", "--seed", "0", "--episodes", "20", "--out", str(folder / "run"), "--quiet"]) == 0
    run_sweep(parse_spec(SPEC), folder / "sweep", progress=False)
    return folder


def workspace(folder, templates, spec):
    """The inputs every case may refer to, in `folder`."""
    (folder / "edges.txt").write_text("a b\nb c\n")
    (folder / "edges").write_text("a b\n")
    (folder / "ring").write_text("a b\n")
    (folder / "empty.txt").write_text("")
    (folder / "binary.bin").write_bytes(b"\xff\xfe\x00\x01")
    (folder / "afile").write_text("not a folder\n")
    (folder / "notrun").mkdir()
    (folder / "notrun" / "notes.txt").write_text("my own files\n")
    (folder / "spec.toml").write_text(spec)
    shutil.copytree(templates / "run", folder / "earlier")
    shutil.copytree(templates / "sweep", folder / "sweepdir")
    for name, edit in {"oldrun": lambda s: s.pop("format"), "badsettings": lambda s: s["settings"].update(colour=1)}.items():
        shutil.copytree(templates / "run", folder / name)
        summary = json.loads((folder / name / "summary.json").read_text())
        edit(summary)
        (folder / name / "summary.json").write_text(json.dumps(summary))
    shutil.copytree(templates / "sweep", folder / "norunsdir")
    manifest = json.loads((folder / "norunsdir" / "manifest.json").read_text())
    del manifest["runs"]
    (folder / "norunsdir" / "manifest.json").write_text(json.dumps(manifest))
    shutil.copytree(templates / "sweep", folder / "truncdir")
    run_file = next((folder / "truncdir" / "runs").glob("*.parquet"))
    run_file.write_bytes(run_file.read_bytes()[:200])


def contents(folder):
    """Every path under `folder` with its size and modification time."""
    return {path.relative_to(folder): (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*")}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_gets_one_line_naming_the_field_and_writes_nothing(name, templates, tmp_path, monkeypatch,
                                                                     capsys):
    case = CASES[name]
    workspace(tmp_path, templates, case.spec)
    monkeypatch.chdir(tmp_path)
    before = contents(tmp_path)
    if case.call is None:
        assert main(list(case.args)) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        message = lines[0]
        assert "Traceback" not in captured.err + captured.out
    else:
        with pytest.raises(ValueError) as err:
            case.call()
        message = str(err.value)
        assert "\n" not in message
    assert f"{case.field}:" in message, message
    assert contents(tmp_path) == before


def test_the_table_covers_every_surface():
    surfaces = {case.args[0] if case.args else "python" for case in CASES.values()}
    assert surfaces == {"run", "sweep", "replay", "python"} and len(CASES) >= 60
