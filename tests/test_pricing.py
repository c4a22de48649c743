"""Algorithmic pricing: logit demand, Nash and monopoly benchmarks, Q-learning sessions, the authority."""

import numpy as np
import pandas as pd
import pytest

from market_abm.environments.pricing import (
    MarketTables,
    PricingParams,
    SessionBatch,
    consumer_surplus,
    firm_profits,
    initial_q,
    logit_demand,
    lowest_accepted,
    monopoly_price,
    nash_price,
    oracle_rebate,
    price_grid,
    run_pricing,
    session_generators,
    symmetric,
    target_rebates,
)

BASELINE = PricingParams()
STEP = 1e-6
# A small, fast economy: 5 prices, exploration gone after ~10^4 periods.
FAST = dict(n_prices=5, exploration_decay=5e-4, convergence_periods=1_000, max_periods=30_000,
            check_every=500, record_every=1_000, search_levels=3, search_replicates=2)


def own_derivative(f, prices, firm):
    """Central difference of `f(prices)` in firm `firm`'s price."""
    up, down = np.array(prices, float), np.array(prices, float)
    up[firm] += STEP
    down[firm] -= STEP
    return (f(up) - f(down)) / (2 * STEP)


# --- demand system -------------------------------------------------------------------------------


def test_logit_shares_match_closed_form():
    prices = np.array([1.5, 1.8])
    e = np.exp((2.0 - prices) / 0.25)
    np.testing.assert_allclose(logit_demand(prices, BASELINE), e / (e.sum() + 1.0), rtol=1e-12)


def test_logit_shares_are_probabilities_and_stable_at_extreme_prices():
    prices = np.array([[-1e3, 1e3], [1e3, 1e3], [1.0, 1.0]])
    shares = logit_demand(prices, BASELINE)
    assert np.all(np.isfinite(shares)) and np.all(shares >= 0) and np.all(shares.sum(axis=-1) <= 1 + 1e-12)
    np.testing.assert_allclose(shares[0], [1.0, 0.0], atol=1e-12)
    assert np.all(np.isfinite(consumer_surplus(prices, BASELINE)))


def test_demand_falls_in_own_price_and_rises_in_rival_price():
    base = logit_demand([1.6, 1.6], BASELINE)
    higher_own = logit_demand([1.7, 1.6], BASELINE)
    assert higher_own[0] < base[0] and higher_own[1] > base[1]


def test_consumer_surplus_obeys_roys_identity():
    prices = np.array([1.55, 1.8])
    for firm in range(2):
        slope = own_derivative(lambda p: consumer_surplus(p, BASELINE), prices, firm)
        assert slope == pytest.approx(-logit_demand(prices, BASELINE)[firm], rel=1e-6)


def test_consumer_surplus_vanishes_when_products_are_priced_out():
    assert consumer_surplus(np.array([1e4, 1e4]), BASELINE) == pytest.approx(0.0, abs=1e-12)


# --- Nash and monopoly benchmarks ----------------------------------------------------------------------


@pytest.mark.parametrize("params", [BASELINE, PricingParams(n_firms=3), PricingParams(mu=0.5, marginal_cost=0.5)])
def test_nash_price_satisfies_own_profit_first_order_condition(params):
    prices = symmetric(nash_price(params), params)
    slope = own_derivative(lambda p: firm_profits(p, params)[0], prices, 0)
    assert slope == pytest.approx(0.0, abs=1e-7)
    for shift in (-0.01, 0.01):  # a maximum, not a minimum
        deviated = prices.copy()
        deviated[0] += shift
        assert firm_profits(deviated, params)[0] < firm_profits(prices, params)[0]


@pytest.mark.parametrize("params", [BASELINE, PricingParams(n_firms=3), PricingParams(mu=0.5, marginal_cost=0.5)])
def test_monopoly_price_satisfies_joint_profit_first_order_conditions(params):
    prices = symmetric(monopoly_price(params), params)

    def joint(p):
        return firm_profits(p, params).sum()

    assert own_derivative(joint, prices, 0) == pytest.approx(0.0, abs=1e-7)
    for shift in (-0.01, 0.01):
        assert joint(prices + shift) < joint(prices)


def test_benchmarks_match_calvano_baseline():
    assert nash_price(BASELINE) == pytest.approx(1.4729, abs=1e-4)
    assert monopoly_price(BASELINE) == pytest.approx(1.9250, abs=1e-4)


def test_price_grid_spans_nash_and_monopoly_with_ten_percent_extension():
    grid = price_grid(BASELINE)
    span = monopoly_price(BASELINE) - nash_price(BASELINE)
    assert len(grid) == 15 and np.all(np.diff(grid) > 0)
    assert grid[0] == pytest.approx(nash_price(BASELINE) - 0.1 * span)
    assert grid[-1] == pytest.approx(monopoly_price(BASELINE) + 0.1 * span)


