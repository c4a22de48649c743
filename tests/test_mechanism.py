"""The two-phase mechanism against exact compensating transfers and the welfare optimum, with agents
that best-respond exactly to the offers posted."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import ExactLearner, mdps, random_mdp
from market_abm import MarketModel
from market_abm.core.two_phase import STEERED
from market_abm.environments.economies import costly_compliance, coverage_chain
from market_abm.environments.pollution import single_node_mdp
from market_abm.metrics import estimate_errors

EXACT = {"min_visits": 1, "warmup": 0, "tol": 0.01, "margin": 0.01, "eps": 0.005}
SLACK = EXACT["tol"] + EXACT["margin"] + 1e-9


def run_exact(mdp, episodes, scheme="fine", agents=1, learner=ExactLearner, **params):
    """Exact best responders (or another test double of `mdp`) facing the mechanism: one agent, or a
    population sharing one principal."""
    model = MarketModel(mdp=mdp, n_agents=agents, shared_principal=agents > 1, mechanism="two_phase",
                        scheme=scheme, learner=learner, learner_params={"mdp": mdp},
                        mechanism_params={**EXACT, **params}, rng=0)
    model.run_episodes(episodes)
    return model


def most_visited_steered_cell(model, mdp):
    """The steered cell (of the first group) whose decision point the agents visited most."""
    steered = np.nonzero(model.mechanism.search.steered()[0])[0]
    return steered[np.argmax(model.mechanism.decision_visits[0].reshape(-1)[steered // mdp.n_actions])]


@given(mdps(max_states=4, max_actions=3, max_horizon=4), st.booleans())
@settings(max_examples=12, deadline=None)
def test_steered_estimates_lie_within_tol_and_margin_of_their_exact_counterparts(mdp, known):
    # an estimate can settle on an answer given under earlier offers on later steps: the run lasts long
    # enough for the downward re-tests to bring it back
    model = run_exact(mdp, 600, agents=30, known_model=known)
    estimates = model.mechanism.estimates()
    errors = estimate_errors(estimates, mdp)["final"]
    steered = estimates.steered
    assert np.all(errors[steered] <= SLACK)


@given(mdps(max_states=4, max_actions=3, max_horizon=4))
@settings(max_examples=10, deadline=None)
def test_it_steers_an_exact_best_responder_to_the_welfare_optimum(mdp):
    model = run_exact(mdp, 500, agents=30, known_model=True)
    optimum, _ = mdp.welfare_optimum()
    played = model.episodes_frame()["expected_welfare"].iloc[-50:]  # the welfare of what the agents played
    tolerance = 2 * mdp.horizon * (SLACK + EXACT["eps"] + EXACT["tol"])
    assert played.mean() >= optimum - tolerance


@pytest.mark.parametrize("seed", [7, 8])
def test_random_economies_are_priced_fast_enough_to_close_most_of_the_gap(seed):
    mdp = random_mdp(seed, 5, 3, 6, reward_range=(0.0, 1.0))
    model = run_exact(mdp, 1000, min_visits=2)  # the principal estimates the dynamics and external reward
    summary = model.summary()
    assert model.mechanism.phase == 2 and summary["phase1_episodes"] <= 500
    assert summary["gap_closed"] >= 0.95


def test_offers_single_out_at_most_one_action_per_decision_point_and_never_tax():
    model = run_exact(single_node_mdp(), 400)
    offers = model.mechanism.post_offers()[0]
    above_rest = offers > offers.min(axis=-1, keepdims=True) + 1e-12
    assert np.all(above_rest.sum(axis=-1) <= 1)
    assert np.all(offers >= 0)
    left_alone = ~above_rest.any(axis=-1) & (offers.max(axis=-1) > 0)
    assert left_alone.any()  # the balancing surplus, on every action alike


@pytest.mark.parametrize("agents", [1, 4])
def test_a_tested_point_pays_one_agent_the_surplus_on_every_action_and_the_test_on_top(agents):
    # one agent keeps the surplus there, taken or refused, so a test does not move what earlier steps give up;
    # a group of many agents is offered the test alone
    model = run_exact(single_node_mdp(), 60, agents=agents)
    search, n_actions = model.mechanism.search, model.mechanism.n_actions
    amounts, _ = search.amounts(balance=True)
    tested = np.nonzero(search.testing()[0])[0]
    assert len(tested) > 0
    kept = search.surplus if agents == 1 else 0.0
    for cell in tested:
        point = amounts[0, cell - cell % n_actions: cell - cell % n_actions + n_actions]
        assert np.allclose(np.delete(point, cell % n_actions), kept)
        assert np.isclose(point[cell % n_actions], search.probe[0, cell] + kept)


def test_unreachable_cells_are_never_trusted():
    mdp = single_node_mdp()
    mechanism = run_exact(mdp, 400).mechanism
    reached = mechanism.decision_visits[0] > 0  # (H, S)
    assert not reached.all()
    settled = np.isfinite(mechanism.search.tau_hat[0]).reshape(mdp.horizon, mdp.n_states, mdp.n_actions)
    assert not settled[~reached].any()


def test_a_ceiling_refused_is_doubled_until_the_compensating_transfer_is_found():
    mdp = costly_compliance(3.0, horizon=4)  # compensating transfers of 3 per step; the first ceiling is 2
    model = run_exact(mdp, 300)
    summary = model.summary()
    assert summary["cells_at_ceiling"] == 0 and summary["gap_closed"] >= 0.95
    steered = model.mechanism.estimates()
    assert np.allclose(steered.current[steered.steered], 3.0, atol=SLACK)


def test_states_laissez_faire_never_visits_are_priced_when_the_plan_goes_there():
    mdp = coverage_chain(5, 8)
    model = run_exact(mdp, 600, known_model=False)
    assert model.summary()["gap_closed"] >= 0.9
    upper = model.mechanism.decision_visits[0][:, 2:].sum()
    assert upper > 0  # the chain's upper states, never seen without offers, are reached


def test_an_estimate_pushed_too_high_comes_back_down():
    mdp = single_node_mdp()
    model = run_exact(mdp, 300, retest_after=2)
    search = model.mechanism.search
    cell = most_visited_steered_cell(model, mdp)
    exact = mdp.agent_gap().reshape(-1)[cell]
    search.tau_hat[0, cell] += 0.2  # as after a run of noisy refusals
    search.hi[0, cell] += 0.2
    model.run_episodes(1500)
    assert search.status[0, cell] == STEERED
    assert abs(search.tau_hat[0, cell] - exact) <= SLACK


@pytest.mark.parametrize("scheme", ["per_action", "threshold"])
def test_pooled_amounts_reach_the_best_flat_subsidy(scheme):
    """The best one-amount-per-action subsidy, by brute force; a pooled scheme that can express it does
    at least as well."""
    mdp = single_node_mdp()
    amounts = np.linspace(0.0, 1.0, 101)
    best = max(mdp.policy_value(mdp.best_response(np.broadcast_to([x, 0.0, 0.0], (6, 5, 3)))) for x in amounts)
    model = run_exact(mdp, 900, scheme=scheme, known_model=True, warmup=50, min_visits=4, tol=0.02)
    played = mdp.best_response(model.mechanism.post_offers()[0])
    assert mdp.policy_value(played) >= best - 0.02


def test_an_unsettled_cell_counts_in_the_plan_at_the_least_amount_a_test_of_it_posts():
    model = MarketModel(mechanism="two_phase", rng=0)
    model.run_episodes(60)
    search, tol = model.mechanism.search, model.mechanism.tol
    unsettled = ~np.isfinite(search.tau_hat) & ~search.at_ceiling
    assert unsettled.any()
    least = np.minimum(search.lo + 0.5 * tol, search.hi)
    assert np.allclose(search.costs()[unsettled], least[unsettled])
    search.lo[:] = search.hi - 0.25 * tol  # a bracket narrower than half the settling width: its top
    assert np.allclose(search.costs()[unsettled], search.hi[unsettled])


def test_a_steered_cell_with_a_long_record_reopens_as_soon_as_its_refusals_decide_the_window():
    mdp = single_node_mdp()
    model = run_exact(mdp, 300, min_visits=4)
    mechanism, search = model.mechanism, model.mechanism.search
    cell = most_visited_steered_cell(model, mdp)
    point = np.unravel_index(cell // mdp.n_actions, (mdp.horizon, mdp.n_states))
    search.streak[0, cell] = 20  # a full window is now 4 * 21 = 84 visits
    search.seen[0, cell] = search.taken[0, cell] = 0
    search.tau_hat[0, cell] = max(mdp.agent_gap().reshape(-1)[cell] - 0.1, 0.0)  # posted below what it costs
    before = mechanism.decision_visits[0][point]
    for _ in range(400):
        model.run_episodes(1)
        if search.status[0, cell] != STEERED:
            break
    assert search.status[0, cell] != STEERED
    refused_visits = mechanism.decision_visits[0][point] - before
    assert refused_visits <= int((1 - mechanism.accept_share) * 84) + 1  # not the full 84


def test_a_full_window_is_judged_by_its_share_however_many_visits_one_episode_brings():
    model = run_exact(single_node_mdp(), 300, min_visits=4)
    search = model.mechanism.search
    cell = np.nonzero(search.steered()[0])[0][0]
    search.streak[0, cell] = 50  # a window of 204 visits, more than filled at once by a population
    search.retest_every[0, cell] = 1000  # no downward re-test due
    search.seen[0, cell], search.taken[0, cell] = 1000.0, 900.0  # 100 refusals, but 90% take the offer
    search.decide(np.zeros(1, dtype=bool))
    assert search.status[0, cell] == STEERED and search.streak[0, cell] == 51
