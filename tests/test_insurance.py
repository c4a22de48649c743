"""Insurance with loss contagion: moral hazard, compensating discounts, contagion, and the insurer's books."""

import json

import numpy as np
import pytest

from market_abm import MarketModel
from market_abm.cli import main
from market_abm.environments.graphs import make_topology
from market_abm.environments.insurance import InsuranceEnv, InsuranceParams, single_node_mdp

FULL_INSURANCE = {"deductible": 0.0}
PREVENT = 1


def network(n, graph="watts_strogatz", seed=0, **params):
    return InsuranceEnv(make_topology(graph, n, np.random.default_rng(seed)), InsuranceParams(**params))


def last_tenth_prevention(model):
    steps = model.steps_frame()
    return float(steps[f"share_{model.env.action_names[PREVENT]}"].iloc[-max(1, len(steps) // 10):].mean())


def test_default_instance_laissez_faire_is_clearly_inefficient():
    mdp = single_node_mdp()
    optimal, welfare_policy = mdp.welfare_optimum()
    laissez_faire = mdp.policy_value(mdp.agent_optimum()[1])
    assert not (mdp.agent_optimum()[1] == PREVENT).any()  # the insured household never prevents
    assert (welfare_policy == PREVENT).mean() > 0.5  # society wants prevention in most states
    assert optimal - laissez_faire > 0.4 * abs(laissez_faire)
    assert np.abs(mdp.agent_reward).max() <= 1 and np.abs(mdp.external_reward).max() <= 1


def test_welfare_is_minus_losses_minus_prevention_costs():
    mdp = single_node_mdp()
    p = InsuranceParams()
    expected_loss = p.loss_size * p.loss_table()
    assert np.allclose(mdp.welfare_reward, -expected_loss - np.asarray(p.costs)[None, :])


def test_one_node_is_the_single_node_mdp():
    """Same transitions and expected rewards; losses are drawn, so a step's rewards are realised."""
    env = network(1)
    mdp = env.local_mdp()
    assert np.allclose(mdp.transition, single_node_mdp().transition)
    model = MarketModel("insurance", n_agents=1, mechanism="none", rng=0)
    assert model.benchmarks["benchmark"] == "exact_optimum"
    assert model.optimal_welfare == pytest.approx(mdp.welfare_optimum()[0])
    worlds = 200_000
    rng = np.random.default_rng(0)
    for s in range(env.n_states):
        for a in range(env.n_actions):
            states, actions = np.full((1, worlds), s), np.full((1, worlds), a)
            after, private, external = env.dynamics(states, actions, rng.random((1, worlds)))
            frequency = np.bincount(after[0], minlength=env.n_states) / worlds
            assert np.allclose(frequency, mdp.transition[s, a], atol=0.005)
            assert private.mean() == pytest.approx(mdp.agent_reward[s, a], abs=0.005)
            assert external.mean() == pytest.approx(mdp.external_reward[s, a], abs=0.01)


@pytest.mark.parametrize("mechanism", ["none", "oracle"])
def test_full_insurance_collapses_prevention_unless_discounted_exactly(mechanism):
    mdp = single_node_mdp(InsuranceParams(**FULL_INSURANCE))
    model = MarketModel(mdp=mdp, n_agents=50, mechanism=mechanism, rng=0)
    model.run_episodes(600)
    welfare_policy = mdp.welfare_optimum()[1]
    occupancy = mdp.occupancy(welfare_policy)
    wanted = float((occupancy * (welfare_policy == PREVENT)).sum() / mdp.horizon)
    prevention = last_tenth_prevention(model)
    if mechanism == "none":  # full insurance: prevention only costs the household, so learners drop it
        assert prevention < 0.01
    else:  # the exact compensating discount is the prevention cost (+ eps) on the welfare-optimal cells
        discount = model.mechanism.offers[0][welfare_policy == PREVENT][:, PREVENT]
        assert np.allclose(discount, InsuranceParams().costs[PREVENT] + model.mechanism.eps)
        assert prevention > 0.9 * wanted
        agreement = ((model.learner.greedy_policy() == welfare_policy) * occupancy).sum(axis=(1, 2)) / occupancy.sum()
        assert agreement.mean() > 0.95


def test_on_the_network_full_insurance_collapses_prevention_and_a_cost_discount_restores_it():
    cost = InsuranceParams().costs[PREVENT]
    rates = {}
    for mechanism, params in (("none", {}), ("subsidy", {"amount": cost + 0.02, "action": PREVENT})):
        model = MarketModel("insurance", n_agents=100, mechanism=mechanism, rng=0, scenario_params=FULL_INSURANCE,
                            mechanism_params=params)
        model.run_episodes(600)  # optimistic households try the costlier action until a 0.02 margin is sure
        rates[mechanism] = model.summary()["prevention_rate"]
        assert rates[mechanism] == pytest.approx(last_tenth_prevention(model))
    assert rates["none"] < 0.01
    assert rates["subsidy"] > 0.95


def test_moral_hazard_prevention_falls_with_the_deductible():
    # without insurance (the household keeps the whole loss) prevention pays privately
    uninsured = single_node_mdp(InsuranceParams(loss_size=0.8, deductible=0.8, premium=0.0))
    insured = single_node_mdp(InsuranceParams(loss_size=0.8, deductible=0.05, premium=0.0))
    assert (uninsured.agent_optimum()[1] == PREVENT).mean() > 0.4
    assert not (insured.agent_optimum()[1] == PREVENT).any()


def contagion_losses(contagion, neglect, worlds=10_000, seed=0):
    """Losses at the neighbours of node 0 on a ring over one episode, node 0 starting at the top risk
    level and neglecting (or preventing), every other node safe and doing nothing; common random numbers."""
    env = network(40, graph="ring", contagion=contagion)
    states = np.zeros((env.n_agents, worlds), dtype=np.int64)
    states[0] = env.n_states - 1
    rng = np.random.default_rng(seed)
    neighbours = np.zeros(worlds)
    for _ in range(env.horizon):
        actions = np.zeros_like(states)
        actions[0] = 0 if neglect else PREVENT
        states, _, _, losses = env.outcomes(states, actions, rng.random(states.shape))
        neighbours += losses[[1, -1]].sum(axis=0)
    return neighbours.mean()


def test_contagion_raises_neighbours_losses():
    with_neglect, with_prevention = contagion_losses(0.8, True), contagion_losses(0.8, False)
    assert with_neglect > with_prevention + 0.1  # neglect at one node spreads losses to its neighbours
    assert contagion_losses(0.0, True) == contagion_losses(0.0, False)  # no contagion: no spillover
    assert with_neglect > contagion_losses(0.0, True) + 0.1


def test_contagion_raises_losses_under_laissez_faire():
    welfare = {}
    for contagion in (0.0, 0.8):
        env = network(200, contagion=contagion)
        nobody_prevents = np.zeros((1, env.horizon, env.n_states), dtype=np.int64)
        welfare[contagion] = env.simulate(nobody_prevents, 8, np.random.default_rng(0))[0]
    assert welfare[0.8] < welfare[0.0] - 0.1  # per household per episode: contagion adds losses


def test_deviation_probabilities_are_the_next_risk_had_a_household_alone_deviated():
    env = network(60, graph="ring")  # the even nodes deviate together: none of them is another's neighbour
    rng = np.random.default_rng(1)
    states = rng.integers(0, env.n_states, env.n_agents)
    actions = rng.integers(0, env.n_actions, env.n_agents)
    predicted = env.deviation_probabilities(states, actions)
    even, worlds = np.arange(0, env.n_agents, 2), 20_000
    for b in range(env.n_actions):
        deviated = actions.copy()
        deviated[even] = b
        after, _, _ = env.dynamics(states[:, None].repeat(worlds, 1), deviated[:, None].repeat(worlds, 1),
                                   rng.random((env.n_agents, worlds)))
        observed = (after[even, :, None] == np.arange(env.n_states)).mean(axis=1)
        assert np.allclose(observed, predicted[even, b], atol=0.015)
    counts = env.deviation_counts(states, actions)
    assert counts.sum() == pytest.approx(env.n_agents * env.n_actions)
    assert np.allclose(counts[states[0]].sum(axis=-1), (states == states[0]).sum())


def test_money_is_conserved_and_transfers_cancel_in_welfare():
    model = MarketModel("insurance", n_agents=50, graph="ring", mechanism="subsidy", rng=2,
                        mechanism_params={"amount": 0.05, "action": PREVENT})
    model.run_episodes(30)
    env, n = model.env, model.env.n_agents
    books = env.ledger_frame().sum()
    discounts = model.transfers_received.sum()
    assert discounts > 0
    episodes = model.episodes_frame()
    insurer = n * (episodes["welfare"] - episodes["agent_reward"] - episodes["transfers"]).sum()
    assert books["premiums"] - books["claims"] - discounts == pytest.approx(insurer)
    assert n * episodes["welfare"].sum() == pytest.approx(-books["loss_amount"] - books["prevention_cost"])
    summary = model.summary()
    assert summary["insurer_profit"] == pytest.approx(
        summary["premiums_per_episode"] - summary["claims_per_episode"] - summary["discounts_per_episode"])
    tail = episodes.iloc[-3:]  # the last 10% of 30 episodes
    insurer_tail = tail["welfare"] - tail["agent_reward"] - tail["transfers"]
    assert summary["insurer_profit"] == pytest.approx(insurer_tail.mean())
    assert summary["prevention_rate"] == pytest.approx(last_tenth_prevention(model))
    assert 0 < summary["loss_rate"] < 1


def test_same_seed_same_run():
    frames = []
    for seed in (4, 4, 5):
        model = MarketModel("insurance", n_agents=40, graph="ring", mechanism="two_phase", rng=seed)
        model.run_episodes(20)
        frames.append(model.steps_frame().join(model.env.ledger_frame()))
    assert frames[0].equals(frames[1])
    assert not frames[0].equals(frames[2])


def test_pigouvian_charges_the_expected_claim():
    env = network(30)
    schedule = env.pigouvian_offers()
    p = env.params
    assert np.allclose(schedule, -p.claim * p.loss_table()[None])
    model = MarketModel("insurance", n_agents=30, mechanism="pigouvian", rng=0)
    model.run_episodes(5)


@pytest.mark.parametrize("params, field", [
    ({"deductible": -0.1}, "deductible"),
    ({"costs": (0.0,)}, "costs"),
    ({"contagion": 1.5}, "contagion"),
    ({"risk_down": (0.6, 0.7), "risk_up": (0.5, 0.0)}, "risk_down"),
    ({"premium": 0.9}, "premium"),
    ({"initial": (1.0,)}, "initial"),
    ({"fuel": 1}, "scenario_params"),
])
def test_bad_parameters_raise_one_line_errors_naming_the_field(params, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        MarketModel("insurance", n_agents=4, graph="ring", rng=0, scenario_params=params)


def cli_run(tmp_path, mechanism, seed):
    out = tmp_path / f"{mechanism}_{seed}"
    assert main(["run", "insurance", "--agents", "400", "--graph", "watts_strogatz", "--mechanism", mechanism,
                 "--seed", str(seed), "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"episodes.parquet", "steps.parquet", "summary.json", "figure.png"}
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_two_phase_closes_the_gap_and_raises_prevention_at_the_cli_defaults(tmp_path, seed):
    none, two_phase = cli_run(tmp_path, "none", seed), cli_run(tmp_path, "two_phase", seed)
    for summary in (none, two_phase):
        assert summary["episodes"] == 1000
        assert {"prevention_rate", "loss_rate", "insurer_profit"} <= set(summary)
    assert two_phase["gap_closed"] >= 0.7
    assert none["gap_closed"] <= 0.2
    assert two_phase["prevention_rate"] >= none["prevention_rate"] + 0.2
    assert two_phase["loss_rate"] < none["loss_rate"]


def test_scenario_script_writes_figures_and_tables(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scenarios" / "insurance_contagion.py"
    spec = importlib.util.spec_from_file_location("insurance_contagion", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out", str(tmp_path), "--agents", "30", "--episodes", "40", "--seeds", "0", "--deductibles", "0.2",
                 "--mechanisms", "none", "two_phase"])
    for name in ("insurance_contagion.png", "insurance_contagion.csv", "insurance_contagion.md",
                 "insurance_deductible.csv"):
        assert (tmp_path / name).stat().st_size > 0
