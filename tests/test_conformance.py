"""Every registered learner, mechanism and scenario passes the same conformance test."""

import pytest

from helpers import ExactLearner
from market_abm.conformance import environment_api_test, learner_api_test, mechanism_api_test
from market_abm.core import TabularEnv
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import single_node_mdp
from market_abm.registry import LEARNERS, MECHANISMS, SCENARIOS, make_mechanism

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
    built = make_mechanism(mechanism, env.principal_view(), "fine", exact=env.local_mdp(),
                           **({"warmup": 0} if mechanism == "two_phase" else {}))
    mechanism_api_test(built, env, episodes=30)


@pytest.mark.parametrize("scheme", ["fine", "stationary", "per_action", "threshold"])
def test_two_phase_under_every_scheme(scheme):
    env = TabularEnv(single_node_mdp(), 3, shared_principal=True)
    mechanism_api_test(make_mechanism("two_phase", env.principal_view(), scheme, warmup=1, min_visits=2), env,
                       episodes=60)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("nodes", [1, 30])
def test_registered_scenarios(scenario, nodes):
    topology = make_topology("watts_strogatz", nodes, np.random.default_rng(0))
    environment_api_test(SCENARIOS[scenario](nodes, topology))


def test_a_mechanism_that_keeps_the_environment_fails_conformance():
    from market_abm.core import Mechanism

    class Peeking(Mechanism):
        def __init__(self, view, env):
            super().__init__(view)
            self.peek = lambda: env.local_mdp().agent_reward

    env = TabularEnv(single_node_mdp(), 2)
    with pytest.raises(AssertionError, match="reaches a TabularEnv"):
        mechanism_api_test(Peeking(env.principal_view(), env), env)


def test_a_mechanism_holding_the_private_reward_fails_conformance():
    from market_abm.core import Mechanism

    env = TabularEnv(single_node_mdp(), 2)

    class Copying(Mechanism):
        def __init__(self, view):
            super().__init__(view)
            self.rewards = {"r": env.mdp.agent_reward[:, 0]}

    with pytest.raises(AssertionError, match="private reward"):
        mechanism_api_test(Copying(env.principal_view()), env)
