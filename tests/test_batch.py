"""Batch runs: sweep specs, resumable Parquet datasets, backends (serial, processes, Dask), replay,
and Mesa's batch_run on MarketModel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mesa
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import market_abm
from market_abm import MarketModel, load_dataset
from market_abm.batch import load_summaries, parse_spec, run_sweep
from market_abm.cli import main

# The 16-run sweep: 2 mechanisms x 2 sizes x 4 seeds.
SIXTEEN = """
scenario = "pollution"
steps = 240
seeds = [0, 1, 2, 3]
graph = "ring"
[grid]
mechanism = ["two_phase", "none"]
n_agents = [4, 16]
"""

# A tiny sweep for the backend tests: 4 runs of 30 steps.
TINY = """
scenario = "pollution"
steps = 30
seeds = [5, 6]
n_agents = 4
graph = "watts_strogatz"
[graph_params]
k = 2
[grid]
scenario_params.damage_share = [0.25, 0.5]
"""


def write_spec(folder, text, name="spec.toml"):
    path = Path(folder) / name
    path.write_text(text)
    return path


def cli(*args):
    """`market-abm ARGS` in a separate process; returns the completed process."""
    return subprocess.run([sys.executable, "-m", "market_abm.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def sixteen(tmp_path_factory):
    """The 16-run sweep, uninterrupted, serial, in this process: (spec path, output folder)."""
    folder = tmp_path_factory.mktemp("sixteen")
    spec = write_spec(folder, SIXTEEN)
    report = run_sweep(spec, folder / "reference", progress=False)
    assert report.complete and report.ran == 16
    return spec, folder / "reference"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny sweep run serially: (spec path, output folder)."""
    folder = tmp_path_factory.mktemp("tiny")
    spec = write_spec(folder, TINY)
    assert main(["sweep", str(spec), "--out", str(folder / "serial"), "--quiet"]) == 0
    return spec, folder / "serial"


# --- the spec -----------------------------------------------------------------------------------

def test_spec_is_the_grid_product_times_seeds_with_stable_run_ids():
    spec = parse_spec(SIXTEEN)
    runs = spec.runs()
    assert len(runs) == 16
    assert len({run.run_id for run in runs}) == 16
    assert [run.run_id for run in parse_spec(SIXTEEN).runs()] == [run.run_id for run in runs]
    first = runs[0]
    assert first.params == {"scenario": "pollution", "n_agents": 4, "graph": "ring", "mechanism": "two_phase",
                            "scheme": "fine", "learner": "contract_aware", "graph_params": {},
                            "scenario_params": {}, "learner_params": {}, "mechanism_params": {}, "steps": 240}
    assert [run.seed for run in runs[:4]] == [0, 1, 2, 3]
    assert first.labels == {"scenario": "pollution", "n_agents": 4, "graph": "ring", "mechanism": "two_phase",
                            "scheme": "fine", "learner": "contract_aware"}
    assert parse_spec(TINY).runs()[0].labels["scenario_params.damage_share"] == 0.25


BASE = 'scenario = "pollution"\nsteps = 10\nseeds = [0]\n'
BAD_SPECS = {
    "negative steps": (BASE.replace("steps = 10", "steps = -3"), "steps"),
    "zero steps": (BASE.replace("steps = 10", "steps = 0"), "steps"),
    "unknown key": (BASE + "agents = 4\n", "agents"),
    "unknown grid parameter": (BASE + "[grid]\nlearning_rate = [1, 2]\n", "grid.learning_rate"),
    "unknown scenario parameter": (BASE + "[scenario_params]\nfoo = 1\n", "scenario_params"),
    "wrong type": (BASE.replace("steps = 10", 'steps = "10"'), "steps"),
    "wrong type of a table entry": (BASE + '[scenario_params]\ndecay = "high"\n', "scenario_params.decay"),
    "wrong type in the grid": (BASE + "[grid]\nn_agents = [4, 2.5]\n", "grid.n_agents[1]"),
    "empty seeds": (BASE.replace("seeds = [0]", "seeds = []"), "seeds"),
    "missing seeds": (BASE.replace("seeds = [0]", ""), "seeds"),
    "unknown scenario": (BASE.replace('"pollution"', '"volcano"'), "scenario"),
    "unknown mechanism in the grid": (BASE + '[grid]\nmechanism = ["none", "bribe"]\n', "grid.mechanism[1]"),
    "malformed TOML": ('scenario = "pollution"\nsteps = \nseeds = [0]\n', "malformed TOML"),
    "bad parameter at one grid point": (BASE + "[grid]\nn_agents = [4, 6]\nscenario_params.decay = [0.3, 1.5]\n",
                                        "scenario_params.decay"),
}


