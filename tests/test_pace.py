"""How fast the agents answer offers: two-phase learns it from its first tests, posted at the bound,
and treats a group that answers slowly as model-free learners need."""

import numpy as np
from helpers import ExactLearner
from test_mechanism import run_exact

from market_abm.core.two_phase import FAST, SLOW, STEERED
from market_abm.environments.pollution import single_node_mdp


class DeafLearner(ExactLearner):
    """A test double: every agent plays its own best response as if nothing were offered."""

    name = "deaf"

    def begin_episode(self, offers, groups):
        super().begin_episode(np.zeros_like(offers), groups)


def test_best_responders_take_every_calibration_offer_and_answer_fast():
    model = run_exact(single_node_mdp(), 300)
    search = model.mechanism.search
    assert search.pace[0] == FAST
    assert search.calibrations[0].tolist() == [model.mechanism.calibration_cells, 0]
    assert model.summary()["groups_answering_slowly"] == 0
    assert model.mechanism.react[0] == model.mechanism.react_episodes


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
    search.chosen[0, cell], search.seen[0, cell], search.taken[0, cell] = counts, counts.sum(), counts[target]
    search.waited[0, cell] = model.mechanism.react[0]
    search.decide(np.zeros(1, dtype=bool))
    assert search.hi_tested[0, cell] and search.status[0, cell] == STEERED  # settled at its first acceptance


def test_a_slow_groups_plan_counts_a_cell_at_its_highest_refusal_when_that_is_below_its_estimate():
    model = run_exact(single_node_mdp(), 200, learner=DeafLearner)
    search, tol = model.mechanism.search, model.mechanism.tol
    search.tau_hat[0, :2] = 0.8
    search.refused_top[0, :2] = [0.3, 0.9]
    search.at_ceiling[0, :2] = False
    assert np.allclose(search.costs()[0, :2], [0.3 + 0.5 * tol, 0.8])
