"""The exact solvers against brute force, the compensating-transfer lemma, and input checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import all_policies, enumerated_value, mdps, random_mdp
from market_abm.core import TabularMDP


@given(mdps())
@settings(max_examples=40, deadline=None)
def test_policy_value_matches_trajectory_enumeration(mdp):
    rng = np.random.default_rng(0)
    policy = rng.integers(0, mdp.n_actions, size=(mdp.horizon, mdp.n_states))
    for name in ("welfare", "agent", "external"):
        assert mdp.policy_value(policy, name) == pytest.approx(enumerated_value(mdp, policy, mdp.reward(name)))


@given(mdps(max_states=2, max_actions=2, max_horizon=3))
@settings(max_examples=30, deadline=None)
def test_optima_match_brute_force(mdp):
    for solve, name in ((mdp.agent_optimum, "agent"), (mdp.welfare_optimum, "welfare")):
        value, policy = solve()
        best = max(enumerated_value(mdp, p, mdp.reward(name)) for p in all_policies(mdp))
        assert value == pytest.approx(best)
        assert mdp.policy_value(policy, name) == pytest.approx(best)


@given(mdps())
@settings(max_examples=40, deadline=None)
def test_agent_gap_is_nonnegative_and_zero_on_the_agent_optimum(mdp):
    gap = mdp.agent_gap()
    assert gap.shape == (mdp.horizon, mdp.n_states, mdp.n_actions)
    assert gap.min() >= -1e-12
    _, policy = mdp.agent_optimum()
    assert np.allclose(np.take_along_axis(gap, policy[..., None], axis=-1), 0.0)


@given(mdps(), st.floats(1e-3, 0.5))
@settings(max_examples=60, deadline=None)
def test_compensating_transfers_implement_any_target(mdp, eps):
    rng = np.random.default_rng(1)
    target = rng.integers(0, mdp.n_actions, size=(mdp.horizon, mdp.n_states))
    transfers = mdp.compensating_transfers(target, eps)
    assert np.array_equal(mdp.best_response(transfers), target)
    agent_star, _ = mdp.agent_optimum()
    assert mdp.policy_value(target, "agent", transfers) == pytest.approx(agent_star + mdp.horizon * eps)
    principal = mdp.policy_value(target, "external", transfers)
    assert principal == pytest.approx(mdp.policy_value(target, "welfare") - agent_star - mdp.horizon * eps)
    off_target = ~np.eye(mdp.n_actions, dtype=bool)[target]
    assert np.all(transfers[off_target] == 0.0)


@given(mdps())
@settings(max_examples=40, deadline=None)
def test_welfare_is_agent_plus_principal_payoff(mdp):
    rng = np.random.default_rng(2)
    policy = rng.integers(0, mdp.n_actions, size=(mdp.horizon, mdp.n_states))
    transfers = rng.normal(size=(mdp.horizon, mdp.n_states, mdp.n_actions))
    agent = mdp.policy_value(policy, "agent", transfers)
    principal = mdp.policy_value(policy, "external", transfers)
    assert agent + principal == pytest.approx(mdp.policy_value(policy, "welfare"))


def test_uniformly_random_policy_is_the_average_deterministic_policy():
    # each (h, s) is visited at most once per episode, so randomising per decision point equals
    # drawing a whole deterministic policy uniformly
    mdp = random_mdp(3, 3, 2, 3)
    mixed = mdp.policy_value(np.full((3, 3, 2), 0.5))
    assert mixed == pytest.approx(np.mean([mdp.policy_value(p) for p in all_policies(mdp)]))


def valid():
    p = np.full((2, 2, 2), 0.5)
    return dict(transition=p, agent_reward=np.zeros((2, 2)), external_reward=np.zeros((2, 2)), horizon=2,
                initial=np.array([0.5, 0.5]))


@pytest.mark.parametrize("field, value", [
    ("transition", np.full((2, 2, 3), 1 / 3)),
    ("transition", np.array([[[1.5, -0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]])),
    ("transition", np.full((2, 2, 2), 0.4)),
    ("transition", np.full((2, 2, 2), np.nan)),
    ("agent_reward", np.zeros((2, 3))),
    ("external_reward", np.array([[0.0, np.inf], [0.0, 0.0]])),
    ("horizon", 0),
    ("horizon", 1.5),
    ("initial", np.array([0.7, 0.7])),
    ("initial", np.array([1.0])),
])
def test_bad_input_names_the_argument(field, value):
    kwargs = valid()
    kwargs[field] = value
    with pytest.raises(ValueError, match=f"^{field}:"):
        TabularMDP(**kwargs)


def test_bad_policy_and_transfers_are_named():
    mdp = TabularMDP(**valid())
    with pytest.raises(ValueError, match="^policy:"):
        mdp.policy_value(np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError, match="^transfers:"):
        mdp.best_response(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="^eps:"):
        mdp.compensating_transfers(np.zeros((2, 2), dtype=int), 0.0)
    with pytest.raises(ValueError, match="^reward:"):
        mdp.policy_value(np.zeros((2, 2), dtype=int), "profit")