@pytest.mark.parametrize("case", BAD_SPECS)
def test_a_bad_spec_exits_2_with_one_line_naming_the_field_and_writes_nothing(case, tmp_path, capsys):
    text, field = BAD_SPECS[case]
    spec = write_spec(tmp_path, text)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert field in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_bad_spec_in_a_real_process_prints_no_traceback(tmp_path):
    spec = write_spec(tmp_path, BASE.replace("steps = 10", "steps = -1"))
    done = cli("sweep", spec, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"market-abm: error: {spec.name}: steps: must be >= 1, got -1"]
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_another_spec_is_refused(tiny, tmp_path, capsys):
    _, folder = tiny
    other = write_spec(tmp_path, TINY.replace("seeds = [5, 6]", "seeds = [5, 7]"))
    assert main(["sweep", str(other), "--out", str(folder), "--quiet"]) == 2
    assert "another spec" in capsys.readouterr().err


# --- the dataset and the manifest ---------------------------------------------------------------

def test_dataset_has_one_row_per_run_and_step_with_parameters_seed_and_metrics(tiny):
    _, folder = tiny
    frame = load_dataset(folder)
    assert len(frame) == 4 * 30
    for column in ("run_id", "scenario", "n_agents", "graph", "mechanism", "scheme", "learner",
                   "scenario_params.damage_share", "seed", "step", "episode", "h", "phase", "welfare",
                   "benchmark_welfare", "transfers", "cumulative_regret", "expected_welfare", "mean_state",
                   "share_abate"):
        assert column in frame.columns
    assert frame.groupby("run_id")["step"].apply(list).map(lambda s: s == list(range(1, 31))).all()
    assert sorted(frame["seed"].unique()) == [5, 6]
    # the same values as a model run by hand
    model = MarketModel(scenario="pollution", n_agents=4, graph="watts_strogatz", graph_params={"k": 2},
                        scenario_params={"damage_share": 0.5}, rng=6)
    model.run_steps(30)
    mine = frame[(frame["seed"] == 6) & (frame["scenario_params.damage_share"] == 0.5)]
    expected = model.steps_frame()
    pd.testing.assert_frame_equal(mine[expected.columns].reset_index(drop=True), expected)


def test_manifest_records_spec_parameters_seed_version_commit_and_summaries(tiny):
    spec, folder = tiny
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["spec_toml"] == spec.read_text()
    assert manifest["spec"]["seeds"] == [5, 6]
    assert manifest["runs_total"] == manifest["runs_done"] == 4
    for run in manifest["runs"]:
        assert run["status"] == "done"
        assert run["params"]["scenario_params"]["damage_share"] in (0.25, 0.5)
        assert run["seed"] in (5, 6)
        assert run["package_version"] == market_abm.__version__
        assert "git_commit" in run
        assert "gap_closed" in run["summary"]
        assert run["seconds"] > 0
    summaries = load_summaries(folder)
    assert len(summaries) == 4 and "gap_closed" in summaries
    assert list(summaries["seconds"]) == [run["seconds"] for run in manifest["runs"]]
    stored = pd.read_parquet(folder / "summaries.parquet")  # no run times: the same bytes on every run
    assert "seconds" not in stored
    pd.testing.assert_frame_equal(stored, summaries.drop(columns="seconds"))
    assert not (folder / ".lock").exists()


def test_the_folder_can_be_queried_with_duckdb(tiny):
    duckdb = pytest.importorskip("duckdb")
    _, folder = tiny
    frame = load_dataset(folder)
    query = f"""SELECT seed, count(*) AS n, sum(welfare) AS welfare
                FROM read_parquet('{folder}/runs/*.parquet', union_by_name = true) GROUP BY seed ORDER BY seed"""
    result = duckdb.sql(query).df()
    expected = frame.groupby("seed").agg(n=("welfare", "size"), welfare=("welfare", "sum")).reset_index()
    assert list(result["n"]) == list(expected["n"])
    assert result["welfare"].to_numpy() == pytest.approx(expected["welfare"].to_numpy())
    gap = duckdb.sql(f"SELECT avg(gap_closed) AS g FROM '{folder}/summaries.parquet'").df()
    assert len(gap) == 1


