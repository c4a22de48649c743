"""The `market-abm run` and `list` commands: outputs, reproducibility, and one-line errors with exit status 2."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from market_abm.cli import main
from market_abm.registry import KINDS, description


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "market_abm.cli", *args], capture_output=True, text=True)


def test_run_writes_episodes_steps_and_summary(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "pollution", "--seed", "0", "--episodes", "300", "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"episodes.parquet", "steps.parquet", "summary.json", "figure.png"}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("optimal_welfare", "laissez_faire_welfare", "final_welfare", "gap_closed", "regret_slope",
                "total_welfare_regret", "transfers_per_episode", "phase1_episodes"):
        assert key in summary
    assert len(pd.read_parquet(out / "episodes.parquet")) == 300


def test_fixed_seed_gives_identical_episodes_parquet(tmp_path):
    for name in ("a", "b"):
        assert main(["run", "pollution", "--seed", "7", "--episodes", "200", "--out", str(tmp_path / name),
                     "--quiet"]) == 0
    assert (tmp_path / "a" / "episodes.parquet").read_bytes() == (tmp_path / "b" / "episodes.parquet").read_bytes()


def test_network_run_writes_agent_snapshots(tmp_path):
    out = tmp_path / "net"
    assert main(["run", "pollution", "--agents", "16", "--graph", "ring", "--steps", "30", "--seed", "1",
                 "--agents-every", "10", "--out", str(out), "--quiet"]) == 0
    agents = pd.read_parquet(out / "agents.parquet")
    assert len(agents) == 3 * 16 and set(agents["step"]) == {10, 20, 30}


def test_list_prints_every_registered_choice_by_kind_with_its_description():
    result = run_cli("list")
    assert result.returncode == 0 and not result.stderr
    blocks = [block.splitlines() for block in result.stdout.strip().split("\n\n")]
    assert [lines[0] for lines in blocks] == [f"{kind}:" for kind in KINDS]
    for (kind, table), lines in zip(KINDS.items(), blocks):
        rows = [line.split(maxsplit=1) for line in lines[1:]]
        assert rows == [[name, description(factory)] for name, factory in table.items()], kind
        assert all(text.endswith(".") and "(see" not in text for _, text in rows), kind
    refused = run_cli("list", "--all")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and not refused.stdout


@pytest.mark.parametrize("args, needle", [
    (["--seed", "x"], "--seed"),
    (["--seed", "0", "--agents", "0"], "--agents"),
    (["--seed", "0", "--episodes", "-5"], "--episodes"),
    (["--seed", "0", "--mechanism", "bribe"], "--mechanism"),
    (["--seed", "0", "--graph", "moebius"], "graph"),
    (["--seed", "0", "--agents", "10", "--graph", "ring", "--graph-params", '{"k": 3}'], "k"),
    (["--seed", "0", "--mechanism-params", '{"tol": 0}'], "tol"),
    (["--seed", "0", "--mechanism-params", "[1]"], "--mechanism-params"),
    (["--seed", "0", "--scenario-params", '{"decay": "fast"}'], "decay"),
])
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, args, needle):
    out = tmp_path / "never"
    result = run_cli("run", "pollution", "--out", str(out), "--quiet", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()


PRICING = ["run", "pricing", "--agents", "8", "--graph", "cliques", "--quiet",
           "--scenario-params", '{"n_prices": 5, "review_every": 1000, "observed_periods": 50, "max_periods": 40000}',
           "--learner-params", '{"beta": 0.0005, "convergence_periods": 2000}']


def test_pricing_runs_to_convergence_through_the_ordinary_writer(tmp_path):
    out = tmp_path / "pricing"
    assert main([*PRICING, "--mechanism", "two_phase", "--scheme", "per_action", "--seed", "3", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"episodes.parquet", "steps.parquet", "summary.json", "figure.png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ran_to_convergence"] and summary["converged_share"] == 1.0
    assert summary["learner"] == "calvano_q" and summary["scheme"] == "per_action" and summary["graph"] == "cliques"
    steps = pd.read_parquet(out / "steps.parquet")
    assert steps["period"].iloc[-1] == summary["periods"]


@pytest.mark.parametrize("args, needle", [
    (["--mechanism", "oracle"], "mechanism: 'oracle' needs an exact local model"),
    (["--graph-params", '{"size": 3}'], "n_agents: must be a multiple of the clique size 3"),
    (["--scenario-params", '{"review_every": 0}'], "review_every: "),
])
def test_pricing_refuses_what_makes_no_sense_in_one_line(tmp_path, args, needle):
    out = tmp_path / "never"
    base = PRICING[:-4] if args[0] in ("--scenario-params",) else PRICING
    result = run_cli(*base, "--seed", "0", "--out", str(out), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not out.exists()
# --- whole folders, --overwrite and replay ---------------------------------------------------------

NETWORK_RUN = ["run", "pollution", "--agents", "4", "--graph", "ring", "--steps", "12", "--quiet"]
RUN_FILES = {"episodes.parquet", "steps.parquet", "summary.json", "figure.png"}


def test_an_earlier_run_is_refused_and_overwrite_replaces_it_whole(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*NETWORK_RUN, "--seed", "0", "--agents-every", "6", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == RUN_FILES | {"agents.parquet"}
    assert main([*NETWORK_RUN, "--seed", "1", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["seed"] == 0
    assert main([*NETWORK_RUN, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert {p.name for p in out.iterdir()} == RUN_FILES  # seed 0's agent snapshots are gone with it
    assert json.loads((out / "summary.json").read_text())["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing left beside it


def test_summary_records_the_seed_and_settings_and_replay_checks_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*NETWORK_RUN, "--seed", "3", "--agents-every", "4", "--learner", "epsilon_greedy",
                 "--mechanism-params", '{"warmup": 1}', "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["format"] == "market_abm.run/1"
    assert summary["settings"] == {
        "scenario": "pollution", "n_agents": 4, "graph": "ring", "mechanism": "two_phase", "scheme": "fine",
        "learner": "epsilon_greedy", "graph_params": {}, "scenario_params": {}, "learner_params": {},
        "mechanism_params": {"warmup": 1}, "agent_snapshot_every": 4, "steps": 12}
    assert set(summary["written_by"]) == {"package_version", "git_commit", "git_dirty"}
    capsys.readouterr()
    assert main(["replay", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "replay run: identical (12 rows)"
    agents = pd.read_parquet(out / "agents.parquet")
    agents.loc[5, "reward"] += 1e-12
    agents.to_parquet(out / "agents.parquet", index=False)
    assert main(["replay", str(out)]) == 1
    assert "agents.parquet: column 'reward' first differs at row 5" in capsys.readouterr().out


def test_built_in_graph_names_win_over_files_which_are_given_as_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ring").write_text("a b\nb c\n")
    run = ["run", "pollution", "--steps", "6", "--seed", "0", "--quiet"]
    assert main([*run, "--agents", "6", "--graph", "ring", "--out", "builtin"]) == 0
    assert main([*run, "--graph", "./ring", "--out", "path"]) == 0
    assert main([*run, "--graph-file", "ring", "--out", "option"]) == 0
    summaries = {name: json.loads((tmp_path / name / "summary.json").read_text()) for name in ("builtin", "path", "option")}
    assert (summaries["builtin"]["graph"], summaries["builtin"]["n_agents"]) == ("ring", 6)
    for name in ("path", "option"):
        assert (summaries[name]["graph"], summaries[name]["n_agents"]) == (str(tmp_path / "ring"), 3)


def wait_for(stream, text, seconds):
    """Read `stream` until `text` appears (True) or `seconds` pass (False)."""
    seen, deadline = b"", time.monotonic() + seconds
    while text not in seen and time.monotonic() < deadline:
        if select.select([stream], [], [], 0.1)[0]:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return text in seen


def test_a_run_killed_mid_run_leaves_nothing_and_reruns_into_the_same_folder(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "market_abm.cli", "run", "pollution", "--seed", "0", "--episodes", "200000",
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = wait_for(process.stderr, b"pollution/two_phase", 120)  # its progress bar
    finally:
        process.kill()
        process.wait()
    assert started and process.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []
    assert main(["run", "pollution", "--seed", "0", "--episodes", "20", "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == RUN_FILES


KILLED_WHILE_WRITING = """
import os, signal, sys
import market_abm.results
market_abm.results.plot_run = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # the last file
from market_abm.cli import main
from market_abm.registry import KINDS, description
main(sys.argv[1:])
"""


def test_a_run_killed_while_writing_leaves_no_folder_that_looks_complete(tmp_path):
    out = tmp_path / "run"
    args = ["run", "pollution", "--seed", "0", "--episodes", "20", "--out", str(out), "--quiet"]
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, *args], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    (partial,) = tmp_path.iterdir()  # hidden, and named as a temporary folder
    assert partial.name.startswith(".run.") and partial.name.endswith(".tmp")
    assert {p.name for p in partial.iterdir()} == RUN_FILES - {"figure.png"}
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the dead run's folder is cleared away
