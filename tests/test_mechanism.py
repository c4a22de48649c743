"""The two-phase mechanism against exact compensating transfers and the welfare optimum."""

import numpy as np
import pytest
from hypothesis import given, settings

from helpers import ExactLearner, mdps
from market_abm import MarketModel
from market_abm.core.two_phase import RESOLVED
from market_abm.environments.pollution import single_node_mdp
from market_abm.metrics import exact_cell_transfer

EXACT = dict(min_visits=1, warmup=0, tol=0.01, margin=0.01, eps=0.005, max_wait=400, known_model=True)
SLACK = EXACT["tol"] + EXACT["margin"] + 1e-9


def run_exact(mdp, episodes, scheme="fine", agents=1, **params):
    """Exact best responders facing the mechanism: one agent, or a population sharing one principal."""
    model = MarketModel(mdp=mdp, n_agents=agents, shared_principal=agents > 1, mechanism="two_phase",
                        scheme=scheme, learner=ExactLearner, learner_params={"mdp": mdp},
                        mechanism_params={**EXACT, **params}, rng=0)
    model.run_episodes(episodes)
    return model


@given(mdps())
@settings(max_examples=10, deadline=None)
def test_phase1_estimates_are_the_exact_agent_gap(mdp):
    model = run_exact(mdp, 400, agents=50, min_visits=20, max_wait=20)
    mechanism = model.mechanism
    assert mechanism.phase == 2
    estimates = mechanism.phase1_estimates[0]
    settled = np.isfinite(estimates)
    gap = mdp.agent_gap().reshape(-1)
    assert np.all(estimates[settled] >= gap[settled] - 1e-9)
    assert np.all(estimates[settled] <= gap[settled] + SLACK)


@given(mdps())
@settings(max_examples=10, deadline=None)
def test_phase2_steers_to_the_welfare_optimum(mdp):
    model = run_exact(mdp, 800, agents=50, min_visits=20, max_wait=20)
    optimum, _ = mdp.welfare_optimum()
    played = mdp.best_response(model.mechanism.post_offers()[0])
    tolerance = 2 * mdp.horizon * (SLACK + EXACT["eps"])
    assert mdp.policy_value(played) >= optimum - tolerance


@pytest.mark.parametrize("scheme", ["stationary", "per_action", "threshold"])
def test_pooled_estimates_are_the_exact_pooled_search(scheme):
    mdp = single_node_mdp()
    mechanism = run_exact(mdp, 900, scheme=scheme, agents=400, min_visits=600, max_wait=30).mechanism
    estimates = mechanism.phase1_estimates[0]
    for cell in np.nonzero(np.isfinite(estimates))[0]:
        exact = exact_cell_transfer(mdp, mechanism.scheme, cell, mechanism.accept_share)
        assert abs(estimates[cell] - exact) <= SLACK


def test_transfers_are_posted_on_targets_only():
    mdp = single_node_mdp()
    model = run_exact(mdp, 600, max_wait=30)
    table = model.mechanism.post_offers()[0]
    assert np.all((table > 0).sum(axis=-1) <= 1)
    assert np.all(table >= 0)


def test_unreachable_cells_stay_uncovered_not_trusted():
    mdp = single_node_mdp()
    mechanism = run_exact(mdp, 400, max_wait=30).mechanism
    assert mechanism.phase == 2
    unreachable = np.repeat(mdp.occupancy(mdp.agent_optimum()[1]).reshape(-1) == 0, mdp.n_actions)
    assert unreachable.any()
    assert not np.isfinite(mechanism.phase1_estimates[0][unreachable]).any()