# --- backends (local processes: see the SIGKILL test) ------------------------------------------

def test_dask_local_cluster_of_2_workers_gives_the_same_dataset(tiny, tmp_path):
    pytest.importorskip("dask.distributed")
    spec, folder = tiny
    out = tmp_path / "dask"
    assert main(["sweep", str(spec), "--out", str(out), "--backend", "dask", "--workers", "2", "--quiet"]) == 0
    pd.testing.assert_frame_equal(load_dataset(out), load_dataset(folder))


def test_dask_scheduler_address_uses_an_existing_cluster(tiny, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    spec, folder = tiny
    out = tmp_path / "cluster"
    # an in-process cluster starts fast; the test above runs a cluster of worker processes
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(["sweep", str(spec), "--out", str(out), "--scheduler", cluster.scheduler_address,
                     "--quiet"]) == 0
        with distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
    pd.testing.assert_frame_equal(load_dataset(out), load_dataset(folder))


def test_bad_backend_options_exit_2(tiny, tmp_path, capsys):
    spec, _ = tiny
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "0"]) == 2
    assert main(["sweep", str(spec), "--out", str(out), "--backend", "serial", "--workers", "2"]) == 2
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 3
    assert not out.exists()


# --- resuming -----------------------------------------------------------------------------------

def test_a_sweep_killed_with_sigkill_and_resumed_equals_an_uninterrupted_one(sixteen, tmp_path):
    spec, reference = sixteen
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "market_abm.cli", "sweep", str(spec), "--out", str(out), "--workers", "2",
               "--quiet"]
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while len(list(out.glob("runs/*.parquet"))) < 3 and sweep.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)  # the sweep and its worker processes
        sweep.wait()
    assert sweep.returncode == -signal.SIGKILL
    done_before = len(list(out.glob("runs/*.parquet")))
    assert 3 <= done_before < 16, "the sweep was not killed part-way"
    assert not (out / "summaries.parquet").exists()

    resumed = cli("sweep", spec, "--out", out, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_before} already done, {16 - done_before} run now" in resumed.stdout
    pd.testing.assert_frame_equal(load_dataset(out), load_dataset(reference))
    pd.testing.assert_frame_equal(load_summaries(out).drop(columns="seconds"),
                                  load_summaries(reference).drop(columns="seconds"))
    assert not list((out / "runs").glob(".*"))
    files = sorted(path.relative_to(reference) for path in reference.rglob("*.parquet"))
    assert len(files) == 17 and files == sorted(path.relative_to(out) for path in out.rglob("*.parquet"))
    for path in files:  # byte for byte: run times are only in the manifests
        assert (out / path).read_bytes() == (reference / path).read_bytes(), path
    assert not (out / ".lock").exists()


def test_partial_and_corrupt_run_files_are_redone_and_completed_ones_skipped(tiny, tmp_path):
    spec, reference = tiny
    out = tmp_path / "resumed"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    files = sorted((out / "runs").glob("*.parquet"))
    (out / "runs" / f".{files[0].name}.abc123.tmp").write_bytes(b"PAR1 half a file")  # killed while writing
    files[1].write_bytes(files[1].read_bytes()[:100])  # truncated
    files[2].unlink()  # missing
    (out / "summaries.parquet").unlink()
    report = run_sweep(spec, out, progress=False)
    assert (report.skipped, report.ran) == (2, 2)
    pd.testing.assert_frame_equal(load_dataset(out), load_dataset(reference))
    assert not list((out / "runs").glob(".*"))
    assert (out / "summaries.parquet").exists()


def test_a_failed_run_is_reported_and_redone_on_resume(tiny, tmp_path, monkeypatch, capsys):
    from market_abm.batch import runs

    spec, reference = tiny
    out = tmp_path / "failing"
    simulate = runs.simulate

    def fail_on_seed_6(params, seed):
        if seed == 6:
            raise RuntimeError("numerical trouble")
        return simulate(params, seed)

    monkeypatch.setattr(runs, "simulate", fail_on_seed_6)
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 1
    assert "2 runs failed" in capsys.readouterr().err
    statuses = [run["status"] for run in json.loads((out / "manifest.json").read_text())["runs"]]
    assert sorted(statuses) == ["done", "done", "failed", "failed"]
    monkeypatch.setattr(runs, "simulate", simulate)
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    pd.testing.assert_frame_equal(load_dataset(out), load_dataset(reference))


