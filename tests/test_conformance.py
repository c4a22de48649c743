"""Every registered learner, mechanism and scenario passes the same conformance test."""

import pytest

from helpers import ExactLearner
from market_abm.conformance import environment_api_test, learner_api_test, mechanism_api_test
from market_abm.core import LEARNERS, MECHANISMS, TabularEnv, make_mechanism
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import single_node_mdp
from market_abm.environments.registry import SCENARIOS

import numpy as np


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_registered_learners(learner):
    learner_api_test(learner)


def test_a_user_learner():
    class Stubborn(ExactLearner):
        def __init__(self, n_agents, n_states, n_actions, horizon, rng):
            super().__init__(n_agents, n_states, n_actions, horizon, rng, mdp=single_node_mdp())

    learner_api_test(Stubborn)


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
@pytest.mark.parametrize("agents", [1, 5])
def test_registered_mechanisms(mechanism, agents):
    env = TabularEnv(single_node_mdp(), agents)
    mechanism_api_test(make_mechanism(mechanism, env, "fine", **({"warmup": 0} if mechanism == "two_phase" else {})),
                       env, episodes=30)


@pytest.mark.parametrize("scheme", ["fine", "stationary", "per_action", "threshold"])
def test_two_phase_under_every_scheme(scheme):
    env = TabularEnv(single_node_mdp(), 3, shared_principal=True)
    mechanism_api_test(make_mechanism("two_phase", env, scheme, warmup=0, min_visits=2), env, episodes=60)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("nodes", [1, 30])
def test_registered_scenarios(scenario, nodes):
    topology = make_topology("watts_strogatz", nodes, np.random.default_rng(0))
    environment_api_test(SCENARIOS[scenario](nodes, topology))
