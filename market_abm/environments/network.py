"""Agents on the nodes of a network, facing one institution, and the welfare benchmarks for them.

Without an exact per-agent model, welfare is benchmarked by simulation on the same graph and seed:
- the optimum is the best anonymous local policy (every agent maps its own state, and the step, to
  an action): all stationary policies are enumerated and simulated at once without learning, and
  the best is improved by coordinate ascent over time-dependent ones;
- laissez-faire is the mean-field equilibrium: the local policy that is every agent's best
  response, on its private reward, to the local dynamics it creates when everyone plays it.
Welfare is per agent per episode.
"""

from __future__ import annotations

import itertools
from functools import cached_property

import numpy as np

from market_abm.core.environment import PopulationEnv
from market_abm.core.mdp import backward_induction

MAX_BENCHMARK_WORLDS = 20_000_000  # agents x candidate policies simulated at once


class NetworkEnv(PopulationEnv):
    """A population on the nodes of `topology`, all facing one (anonymous) institution.

    Subclasses define `initial_states`, `dynamics`, `single_node_mdp` and the counterfactual
    `deviation_counts` used by the mean-field benchmark.
    """

    size_fields = ("levels", "action_names", "horizon")  # the scenario parameters that set the states, actions, steps

    def __init__(self, topology, n_states, n_actions, horizon):
        super().__init__(topology.n_nodes, n_states, n_actions, horizon)
        self.topology = topology

    def welfare_benchmarks(self, rng, samples=6400):
        """Benchmarks simulated over about `samples` agent-episodes (at least 2 episodes)."""
        if self.local_mdp() is not None:
            return super().welfare_benchmarks(rng)
        episodes = int(np.clip(samples // self.n_agents, 2, 16))
        if self.n_agents * self.n_actions ** self.n_states > MAX_BENCHMARK_WORLDS:  # before enumerating them
            return {"optimal_welfare": np.nan, "laissez_faire_welfare": np.nan, "benchmark": "none (too large)"}
        policies = np.array(list(itertools.product(range(self.n_actions), repeat=self.n_states)))
        welfare = self.simulate(policies[:, None, :].repeat(self.horizon, axis=1), episodes, rng)
        best, value = self.improve_by_step(policies[int(welfare.argmax())][None].repeat(self.horizon, axis=0),
                                           float(welfare.max()), episodes, rng)
        equilibrium = self.mean_field_equilibrium(episodes, rng)
        return {
            "optimal_welfare": value,
            "laissez_faire_welfare": float(self.simulate(equilibrium[None], episodes, rng)[0]),
            "benchmark": "best_local_policy",
            "benchmark_policy": best.tolist(),
            "laissez_faire_policy": equilibrium.tolist(),
        }

    def improve_by_step(self, policy, value, episodes, rng, max_rounds=30, tolerance=1e-3):
        """Coordinate ascent from the best stationary policy over time-dependent local policies
        `(H, S)`: learners see the step, so the benchmark may use it too. Each round simulates every
        single change of one `(h, s)` action at once and keeps the best, until none helps."""
        h, s, a = np.meshgrid(np.arange(self.horizon), np.arange(self.n_states), np.arange(self.n_actions),
                              indexing="ij")
        h, s, a = h.ravel(), s.ravel(), a.ravel()
        for _ in range(max_rounds):
            changed = a != policy[h, s]
            candidates = np.repeat(policy[None], changed.sum(), axis=0)
            candidates[np.arange(changed.sum()), h[changed], s[changed]] = a[changed]
            welfare = self.simulate(np.concatenate([policy[None], candidates]), episodes, rng)
            if welfare[1:].max() <= welfare[0] + tolerance:
                return policy, float(welfare[0])
            policy, value = candidates[welfare[1:].argmax()], float(welfare[1:].max())
        return policy, value

    def simulate(self, policies, episodes, rng, counterfactual=False):
        """Mean welfare per agent per episode of each local policy `(C, H, S)` played by every agent
        (no learning), each policy in its own world with common random numbers."""
        seed = int(rng.integers(2**63))
        draws = np.random.default_rng(seed)
        n_worlds = len(policies)
        total = np.zeros(n_worlds)
        counts = np.zeros((self.n_states, self.n_actions, self.n_states))
        for _ in range(episodes):
            states = self.initial_states(draws.random((self.n_agents, 1)).repeat(n_worlds, axis=1))
            for h in range(self.horizon):
                actions = policies[np.arange(n_worlds)[None, :], h, states]
                if counterfactual:
                    counts += self.deviation_counts(states[:, 0], actions[:, 0])
                uniforms = draws.random((self.n_agents, 1)).repeat(n_worlds, axis=1)
                states, private, external = self.dynamics(states, actions, uniforms)
                total += (private + external).mean(axis=0)
        return (total / episodes) if not counterfactual else counts

    def mean_field_equilibrium(self, episodes, rng, max_iterations=20):
        """The local policy `(H, S)` that best responds to the pooled local dynamics it induces."""
        private = self.private_reward_table()
        policy = backward_induction(self.isolated_transition(), private, self.horizon)[0].argmax(axis=-1)
        for _ in range(max_iterations):
            counts = self.simulate(policy[None], episodes, rng, counterfactual=True)
            visits = counts.sum(axis=-1, keepdims=True)
            transition = np.where(visits > 0, counts / np.maximum(visits, 1), np.eye(self.n_states)[:, None, :])
            response = backward_induction(transition, private, self.horizon)[0].argmax(axis=-1)
            if np.array_equal(response, policy):
                break
            policy = response
        return policy

    def single_node_mdp(self):
        """The scenario on one isolated node, as an exact `TabularMDP`."""
        raise NotImplementedError

    @cached_property
    def isolated_mdp(self):
        """`single_node_mdp()`, built once: the benchmark and the one-node model both use it."""
        return self.single_node_mdp()

    def local_mdp(self):
        return self.isolated_mdp if self.n_agents == 1 else None

    @property
    def agents_independent(self):
        return self.topology.adjacency.nnz == 0

    def private_reward_table(self):
        """The agent's private reward `(S, A)`."""
        return self.isolated_mdp.agent_reward

    def isolated_transition(self):
        """Local dynamics `(S, A, S)` of a node with no neighbours (the starting guess)."""
        return self.isolated_mdp.transition

    def deviation_counts(self, states, actions):
        """Expected counts `(S, A, S)` of next local states had each agent taken each action alone."""
        raise NotImplementedError
