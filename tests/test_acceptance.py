"""The headline figures at the command line's defaults (seeds 0 and 1): slow, run by CI."""

import json

import pytest

from market_abm.cli import main

pytestmark = pytest.mark.slow


def run(tmp_path, *args):
    out = tmp_path / "_".join(a.strip("-") for a in args)
    assert main(["run", *args, "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    print(args, {k: summary.get(k) for k in ("gap_closed", "regret_slope", "phase1_max_abs_error")})
    return summary


@pytest.mark.parametrize("seed", ["0", "1"])
def test_paper_setting_headline_figures(tmp_path, seed):
    two_phase = run(tmp_path, "pollution", "--mechanism", "two_phase", "--seed", seed)
    assert two_phase["gap_closed"] >= 0.9
    assert two_phase["regret_slope"] <= 0.75
    assert two_phase["phase1_max_abs_error"] <= 0.1
    assert run(tmp_path, "pollution", "--mechanism", "oracle", "--seed", seed)["gap_closed"] >= 0.95
    none = run(tmp_path, "pollution", "--mechanism", "none", "--seed", seed)
    assert none["gap_closed"] <= 0.1 and none["regret_slope"] >= 0.9
    coarse = run(tmp_path, "pollution", "--mechanism", "two_phase", "--scheme", "per_action", "--seed", seed)
    assert coarse["gap_closed"] >= 0.6


def test_network_two_phase_closes_most_of_the_gap(tmp_path):
    summary = run(tmp_path, "pollution", "--agents", "400", "--graph", "watts_strogatz", "--mechanism",
                  "two_phase", "--seed", "0")
    assert summary["benchmark"] == "best_local_policy"
    assert summary["gap_closed"] >= 0.7
