"""The `market-abm run` command: outputs, reproducibility, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from market_abm.cli import main


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
    (["--learner", "contract_aware"], "learner: 'contract_aware' cannot learn a continuing market"),
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
