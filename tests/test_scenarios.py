"""Every scenario script runs on small settings and writes its PNG figure and its table."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "pollution_control": ["--episodes", "60", "--replicas", "2"],
    "pollution_network": ["--agents", "30", "--episodes", "30"],
    "insurance_contagion": ["--quick"],
    "outside_learner": ["--episodes", "20"],
    "algorithmic_pricing": ["--quick"],
}
TINY_SWEEP = """description = "two mechanisms on two graphs, briefly"
scenario = "pollution"
steps = 24
seeds = [0]
n_agents = 4
scheme = "fine"
[grid]
mechanism = ["none", "two_phase"]
graph = ["ring", "grid_2d"]
"""


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL))
def test_a_scenario_script_writes_its_figure_and_table(script, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scenarios" / f"{script}.py"), *SMALL[script],
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    written = {path.name for path in tmp_path.iterdir()}
    assert {f"{script}.png", f"{script}.csv", f"{script}.md"} <= written, written


@pytest.mark.slow
def test_the_sweep_scenario_runs_its_spec_and_plots_it(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SWEEP)
    result = subprocess.run([sys.executable, str(ROOT / "scenarios" / "sweep_gap_closed.py"), "--spec", str(spec),
                             "--workers", "1", "--quiet", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    written = {path.suffix for path in (tmp_path / "out").iterdir()}
    assert {".png", ".csv", ".md"} <= written, written


def test_every_scenario_script_has_a_small_run_here():
    scripts = {path.stem for path in (ROOT / "scenarios").glob("*.py")}
    assert scripts == set(SMALL) | {"sweep_gap_closed"}
