"""Algorithmic pricing as a scenario of MarketModel: logit economics, markets on graphs, Calvano's
learners, the compiled periods, the market authority and the scenario's outputs."""

import json

import numpy as np
import pandas as pd
import pytest

from calvano_reference import calvano_duopolies
from market_abm import MarketModel
from market_abm.conformance import mechanism_api_test
from market_abm.core import StepRecord
from market_abm.core.calvano import CalvanoQ, choose_prices, learn_period
from market_abm.core.learners import Learner
from market_abm.core.logit import LogitDemand, symmetric
from market_abm.core.market_authority import MarketAuthority
from market_abm.environments.graphs import make_topology
from market_abm.environments.pricing import NO_PAIRS, PricingEnv, PricingParams, market_period
from market_abm.impulse import impulse_response
from market_abm.registry import make_learner, make_mechanism, make_scheme
from market_abm.results import write_run

DEMAND, COST = LogitDemand(), 1.0
STEP = 1e-6
# A small fast economy: 5 prices, exploration gone after ~10^4 periods, short reviews.
FAST = {"n_prices": 5, "review_every": 1000, "observed_periods": 50, "max_periods": 60_000}
FAST_LEARNER = {"beta": 5e-4, "convergence_periods": 2000}


def pricing(n_agents=8, graph="cliques", mechanism="none", rng=0, scenario=None, learner_params=None, **kwargs):
    """A small fast pricing market (`FAST`, `FAST_LEARNER`) under `mechanism`."""
    return MarketModel(scenario="pricing", n_agents=n_agents, graph=graph, mechanism=mechanism, rng=rng,
                       scenario_params={**FAST, **(scenario or {})},
                       learner_params=FAST_LEARNER if learner_params is None else learner_params, **kwargs)


def env_on(graph, n, **params):
    return PricingEnv(make_topology(graph, n, np.random.default_rng(0)), PricingParams(**params))


def own_derivative(f, prices, firm):
    up, down = np.array(prices, float), np.array(prices, float)
    up[firm] += STEP
    down[firm] -= STEP
    return (f(up) - f(down)) / (2 * STEP)


# --- logit economics ------------------------------------------------------------------------------------


def test_logit_shares_match_closed_form():
    prices = np.array([1.5, 1.8])
    e = np.exp((2.0 - prices) / 0.25)
    np.testing.assert_allclose(DEMAND.shares(prices), e / (e.sum() + 1.0), rtol=1e-12)
    np.testing.assert_allclose(DEMAND.share_against(1.5, 1.8, 1), e[0] / (e.sum() + 1.0), rtol=1e-12)


def test_logit_shares_are_probabilities_and_stable_at_extreme_prices():
    prices = np.array([[-1e3, 1e3], [1e3, 1e3], [1.0, 1.0]])
    shares = DEMAND.shares(prices)
    assert np.all(np.isfinite(shares)) and np.all(shares >= 0) and np.all(shares.sum(axis=-1) <= 1 + 1e-12)
    np.testing.assert_allclose(shares[0], [1.0, 0.0], atol=1e-12)
    assert np.all(np.isfinite(DEMAND.consumer_surplus(prices)))


def test_demand_falls_in_own_price_and_rises_in_rival_price():
    base = DEMAND.shares([1.6, 1.6])
    higher_own = DEMAND.shares([1.7, 1.6])
    assert higher_own[0] < base[0] and higher_own[1] > base[1]


def test_consumer_surplus_obeys_roys_identity():
    prices = np.array([1.55, 1.8])
    for firm in range(2):
        slope = own_derivative(DEMAND.consumer_surplus, prices, firm)
        assert slope == pytest.approx(-DEMAND.shares(prices)[firm], rel=1e-6)


def test_consumer_surplus_vanishes_when_products_are_priced_out():
    assert DEMAND.consumer_surplus(np.array([1e4, 1e4])) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("demand, cost, n", [(DEMAND, 1.0, 2), (DEMAND, 1.0, 3), (LogitDemand(mu=0.5), 0.5, 2)])
def test_nash_price_satisfies_own_profit_first_order_condition(demand, cost, n):
    prices = symmetric(demand.nash_price(cost, n), n)
    assert own_derivative(lambda p: demand.profits(p, cost)[0], prices, 0) == pytest.approx(0.0, abs=1e-7)
    for shift in (-0.01, 0.01):  # a maximum, not a minimum
        deviated = prices.copy()
        deviated[0] += shift
        assert demand.profits(deviated, cost)[0] < demand.profits(prices, cost)[0]


