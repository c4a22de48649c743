"""The contract-aware learner: its plans are the exact best responses on its own optimistic (and,
for the greedy policy, plain) estimates, it reaches its own optimum when left alone, and it re-plans
exactly when its epoch ends or the offers it faces change."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import mdps, random_mdp
from market_abm import MarketModel
from market_abm.registry import make_learner
from market_abm.core.mdp import cumulative, inverse_cdf


def experience(learner, mdp, rng, steps, noise=0.0):
    """Feed random visits drawn from `mdp` (rewards with Gaussian `noise`); return the counts
    `(N, S, A, S)`, reward sums and sums of squared rewards `(N, S, A)`."""
    n, s, a = learner.n_agents, mdp.n_states, mdp.n_actions
    counts, rewards, squares = np.zeros((n, s, a, s)), np.zeros((n, s, a)), np.zeros((n, s, a))
    cdf = cumulative(mdp.transition)
    for _ in range(steps):
        states, actions = rng.integers(s, size=n), rng.integers(a, size=n)
        next_states = inverse_cdf(cdf[states, actions], rng.random(n))
        reward = mdp.agent_reward[states, actions] + noise * rng.normal(size=n)
        learner.update(0, states, actions, reward, np.zeros(n), next_states)
        np.add.at(counts, (np.arange(n), states, actions, next_states), 1)
        np.add.at(rewards, (np.arange(n), states, actions), reward)
        np.add.at(squares, (np.arange(n), states, actions), reward**2)
    return counts, rewards, squares


def empirical_model(counts, rewards, squares):
    """An agent's estimates from its counts `(S, A, S)`, reward sums and squares `(S, A)`: which pairs
    were tried, the mean reward, the transition frequencies, the reward variance, and `L / n`."""
    n_s, n_a = rewards.shape
    visits = counts.sum(axis=-1)
    seen = np.maximum(visits, 1)
    mean, transition = rewards / seen, counts / seen[..., None]
    reward_variance = np.maximum(squares / seen - mean**2, 0.0)
    return visits > 0, mean, transition, reward_variance, np.log1p(n_s * n_a * visits.sum()) / seen


def optimistic_values(counts, rewards, squares, offers, scale, low, high, explore=True):
    """The learner's action values `(H, S, A)` for one agent facing `offers (H, S, A)`, written out
    plainly: mean reward plus offer plus empirical next value plus the bonus
    `scale (sqrt(2 L (var_r + var_V) / n) + (H - h) (high - low) L / n)`, `L = log(1 + S A T)`, capped
    by what the payoff range and offers allow; an untried pair is worth the cap (exploring) or `low`
    per remaining step plus its offer (greedy)."""
    horizon, n_s, _ = offers.shape
    tried, mean, transition, reward_variance, rate = empirical_model(counts, rewards, squares)
    ceiling = np.zeros(horizon + 1)
    for h in range(horizon - 1, -1, -1):
        ceiling[h] = high + offers[h].max() + ceiling[h + 1]
    q, value = np.empty(offers.shape), np.zeros(n_s)
    for h in range(horizon - 1, -1, -1):
        ahead = transition @ value
        variance = reward_variance + np.maximum(transition @ value**2 - ahead**2, 0.0)
        bonus = scale * (np.sqrt(2 * variance * rate) + (horizon - h) * (high - low) * rate)
        cap = high + offers[h] + ceiling[h + 1]
        estimate = np.minimum(mean + offers[h] + ahead + bonus, cap)
        q[h] = np.where(tried, estimate, cap if explore else (horizon - h) * low + offers[h])
        value = q[h].max(axis=-1)
    return q


@given(mdps(max_states=4, max_actions=3, max_horizon=4), st.integers(0, 2**32 - 1), st.integers(0, 12),
       st.sampled_from([1, 3]), st.sampled_from([0.0, 0.05, 1.0]))
@settings(max_examples=40, deadline=None)
def test_plans_are_the_exact_best_responses_on_the_optimistic_and_plain_estimates(mdp, seed, steps, principals,
                                                                                  bonus):
    rng = np.random.default_rng(seed)
    low, high = -1.0, 1.0
    learner = make_learner("contract_aware", 5, mdp.n_states, mdp.n_actions, mdp.horizon, rng, bonus=bonus)
    counts, rewards, squares = experience(learner, mdp, rng, steps, noise=0.1)
    offers = rng.normal(0.0, 0.5, size=(principals, mdp.horizon, mdp.n_states, mdp.n_actions))
    groups = np.arange(5) % principals
    learner.begin_episode(offers, groups)
    played, greedy = learner.behaviour_policy().argmax(axis=-1), learner.greedy_policy()
    for i in range(5):
        for policy, scale, explore in ((played, bonus, True), (greedy, 0.0, False)):
            q = optimistic_values(counts[i], rewards[i], squares[i], offers[groups[i]], scale, low, high, explore)
            chosen = np.take_along_axis(q, policy[i][..., None], axis=-1)[..., 0]
            assert np.all(chosen >= q.max(axis=-1) - 1e-4 * (1 + np.abs(q).max()))  # optimal up to float32


def test_an_untried_action_is_worth_the_upper_bound():
    """Two states; the second, worth more, is reachable only through the first state's second action,
    which pays nothing now: a learner valuing untried actions at the best reward seen would never try it."""
    from market_abm.core import TabularMDP

    transition = np.zeros((2, 2, 2))
    transition[0, 0, 0] = transition[0, 1, 1] = transition[1, :, 1] = 1.0
    mdp = TabularMDP(transition, np.array([[0.2, 0.0], [0.3, 0.5]]), np.zeros((2, 2)), 3, np.array([1.0, 0.0]))
    model = MarketModel(mdp=mdp, mechanism="none", rng=0)
    model.run_episodes(200)
    assert np.array_equal(model.learner.greedy_policy()[0], mdp.agent_optimum()[1])
    assert model.summary()["agent_regret"] < 5.0


@given(st.integers(0, 2**32 - 1), st.integers(2, 4), st.integers(2, 3), st.integers(2, 4))
@settings(max_examples=8, deadline=None)
def test_left_alone_on_a_random_mdp_the_learner_reaches_its_own_optimum(seed, n_states, n_actions, horizon):
    mdp = random_mdp(seed, n_states, n_actions, horizon, reward_range=(0.0, 1.0))
    model = MarketModel(mdp=mdp, mechanism="none", rng=seed % 1000)
    model.run_episodes(1500)
    best, _ = mdp.agent_optimum()
    learned = mdp.policy_value(model.learner.greedy_policy()[0], "agent")
    # within 2% of the range of episode values: a gap this small may hide behind a few unlucky draws
    assert learned >= best - 0.02 * horizon * np.ptp(mdp.agent_reward) - 1e-9
    regret = model.episodes_frame()["agent_regret"].to_numpy()
    assert regret.min() >= -1e-9 and regret[-150:].mean() <= 0.02 * horizon * np.ptp(mdp.agent_reward) + 1e-9


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


# --- continuing markets: discounted value iteration and UCRL2's epochs --------------------------------------


def discounted_values(counts, rewards, squares, offers, scale, low, high, discount, explore=True):
    """The continuing learner's action values `(S, A)` for one agent facing `offers (S, A)`, written out
    plainly: discounted value iteration to its fixed point on the empirical model, the bonus's remaining
    steps being the effective horizon `1 / (1 - discount)`, capped by the discounted payoff bound."""
    tried, mean, transition, reward_variance, rate = empirical_model(counts, rewards, squares)
    lasting = 1.0 / (1.0 - discount)
    cap = high + offers + discount * (high + offers.max()) * lasting
    value = np.zeros(offers.shape[0])
    for _ in range(5000):
        ahead = transition @ (discount * value)
        variance = reward_variance + np.maximum(transition @ (discount * value) ** 2 - ahead**2, 0.0)
        bonus = scale * (np.sqrt(2 * variance * rate) + lasting * (high - low) * rate)
        estimate = np.minimum(mean + offers + ahead + bonus, cap)
        q = np.where(tried, estimate, cap if explore else lasting * low + offers)
        if np.abs(q.max(axis=-1) - value).max() < 1e-9:
            break
        value = q.max(axis=-1)
    return q


@given(mdps(max_states=4, max_actions=3, max_horizon=1), st.integers(0, 2**32 - 1), st.integers(0, 12),
       st.sampled_from([0.0, 0.05, 1.0]), st.sampled_from([0.5, 0.8]))
@settings(max_examples=30, deadline=None)
def test_continuing_plans_are_the_discounted_best_responses_on_the_estimates(mdp, seed, steps, bonus, discount):
    rng = np.random.default_rng(seed)
    low, high = -1.0, 1.0
    learner = make_learner("contract_aware", 3, mdp.n_states, mdp.n_actions, 1, rng, bonus=bonus, discount=discount)
    counts, rewards, squares = experience(learner, mdp, rng, steps, noise=0.1)
    offers = rng.normal(0.0, 0.5, size=(1, 1, mdp.n_states, mdp.n_actions))
    learner.begin_episode(offers, np.zeros(3, np.int64))
    played, greedy = learner.behaviour_policy().argmax(axis=-1), learner.greedy_policy()
    slack = 1e-3 * (high - low) * discount / (1 - discount) * 2 + 1e-4  # value iteration stops at this change
    for i in range(3):
        for policy, scale, explore in ((played, bonus, True), (greedy, 0.0, False)):
            q = discounted_values(counts[i], rewards[i], squares[i], offers[0, 0], scale, low, high, discount, explore)
            chosen = np.take_along_axis(q, policy[i, 0][..., None], axis=-1)[..., 0]
            assert np.all(chosen >= q.max(axis=-1) - slack * (1 + np.abs(q).max()))


def discounted_policy_value(mdp, policy, discount):
    """Each state's discounted agent value of the stationary `policy (S,)` in `mdp`."""
    states = np.arange(mdp.n_states)
    transition, reward = mdp.transition[states, policy], mdp.agent_reward[states, policy]
    return np.linalg.solve(np.eye(mdp.n_states) - discount * transition, reward)


