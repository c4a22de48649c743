"""The contract-aware learner: its plan is the exact best response on its own estimates, and it
re-plans exactly when its epoch ends or the offers it faces change."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import mdps
from market_abm.core import make_learner
from market_abm.core.mdp import backward_induction, cumulative, inverse_cdf


def experience(learner, mdp, rng, steps):
    """Feed random visits drawn from `mdp`; return the counts `(N, S, A, S)` and reward sums `(N, S, A)`."""
    n, s, a = learner.n_agents, mdp.n_states, mdp.n_actions
    counts, rewards = np.zeros((n, s, a, s)), np.zeros((n, s, a))
    cdf = cumulative(mdp.transition)
    for _ in range(steps):
        states, actions = rng.integers(s, size=n), rng.integers(a, size=n)
        next_states = inverse_cdf(cdf[states, actions], rng.random(n))
        reward = mdp.agent_reward[states, actions]
        learner.update(0, states, actions, reward, np.zeros(n), next_states)
        np.add.at(counts, (np.arange(n), states, actions, next_states), 1)
        np.add.at(rewards, (np.arange(n), states, actions), reward)
    return counts, rewards


def estimated_model(counts, rewards, bonus):
    """The learner's model of one agent, written out plainly: mean reward (untried: the best seen)
    plus the bonus, and empirical transitions (untried: uniform)."""
    visits = counts.sum(axis=-1)
    tried = visits > 0
    mean = np.where(tried, rewards / np.maximum(visits, 1), -np.inf)
    reward = np.where(tried, mean, mean.max() if tried.any() else 0.0) + bonus / np.sqrt(visits + 1)
    transition = np.where(tried[..., None], counts / np.maximum(visits, 1)[..., None], 1.0 / counts.shape[-1])
    return transition, reward


@given(mdps(max_states=4, max_actions=3, max_horizon=4), st.integers(0, 2**32 - 1), st.integers(0, 12),
       st.sampled_from([1, 3]))
@settings(max_examples=40, deadline=None)
def test_plan_is_the_exact_best_response_on_its_estimates(mdp, seed, steps, principals):
    rng = np.random.default_rng(seed)
    learner = make_learner("contract_aware", 5, mdp.n_states, mdp.n_actions, mdp.horizon, rng)
    counts, rewards = experience(learner, mdp, rng, steps)
    offers = rng.normal(0.0, 0.5, size=(principals, mdp.horizon, mdp.n_states, mdp.n_actions))
    groups = np.arange(5) % principals
    learner.begin_episode(offers, groups)
    policy = learner.greedy_policy()
    for i in range(5):
        transition, reward = estimated_model(counts[i], rewards[i], learner.bonus)
        q, _ = backward_induction(transition, reward[None] + offers[groups[i]], mdp.horizon)
        chosen = np.take_along_axis(q, policy[i][..., None], axis=-1)[..., 0]
        assert np.all(chosen >= q.max(axis=-1) - 1e-4)  # optimal up to float32 rounding


def test_agents_replan_when_their_epoch_ends_or_the_offers_they_face_change():
    learner = make_learner("contract_aware", 12, 2, 2, 3, np.random.default_rng(0), epoch_growth=1.0)
    offers, groups = np.zeros((2, 3, 2, 2)), np.array([0] * 10 + [1] * 2)  # two principals
    learner.begin_episode(offers, groups)
    assert learner.replans == 12  # everyone plans at the start
    learner.begin_episode(offers, groups)
    assert learner.replans == 12  # nothing new: nobody replans
    learner.visits[0, 0, :] = 3  # everyone visits (0, 0) for the first time: new epochs
    learner.begin_episode(offers, groups)
    assert learner.replans == 24
    learner.visits[0, 0, 0] = 6  # agent 0's count doubles
    learner.visits[0, 0, 1] = 5  # agent 1's grows, by less
    learner.begin_episode(offers, groups)
    assert learner.replans == 25
    before = learner.greedy_policy()
    offers[1, 0, 0, 1] = 5.0  # a large offer from the second principal: its agents take it at once
    learner.begin_episode(offers, groups)
    assert learner.replans == 27
    after = learner.greedy_policy()
    assert np.all(after[10:, 0, 0] == 1) and np.array_equal(after[:10], before[:10])


def test_planning_some_agents_gives_them_the_plan_they_get_with_everyone():
    rng = np.random.default_rng(1)
    learner = make_learner("contract_aware", 50, 3, 3, 4, rng)
    states = rng.integers(3, size=50)
    for _ in range(30):
        actions, next_states = rng.integers(3, size=50), rng.integers(3, size=50)
        learner.update(0, states, actions, rng.normal(size=50), np.zeros(50), next_states)
        states = next_states
    offers, groups = rng.normal(size=(1, 4, 3, 3)), np.zeros(50, dtype=int)
    learner.plan(offers, groups, slice(None))  # everyone, in place
    plan = learner.greedy_policy()
    learner.policy[:] = 0
    some = np.arange(0, 50, 3)
    learner.plan(offers, groups, some)  # a subset, gathered
    assert np.array_equal(learner.greedy_policy()[some], plan[some])


def test_without_epoch_growth_every_agent_replans_after_any_step():
    learner = make_learner("contract_aware", 8, 2, 2, 3, np.random.default_rng(0))
    offers, groups = np.zeros((1, 3, 2, 2)), np.zeros(8, dtype=int)
    learner.begin_episode(offers, groups)
    learner.begin_episode(offers, groups)
    assert learner.replans == 8  # nothing learned, offers unchanged: nobody replans
    ones = np.ones(8, dtype=int)
    learner.update(0, ones, ones, np.ones(8), np.zeros(8), ones)
    learner.begin_episode(offers, groups)
    assert learner.replans == 16


def test_plans_do_not_depend_on_how_many_threads_make_them():
    rng = np.random.default_rng(3)
    learners = [make_learner("contract_aware", 1100, 4, 3, 5, np.random.default_rng(0), threads=t) for t in (1, 2)]
    groups = np.zeros(1100, dtype=int)
    for _ in range(4):
        states, actions, next_states = (rng.integers(n, size=1100) for n in (4, 3, 4))
        rewards = rng.normal(size=1100)
        offers = rng.normal(0.0, 0.3, size=(1, 5, 4, 3))
        for learner in learners:
            learner.update(0, states, actions, rewards, np.zeros(1100), next_states)
            learner.begin_episode(offers, groups)
        assert np.array_equal(learners[0].policy, learners[1].policy)
    assert learners[1].planner.threads == 2 and learners[1].planner.share != 0.4  # the helper did plan some


def test_a_model_steps_the_same_whatever_the_planning_threads():
    from market_abm import MarketModel

    frames = []
    for threads in (1, 2):
        model = MarketModel(n_agents=600, graph="watts_strogatz", rng=5, benchmark=False,
                            learner_params={"threads": threads})
        model.run_steps(60)
        frames.append((model.steps_frame(), model.learner.greedy_policy()))
    assert frames[0][0].equals(frames[1][0]) and np.array_equal(frames[0][1], frames[1][1])


def test_a_sweep_worker_plans_on_one_thread(monkeypatch):
    from market_abm.core.planning import PopulationPlanner, plan_on_one_thread

    assert PopulationPlanner(10_000, threads=2).threads == 2
    monkeypatch.setattr(PopulationPlanner, "most_threads", PopulationPlanner.most_threads)  # restored after
    plan_on_one_thread()
    assert PopulationPlanner(10_000, threads=2).threads == 1
