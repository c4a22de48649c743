"""The headline figures at the command line's defaults (seeds 0 and 1), and the ceiling instance with
the default learner: slow, run by CI."""

import pytest
from helpers import cli_summary

from market_abm import MarketModel
from market_abm.environments.economies import costly_compliance

pytestmark = pytest.mark.slow

FIGURES = ("gap_closed", "regret_slope", "regret_decay", "final_max_abs_error", "cells_at_ceiling",
           "total_welfare_regret")


def run(tmp_path, *args):
    summary = cli_summary(tmp_path, *args)
    print(args, {k: summary.get(k) for k in FIGURES})
    return summary


@pytest.mark.parametrize("seed", ["0", "1"])
def test_paper_setting_headline_figures(tmp_path, seed):
    two_phase = run(tmp_path, "pollution", "--mechanism", "two_phase", "--seed", seed)
    assert two_phase["gap_closed"] >= 0.95
    assert two_phase["cells_at_ceiling"] == 0
    assert two_phase["final_max_abs_error"] <= 0.1
    assert two_phase["regret_decay"] <= 0.5  # regret per episode falls, not just its running average
    assert run(tmp_path, "pollution", "--mechanism", "oracle", "--seed", seed)["gap_closed"] >= 0.95
    none = run(tmp_path, "pollution", "--mechanism", "none", "--seed", seed)
    assert none["gap_closed"] <= 0.1 and none["regret_slope"] >= 0.9
    coarse = run(tmp_path, "pollution", "--mechanism", "two_phase", "--scheme", "per_action", "--seed", seed)
    assert coarse["gap_closed"] >= 0.5


def test_compensating_transfers_above_the_first_ceiling_are_found_with_the_default_learner():
    model = MarketModel(mdp=costly_compliance(3.0), n_agents=2, mechanism="two_phase", rng=0)
    model.run_episodes(3000)
    summary = model.summary()
    print({k: summary.get(k) for k in FIGURES})
    assert summary["cells_at_ceiling"] == 0
    assert summary["gap_closed"] >= 0.9


def test_network_two_phase_closes_most_of_the_gap(tmp_path):
    summary = run(tmp_path, "pollution", "--agents", "400", "--graph", "watts_strogatz", "--mechanism",
                  "two_phase", "--seed", "0")
    assert summary["benchmark"] == "best_local_policy"
    assert summary["gap_closed"] >= 0.7
