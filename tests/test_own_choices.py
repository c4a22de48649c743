"""Wherever a registered name is accepted, a user's own object is accepted too: a `PopulationEnv` as
the scenario, a `Learner` or `Mechanism` subclass, a `TransferScheme`."""

import numpy as np
import pandas as pd

from helpers import ExactLearner
from market_abm import MarketModel
from market_abm.conformance import environment_api_test
from market_abm.core import Mechanism, PopulationEnv, TransferScheme
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import PollutionEnv, PollutionParams, single_node_mdp


class Commuters(PopulationEnv):
    """Commuters who take the train (0) or the car (1): the car pays more on a clear road (state 0)
    than on a congested one (1), makes the road likelier to congest, and pollutes."""

    name = "commuters"

    def __init__(self, n_agents=6):
        super().__init__(n_agents, n_states=2, n_actions=2, horizon=3)
        self.action_names, self.state_names = ["train", "car"], ["clear", "congested"]

    def initial_states(self, uniforms):
        return (uniforms < 0.5).astype(np.int64)

    def dynamics(self, states, actions, uniforms):
        private = np.where(actions == 1, np.where(states == 1, 0.1, 0.6), 0.2)
        external = np.where(actions == 1, -0.4, 0.0)
        next_states = (uniforms < np.where(actions == 1, 0.7, 0.2)).astype(np.int64)
        return next_states, private, external


class FlatSubsidy(Mechanism):
    """Pays 0.1 for the first action everywhere."""

    name = "flat"

    def __init__(self, view):
        super().__init__(view)
        self.offers[..., 0] = 0.1


def run(episodes=20, **kwargs):
    model = MarketModel(rng=0, **kwargs)
    model.run_episodes(episodes)
    return model


def test_a_user_transfer_scheme_runs_like_the_registered_scheme_it_equals():
    mdp = single_node_mdp()
    same_as_stationary = TransferScheme(np.broadcast_to(np.arange(mdp.n_states), (mdp.horizon, mdp.n_states)),
                                        mdp.n_actions)
    own, registered = run(scheme=same_as_stationary), run(scheme="stationary")
    assert own.mechanism.estimates().scheme is same_as_stationary
    pd.testing.assert_frame_equal(own.episodes_frame(), registered.episodes_frame())
    assert own.summary()["scheme"] == "custom" and registered.summary()["scheme"] == "stationary"


def test_a_user_population_env_runs_and_is_copied_not_shared():
    env = Commuters()
    environment_api_test(env)
    first, second = (run(scenario=env, benchmark=False) for _ in range(2))
    assert first.env is not env and first.env is not second.env
    pd.testing.assert_frame_equal(first.steps_frame(), second.steps_frame())
    assert first.settings["scenario"] == "commuters" and first.settings["graph"] is None
    assert first.env.n_agents == len(first.learning_agents) == 6


def test_a_user_population_env_without_an_exact_model_is_told_to_give_its_own_benchmark():
    try:
        MarketModel(scenario=Commuters(), rng=0)
    except ValueError as err:
        assert str(err).startswith("benchmark: the welfare benchmarks need an exact local model, which 'commuters'")
    else:
        raise AssertionError("the welfare benchmarks came from nowhere")


def test_a_scenario_environment_given_as_an_object_runs_as_its_name_does():
    topology = make_topology("ring", 10, np.random.default_rng(0))
    own = run(scenario=PollutionEnv(topology, PollutionParams()), n_agents=10)
    named = run(scenario="pollution", graph="ring", n_agents=10)
    pd.testing.assert_frame_equal(own.episodes_frame(), named.episodes_frame())
    assert own.grid is not None  # its agents sit on its graph's cells


def test_a_user_learner_and_mechanism_run_under_their_own_names():
    model = run(learner=ExactLearner, learner_params={"mdp": single_node_mdp()}, mechanism=FlatSubsidy)
    assert model.settings["learner"] == "exact" and model.settings["mechanism"] == "flat"
    assert np.all(model.offers[..., 0] == 0.1) and np.all(model.offers[..., 1:] == 0)


def test_a_scheme_given_to_a_mechanism_without_one_is_refused_naming_the_scheme():
    for scheme in ("stationary", TransferScheme(np.zeros((6, 2), np.int64), 2)):
        try:
            MarketModel(mechanism="pigouvian", scheme=scheme, rng=0)
        except ValueError as err:
            assert str(err).startswith("scheme: the pigouvian mechanism takes no transfer scheme")
        else:
            raise AssertionError("the scheme was ignored")
    assert MarketModel(mechanism="pigouvian", rng=0).settings["scheme"] is None
    assert MarketModel(rng=0).settings["scheme"] == "fine"
