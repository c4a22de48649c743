"""Conformance checks for every extension point, in the spirit of PettingZoo's `parallel_api_test`:
run them on your own learner, mechanism or environment before plugging it in."""

from __future__ import annotations

import numpy as np

from market_abm.core import TabularEnv, make_learner
from market_abm.environments.pollution import single_node_mdp


def learner_api_test(learner, n_agents=7, episodes=3):
    """A learner (registered name or `Learner` subclass) honours the population contract."""
    env = TabularEnv(single_node_mdp(), n_agents)
    rng = np.random.default_rng(0)
    population = make_learner(learner, n_agents, env.n_states, env.n_actions, env.horizon, rng)
    schedule = np.zeros((env.n_groups, env.horizon, env.n_states, env.n_actions))
    for _ in range(episodes):
        states = env.reset(rng)
        population.begin_episode(schedule, env.groups)
        probs = population.behaviour_policy()
        assert probs.shape == (n_agents, env.horizon, env.n_states, env.n_actions), "behaviour_policy shape"
        assert np.allclose(probs.sum(axis=-1), 1.0) and probs.min() >= 0, "behaviour_policy probabilities"
        for h in range(env.horizon):
            actions = population.act(h, states)
            assert actions.shape == (n_agents,) and np.issubdtype(actions.dtype, np.integer), "act shape/dtype"
            assert actions.min() >= 0 and actions.max() < env.n_actions, "act range"
            next_states, private, external = env.step(actions, rng)
            population.update(h, states, actions, private, schedule[env.groups, h, states, actions], next_states)
            states = next_states
    greedy = population.greedy_policy()
    assert greedy.shape == (n_agents, env.horizon, env.n_states), "greedy_policy shape"
    assert greedy.min() >= 0 and greedy.max() < env.n_actions, "greedy_policy range"


def mechanism_api_test(mechanism, env, episodes=5):
    """An institution honours the contract on `env`: schedule shape, finite transfers, phase values."""
    rng = np.random.default_rng(0)
    shape = (env.n_groups, env.horizon, env.n_states, env.n_actions)
    for _ in range(episodes):
        table = mechanism.schedule()
        assert table.shape == shape, "schedule shape"
        assert np.all(np.isfinite(table)), "schedule finite"
        states = env.reset(rng)
        for h in range(env.horizon):
            actions = rng.integers(0, env.n_actions, env.n_agents)
            next_states, _, external = env.step(actions, rng)
            mechanism.record(h, env.groups, states, actions, next_states, external)
            states = next_states
        mechanism.end_episode()
        assert mechanism.phase in (0, 1, 2), "phase"
    assert isinstance(mechanism.summary(), dict), "summary"


def environment_api_test(env, steps=None):
    """A population environment honours the contract: shapes, ranges, batch axes, one-node model."""
    rng = np.random.default_rng(0)
    n = env.n_agents
    assert env.groups.shape == (n,) and env.n_groups == env.groups.max() + 1, "groups"
    assert len(env.action_names) == env.n_actions and len(env.state_names) == env.n_states, "names"
    states = env.reset(rng)
    assert states.shape == (n,) and states.min() >= 0 and states.max() < env.n_states, "initial states"
    for _ in range(steps or env.horizon):
        actions = rng.integers(0, env.n_actions, n)
        next_states, private, external = env.step(actions, rng)
        for array in (next_states, private, external):
            assert array.shape == (n,), "step shapes"
        assert next_states.min() >= 0 and next_states.max() < env.n_states, "next states range"
        assert np.all(np.abs(private) <= 1 + 1e-12) and np.all(np.abs(external) <= 1 + 1e-12), "rewards in [-1, 1]"
    worlds = 3
    batch_states = env.initial_states(rng.random((n, worlds)))
    assert batch_states.shape == (n, worlds), "initial_states keeps trailing axes"
    batch = env.dynamics(batch_states, rng.integers(0, env.n_actions, (n, worlds)), rng.random((n, worlds)))
    assert all(b.shape == (n, worlds) for b in batch), "dynamics keeps trailing axes"
    mdp = env.local_mdp()
    if mdp is not None:
        assert (mdp.n_states, mdp.n_actions, mdp.horizon) == (env.n_states, env.n_actions, env.horizon), "local mdp"
