"""Populations of agents in local tabular states: the contract every scenario fulfils.

One step: every agent `i` in local state `s_i` takes an action `a_i`; the environment moves the
states (possibly coupling agents through a network), pays each agent its private reward `r_i` and
books the external reward `u_i` that the principal owns. Rewards are per agent and per step.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from market_abm.core.institution import PrincipalView
from market_abm.core.mdp import TabularMDP, backward_induction, cumulative, inverse_cdf, policy_evaluation
from market_abm.core.validation import check_int


class PopulationEnv:
    """Base class for a scenario's dynamics.

    Attributes:
        n_agents, n_states, n_actions, horizon: sizes of the population and of each agent's decision problem.
        groups: int array `(N,)`, the institution (principal) each agent faces; `n_groups` of them.
        action_names, state_names: labels for tables and plots.
        subsidised_action: the action a flat subsidy pays for (the socially desirable one).
        principal_knows_model: the principal knows the local dynamics and the external reward, where an
            exact local model exists (it never knows the private reward).
        discount: the per-step discount of a continuing market (no episodes, `horizon` 1), None for an
            episodic one; a continuing market's institution reviews its offers every `review_every`
            steps, sees the public record of the last `observed_periods` steps of each review period,
            and a run to convergence stops after `max_periods` steps at most.
        sessions: each agent's independent session `(N,)` (a learner's convergence rule stops whole
            sessions), or None: the population is one session.
        mechanisms: the scenario's own specialisation of a registered mechanism, by its registered name
            (e.g. pricing's market authority for `two_phase`), built through the same contract.
        default_learner: the learner the scenario runs with unless told otherwise.
        size_fields: the settings that set its states, actions and steps, named when a model of it
            would not fit in memory.
    """

    name = "environment"
    subsidised_action = 0
    principal_knows_model = True
    discount = None
    review_every = observed_periods = max_periods = None
    sessions = None
    mechanisms = {}  # the scenario's specialisations of registered mechanisms, by registered name
    default_learner = "contract_aware"
    size_fields = ("scenario", "scenario", "scenario")

    def __init__(self, n_agents, n_states, n_actions, horizon, groups=None):
        self.n_agents = check_int("n_agents", n_agents, low=1)
        self.n_states, self.n_actions = n_states, n_actions
        self.horizon = horizon
        self.groups = np.zeros(self.n_agents, dtype=np.int64) if groups is None else np.asarray(groups)
        self.n_groups = int(self.groups.max()) + 1
        self.states = np.zeros(self.n_agents, dtype=np.int64)
        self.action_names = [f"a{a}" for a in range(n_actions)]
        self.state_names = [f"s{s}" for s in range(n_states)]

    def reset(self, rng):
        """Start an episode; returns the agents' initial states `(N,)`."""
        self.states = self.initial_states(rng.random(self.n_agents))
        return self.states

    def step(self, actions, rng):
        """Apply `actions (N,)`; returns `(next_states, private_rewards, external_rewards)`, each `(N,)`."""
        self.states, private, external = self.dynamics(self.states, actions, rng.random(self.states.shape))
        return self.states, private, external

    def initial_states(self, uniforms):
        """Initial states for uniform draws of any shape `(N, ...)` (leading axis: agents)."""
        raise NotImplementedError

    def dynamics(self, states, actions, uniforms):
        """One step for states and actions `(N, ...)`, with uniform draws of the same shape.

        Returns `(next_states, private_rewards, external_rewards)`. Trailing axes are independent
        worlds, so benchmarks can simulate many policies at once.
        """
        raise NotImplementedError

    def local_mdp(self):
        """The exact decision problem each agent faces, as a `TabularMDP`, where one exists (else None)."""
        return None

    def pigouvian_offers(self):
        """Pigouvian offers `(H, S, A)`: the agent is charged the external reward it causes (None where
        the principal does not know it)."""
        mdp = self.local_mdp()
        if mdp is None or not self.principal_knows_model:
            return None
        return np.broadcast_to(mdp.external_reward, (self.horizon, self.n_states, self.n_actions)).copy()

    def payoff_range(self):
        """A public bound `(low, high)` on an agent's private payoff per step (default the contract's [-1, 1])."""
        return (-1.0, 1.0)

    def external_range(self):
        """A public bound `(low, high)` on the external reward of one agent's step (default [-1, 1])."""
        return (-1.0, 1.0)

    def principal_view(self):
        """What the principal may know: sizes, groups, public bounds, and the local dynamics and external
        reward where the scenario says it knows them (never the private reward)."""
        mdp = self.local_mdp() if self.principal_knows_model else None
        return PrincipalView(
            n_agents=self.n_agents, n_states=self.n_states, n_actions=self.n_actions, horizon=self.horizon,
            groups=self.groups, n_groups=self.n_groups, action_names=self.action_names,
            state_names=self.state_names, subsidised_action=self.subsidised_action,
            payoff_range=self.payoff_range(), external_range=self.external_range(), discount=self.discount,
            public=self.public_knowledge(),
            transition=None if mdp is None else mdp.transition,
            external_reward=None if mdp is None else mdp.external_reward,
            initial=None if mdp is None else mdp.initial, pigouvian=self.pigouvian_offers())

    def public_knowledge(self):
        """Further public knowledge of the scenario for the principal's view, by name (default none)."""
        return {}

    def learner_priors(self):
        """Prior knowledge the scenario gives learners that take it, by parameter name (default none)."""
        return {}

    def review_figures(self, totals):
        """Scenario figures of one review period of a continuing market, from its `ReviewTotals`."""
        return {}

    def node_values(self, states, actions):
        """What a map of the agents colours them by: a category per agent `(N,)`, its label and the
        categories' names; by default the local state."""
        return states, "local state", self.state_names

    def public_observations(self):
        """Further public per-agent observations of the last live step, by name (default none)."""
        return {}

    def welfare_benchmarks(self, rng):
        """Welfare per agent per episode of the optimum and of laissez-faire, and the benchmark's name."""
        mdp = self.local_mdp()
        if mdp is None:
            raise ValueError(f"benchmark: the welfare benchmarks need an exact local model, which {self.name!r} "
                             f"does not have (give benchmark=False, or a dict of benchmarks computed elsewhere)")
        optimal, _ = mdp.welfare_optimum()
        laissez_faire = mdp.policy_value(mdp.agent_optimum()[1], "welfare")
        return {"optimal_welfare": optimal, "laissez_faire_welfare": laissez_faire, "benchmark": "exact_optimum"}

    def exact_values(self, behaviour, offers, groups):
        """Exact expected values of one episode for each agent `(N,)`, or None if they are not exact:
        `welfare` of its policy `behaviour (N, H, S, A)`; its `agent` payoff (private reward plus the
        transfers `offers[groups] (G, H, S, A)` it faces); and the `best` payoff any policy could get
        against those offers (so `best - agent` is its regret this episode)."""
        mdp = self.exact_model
        if mdp is None:
            return None
        own = mdp.agent_reward + offers  # (G, H, S, A)
        reward = np.stack([np.broadcast_to(mdp.welfare_reward, own.shape)[groups], own[groups]])
        values = policy_evaluation(mdp.transition, reward, behaviour, self.horizon)[..., 0, :] @ mdp.initial
        best = backward_induction(mdp.transition, own, self.horizon)[1][:, 0] @ mdp.initial
        return {"welfare": values[0], "agent": values[1], "best": best[groups]}

    @cached_property
    def exact_model(self):
        """The exact local model every agent's expected values are computed on (independent agents with
        an exact local model), fixed for the run; None where there is none."""
        return self.local_mdp() if self.agents_independent else None

    @property
    def welfare_is_exact(self):
        """Each agent's expected welfare can be computed exactly (independent agents, exact local model)."""
        return self.exact_model is not None

    def summary_extras(self, steps):
        """Scenario-specific figures for `summary.json`, from the finished run's model-level `steps` frame
        (one row per step; default none)."""
        return {}

    agents_independent = False


class TabularEnv(PopulationEnv):
    """`n_agents` independent copies of one `TabularMDP`, each facing its own principal (replicas)."""

    name = "tabular"
    agents_independent = True

    def __init__(self, mdp, n_agents=1, shared_principal=False):
        if not isinstance(mdp, TabularMDP):
            raise ValueError(f"mdp: must be a TabularMDP, got {type(mdp).__name__}")
        groups = np.zeros(n_agents, dtype=np.int64) if shared_principal else np.arange(n_agents)
        super().__init__(n_agents, mdp.n_states, mdp.n_actions, mdp.horizon, groups)
        self.mdp = mdp
        self._initial_cdf = cumulative(mdp.initial)
        self._next_cdf = cumulative(mdp.transition)

    def initial_states(self, uniforms):
        return inverse_cdf(self._initial_cdf, uniforms)

    def dynamics(self, states, actions, uniforms):
        next_states = inverse_cdf(self._next_cdf[states, actions], uniforms)
        return next_states, self.mdp.agent_reward[states, actions], self.mdp.external_reward[states, actions]

    def local_mdp(self):
        return self.mdp

    def payoff_range(self):
        """The range of the economy's private reward per step, declared public (a bound, not the rewards)."""
        return float(self.mdp.agent_reward.min()), float(self.mdp.agent_reward.max())

    def external_range(self):
        """The range of the economy's external reward per step, declared public."""
        return float(self.mdp.external_reward.min()), float(self.mdp.external_reward.max())
