"""The compiled per-step loops agree with plain numpy statements of what they compute."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from market_abm.core.learners import count_step
from market_abm.core.two_phase import count_transitions
from market_abm.core.settlement import settle_step
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import PollutionEnv

# agents, groups, states, actions, seed
sizes = st.tuples(st.integers(1, 40), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3),
                  st.integers(0, 2**32 - 1))


def population(n, g, s, a, seed):
    rng = np.random.default_rng(seed)
    return (rng, rng.integers(g, size=n), rng.integers(s, size=n), rng.integers(a, size=n), rng.integers(s, size=n),
            rng.normal(size=n))


@given(sizes)
@settings(max_examples=60, deadline=None)
def test_institution_counts_every_agent_once_by_group(size):
    n, g, s, a, seed = size
    _, groups, states, actions, next_states, external = population(n, g, s, a, seed)
    counts, external_sum = np.ones((g, s, a, s)), np.zeros((g, s, a))
    count_transitions(counts, external_sum, groups, states, actions, next_states, external)
    expected_counts, expected_sum = np.ones((g, s, a, s)), np.zeros((g, s, a))
    np.add.at(expected_counts, (groups, states, actions, next_states), 1.0)
    np.add.at(expected_sum, (groups, states, actions), external)
    assert np.array_equal(counts, expected_counts) and np.allclose(external_sum, expected_sum)


@given(sizes)
@settings(max_examples=60, deadline=None)
def test_learners_count_their_own_steps(size):
    n, _, s, a, seed = size
    _, _, states, actions, next_states, rewards = population(n, 1, s, a, seed)
    counts, visits = np.zeros((s, a, s, n), np.float32), np.zeros((s, a, n), np.float32)
    reward_sum = np.zeros((s, a, n))
    count_step(counts, visits, reward_sum, states, actions, rewards, next_states)
    agents = np.arange(n)
    assert counts.sum() == n
    assert np.all(counts[states, actions, next_states, agents] == 1) and np.array_equal(visits, counts.sum(axis=2))
    assert np.array_equal(reward_sum[states, actions, agents], rewards) and np.count_nonzero(reward_sum) <= n


@given(sizes)
@settings(max_examples=60, deadline=None)
def test_settlement_pays_the_posted_transfer_for_the_action_taken(size):
    n, g, s, a, seed = size
    rng, groups, states, actions, _, _ = population(n, g, s, a, seed)
    posted, targets = rng.normal(size=(g, s, a)), rng.integers(a, size=(g, s))
    transfers, received = np.empty(n), np.ones(n)
    chosen, on_target = settle_step(posted, targets, groups, states, actions, transfers, received)
    assert np.array_equal(transfers, posted[groups, states, actions]) and np.array_equal(received, 1.0 + transfers)
    assert np.array_equal(chosen, np.bincount(actions, minlength=a))
    assert on_target == np.count_nonzero(targets[groups, states] == actions)


def test_pollution_step_is_the_sparse_operator_then_unbiased_rounding():
    env = PollutionEnv(make_topology("barabasi_albert", 300, np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    states, actions = rng.integers(env.n_states, size=(300, 4)), rng.integers(env.n_actions, size=(300, 4))
    uniforms = rng.random((300, 4))
    next_states, private, external = env.dynamics(states, actions, uniforms)
    stock = env.operator @ env.emitted[states, actions]
    expected = np.floor(np.minimum(stock, env.n_states - 1) + uniforms).astype(np.int64)
    assert np.array_equal(next_states, expected)
    assert np.array_equal(private, env.private[states, actions])
    assert np.array_equal(external, env.external[states, actions])
    single = env.dynamics(states[:, 1], actions[:, 1], uniforms[:, 1])
    assert all(np.array_equal(one, many[:, 1]) for one, many in zip(single, (next_states, private, external)))
