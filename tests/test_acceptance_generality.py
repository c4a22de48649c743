"""The mechanism's acceptance figures beyond the default instance and the default learner: the learner
alone, random economies, the pooled schemes in the paper setting and model-free firms in a population.
Slow, run by CI. Figures not reached yet are strict expected failures: each names what was measured,
and the test fails once the figure is reached, so that its marker is removed."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_summary

from market_abm import MarketModel

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark(name):
    """A script of `benchmarks/`, imported as a module (its families of economies and its runs)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_default_learner_alone_reaches_its_own_optimum_on_the_soundness_family():
    soundness = benchmark("learner_soundness")
    rows = [soundness.run_one(name, mdp, "contract_aware", 3000) for name, mdp in soundness.mdps()]
    print({row["mdp"]: (round(row["greedy_value"], 3), round(row["agent_regret_slope"], 2)) for row in rows})
    assert min(row["greedy_value"] for row in rows) >= 0.98
    assert max(row["agent_regret_slope"] for row in rows) <= 0.7


def test_random_economies_are_estimated_soon_and_steered_close_to_the_optimum():
    # S=6, A=3, H=8, the six where laissez-faire loses at least 0.5 of welfare, one agent, 5,000 episodes
    economies = benchmark("generality").random_economies([(6, 3, 8)], 6)
    gaps = []
    for _, instance, keywords in economies:
        mdp = keywords["mdp"]
        model = MarketModel(mdp=mdp, mechanism="two_phase", rng=0)
        model.run_episodes(5000)
        summary, episodes = model.summary(), model.episodes_frame()
        laissez_faire = mdp.policy_value(mdp.agent_optimum()[1], "welfare")
        estimating = episodes["expected_welfare"].iloc[:summary["phase1_episodes"]].mean()
        print(instance, summary["gap_closed"], summary["phase1_episodes"], estimating - laissez_faire)
        assert summary["phase1_episodes"] <= 1600  # the costs are estimated by about episode 1,500
        assert estimating >= laissez_faire - 0.1
        gaps.append(summary["gap_closed"])
    assert np.mean(gaps) >= 0.85 and min(gaps) >= 0.6


@pytest.mark.parametrize("seed", ["0", "1"])
def test_insurance_and_the_firm_network_keep_what_the_default_learner_reaches(tmp_path, seed):
    insurance = cli_summary(tmp_path, "insurance", "--mechanism", "two_phase", "--seed", seed)
    network = cli_summary(tmp_path, "pollution", "--agents", "400", "--graph", "watts_strogatz", "--mechanism",
                          "two_phase", "--seed", seed)
    print(seed, insurance["gap_closed"], network["gap_closed"])
    assert insurance["gap_closed"] >= 0.9
    assert network["gap_closed"] >= 0.9


def pooled_figures(tmp_path, seed):
    return {scheme: cli_summary(tmp_path, "pollution", "--mechanism", "two_phase", "--scheme", scheme, "--seed", seed)
            for scheme in ("per_action", "stationary", "threshold")}


@pytest.mark.parametrize("seed", ["0", "1"])
def test_coarser_schemes_close_as_much_as_per_action_in_the_paper_setting(tmp_path, seed):
    gaps = {scheme: summary["gap_closed"] for scheme, summary in pooled_figures(tmp_path, seed).items()}
    print(seed, gaps)
    assert gaps["per_action"] >= 0.8
    assert min(gaps["stationary"], gaps["threshold"]) >= gaps["per_action"] - 0.03


@pytest.mark.parametrize("seed", ["0", "1"])
def test_the_paper_settings_final_estimates_are_within_six_hundredths(tmp_path, seed):
    summary = cli_summary(tmp_path, "pollution", "--mechanism", "two_phase", "--seed", seed)
    print(seed, summary["gap_closed"], summary["final_max_abs_error"], summary["regret_decay"])
    assert summary["gap_closed"] >= 0.95
    assert summary["regret_decay"] <= 0.2
    assert summary["final_max_abs_error"] <= 0.06


@pytest.mark.parametrize("learner", ["epsilon_greedy", "optimistic_q", "boltzmann"])
def test_model_free_firms_in_a_population_are_steered(learner):
    model = MarketModel(scenario="pollution", n_agents=400, graph="watts_strogatz", mechanism="two_phase",
                        learner=learner, rng=0)
    model.run_episodes(3000)
    summary = model.summary()
    print(learner, summary["gap_closed"], summary["phase1_episodes"])
    assert summary["groups_answering_slowly"] == 1
    assert summary["gap_closed"] >= 0.75