# --- replay -------------------------------------------------------------------------------------

def test_replay_rerun_is_identical_and_a_changed_file_is_caught(tiny, tmp_path, capsys):
    import shutil

    _, reference = tiny
    folder = tmp_path / "copy"
    shutil.copytree(reference, folder)
    run_id = json.loads((folder / "manifest.json").read_text())["runs"][1]["run_id"]
    assert main(["replay", str(folder), run_id[:8]]) == 0
    assert f"replay {run_id}: identical (30 rows)" in capsys.readouterr().out

    path = folder / "runs" / f"{run_id}.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[12, "welfare"] += 1e-12
    changed = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(changed, path)
    assert main(["replay", str(folder), run_id]) == 1
    assert "column 'welfare' first differs at row 12" in capsys.readouterr().out

    assert main(["replay", str(folder), "ffffzzzz"]) == 2
    assert "run_id" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "nowhere"), run_id]) == 2


# --- Mesa -----------------------------------------------------------------------------------------

@pytest.fixture
def restore_start_method():
    """mesa.batch_run forces the 'spawn' start method for the whole process: put the old one back."""
    import multiprocessing

    method = multiprocessing.get_start_method(allow_none=True)
    yield
    multiprocessing.set_start_method(method, force=True)


@pytest.mark.parametrize("processes", [1, 2])
def test_mesa_batch_run_works_on_market_model(processes, restore_start_method):
    results = mesa.batch_run(
        MarketModel,
        parameters={"n_agents": [1, 4], "mechanism": ["none", "two_phase"], "graph": "ring",
                    "graph_params": [{"k": 2}]},  # a dict is one value only inside a list
        rng=[3], max_steps=18, number_processes=processes, data_collection_period=1, display_progress=False)
    frame = pd.DataFrame(results)
    assert len(frame) == 4 * 18
    assert {"RunId", "Step", "n_agents", "mechanism", "welfare", "cumulative_regret", "transfers"} <= set(frame)
    model = MarketModel(n_agents=4, mechanism="two_phase", graph="ring", graph_params={"k": 2}, rng=3)
    model.run_steps(18)
    mine = frame[(frame["n_agents"] == 4) & (frame["mechanism"] == "two_phase")].sort_values("Step")
    expected = model.steps_frame()
    assert list(mine["Step"]) == list(expected["step"])
    for column in ("welfare", "transfers", "cumulative_regret", "mean_state"):
        assert list(mine[column]) == list(expected[column])


# --- the scenario ---------------------------------------------------------------------------------

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def test_the_gap_closed_scenario_spec_is_valid():
    from market_abm.batch import load_spec

    runs = load_spec(SCENARIOS / "sweep_gap_closed.toml").runs()
    assert {run.params["mechanism"] for run in runs} >= {"none", "two_phase"}
    assert len({run.params["graph"] for run in runs}) >= 3


def test_the_gap_closed_script_plots_and_tabulates_a_sweep(tmp_path):
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("sweep_gap_closed", SCENARIOS / "sweep_gap_closed.py")
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)
    spec = write_spec(tmp_path, 'scenario = "pollution"\nsteps = 24\nseeds = [0]\nn_agents = 4\n'
                                '[grid]\nmechanism = ["none", "pigouvian"]\ngraph = ["ring", "star"]\n')
    script.main(["--out", str(tmp_path / "out"), "--spec", str(spec), "--quiet"])
    table = pd.read_csv(tmp_path / "out" / "sweep_gap_closed.csv")
    assert len(table) == 4 and set(table["runs"]) == {1}
    assert (tmp_path / "out" / "sweep_gap_closed.png").stat().st_size > 10_000
    assert "| pigouvian |" in (tmp_path / "out" / "sweep_gap_closed.md").read_text()


def test_a_grid_of_schemes_runs_a_mechanism_without_one_once():
    spec = parse_spec(BASE + '[grid]\nmechanism = ["none", "two_phase"]\nscheme = ["fine", "stationary"]\n')
    schemes = [(run.params["mechanism"], run.params["scheme"]) for run in spec.runs()]
    assert schemes == [("none", None), ("two_phase", "fine"), ("two_phase", "stationary")]
