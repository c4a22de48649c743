"""How fast the agents answer offers: two-phase learns it from its first tests, posted at the bound,
and treats a group that answers slowly as model-free learners need."""

import numpy as np
from helpers import ExactLearner
from test_mechanism import run_exact

from market_abm.core.two_phase import FAST, SLOW, STEERED, TESTING, UNKNOWN
from market_abm.environments.pollution import single_node_mdp


class DeafLearner(ExactLearner):
    """A test double: every agent plays its own best response as if nothing were offered."""

    name = "deaf"

    def begin_episode(self, offers, groups):
        super().begin_episode(np.zeros_like(offers), groups)


def answer(model, cells, taken, chosen):
    """Make the group's agents answer the offers on `cells` with `taken` visits to the offered action, out
    of `chosen` visits to each action `(len(cells), A)`, and let the search decide."""
    search, chosen = model.mechanism.search, np.asarray(chosen, dtype=float)
    search.chosen[0, cells], search.seen[0, cells], search.taken[0, cells] = chosen, chosen.sum(axis=-1), taken
    search.waited[0, cells] = model.mechanism.react[0]
    search.decide(np.zeros(1, dtype=bool))


def test_best_responders_take_every_calibration_offer_and_answer_fast():
    model = run_exact(single_node_mdp(), 300)
    search = model.mechanism.search
    assert search.pace[0] == FAST
    assert search.calibrations[0].tolist() == [model.mechanism.calibration_cells, 0]
    assert model.summary()["groups_answering_slowly"] == 0
    assert model.mechanism.react[0] == model.mechanism.react_episodes


def test_a_calibration_counts_as_taken_only_if_every_visit_took_the_bound():
    model = run_exact(single_node_mdp(), 300)
    search, mechanism = model.mechanism.search, model.mechanism
    search.pace[0], search.pace_known, search.calibrations[0] = UNKNOWN, False, 0
    cells = np.nonzero(search.targets[0])[0][:2]
    search.calibrating[0, cells], search.status[0, cells] = True, TESTING
    visits = np.zeros((2, mechanism.n_actions))
    visits[:, 0] = mechanism.min_visits
    answer(model, cells, [mechanism.min_visits, mechanism.min_visits - 1], visits)
    assert search.calibrations[0].tolist() == [1, 1]


def test_agents_that_refuse_the_bound_answer_slowly_are_given_time_and_are_taxed_on_the_other_actions():
    model = run_exact(single_node_mdp(), 200, learner=DeafLearner)
    mechanism, search = model.mechanism, model.mechanism.search
    assert search.pace[0] == SLOW and model.summary()["groups_answering_slowly"] == 1
    assert mechanism.react[0] == mechanism.slow_react
    offers = mechanism.post_offers()[0]  # (H, S, A)
    targets = mechanism.targets()[0]  # (H, S), -1 where none
    assert (targets >= 0).any()
    for h, s in zip(*np.nonzero(targets >= 0)):
        target = targets[h, s]
        others = np.delete(offers[h, s], target)
        assert offers[h, s, target] == 0.0 and np.all(others < 0) and np.allclose(others, others[0])


def test_a_slow_group_takes_an_offer_chosen_more_often_than_any_other_action():
    model = run_exact(single_node_mdp(), 200, learner=DeafLearner)
    search, n_actions = model.mechanism.search, model.mechanism.n_actions
    cell = np.nonzero(search.testing()[0])[0][0]
    target = cell % n_actions
    counts = np.full(n_actions, 25.0)
    counts[target] = 45.0  # well short of `accept_share`, but more than any other action
    answer(model, cell, counts[target], counts)
    assert search.hi_tested[0, cell] and search.status[0, cell] == STEERED  # settled at its first acceptance


def test_a_slow_groups_plan_reads_its_answers_within_the_factor_of_two_its_tests_climb_by():
    model = run_exact(single_node_mdp(), 200, learner=DeafLearner)
    search, tol = model.mechanism.search, model.mechanism.tol
    search.at_ceiling[0, :4] = False
    search.tau_hat[0, :3] = 0.8  # settled: the highest refusal, within [half the offer taken, the offer taken]
    search.refused_top[0, :3] = [0.5, 0.9, 0.1]
    search.tau_hat[0, 3], search.lo[0, 3], search.hi[0, 3] = np.nan, 0.6, 2.0  # open: half the highest refusal
    assert np.allclose(search.costs()[0, :4], [0.5 + 0.5 * tol, 0.8, 0.4, 0.3 + 0.5 * tol])


def test_a_slow_groups_test_starts_at_its_worth_and_doubles_at_every_refusal():
    model = run_exact(single_node_mdp(), 200, learner=DeafLearner)
    search, n_actions = model.mechanism.search, model.mechanism.n_actions
    cell = np.nonzero(search.testing()[0] & ~search.calibrating[0])[0][0]
    first = search.probe[0, cell]
    assert first >= search.worth[0, cell] - 1e-12 and first < search.hi[0, cell]
    counts = np.zeros(n_actions)
    counts[(cell + 1) % n_actions] = 60.0  # the agents keep another action: refused
    answer(model, cell, 0.0, counts)
    assert search.refused_top[0, cell] == first
    search.set_targets(search.targets, np.zeros_like(search.worth))
    assert np.isclose(search.probe[0, cell], min(2 * first, search.hi[0, cell]))


def test_a_stale_refusal_is_forgotten_by_the_plan_but_is_where_the_next_test_starts():
    model = run_exact(single_node_mdp(), 200, learner=DeafLearner)
    mechanism, search = model.mechanism, model.mechanism.search
    idle = np.nonzero(~search.targets[0])[0][0]
    search.refused_top[0, idle], search.lo[0, idle], search.hi[0, idle] = 0.7, 0.7, 2.0
    search.life[0, idle] = 50.0
    search.refused_in[0, idle] = mechanism.episode - 51
    search.forget()
    assert search.refused_top[0, idle] == 0.0 and search.refused_before[0, idle] == 0.7
    assert np.isclose(search.costs()[0, idle], 0.5 * mechanism.tol)
    targets = search.targets.copy()
    targets[0, idle] = True
    search.set_targets(targets, np.zeros_like(search.worth))
    assert np.isclose(search.probe[0, idle], 0.7)


def test_a_slow_groups_steered_cells_are_held_at_least_at_tau_max():
    model = run_exact(single_node_mdp(), 200, learner=DeafLearner)
    mechanism, search = model.mechanism, model.mechanism.search
    cell = np.nonzero(search.targets[0])[0][0]
    search.status[0, cell], search.tau_hat[0, cell] = STEERED, 0.3
    amounts, _ = search.amounts(balance=False)
    point = cell - cell % mechanism.n_actions
    others = np.delete(amounts[0, point:point + mechanism.n_actions], cell % mechanism.n_actions)
    assert np.allclose(others, -mechanism.tau_max)
