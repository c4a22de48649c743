"""Conformance checks for every extension point, in the spirit of PettingZoo's `parallel_api_test`:
run them on your own learner, mechanism or environment before plugging it in."""

from __future__ import annotations

import inspect
from types import MappingProxyType

import numpy as np

from market_abm.core import CellEstimates, Learner, PopulationEnv, StepRecord, TabularEnv, TabularMDP
from market_abm.environments.graphs import make_topology
from market_abm.environments.pollution import single_node_mdp
from market_abm.environments.pricing import PricingEnv, PricingParams
from market_abm.registry import LEARNERS, make_learner


def learner_api_test(learner, n_agents=7, episodes=3):
    """A learner (registered name or `Learner` subclass) honours the population contract: on an
    episodic market unless it learns continuing markets only (`episodic = False`), and on a continuing
    one if it takes a `discount`."""
    factory = LEARNERS.get(learner, learner)
    if getattr(factory, "episodic", True):
        episodic_learner_test(learner, n_agents, episodes)
    if "discount" in inspect.signature(factory).parameters:
        continuing_learner_test(learner, n_agents - n_agents % 2 or 2, periods=episodes * 20)


def episodic_learner_test(learner, n_agents, episodes):
    env = TabularEnv(single_node_mdp(), n_agents)
    rng = np.random.default_rng(0)
    population = make_learner(learner, n_agents, env.n_states, env.n_actions, env.horizon, rng)
    offers = np.zeros((env.n_groups, env.horizon, env.n_states, env.n_actions))
    for _ in range(episodes):
        states = env.reset(rng)
        population.begin_episode(offers, env.groups)
        check_policies(population, env)
        for h in range(env.horizon):
            actions = population.act(h, states)
            check_actions(actions, env)
            next_states, private, external = env.step(actions, rng)
            population.update(h, states, actions, private, offers[env.groups, h, states, actions], next_states)
            states = next_states
    check_policies(population, env)


def continuing_learner_test(learner, n_agents, periods):
    """On a continuing market (pricing duopolies): built with `horizon=1` and the market's discount,
    it acts and learns across periods without episodes; a convergence rule, if any, is per agent."""
    env = PricingEnv(make_topology("cliques", n_agents, np.random.default_rng(0)), PricingParams(n_prices=3))
    rng = np.random.default_rng(0)
    population = make_learner(learner, n_agents, env.n_states, env.n_actions, 1, rng, discount=env.discount,
                              priors=env.learner_priors())
    offers = np.zeros((env.n_groups, 1, env.n_states, env.n_actions))
    states = env.reset(rng)
    population.begin_episode(offers, env.groups)
    for _ in range(periods):
        actions = population.act(0, states)
        check_actions(actions, env)
        next_states, private, external = env.step(actions, rng)
        population.update(0, states, actions, private, offers[env.groups, 0, states, actions], next_states)
        states = next_states
    check_policies(population, env)
    converged = population.converged()
    assert converged is None or (converged.shape == (n_agents,) and converged.dtype == bool), "converged"


def check_actions(actions, env):
    assert actions.shape == (env.n_agents,) and np.issubdtype(actions.dtype, np.integer), "act shape/dtype"
    assert actions.min() >= 0 and actions.max() < env.n_actions, "act range"


def check_policies(population, env):
    shape = (env.n_agents, env.horizon, env.n_states)
    probs = population.behaviour_policy()
    assert probs.shape == shape + (env.n_actions,), "behaviour_policy shape"
    assert np.allclose(probs.sum(axis=-1), 1.0) and probs.min() >= 0, "behaviour_policy probabilities"
    greedy = population.greedy_policy()
    assert greedy.shape == shape, "greedy_policy shape"
    assert greedy.min() >= 0 and greedy.max() < env.n_actions, "greedy_policy range"


def mechanism_api_test(mechanism, env, episodes=5):
    """An institution honours the contract on `env`: built from the principal's view alone (it can
    reach neither the environment, nor a learner, nor the private rewards), offers and targets of the
    right shapes, finite transfers, the public record taken step by step, phase values, estimates."""
    assert_principal_only(mechanism, env)
    rng = np.random.default_rng(0)
    shape = (env.n_groups, env.horizon, env.n_states, env.n_actions)
    for _ in range(episodes):
        offers = mechanism.post_offers()
        assert offers.shape == shape, "post_offers shape"
        assert np.all(np.isfinite(offers)), "post_offers finite"
        targets = np.asarray(mechanism.targets())
        assert targets.shape == shape[:-1] and np.issubdtype(targets.dtype, np.integer), "targets shape/dtype"
        assert targets.min() >= -1 and targets.max() < env.n_actions, "targets range"
        states = env.reset(rng)
        for h in range(env.horizon):
            actions = rng.integers(0, env.n_actions, env.n_agents)
            next_states, _, external = env.step(actions, rng)
            paid = offers[env.groups, h, states, actions]
            mechanism.record(StepRecord(h, env.groups, states, actions, next_states, external, paid,
                                        env.public_observations()))
            states = next_states
        mechanism.end_episode()
        assert mechanism.phase in (0, 1, 2), "phase"
        estimates = mechanism.estimates()
        assert estimates is None or isinstance(estimates, CellEstimates), "estimates type"
        if estimates is not None:
            cells = (env.n_groups, estimates.scheme.n_cells)
            for name in ("searched", "phase1", "current", "steered", "at_ceiling"):
                assert np.shape(getattr(estimates, name)) == cells, f"estimates.{name} shape"
    assert isinstance(mechanism.summary(), dict), "summary"
    assert_principal_only(mechanism, env)


def assert_principal_only(mechanism, env):
    """Nothing reachable from `mechanism` (attributes, containers, closures, bound methods) is the
    environment, a learner, a model, an exact MDP, or an array holding the agents' private reward."""
    import mesa

    private = [mdp.agent_reward for mdp in [env.local_mdp()] if mdp is not None]
    private += [value for name, value in vars(env).items() if name in ("private", "agent_reward")
                and isinstance(value, np.ndarray)]
    forbidden = (PopulationEnv, Learner, TabularMDP, mesa.Model)
    seen, stack = set(), [(mechanism, "mechanism")]
    while stack:
        obj, path = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type)):
            continue
        seen.add(id(obj))
        assert not isinstance(obj, forbidden), f"{path} reaches a {type(obj).__name__}"
        if isinstance(obj, np.ndarray):
            assert not any(np.shares_memory(obj, p) for p in private), f"{path} holds the private reward"
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(obj))
        elif isinstance(obj, (dict, MappingProxyType)):
            stack.extend((item, f"{path}[{key!r}]") for key, item in obj.items())
        for name in ("__self__", "__func__"):
            if hasattr(obj, name) and not isinstance(obj, type):
                stack.append((getattr(obj, name), f"{path}.{name}"))
        for i, cell in enumerate(getattr(obj, "__closure__", None) or ()):
            stack.append((cell.cell_contents, f"{path}.<closure {i}>"))
        if hasattr(obj, "__dict__"):
            stack.extend((value, f"{path}.{name}") for name, value in vars(obj).items())
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                stack.append((getattr(obj, name), f"{path}.{name}"))


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
