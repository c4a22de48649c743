"""The compiled per-step loops agree with plain numpy statements of what they compute."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from market_abm.core.two_phase import plan_targets
from market_abm.core.learners import count_step
from market_abm.core.q_learning import EXPLORATIONS, behaviour_table, q_step, sample_actions
from market_abm.core.mdp import policy_evaluation
from market_abm.core.pooled_search import coordinate_ascent, coordinate_moves
from market_abm.core.schemes import TransferScheme
from market_abm.core.settlement import settle_step
from market_abm.core.two_phase import count_transitions
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import PollutionEnv
from market_abm.registry import make_scheme

# agents, groups, states, actions, seed
sizes = st.tuples(st.integers(1, 40), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3),
                  st.integers(0, 2**32 - 1))
# groups, steps, states, actions, a pooled scheme or not, seed
plans = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), st.booleans(),
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
    reward_sum, reward_squares = np.zeros((s, a, n)), np.zeros((s, a, n))
    count_step(counts, visits, reward_sum, reward_squares, states, actions, rewards, next_states)
    agents = np.arange(n)
    assert counts.sum() == n
    assert np.all(counts[states, actions, next_states, agents] == 1) and np.array_equal(visits, counts.sum(axis=2))
    assert np.array_equal(reward_sum[states, actions, agents], rewards) and np.count_nonzero(reward_sum) <= n
    assert np.allclose(reward_squares[states, actions, agents], rewards**2)


def reference_probs(values, mode, epsilon, temperature):
    """Exploration probabilities of rows of action values, in plain numpy: epsilon-greedy, softmax, greedy
    (the greedy action is the lowest best one)."""
    greedy = np.eye(values.shape[-1])[values.argmax(axis=-1)]
    if EXPLORATIONS[mode] == "boltzmann":
        weights = np.exp((values - values.max(axis=-1, keepdims=True)) / temperature)
        return weights / weights.sum(axis=-1, keepdims=True)
    explore = epsilon if EXPLORATIONS[mode] == "epsilon" else 0.0
    return (1 - explore) * greedy + explore / values.shape[-1]


rules = st.tuples(st.integers(0, 2), st.floats(0.0, 1.0), st.floats(0.05, 3.0))


@given(sizes, rules)
@settings(max_examples=60, deadline=None)
def test_behaviour_table_is_the_exploration_rule(size, rule):
    n, _, _, a, seed = size
    mode, epsilon, temperature = rule
    values = np.random.default_rng(seed).normal(size=(n, a))
    assert np.allclose(behaviour_table(values, mode, epsilon, temperature),
                       reference_probs(values, mode, epsilon, temperature))


@given(sizes, rules)
@settings(max_examples=60, deadline=None)
def test_sampled_actions_follow_the_exploration_probabilities_by_inverse_cdf(size, rule):
    n, _, s, a, seed = size
    mode, epsilon, temperature = rule
    rng = np.random.default_rng(seed)
    horizon = 3
    q, states, draws, h = rng.normal(size=(horizon + 1, s, a, n)), rng.integers(s, size=n), rng.random(n), 1
    actions = sample_actions(q, h, states, draws, mode, epsilon, temperature)
    probs = reference_probs(np.moveaxis(q[h], -1, 0)[np.arange(n), states], mode, epsilon, temperature)
    cdf = np.cumsum(probs, axis=-1)
    expected = np.minimum((draws[:, None] >= cdf[:, :-1]).sum(axis=-1), a - 1)
    assert np.array_equal(actions, expected)


@given(sizes, st.booleans(), st.booleans())
@settings(max_examples=60, deadline=None)
def test_q_update_moves_each_agent_toward_its_bootstrapped_target(size, optimistic, continuing):
    """Episodic: toward `r + tau + max_b q[h + 1, s', b]`; continuing: toward `r + tau + discount *
    max_b q[h, s', b]` (one decision table), with the step size `(H + 1) / (H + n)`."""
    n, _, s, a, seed = size
    rng = np.random.default_rng(seed)
    horizon, h, bonus, confidence = 4, 2, 0.3, 5.0
    ahead, weight = (h, 0.95) if continuing else (h + 1, 1.0)
    q = rng.normal(size=(horizon + 1, s, a, n))
    visits = rng.integers(0, 5, size=(horizon, s, a, n)).astype(np.int32)
    states, actions, next_states = rng.integers(s, size=n), rng.integers(a, size=n), rng.integers(s, size=n)
    rewards, transfers = rng.normal(size=n), rng.normal(size=n)
    expected_q, expected_visits = q.copy(), visits.copy()
    agents = np.arange(n)
    count = visits[h, states, actions, agents] + 1
    target = rewards + transfers + weight * q[ahead, next_states, :, agents].max(axis=-1)
    target = target + optimistic * bonus * np.sqrt(confidence / count)
    old = q[h, states, actions, agents]
    expected_q[h, states, actions, agents] = old + (horizon + 1) / (horizon + count) * (target - old)
    expected_visits[h, states, actions, agents] = count
    q_step(q, visits, h, states, actions, rewards, transfers, next_states, optimistic, bonus, confidence, ahead,
           weight, horizon)
    assert np.allclose(q, expected_q) and np.array_equal(visits, expected_visits)


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


def reference_plan(transition, reward, unseen, default, cost, cell_of, n_cells):
    """The principal's plan by backward induction, one step at a time over whole arrays."""
    n_groups, n_states, _ = reward.shape
    value = np.zeros((n_groups, n_states))
    targets, worth = np.zeros((n_groups, n_cells), dtype=bool), np.zeros((n_groups, n_cells))
    for h in range(default.shape[1] - 1, -1, -1):
        expected = (transition @ value[:, None, :, None])[..., 0]
        q = reward + (1.0 - unseen) * expected + unseen * value.max(axis=-1)[:, None, None]
        alone = (default[:, h] * q).sum(axis=-1)
        offered = q - np.minimum(cost[:, h], 1e6)
        best = offered.argmax(axis=-1)
        gain = np.take_along_axis(offered, best[..., None], axis=-1)[..., 0]
        steer = gain > alone
        value = np.where(steer, gain, alone)
        rows = np.nonzero(steer)
        chosen = cell_of[h][np.arange(n_states)[None, :], best]
        targets[rows[0], chosen[rows]] = True
        worth[rows[0], chosen[rows]] = q[rows[0], rows[1], best[rows]] - alone[rows]
    return targets, worth


