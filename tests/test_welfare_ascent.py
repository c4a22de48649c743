"""Revealed-welfare refinement of pooled amounts: the bracket on a welfare change holds for agents that
best-respond, and a refinement fed their exact answers only ever keeps moves that raise welfare."""

import itertools

import numpy as np
from helpers import mdps
from hypothesis import given, settings
from hypothesis import strategies as st

from market_abm.core.welfare_ascent import (
    PaceTest,
    WelfareAscent,
    empirical_policy,
    occupancy,
    welfare_bracket,
)
from market_abm.environments.pollution import single_node_mdp
from market_abm.registry import make_scheme


def one_hot(policy, n_actions):
    return np.eye(n_actions)[policy]


@given(mdps(max_states=3, max_actions=3, max_horizon=4), st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_the_welfare_change_between_two_best_responses_lies_in_its_bracket(mdp, seed):
    rng = np.random.default_rng(seed)
    shape = (mdp.horizon, mdp.n_states, mdp.n_actions)
    x, y = rng.uniform(0, 2, shape) * (rng.random(shape) < 0.5), rng.uniform(0, 2, shape) * (rng.random(shape) < 0.5)
    pi_x, pi_y = mdp.best_response(x), mdp.best_response(y)
    occ_x = occupancy(one_hot(pi_x, mdp.n_actions), mdp.transition, mdp.initial)
    occ_y = occupancy(one_hot(pi_y, mdp.n_actions), mdp.transition, mdp.initial)
    low, high = welfare_bracket(occ_x, occ_y, x, y, mdp.external_reward)
    change = mdp.policy_value(pi_y, "welfare") - mdp.policy_value(pi_x, "welfare")
    assert low - 1e-9 <= change <= high + 1e-9


def test_occupancy_counts_the_visits_of_each_step_once():
    mdp = single_node_mdp()
    policy = np.full((mdp.horizon, mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    occ = occupancy(policy, mdp.transition, mdp.initial)
    assert np.allclose(occ.sum(axis=(1, 2)), 1.0)
    assert np.allclose(occ[0].sum(axis=-1), mdp.initial)


def test_a_point_never_visited_keeps_the_fallback_policy():
    counts = np.zeros((2, 2, 3))
    counts[0, 0] = [0, 3, 1]
    fallback = np.full((2, 2, 3), 1 / 3)
    policy = empirical_policy(counts, fallback)
    assert np.allclose(policy[0, 0], [0, 0.75, 0.25])
    assert np.allclose(policy[1], fallback[1])


def exact_answers(mdp, scheme, amounts, episodes):
    """The visits `episodes` episodes of an exact best responder make under pooled `amounts`."""
    policy = one_hot(mdp.best_response(scheme.expand(amounts)), mdp.n_actions)
    return occupancy(policy, mdp.transition, mdp.initial) * episodes


def test_a_refinement_fed_exact_answers_only_keeps_moves_that_raise_welfare():
    mdp = single_node_mdp()
    scheme = make_scheme("per_action", mdp.horizon, mdp.n_states, mdp.n_actions)
    own = one_hot(mdp.agent_optimum()[1], mdp.n_actions)
    moves = np.eye(scheme.n_cells, dtype=bool)
    bound = np.full(scheme.n_cells, 3.0)
    start = np.array([0.535, 0.051, 0.0])  # abating and producing paid: a plateau below the welfare optimum
    ascent = WelfareAscent(moves, start, 4, PaceTest(scheme, bound, 0.6), bound)
    grid = np.arange(0.0, 1.5, 0.005)

    def levels(move, counts):
        """What an exact model offers: the amounts of the move's cells at which the best response changes."""
        answers = []
        for amount in grid:
            trial = ascent.incumbent.copy()
            trial[moves[move]] = amount
            answers.append(mdp.best_response(scheme.expand(trial)))
        changes = [i for i in range(1, len(grid)) if not np.array_equal(answers[i], answers[i - 1])]
        return np.append(grid[changes], 0.0)

    def welfare(amounts):
        return mdp.policy_value(mdp.best_response(scheme.expand(amounts)), "welfare")

    def judge(base, window, x, y):
        base_policy = empirical_policy(base, own)
        occ_x = occupancy(base_policy, mdp.transition, mdp.initial)
        occ_y = occupancy(empirical_policy(window, base_policy), mdp.transition, mdp.initial)
        return welfare_bracket(occ_x, occ_y, scheme.expand(x), scheme.expand(y), mdp.external_reward)

    def cell_visits(counts):
        points = np.repeat(counts.sum(axis=-1).ravel(), scheme.n_actions)
        return np.bincount(scheme.cell_of.ravel(), points, minlength=scheme.n_cells)

    kept = [welfare(ascent.incumbent)]
    for _ in range(3000):
        ascent.count(exact_answers(mdp, scheme, ascent.posted(), 1))
        ascent.update(ascent.incumbent, judge, cell_visits, levels)
        if welfare(ascent.incumbent) != kept[-1]:
            kept.append(welfare(ascent.incumbent))
    assert ascent.fast
    assert len(kept) > 1
    assert all(later > earlier for earlier, later in itertools.pairwise(kept))
    laissez_faire = mdp.policy_value(mdp.agent_optimum()[1], "welfare")
    optimum = mdp.welfare_optimum()[0]
    assert (kept[-1] - laissez_faire) / (optimum - laissez_faire) >= 0.8


def test_the_pace_test_tells_an_agent_that_takes_the_bound_from_one_that_keeps_its_choice():
    mdp = single_node_mdp()
    scheme = make_scheme("stationary", mdp.horizon, mdp.n_states, mdp.n_actions)
    pace = PaceTest(scheme, np.full(scheme.n_cells, 3.0), 0.6)
    own = mdp.agent_optimum()[1]
    base = exact_answers(mdp, scheme, np.zeros(scheme.n_cells), 8)
    trial = pace.trial(np.zeros(scheme.n_cells), base)
    assert trial.max() == 3.0 and np.count_nonzero(trial) == 1
    assert pace.answered(exact_answers(mdp, scheme, trial, 8))
    assert not pace.answered(occupancy(one_hot(own, mdp.n_actions), mdp.transition, mdp.initial) * 8)