@given(st.integers(0, 2**32 - 1), st.integers(2, 4), st.integers(2, 3))
@settings(max_examples=6, deadline=None, derandomize=True)
def test_left_alone_in_a_continuing_market_the_learner_reaches_its_discounted_optimum(seed, n_states, n_actions):
    mdp = random_mdp(seed, n_states, n_actions, 1, reward_range=(0.0, 1.0))
    discount, rng = 0.8, np.random.default_rng(seed)
    learner = make_learner("contract_aware", 2, n_states, n_actions, 1, rng, payoff_range=(0.0, 1.0),
                           discount=discount)
    learner.begin_episode(np.zeros((1, 1, n_states, n_actions)), np.zeros(2, np.int64))
    cdf, states = cumulative(mdp.transition), np.zeros(2, np.int64)
    for _ in range(6000):
        actions = learner.act(0, states)
        next_states = inverse_cdf(cdf[states, actions], rng.random(2))
        learner.update(0, states, actions, mdp.agent_reward[states, actions], np.zeros(2), next_states)
        states = next_states
    value = np.zeros(n_states)
    for _ in range(2000):
        value = (mdp.agent_reward + discount * mdp.transition @ value).max(axis=-1)
    for policy in learner.greedy_policy()[:, 0]:
        learned = discounted_policy_value(mdp, policy, discount)
        assert np.all(learned >= value - 0.02 * np.ptp(mdp.agent_reward) / (1 - discount) - 1e-9)
    pairs = n_states * n_actions  # UCRL2's epochs: at most S A log2(8 T / (S A)) plans per agent, and one to start
    assert learner.replans <= 2 * (1 + pairs * np.log2(8 * 6000 / pairs))
