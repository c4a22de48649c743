"""MarketModel: the paper setting as one agent on one node, reproducibility, and accounting."""

import numpy as np
import pandas as pd
import pytest

from market_abm import MarketModel
from market_abm.agents import LearningAgent, Principal
from market_abm.environments.pollution import single_node_mdp

SUMMARY_KEYS = {"optimal_welfare", "laissez_faire_welfare", "final_welfare", "gap_closed", "regret_slope",
                "total_welfare_regret", "transfers_per_episode"}


@pytest.mark.parametrize("mechanism", ["none", "two_phase", "oracle", "subsidy"])
def test_one_agent_on_one_node_is_the_paper_setting(mechanism):
    on_graph = MarketModel(scenario="pollution", n_agents=1, mechanism=mechanism, rng=3)
    paper = MarketModel(mdp=single_node_mdp(), n_agents=1, mechanism=mechanism, rng=3)
    for model in (on_graph, paper):
        model.run_episodes(300)
    pd.testing.assert_frame_equal(on_graph.episodes_frame(), paper.episodes_frame())
    steps = paper.steps_frame()
    steps.columns = on_graph.steps_frame().columns  # the scenario names its actions
    pd.testing.assert_frame_equal(on_graph.steps_frame(), steps)


def test_same_seed_same_data_and_different_seed_different_data():
    frames = []
    for seed in (5, 5, 6):
        model = MarketModel(n_agents=1, rng=seed)
        model.run_episodes(200)
        frames.append(model.steps_frame())
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert not frames[0].equals(frames[2])


def test_welfare_is_agent_payoff_plus_principal_payoff_each_step():
    model = MarketModel(n_agents=1, mechanism="oracle", rng=0)
    for _ in range(60):
        model.step()
        agent = model.private_rewards + model.transfers
        principal = model.external_rewards - model.transfers
        assert np.allclose(agent + principal, model.private_rewards + model.external_rewards)
        assert model.step_welfare == pytest.approx(float((agent + principal).mean()))


def test_replicas_are_independent_agents_with_their_own_principal():
    model = MarketModel(mdp=single_node_mdp(), n_agents=4, mechanism="two_phase", rng=0)
    model.run_episodes(50)
    assert model.env.n_groups == 4
    assert len(model.principals) == 4
    assert np.asarray(model.replica_welfare).shape == (50, 4)


def test_summary_and_reporters():
    model = MarketModel(n_agents=1, mechanism="two_phase", rng=0)
    model.run_episodes(100)
    summary = model.summary()
    assert SUMMARY_KEYS <= set(summary)
    assert summary["episodes"] == 100
    steps = model.steps_frame()
    assert len(steps) == 100 * model.env.horizon
    for column in ("welfare", "expected_welfare", "benchmark_welfare", "cumulative_regret", "transfers", "phase"):
        assert column in steps
    episodes = model.episodes_frame()
    assert episodes["cumulative_regret"].iloc[-1] == pytest.approx(summary["total_welfare_regret"])
    assert np.allclose(episodes["welfare"], steps.groupby("episode")["welfare"].sum().to_numpy())


def test_agents_are_handles_onto_population_rows():
    model = MarketModel(n_agents=9, graph="grid_2d", mechanism="subsidy", rng=1)
    model.run_steps(4)
    agents = list(model.agents_by_type[LearningAgent])
    assert len(agents) == 9 and len(model.agents_by_type[Principal]) == 1
    for agent in agents:
        assert agent.state == model.states[agent.row]
        assert agent.action == model.actions[agent.row]
        assert agent.last_transfer == model.transfers[agent.row]
        assert agent.policy.shape == (model.env.horizon, model.env.n_states)
        assert agent.cell.coordinate == agent.row
    assert model.principals[0].transfers_paid == pytest.approx(model.transfers_received.sum())
    assert agents[0].q_values is None  # the contract-aware learner keeps no action values


def test_q_learners_agents_read_their_own_action_values():
    model = MarketModel(n_agents=6, graph="ring", mechanism="none", learner="epsilon_greedy", rng=2)
    model.run_steps(30)
    shape = (model.env.horizon, model.env.n_states, model.env.n_actions)
    for agent in model.learning_agents:
        assert agent.q_values.shape == shape and np.array_equal(agent.policy, agent.q_values.argmax(axis=-1))
    assert len({agent.q_values.tobytes() for agent in model.learning_agents}) == 6  # rows, not copies


def test_bring_your_own_mdp():
    from helpers import random_mdp

    mdp = random_mdp(0, 3, 2, 4)
    model = MarketModel(mdp=mdp, mechanism="two_phase", rng=0)
    model.run_episodes(50)
    assert model.summary()["optimal_welfare"] == pytest.approx(mdp.welfare_optimum()[0])


@pytest.mark.parametrize("kwargs, field", [
    ({"mechanism": "magic"}, "mechanism"),
    ({"scheme": "weekly"}, "scheme"),
    ({"learner": "oracle"}, "learner"),
    ({"scenario": "farming"}, "scenario"),
    ({"n_agents": 0}, "n_agents"),
    ({"mechanism_params": {"tol": -1}}, "tol"),
    ({"mechanism_params": {"colour": 1}}, "mechanism_params"),
    ({"learner_params": {"bonus": -1}}, "bonus"),
    ({"scenario_params": {"decay": 2.0}}, "decay"),
    ({"scenario_params": {"spin": 2.0}}, "scenario_params"),
    ({"mdp": "not an mdp"}, "mdp"),
])
def test_bad_arguments_raise_one_line_errors_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:") as err:
        MarketModel(rng=0, **kwargs)
    assert "\n" not in str(err.value)


def package_files_run_by(action):
    """The package's source files whose Python functions run while `action()` does (compiled kernels
    run without entering Python, so they count with the file that calls them)."""
    import sys
    from pathlib import Path

    import market_abm

    package = Path(market_abm.__file__).resolve().parent
    files = set()

    def profile(frame, event, arg):
        if event == "call":
            path = Path(frame.f_code.co_filename)
            if path.is_relative_to(package):
                files.add(path.relative_to(package).as_posix())

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return files


def test_one_step_of_the_default_model_reads_in_six_files_or_fewer():
    """A reader following one step (an episode's end and the next one's start included) of the default
    run, the paper setting, meets at most six of the package's files."""
    model = MarketModel(rng=0)
    model.run_episodes(60)  # past the warm-up: the mechanism plans and prices

    def twelve_steps():
        for _ in range(2 * model.env.horizon):
            model.step()

    files = package_files_run_by(twelve_steps)
    assert "model.py" in files and len(files) <= 6, sorted(files)