@given(plans)
@settings(max_examples=60, deadline=None)
def test_principal_plan_matches_backward_induction_over_arrays(size):
    g, h, s, a, pooled, seed = size
    rng = np.random.default_rng(seed)
    transition = rng.dirichlet(np.ones(s), size=(g, s, a))
    reward, unseen = rng.normal(size=(g, s, a)), (rng.random((g, s, a)) < 0.2).astype(float)
    default = rng.dirichlet(np.ones(a), size=(g, h, s))
    cost = np.where(rng.random((g, h, s, a)) < 0.1, np.inf, rng.exponential(size=(g, h, s, a)))
    group_of = (np.arange(h)[:, None] * s + (np.arange(s) // 2 if pooled else np.arange(s))[None, :])
    scheme = TransferScheme(group_of, a)
    got = plan_targets(transition, reward, unseen, default, cost, scheme.cell_of, scheme.n_cells)
    expected = reference_plan(transition, reward, unseen, default, cost, scheme.cell_of, scheme.n_cells)
    assert np.array_equal(got[0], expected[0]) and np.allclose(got[1], expected[1])


def reference_trial_welfare(trial, cell_of, cost, own, transition, reward, start):
    """Policy evaluation of the agents' predicted response to each trial amount vector, over whole arrays."""
    n_actions, horizon = cell_of.shape[-1], cell_of.shape[0]
    offer = trial[..., cell_of]  # (G, K, H, S, A)
    finite = np.isfinite(cost)[:, None]
    surplus = np.where(finite, offer - np.where(finite, cost[:, None], 0.0), -np.inf)
    own_mask = np.arange(n_actions) == own[:, None, ..., None]
    surplus = np.where(own_mask, np.maximum(surplus, 0.0), np.where(offer > 0, surplus, -np.inf))
    policy = surplus.argmax(axis=-1)
    policy = np.where(np.take_along_axis(surplus, policy[..., None], axis=-1)[..., 0] <= 0, own[:, None], policy)
    compliance = np.where(np.isfinite(cost), cost, 0.0)[:, None]
    both = np.stack(np.broadcast_arrays(reward[:, None, None] - compliance, offer))
    values = policy_evaluation(transition[:, None], both, policy, horizon)
    return tuple(np.einsum("gks,gs->gk", v[:, :, 0], start) for v in values)


def reference_coordinate_ascent(amounts, moves, move_points, move_action, probe, eps, cost, own, cell_of,
                                transition, reward, start, sweeps):
    """Coordinate ascent evaluating every candidate amount of a move at once, for all groups."""
    n_groups = amounts.shape[0]
    rows = np.arange(n_groups)
    for _ in range(sweeps):
        for cells, points, action in zip(moves, move_points, move_action):
            options = np.where(points[None], probe[..., action] + eps, np.nan).reshape(n_groups, -1)
            current = amounts[:, cells][:, :1]
            candidates = np.concatenate([np.zeros((n_groups, 1)), current, options], axis=1)
            candidates = np.where(np.isfinite(candidates), candidates, 0.0)
            trial = np.repeat(amounts[:, None, :], candidates.shape[1], axis=1)
            trial[:, :, cells] = candidates[..., None]
            values, paid = reference_trial_welfare(trial, cell_of, cost, own, transition, reward, start)
            best = ((values >= values.max(axis=1, keepdims=True) - 1e-9) * (1.0 / (1.0 + paid))).argmax(axis=1)
            better = (values[rows, best] > values[:, 1] + 1e-9) | (paid[rows, best] < paid[:, 1] - 1e-12)
            amounts = np.where(better[:, None], trial[rows, best], amounts)
    return amounts


@given(plans)
@settings(max_examples=60, deadline=None)
def test_pooled_plan_matches_coordinate_ascent_over_arrays(size):
    g, h, s, a, per_action, seed = size
    rng = np.random.default_rng(seed)
    scheme = make_scheme("per_action" if per_action else "stationary", h, s, a)
    moves, points, action = coordinate_moves(scheme)
    amounts = np.where(rng.random((g, scheme.n_cells)) < 0.5, 0.0, np.round(rng.exponential(size=(g, scheme.n_cells)), 1))
    probe = np.round(rng.exponential(size=(g, h, s, a)), 1)  # rounded: candidates coincide and tie
    cost = np.where(rng.random((g, h, s, a)) < 0.1, np.inf, np.round(rng.exponential(size=(g, h, s, a)), 1))
    own = rng.integers(a, size=(g, h, s))
    cost = np.where(np.arange(a) == own[..., None], 0.0, cost)
    transition = rng.dirichlet(np.ones(s), size=(g, s, a))
    reward, start = rng.normal(size=(g, s, a)), rng.dirichlet(np.ones(s), size=g)
    arguments = (moves, points, action, probe, 0.01, cost, own, scheme.cell_of, transition, reward, start, 2)
    got = coordinate_ascent(amounts, *arguments)
    assert np.allclose(got, reference_coordinate_ascent(amounts, *arguments))