@pytest.mark.parametrize("demand, cost, n", [(DEMAND, 1.0, 2), (DEMAND, 1.0, 3), (LogitDemand(mu=0.5), 0.5, 2)])
def test_monopoly_price_satisfies_joint_profit_first_order_conditions(demand, cost, n):
    prices = symmetric(demand.monopoly_price(cost, n), n)

    def joint(p):
        return demand.profits(p, cost).sum()

    assert own_derivative(joint, prices, 0) == pytest.approx(0.0, abs=1e-7)
    for shift in (-0.01, 0.01):
        assert joint(prices + shift) < joint(prices)


def test_benchmarks_match_calvano_baseline():
    assert DEMAND.nash_price(COST, 2) == pytest.approx(1.4729, abs=1e-4)
    assert DEMAND.monopoly_price(COST, 2) == pytest.approx(1.9250, abs=1e-4)
    nash, monopoly = DEMAND.benchmark_profits(COST, 2)
    assert nash == pytest.approx(0.2229, abs=1e-4) and monopoly == pytest.approx(0.3375, abs=1e-4)


def test_price_grid_spans_nash_and_monopoly_with_ten_percent_extension():
    grid = env_on("cliques", 4).grid
    nash, monopoly = DEMAND.nash_price(COST, 2), DEMAND.monopoly_price(COST, 2)
    assert len(grid) == 15 and np.all(np.diff(grid) > 0)
    assert grid[0] == pytest.approx(nash - 0.1 * (monopoly - nash))
    assert grid[-1] == pytest.approx(monopoly + 0.1 * (monopoly - nash))


@pytest.mark.parametrize("field, value", [("mu", 0.0), ("discount", 1.0), ("n_prices", 1), ("review_every", 0),
                                          ("observed_periods", 20_000), ("marginal_cost", "cheap")])
def test_invalid_parameters_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        PricingParams(**{field: value})


# --- markets on a graph ------------------------------------------------------------------------------------


