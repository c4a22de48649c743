"""The model as a PettingZoo ParallelEnv: conformance, seeding, reproduction of MarketModel, bad actions."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("gymnasium")

from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from market_abm.registry import SCENARIOS, make_learner  # noqa: E402
from market_abm.model import MarketModel  # noqa: E402
from market_abm.rl import parallel_env  # noqa: E402

FAST = dict(mechanism_params={"warmup": 3})  # offers are posted within the test's episodes
NETWORK = dict(n_agents=4, graph="ring")
QUICK = dict(NETWORK, benchmark=False)  # no welfare benchmarks where a test does not need them


def scenario_case(name):
    marks = [] if name in SCENARIOS else [pytest.mark.skip(reason=f"scenario {name!r} is not registered yet")]
    return [pytest.param(name, {"n_agents": 1}, id=f"{name}-1", marks=marks),
            pytest.param(name, NETWORK, id=f"{name}-ring4", marks=marks)]


@pytest.mark.parametrize("scenario, kwargs", scenario_case("pollution") + scenario_case("insurance"))
def test_parallel_api(scenario, kwargs):
    parallel_api_test(parallel_env(scenario=scenario, rng=0, **kwargs), num_cycles=50)


def test_same_seed_same_episodes():
    parallel_seed_test(lambda: parallel_env("pollution", **QUICK, **FAST), num_cycles=50)
    first, second = (play(parallel_env("pollution", **QUICK, **FAST), episodes=6, seed=11) for _ in range(2))
    pd.testing.assert_frame_equal(first.steps_frame(), second.steps_frame())


def play(env, episodes, seed=None):
    """Random actions for a few episodes; returns the model."""
    env.reset(seed=seed)
    for space in map(env.action_space, env.possible_agents):
        space.seed(0)
    for _ in range(episodes):
        env.reset()
        while env.agents:
            env.step({agent: env.action_space(agent).sample() for agent in env.agents})
    return env.model


def test_observations_rewards_and_infos():
    env = parallel_env("pollution", **QUICK, rng=3, mechanism="pigouvian")
    obs, infos = env.reset()
    model, horizon = env.model, env.model.env.horizon
    assert set(obs) == set(env.possible_agents) == set(infos)
    assert np.array_equal(infos["agent_2"]["offers"], model.offers[model.env.groups[2]])
    for t in range(horizon):
        for agent in env.agents:
            assert env.observation_space(agent).contains(obs[agent])
            assert obs[agent]["h"] == t
            row = env.possible_agents.index(agent)
            assert np.array_equal(obs[agent]["transfers"], model.offers[model.env.groups[row], t, obs[agent]["state"]])
        actions = {agent: 1 for agent in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)
        for agent in obs:
            info = infos[agent]
            assert rewards[agent] == pytest.approx(info["private_reward"] + info["transfer"])
            assert info["welfare"] == model.step_welfare and info["phase"] == 0
            assert env.observation_space(agent).contains(obs[agent])
        assert all(terminations.values()) == (t == horizon - 1) and not any(truncations.values())
    assert env.agents == [] and obs["agent_0"]["h"] == horizon
    assert model.transfers_received.min() < 0  # the Pigouvian tax was charged


def test_reset_keeps_the_model_and_a_seed_rebuilds_it():
    env = parallel_env("pollution", **QUICK, **FAST, rng=0)
    model = play(env, episodes=4)
    mechanism = model.mechanism
    first, _ = env.reset()
    again, _ = env.reset()  # an episode not yet played is not begun twice
    assert env.model is model and model.mechanism is mechanism and model.episode == 4
    assert all(first[a]["state"] == again[a]["state"] for a in env.agents)
    env.step({agent: 0 for agent in env.agents})
    with pytest.raises(ValueError, match="reset: the episode is at step 1"):
        env.reset()
    env.reset(seed=5)
    assert env.model is not model and env.model.episode == 0


def drive(env, learner, episodes, offers_from_infos):
    """Play a built-in learner through the env, feeding it only what the env hands out."""
    names = env.possible_agents
    rows = np.arange(len(names))
    for _ in range(episodes):
        obs, infos = env.reset()
        if offers_from_infos:
            learner.begin_episode(np.stack([infos[a]["offers"] for a in names]), rows)
        while env.agents:
            h = int(obs[names[0]]["h"])
            states = np.array([obs[a]["state"] for a in names])
            actions = learner.act(h, states)
            obs, rewards, _, _, infos = env.step(dict(zip(names, actions)))
            private = np.array([infos[a]["private_reward"] for a in names])
            transfers = np.array([infos[a]["transfer"] for a in names])
            next_states = np.array([obs[a]["state"] for a in names])
            learner.update(h, states, actions, private, transfers, next_states)


def assert_same_data(env_model, model):
    pd.testing.assert_frame_equal(env_model.steps_frame(), model.steps_frame())
    pd.testing.assert_frame_equal(env_model.episodes_frame(), model.episodes_frame())
    pd.testing.assert_frame_equal(env_model.agents_frame(), model.agents_frame())


def test_built_in_learner_through_the_env_reproduces_market_model():
    """Epsilon-greedy Q-learning draws its exploration from the model's generator, between the draws
    of the initial states and of the dynamics: driven through the env on that same generator, it
    replays MarketModel bit for bit. It declares its policy, so expected welfare is exact too."""
    episodes, kwargs = 60, dict(scenario="pollution", n_agents=1, rng=42, agent_snapshot_every=1, **FAST)
    model = MarketModel(learner="epsilon_greedy", **kwargs)
    model.run_episodes(episodes)

    learner = None

    def declared(offers, groups):  # called exactly where MarketModel calls its own learner
        learner.begin_episode(offers, groups)
        return learner.behaviour_policy()

    env = parallel_env(policy=declared, **kwargs)
    env_model = env.model
    sizes = env_model.env
    learner = make_learner("epsilon_greedy", sizes.n_agents, sizes.n_states, sizes.n_actions, sizes.horizon,
                           env_model.rng)
    drive(env, learner, episodes, offers_from_infos=False)
    assert env_model.phase == 1 and np.isfinite(env_model.episodes_frame()["expected_welfare"]).all()
    assert (env_model.steps_frame()["transfers"] > 0).any()  # Phase 1 probes were posted and taken
    assert_same_data(env_model, model)


def test_contract_aware_learner_reads_the_posted_schedule_from_the_env():
    episodes, kwargs = 40, dict(scenario="pollution", rng=7, agent_snapshot_every=3, **NETWORK, **FAST)
    model = MarketModel(learner="contract_aware", **kwargs)
    model.run_episodes(episodes)
    env = parallel_env(**kwargs)
    sizes = env.model.env
    learner = make_learner("contract_aware", sizes.n_agents, sizes.n_states, sizes.n_actions, sizes.horizon,
                           np.random.default_rng(0), scenario_payoff_range=sizes.payoff_range())
    drive(env, learner, episodes, offers_from_infos=True)
    assert (env.model.steps_frame()["transfers"] > 0).any()
    assert_same_data(env.model, model)


@pytest.mark.parametrize("actions, message", [
    ({"agent_0": 3, "agent_1": 0, "agent_2": 0, "agent_3": 0}, r"'agent_0' chose 3; must be an integer in \[0, 2\]"),
    ({"agent_0": -1, "agent_1": 0, "agent_2": 0, "agent_3": 0}, r"'agent_0' chose -1"),
    ({"agent_0": 1.0, "agent_1": 0, "agent_2": 0, "agent_3": 0}, r"'agent_0' chose 1.0"),
    ({"agent_0": 0, "agent_1": "abate", "agent_2": 0, "agent_3": 0}, r"'agent_1' chose 'abate'"),
    ({"agent_0": 0, "agent_1": 0, "agent_2": 0, "firm_3": 0}, r"unknown agent 'firm_3'; agents are 'agent_0' .. 'agent_3'"),
    ({"agent_0": 0, "agent_1": 0, "agent_2": 0}, r"no action for 'agent_3'"),
    ([0, 0, 0, 0], r"must be a dict"),
])
def test_bad_actions_raise_a_clear_error(actions, message):
    env = parallel_env("pollution", **QUICK, rng=0)
    env.reset()
    with pytest.raises(ValueError, match=f"^actions: .*{message}"):
        env.step(actions)
    assert env.model.steps == 0  # nothing was played


def test_other_misuse_raises_a_clear_error():
    env = parallel_env("pollution", **QUICK, rng=0)
    with pytest.raises(ValueError, match="actions: no episode is running; call reset"):
        env.step({agent: 0 for agent in env.possible_agents})
    with pytest.raises(ValueError, match="agent: unknown agent 'agent_9'"):
        env.action_space("agent_9")
    with pytest.raises(ValueError, match="learner: the env's agents are played from outside"):
        parallel_env("pollution", learner="contract_aware")
    with pytest.raises(ValueError, match="policy: returned shape"):
        parallel_env("pollution", policy=lambda offers, groups: np.zeros(3)).reset()


def test_outside_learner_example_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scenarios" / "outside_learner.py"
    spec = importlib.util.spec_from_file_location("outside_learner", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out", str(tmp_path), "--agents", "1", "--episodes", "20"])
    table = pd.read_csv(tmp_path / "outside_learner.csv", index_col=0)
    assert list(table.index) == ["policy gradient / none", "policy gradient / two_phase", "contract_aware / two_phase"]
    assert np.isfinite(table["gap closed"]).all()
    assert (tmp_path / "outside_learner.png").stat().st_size > 0 and (tmp_path / "outside_learner.md").exists()