def test_tables_index_joint_profiles_row_major_and_target_the_lowest_price():
    tables = MarketTables.build(BASELINE)
    assert tables.actions.shape == (225, 2)
    assert tuple(tables.actions[17]) == (1, 2)
    assert tables.target == 0
    assert tables.optimal_welfare == pytest.approx(tables.welfare.max())
    assert tables.welfare[0] == pytest.approx(tables.optimal_welfare)


def test_competitive_target_is_the_grid_price_nearest_nash():
    tables = MarketTables.build(PricingParams(target="competitive"))
    assert tables.target == int(np.abs(tables.grid - nash_price(BASELINE)).argmin()) == 1


@pytest.mark.parametrize("field, value", [("mu", 0.0), ("n_firms", 1), ("discount", 1.0), ("target", "cheap"),
                                          ("record_every", 1_500), ("learning_rate", -0.1), ("n_prices", 1)])
def test_invalid_parameters_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        PricingParams(**{field: value})


# --- Q-learning sessions ---------------------------------------------------------------------------------


def reference_q_learning(params, tables, rebates, seeds, periods):
    """Plain-Python Q-learning of each session, drawing the same random numbers as `SessionBatch`."""
    m, n = params.n_prices, params.n_firms
    tables_q = []
    for session, gen in enumerate(session_generators(seeds, "search", len(rebates))):
        uniforms = gen.random((periods, n))
        q = np.tile(initial_q(tables, params)[:, None, :], (1, params.n_states, 1))
        state = 0
        for t in range(periods):
            eps = np.exp(-params.exploration_decay * t)
            action = [int(uniforms[t, i] / eps * m) if uniforms[t, i] < eps else int(q[i, state].argmax())
                      for i in range(n)]
            joint = int(np.ravel_multi_index(action, (m,) * n))
            for i in range(n):
                payoff = tables.profits[joint, i] + rebates[session][state, action[i]] * tables.shares[joint, i]
                target = payoff + params.discount * q[i, joint].max()
                q[i, state, action[i]] += params.learning_rate * (target - q[i, state, action[i]])
            state = joint
        tables_q.append(q)
    return np.stack(tables_q)


def test_vectorised_sessions_match_plain_q_learning():
    params = PricingParams(n_prices=4, exploration_decay=2e-3, check_every=400, record_every=400)
    tables = MarketTables.build(params)
    rebates = np.stack([target_rebates(level, tables, params) for level in (0.0, 0.3, 0.05)])
    seeds = np.random.SeedSequence(7)
    batch = SessionBatch(params, tables, rebates, session_generators(seeds, "search", 3))
    batch.learn_chunk(400)
    expected = reference_q_learning(params, tables, rebates, seeds, 400)
    np.testing.assert_allclose(batch.q.reshape(expected.shape), expected, rtol=1e-12)
    np.testing.assert_array_equal(batch.greedy.reshape(expected.shape[:-1]), expected.argmax(axis=-1))


def test_initial_q_is_discounted_payoff_against_uniform_rivals():
    tables = MarketTables.build(BASELINE)
    q0 = initial_q(tables, BASELINE)
    own_lowest = tables.actions[:, 0] == 0
    assert q0[0, 0] == pytest.approx(tables.profits[own_lowest, 0].mean() / (1 - BASELINE.discount))


def make_batch(size=2, **fields):
    params = PricingParams(**{**FAST, **fields})
    tables = MarketTables.build(params)
    rebates = np.zeros((size, params.n_states, params.n_prices))
    return SessionBatch(params, tables, rebates, session_generators(np.random.SeedSequence(3), "steer", size))


def test_convergence_rule_waits_for_unchanged_greedy_policies():
    batch = make_batch(convergence_periods=5, check_every=10)
    changed = np.zeros((10, 4), bool)
    changed[6, 1] = True  # session 0, firm 1 changes its greedy price at period 6
    batch.period = 10
    batch.check_convergence(changed, start=0)
    assert list(batch.stopped_at) == [-1, 10]  # session 1 unchanged for 10 periods; session 0 for 3
    batch.period = 20
    batch.check_convergence(np.zeros((10, 4), bool), start=10)
    assert list(batch.stopped_at) == [20, 10]


def test_converged_sessions_stop_learning_and_play_greedy():
    batch = make_batch(size=3)
    batch.run("laissez_faire", progress=False)
    assert np.all(batch.stopped_at >= batch.params.convergence_periods)
    q, state = batch.q.copy(), batch.state.copy()
    joint, changed, _ = batch.learn_chunk(200)
    np.testing.assert_array_equal(batch.q, q)
    assert not changed.any()
    np.testing.assert_array_equal(joint[0], batch.greedy_profile(state))