def test_cliques_are_independent_markets_and_refuse_a_remainder():
    env = env_on("cliques", 12, n_prices=5)
    assert env.n_sessions == 6 and (env.rivals == 1).all()
    assert list(env.sessions) == [k // 2 for k in range(12)]
    three = PricingEnv(make_topology("cliques", 12, np.random.default_rng(0), size=3))
    assert three.n_sessions == 4 and (three.rivals == 2).all()
    with pytest.raises(ValueError, match="^n_agents: must be a multiple of the clique size 2, got 401"):
        pricing(401)


def test_duopoly_state_is_both_last_prices():
    env = env_on("cliques", 4, n_prices=5)
    actions = np.array([3, 1, 0, 4])
    states, _, _ = env.step(actions, None)
    assert list(states) == [3 * 5 + 1, 1 * 5 + 3, 0 * 5 + 4, 4 * 5 + 0]
    assert env.state_names[states[0]] == f"own {env.grid[3]:.3f}, rivals {env.grid[1]:.3f}"


def test_linked_state_rounds_the_neighbours_mean_price_half_up():
    env = env_on("star", 4, n_prices=5)  # hub 0 with leaves 1, 2, 3
    states, _, _ = env.step(np.array([2, 0, 1, 2]), None)
    assert states[0] == 2 * 5 + 1  # mean of 0, 1, 2 is 1
    states, _, _ = env.step(np.array([2, 0, 1, 4]), None)
    assert states[0] == 2 * 5 + 2  # mean 5/3 rounds to 2
    assert states[1] == 0 * 5 + 2  # a leaf's one neighbour, the hub
    alone = PricingEnv(make_topology("cliques", 2, np.random.default_rng(0), size=1), PricingParams(n_prices=5))
    assert list(alone.step(np.array([3, 1]), None)[0]) == [3 * 5 + 3, 1 * 5 + 1]  # no rival: its own price


@pytest.mark.parametrize("graph", ["watts_strogatz", "barabasi_albert", "cliques", "star"])
def test_market_kernel_matches_numpy_logit(graph):
    env = env_on(graph, 30)
    rng = np.random.default_rng(1)
    actions = rng.integers(0, env.n_actions, env.n_agents)
    states, profits, surplus = env.step(actions, None)
    prices = env.grid[actions]
    adjacency = env.topology.adjacency.toarray() > 0
    for i in range(env.n_agents):
        market = np.r_[i, np.flatnonzero(adjacency[i])]
        shares = DEMAND.shares(prices[market])
        assert env.quantities[i] == pytest.approx(shares[0], rel=1e-12)
        assert profits[i] == pytest.approx((prices[i] - COST) * shares[0], rel=1e-12)
        assert surplus[i] == pytest.approx(DEMAND.consumer_surplus(prices[market]) / len(market), rel=1e-12)
        mean = actions[market[1:]].mean() if len(market) > 1 else actions[i]
        assert states[i] == actions[i] * env.n_actions + int(np.floor(mean + 0.5))


def test_duopoly_lookup_table_is_exactly_the_computed_period():
    env = env_on("cliques", 40)
    actions = np.random.default_rng(2).integers(0, env.n_actions, 40)
    looked_up = env.step(actions, None)
    out = [np.empty(40, np.int64), np.empty(40), np.empty(40), np.empty(40)]
    market_period(env.everyone, actions, *env.market()[:-1], NO_PAIRS, *out)
    for a, b in zip(looked_up, out):
        assert np.array_equal(a, b)


def test_learners_prior_is_the_profit_against_uniformly_random_rivals():
    env = env_on("star", 4, n_prices=4)
    prior = env.learner_priors()["prior_payoff"]
    grid = env.grid
    one = [np.mean([DEMAND.profits([p, r], COST)[0] for r in grid]) for p in grid]
    three = [np.mean([DEMAND.profits([p, r, s, u], COST)[0] for r in grid for s in grid for u in grid]) for p in grid]
    np.testing.assert_allclose(prior[:, 1], one, rtol=1e-12)  # a leaf has one rival
    np.testing.assert_allclose(prior[:, 0], three, rtol=1e-12)  # the hub has three


def test_principal_view_says_what_the_authority_may_know():
    view = env_on("cliques", 6).principal_view()
    assert view.discount == 0.95 and view.horizon == 1 and view.transition is None and view.external_reward is None
    assert set(view.public) == {"marginal_cost", "prices", "state_prices", "rivals"}
    assert view.payoff_range == (0.0, pytest.approx(view.public["prices"][-1] - 1.0))


# --- Calvano's learner -----------------------------------------------------------------------------------


def test_two_firm_cliques_match_plain_calvano_q_learning_draw_for_draw():
    model = pricing(6, scenario={"review_every": 500, "observed_periods": 20},
                    learner_params={"beta": 2e-3, "convergence_periods": 400})
    periods = 3000
    model.run_steps(periods)
    env, learner = model.env, model.learner
    m = env.n_actions
    profits = env.pairs[:, 0].reshape(m, m)
    np.testing.assert_allclose(profits, DEMAND.profits(np.stack(np.meshgrid(env.grid, env.grid, indexing="ij"), -1),
                                                       COST)[..., 0], rtol=1e-12)
    q, state, stopped_at, prices = calvano_duopolies(profits, env.learner_priors()["prior_payoff"], periods,
                                                     np.random.default_rng(0), beta=2e-3, convergence=400)
    assert np.array_equal(learner.q[0], q) and np.array_equal(model.states, state)
    assert np.array_equal(learner.greedy, q.argmax(axis=1))  # the greedy actions kept up to date
    assert np.array_equal(model.session_stopped_at, stopped_at) and (stopped_at > 0).any()
    assert np.array_equal(model.actions, prices[-1])


def test_learner_kernels_match_numpy_statements():
    rng = np.random.default_rng(3)
    n, s, a = 9, 4, 3
    q = rng.normal(size=(s, a, n))
    greedy = q.argmax(axis=1).astype(np.int16)
    states, actions, next_states = rng.integers(0, s, n), rng.integers(0, a, n), rng.integers(0, s, n)
    rewards, transfers = rng.normal(size=n), rng.normal(size=n)
    stopped = np.arange(n) == 4
    expected = q.copy()
    target = rewards + transfers + 0.9 * q[next_states, :, np.arange(n)].max(axis=1)
    expected[states, actions, np.arange(n)] += 0.3 * (target - q[states, actions, np.arange(n)])
    expected[states[4], actions[4], 4] = q[states[4], actions[4], 4]
    last_change = np.full(n, -1)
    learn_period(q, greedy, last_change, stopped, states, actions, rewards, transfers, next_states, 0.3, 0.9, 7)
    np.testing.assert_allclose(q, expected, rtol=1e-15)
    assert np.array_equal(greedy, q.argmax(axis=1))
    draws = rng.random(n)
    chosen = choose_prices(greedy, stopped, states, draws, 0.5, a)
    explore = (draws < 0.5) & ~stopped
    assert np.array_equal(chosen, np.where(explore, (draws / 0.5 * a).astype(int), greedy[states, np.arange(n)]))


def test_convergence_rule_and_stop():
    learner = CalvanoQ(2, 4, 2, 1, np.random.default_rng(0), discount=0.9, convergence_periods=3)
    states = np.zeros(2, dtype=np.int64)
    for _ in range(3):
        learner.update(0, states, np.zeros(2, dtype=np.int64), np.zeros(2), np.zeros(2), states)
    assert learner.converged().all()  # values moved, greedy actions did not
    learner.update(0, states, np.array([1, 0]), np.array([5.0, 0.0]), np.zeros(2), states)
    assert list(learner.converged()) == [False, True]
    learner.stop(np.array([True, False]))
    before = learner.q.copy()
    learner.update(0, states, np.array([0, 0]), np.array([9.0, 9.0]), np.zeros(2), states)
    assert np.array_equal(learner.q[..., 0], before[..., 0]) and not np.array_equal(learner.q[..., 1], before[..., 1])


@pytest.mark.parametrize("learner", ["epsilon_greedy", "optimistic_q", "boltzmann"])
def test_model_free_learners_bootstrap_on_the_discount(learner):
    population = make_learner(learner, 2, 3, 2, 1, np.random.default_rng(0), discount=0.8)
    population.begin_episode(np.zeros((1, 1, 3, 2)), np.zeros(2, dtype=int))
    population.q[0] = np.arange(12.0).reshape(3, 2, 2) / 10
    before = population.q.copy()
    population.update(0, np.array([0, 1]), np.array([1, 0]), np.array([1.0, 2.0]), np.zeros(2), np.array([2, 2]))
    rate = (population.span + 1) / (population.span + 1)  # first visit
    bonus = 0.0 if learner != "optimistic_q" else population.bonus * np.sqrt(population.span**3 * np.log(2.0))
    for i, (s, a, r) in enumerate([(0, 1, 1.0), (1, 0, 2.0)]):
        target = r + 0.8 * before[0, 2, :, i].max() + bonus
        assert population.q[0, s, a, i] == pytest.approx(before[0, s, a, i] + rate * (target - before[0, s, a, i]))
    model = pricing(4, learner=learner, learner_params={})
    model.run_steps(1500)
    assert model.episode == 1 and model.steps_frame()["mean_price"].notna().all()


class EpisodicOnly(Learner):
    """A user's learner that takes no discount: it learns episodes only."""

    name = "episodic_only"


def test_learners_that_cannot_learn_the_market_are_refused_naming_the_learner():
    with pytest.raises(ValueError, match="^learner: 'episodic_only' cannot learn a continuing market"):
        pricing(4, learner=EpisodicOnly, learner_params={})
    with pytest.raises(ValueError, match="^learner: 'calvano_q' learns continuing markets only"):
        MarketModel(scenario="pollution", n_agents=2, learner="calvano_q", rng=0)
    with pytest.raises(ValueError, match="^learner_params: the discount is the market's"):
        pricing(4, learner_params={"discount": 0.5})


def test_contract_aware_firms_plan_the_discounted_market_and_answer_a_rebate_at_once():
    alone = pricing(4, learner="contract_aware", learner_params={})
    alone.run_steps(3000)
    assert alone.learner.discount == alone.env.discount and alone.steps_frame()["mean_price"].notna().all()
    assert alone.learner.replans < 4 * 3000  # epochs end on a doubling, not every period
    rebate = np.zeros((1, 1, alone.env.n_states, alone.env.n_actions))
    rebate[..., 0] = 10.0  # far above any profit: the lowest price is worth more than any other, everywhere
    alone.learner.begin_episode(rebate, np.zeros(4, np.int64))
    assert np.all(alone.learner.behaviour_policy().argmax(axis=-1) == 0)


# --- the continuing market in MarketModel ------------------------------------------------------------------


@pytest.mark.parametrize("graph, n, mechanism", [("cliques", 8, "none"), ("cliques", 6, "two_phase"),
                                                 ("watts_strogatz", 12, "subsidy"), ("ring", 5, "none")])
def test_compiled_periods_give_exactly_the_data_of_the_staged_step(graph, n, mechanism):
    fast, staged = (pricing(n, graph, mechanism, rng=4, learner_params={"beta": 1e-3, "convergence_periods": 600},
                            agent_snapshot_every=2) for _ in range(2))
    staged.compiled_periods = None  # every period through step()
    fast.run_steps(7500)
    for _ in range(7500):
        staged.step()
    pd.testing.assert_frame_equal(fast.steps_frame(), staged.steps_frame(), check_exact=True)
    pd.testing.assert_frame_equal(fast.agents_frame(), staged.agents_frame(), check_exact=True)
    assert np.array_equal(fast.learner.q, staged.learner.q) and np.array_equal(fast.states, staged.states)
    assert np.array_equal(fast.session_stopped_at, staged.session_stopped_at)
    for name in ("actions", "private_rewards", "external_rewards", "transfers", "transfers_received"):
        assert np.array_equal(getattr(fast, name), getattr(staged, name)), name
    assert fast.mechanism.summary() == staged.mechanism.summary()


@pytest.mark.parametrize("replay_path", [1, 1024])
def test_stopped_sessions_replay_their_cycles_exactly(replay_path):
    from market_abm.compiled_pricing import CompiledPeriods

    fast, staged = (pricing(12, mechanism="two_phase", rng=6, learner_params={"beta": 2e-3, "convergence_periods": 300})
                    for _ in range(2))
    fast.compiled_periods = CompiledPeriods(fast.env, fast.learner, replay_path=replay_path)
    staged.compiled_periods = None
    fast.run_steps(9000)
    staged.run_steps(9000)
    assert (fast.session_stopped_at > 0).all()  # every session stopped, and replayed (or not) to the end
    pd.testing.assert_frame_equal(fast.steps_frame(), staged.steps_frame(), check_exact=True)
    for name in ("states", "actions", "private_rewards", "external_rewards", "transfers", "transfers_received"):
        assert np.array_equal(getattr(fast, name), getattr(staged, name)), name
    assert fast.mechanism.summary() == staged.mechanism.summary()


def test_one_seed_one_run_and_data_per_review_period():
    runs = [pricing(8, rng=seed) for seed in (5, 5, 6)]
    for model in runs:
        model.run_episodes(3)
    frames = [model.steps_frame() for model in runs]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert not frames[0].equals(frames[2])
    assert list(frames[0]["period"]) == [1000, 2000, 3000] and list(frames[0]["review"]) == [0, 1, 2]
    for column in ("welfare", "mean_price", "profit_gain", "consumer_surplus", "converged_share", "share_target"):
        assert column in frames[0]


def test_states_carry_over_between_review_periods():
    model = pricing(4)
    model.run_episodes(1)
    states = model.states.copy()
    model.step()
    assert model.review.periods == 1 and model.period == 1001
    assert np.array_equal(model.learner.q.shape, (1, 25, 5, 4)) and model.started
    assert not np.array_equal(states, np.full(4, -1))


def test_run_to_convergence_books_a_review_of_converged_play():
    model = pricing(8)
    model.run_to_convergence()
    summary = model.summary()
    assert summary["converged_share"] == 1.0 and model.ran_to_convergence
    stopped = model.session_stopped_at
    assert (stopped > 0).all() and model.period - model.env.review_every >= stopped.max()
    assert summary["converged_periods"] == pytest.approx(stopped.mean())
    for key in ("profit_gain", "mean_price", "consumer_surplus", "converged_share", "converged_periods", "gap_closed"):
        assert np.isfinite(summary[key]), key
    assert summary["gap_closed"] == 0.0 and summary["laissez_faire_welfare"] == summary["final_welfare"]


def test_laissez_faire_benchmark_is_the_same_run_without_offers():
    none, steered = pricing(8, mechanism="none", rng=3), pricing(8, mechanism="two_phase", rng=3)
    for model in (none, steered):
        model.run_to_convergence()
    assert steered.summary()["laissez_faire_welfare"] == none.summary()["final_welfare"]
    assert steered.summary()["laissez_faire_mean_price"] == none.summary()["mean_price"]


def test_outputs_go_through_the_ordinary_run_writer(tmp_path):
    model = pricing(4, mechanism="two_phase")
    model.run_episodes(4)
    write_run(model, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"profit_gain", "mean_price", "consumer_surplus", "converged_share", "converged_periods",
            "gap_closed"} <= set(summary)
    assert len(pd.read_parquet(tmp_path / "steps.parquet")) == 4
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_agents_and_principal_are_handles():
    model = pricing(4, mechanism="two_phase")
    model.run_episodes(2)
    agent = model.learning_agents[1]
    assert agent.state == model.states[1] and agent.policy.shape == (1, 25)
    assert agent.q_values.shape == (1, 25, 5)
    assert model.principals[0].offers.shape == (1, 25, 5)


# --- the market authority ----------------------------------------------------------------------------------


def test_authority_is_built_from_the_view_alone_and_conforms():
    env = env_on("cliques", 6, n_prices=5)
    authority = make_mechanism(MarketAuthority, env.principal_view(), "per_action")
    mechanism_api_test(authority, env, episodes=12)  # built and run without a learner
    assert authority.target == 0 and authority.phase in (1, 2)


def test_authority_fits_demand_and_prices_its_rebate_from_the_market():
    env = env_on("cliques", 40)
    authority = MarketAuthority(env.principal_view(), make_scheme("per_action", 1, env.n_states, env.n_actions))
    rng = np.random.default_rng(0)
    states = env.reset(rng)
    for _ in range(50):
        actions = rng.integers(0, env.n_actions, env.n_agents)
        next_states, _, external = env.step(actions, rng)
        authority.record(StepRecord(0, env.groups, states, actions, next_states, external, np.zeros(40),
                                    env.public_observations()))
        states = next_states
    authority.end_episode()
    assert authority.demand.quality == pytest.approx(2.0, rel=1e-6) and authority.demand.mu == pytest.approx(0.25)
    assert authority.target == 0  # welfare falls with every price above cost
    profit = DEMAND.profits(np.stack(np.meshgrid(env.grid, env.grid, indexing="ij"), -1), COST)[..., 0]
    with_rebate = profit + np.where(np.arange(env.n_actions) == 0, authority.estimate + 1e-9, 0.0)[:, None]
    assert np.all(with_rebate.argmax(axis=0) == 0)  # the target is a best reply to any rival price
    assert with_rebate[0, 0] >= np.diag(profit).max()  # and beats the best symmetric profit
    assert authority.rebate == pytest.approx(authority.estimate * 1.1)
    assert np.array_equal(authority.post_offers()[0, 0, :, 0], np.full(env.n_states, authority.rebate))
    assert not authority.post_offers()[..., 1:].any()


def test_authority_judges_acceptance_from_prices_played_and_raises_a_stalled_refusal():
    env = env_on("cliques", 4, n_prices=5)
    authority = MarketAuthority(env.principal_view(), make_scheme("fine", 1, 25, 5), patience=2)
    authority.demand, authority.target, authority.estimate, authority.rebate = DEMAND, 0, 0.1, 0.1
    for share in (0.1, 0.1):
        authority.judge(share)
    assert authority.rebate == 0.1
    authority.judge(0.1)  # no better than two reviews ago: raised
    assert authority.rebate == pytest.approx(0.15) and authority.raises == 1 and authority.phase == 1
    authority.judge(0.9)
    assert authority.phase == 2 and authority.phase1_rebate == pytest.approx(0.15)
    authority.rebate = authority.ceiling
    for share in (0.1, 0.1, 0.1):
        authority.judge(share)
    assert authority.at_ceiling and authority.rebate == authority.ceiling


def test_every_scheme_carries_the_same_rebate():
    env = env_on("cliques", 4, n_prices=5)
    offers = []
    for scheme in ("fine", "stationary", "per_action", "threshold"):
        authority = MarketAuthority(env.principal_view(), make_scheme(scheme, 1, 25, 5))
        authority.demand, authority.target, authority.rebate = DEMAND, 0, 0.2
        authority.post()
        offers.append(authority.post_offers())
    assert all(np.array_equal(offers[0], other) for other in offers[1:])


def test_two_phase_on_pricing_is_the_market_authority_and_refuses_what_it_cannot_be():
    model = pricing(4, mechanism="two_phase")
    assert isinstance(model.mechanism, MarketAuthority) and model.settings["mechanism"] == "two_phase"
    with pytest.raises(ValueError, match="^mechanism: 'oracle' needs an exact local model"):
        pricing(4, mechanism="oracle")
    with pytest.raises(ValueError, match="^mechanism: 'pigouvian' needs a known marginal external cost"):
        pricing(4, mechanism="pigouvian")


def test_authority_steers_a_small_market_to_the_target():
    none, steered = pricing(8, mechanism="none", rng=1), pricing(8, mechanism="two_phase", rng=1)
    for model in (none, steered):
        model.run_to_convergence()
    summary = steered.summary()
    assert summary["mean_price"] < none.summary()["mean_price"] and summary["gap_closed"] > 0.7
    assert summary["target_price"] == steered.env.grid[0] and summary["fitted_mu"] == pytest.approx(0.25, rel=1e-6)


# --- the impulse response -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_impulse_response_shows_the_punishment():
    model = MarketModel(scenario="pricing", n_agents=40, graph="cliques", mechanism="none", rng=7)
    model.run_to_convergence()
    assert model.summary()["profit_gain"] > 0.6
    response = impulse_response(model)
    rival = response["rival_price"].to_numpy()
    before = rival[0]
    assert rival[2] < before - 0.05  # the rival punishes the deviation
    assert abs(rival[-1] - before) < 0.5 * (before - rival[2])  # and returns towards the collusive price
    assert response["rival_below_before"].iloc[2] > 0.5


# --- acceptance (slow) ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_calvano_baseline_colludes_and_the_authority_restores_competition():
    none = MarketModel(scenario="pricing", n_agents=60, graph="cliques", mechanism="none", rng=11)
    steered = MarketModel(scenario="pricing", n_agents=60, graph="cliques", mechanism="two_phase", rng=11)
    for model in (none, steered):
        model.run_to_convergence()
    laissez_faire, two_phase = none.summary(), steered.summary()
    assert 0.75 <= laissez_faire["profit_gain"] <= 0.92 and laissez_faire["converged_share"] >= 0.9
    assert two_phase["gap_closed"] >= 0.7 and two_phase["mean_price"] < laissez_faire["mean_price"]


# --- sweeps and the PettingZoo env ------------------------------------------------------------------------------


def test_a_pricing_sweep_collects_one_row_per_review_period(tmp_path):
    from market_abm import load_dataset
    from market_abm.batch import parse_spec, run_sweep

    spec = parse_spec('''
        scenario = "pricing"
        learner = "calvano_q"
        graph = "cliques"
        n_agents = 4
        steps = 3000
        seeds = [0, 1]
        [scenario_params]
        n_prices = 5
        review_every = 1000
        observed_periods = 50
        [grid]
        mechanism = ["none", "two_phase"]
    ''')
    report = run_sweep(spec, tmp_path, progress=False)
    assert report.ran == 4 and not report.failed
    frame = load_dataset(tmp_path)
    assert len(frame) == 4 * 3 and set(frame["period"]) == {1000, 2000, 3000}


def test_pettingzoo_env_plays_review_periods_truncated_not_terminated():
    from pettingzoo.test import parallel_api_test

    from market_abm.rl import parallel_env

    env = parallel_env(scenario="pricing", n_agents=4, graph="cliques", mechanism="two_phase", rng=0,
                       scenario_params={"n_prices": 5, "review_every": 20, "observed_periods": 5})
    parallel_api_test(env, num_cycles=50)
    env.reset(seed=1)
    for t in range(20):
        _, rewards, terminations, truncations, _ = env.step({name: 0 for name in env.possible_agents})
    assert not any(terminations.values()) and all(truncations.values()) and not env.agents
    states = env.model.states.copy()
    observations, _ = env.reset()
    assert [observations[name]["state"] for name in env.possible_agents] == list(states)