def test_limit_cycle_averages_over_one_full_cycle():
    batch = make_batch(size=3)
    batch.run("laissez_faire", progress=False)
    cycle = batch.limit_cycle()
    assert np.all(cycle["cycle_length"] >= 1) and np.all(cycle["cycle_length"] <= batch.params.n_states)
    assert np.all((cycle["price"] >= batch.tables.grid[0]) & (cycle["price"] <= batch.tables.grid[-1]))


# --- the authority -----------------------------------------------------------------------------------------


def test_oracle_rebate_makes_the_target_a_strict_best_reply_that_beats_collusion():
    tables = MarketTables.build(BASELINE)
    rebate = oracle_rebate(tables, BASELINE)
    payoff = tables.profits[:, 0] + (tables.actions[:, 0] == tables.target) * (rebate + 1e-6) * tables.shares[:, 0]
    payoff = payoff.reshape(15, 15)  # own price x rival price
    assert np.all(payoff.argmax(axis=0) == tables.target)
    assert payoff[0, 0] >= tables.profits.sum(axis=1).max() / 2


def test_lowest_accepted_level_needs_every_higher_level_accepted():
    params = PricingParams()
    acceptance = pd.Series([0.0, 1.0, 0.5, 1.0, 1.0], index=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert lowest_accepted(acceptance, params, fallback=9.0) == 0.4
    assert lowest_accepted(acceptance * 0, params, fallback=9.0) == 9.0


# --- whole runs ------------------------------------------------------------------------------------------------


SUMMARY_KEYS = {"profit_gain", "mean_price", "consumer_surplus", "converged_periods", "optimal_welfare",
                "laissez_faire_welfare", "final_welfare", "gap_closed", "total_welfare_regret",
                "transfers_per_episode", "regret_slope"}


@pytest.fixture(scope="module")
def fast_runs():
    return {m: run_pricing(m, sessions=4, rng=11, progress=False, **FAST) for m in ("none", "two_phase", "oracle")}


def test_runs_write_the_common_summary_and_steps(fast_runs):
    for mechanism, (steps, summary) in fast_runs.items():
        assert SUMMARY_KEYS <= summary.keys()
        assert {"period", "price", "welfare", "transfers", "cumulative_regret"} <= set(steps.columns)
        assert np.all(np.diff(steps["period"]) > 0)
        assert np.all(np.diff(steps["cumulative_regret"]) >= 0)
        assert summary["optimal_welfare"] >= summary["final_welfare"]


def test_laissez_faire_baseline_is_shared_across_mechanisms(fast_runs):
    baseline = fast_runs["none"][1]["laissez_faire_welfare"]
    for _, summary in fast_runs.values():
        assert summary["laissez_faire_welfare"] == baseline
    assert fast_runs["none"][1]["gap_closed"] == 0.0
    assert fast_runs["none"][1]["transfers_per_episode"] == 0.0


def test_rebates_lower_prices_and_close_the_welfare_gap(fast_runs):
    none, two_phase, oracle = (fast_runs[m][1] for m in ("none", "two_phase", "oracle"))
    assert none["profit_gain"] > 0.3
    for steered in (two_phase, oracle):
        assert steered["mean_price"] < none["mean_price"]
        assert steered["gap_closed"] >= 0.6
        assert steered["transfers_per_episode"] > 0
    tau_max = none["price_grid"][-1] - none["price_grid"][0]
    assert 0 < two_phase["rebate_estimate"] <= tau_max
    assert two_phase["rebate_posted"] == pytest.approx(two_phase["rebate_estimate"] * 1.25)
    assert oracle["rebate_posted"] == pytest.approx(oracle["oracle_rebate"] + 1e-3)


def test_same_seed_gives_identical_output(fast_runs):
    steps, summary = run_pricing("two_phase", sessions=4, rng=11, progress=False, **FAST)
    pd.testing.assert_frame_equal(steps, fast_runs["two_phase"][0])
    assert summary == fast_runs["two_phase"][1]


def test_unknown_mechanism_or_parameter_is_rejected():
    with pytest.raises(ValueError, match="^mechanism: "):
        run_pricing("cartel", progress=False)
    with pytest.raises(ValueError, match="^params: "):
        run_pricing("none", progress=False, temperature=1.0)


@pytest.mark.slow
def test_classic_baseline_colludes_and_two_phase_rebates_restore_welfare():
    _, none = run_pricing("none", sessions=16, rng=0, progress=False)
    _, steered = run_pricing("two_phase", sessions=16, rng=0, progress=False)
    assert none["profit_gain"] > 0.6
    assert steered["mean_price"] < none["mean_price"]
    assert steered["gap_closed"] >= 0.6


def test_steps_record_every_block_up_to_the_cap():
    steps, summary = run_pricing("none", sessions=2, rng=1, progress=False, **{**FAST, "max_periods": 2_500})
    assert list(steps["period"]) == [1_000, 2_000, 2_500]
    assert list(steps["block_periods"]) == [1_000, 1_000, 500]
    assert summary["converged_share"] == 0.0 and summary["converged_periods"] == 2_500
