"""MarketModel: learning agents on a network, a principal's institution, and a stateful externality.

Each step runs in stages: the institution posts transfers (at the start of an episode), agents act,
the externality propagates, payoffs and transfers settle, agents learn, the institution records
what it saw, and the DataCollector collects. One agent on a one-node graph is the paper's single
principal / single agent setting; a user's own `TabularMDP`, or own `PopulationEnv` given as the
scenario, runs through the same path. A continuing market (pricing) has review periods instead of
episodes (see `continuing`).
"""

from __future__ import annotations

import os

import mesa
import numpy as np
import pandas as pd
from mesa.discrete_space import Network

from market_abm.agents import LearningAgent, Principal
from market_abm.continuing import ContinuingMarket
from market_abm.core import PopulationEnv, StepRecord, TabularEnv, TabularMDP
from market_abm.core.baselines import LaissezFaire
from market_abm.core.settlement import settle_step
from market_abm.core.validation import MAX_COUNT, check_bool, check_int, check_mapping, check_seed
from market_abm.memory import check_agents, check_environment_size, check_model_size, check_run_length
from market_abm.metrics import estimate_figures, summarise
from market_abm.registry import choice_name, make_environment, make_learner, make_mechanism, takes_scheme

MESA_SPACE_LIMIT = 100_000  # above this many nodes, agents are not placed on Mesa cells


def check_benchmarks(benchmark):
    """`benchmark`: compute the welfare benchmarks (True), skip them (False), or the benchmarks of an
    earlier model of the same economy (its `benchmarks` dict), which are then not computed again."""
    if isinstance(benchmark, dict):
        missing = [key for key in ("optimal_welfare", "laissez_faire_welfare", "benchmark") if key not in benchmark]
        if missing:
            raise ValueError(f"benchmark: a benchmarks dict needs {missing[0]!r}")
        return benchmark
    return check_bool("benchmark", benchmark)


def check_own_economy(scenario, mdp, n_agents, graph_params, scenario_params, shared_principal):
    """A user's own economy, an `mdp` or a `PopulationEnv` given as the `scenario`, takes no graph or
    scenario parameters, and an environment brings its own agents; only replicas of an mdp have
    principals to share."""
    own_env = isinstance(scenario, PopulationEnv)
    if mdp is not None and not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp: must be a TabularMDP, got {type(mdp).__name__}")
    if mdp is not None and own_env:
        raise ValueError("mdp: the scenario is already your own PopulationEnv; give one economy, not both")
    if mdp is None and shared_principal:
        raise ValueError("shared_principal: only replicas of a custom mdp have their own principals to share")
    if own_env and n_agents not in (1, scenario.n_agents):
        raise ValueError(f"n_agents: the scenario's PopulationEnv has {scenario.n_agents} agents, got {n_agents} "
                         f"(give 1 or {scenario.n_agents})")
    what = ("a custom mdp has no graph or scenario" if mdp is not None
            else "a PopulationEnv scenario brings its own graph and parameters" if own_env else None)
    for name, params in (("graph_params", graph_params), ("scenario_params", scenario_params)):
        if what and params:
            raise ValueError(f"{name}: {what}, so takes no {name}")


class MarketModel(ContinuingMarket, mesa.Model):
    """A population of learners, the institution that steers them, and the metrics of how well it does.

    A `scheme` (a registered name or a `TransferScheme`) is for a mechanism that posts through one
    (`fine` if not given); a mechanism that takes none refuses it.

    Attributes:
        env: the population environment (scenario dynamics on the graph; a copy of a user's own
            `PopulationEnv` given as the scenario).
        learner: the population's learner (arrays indexed by agent).
        mechanism: the model-level institution posting transfers, built from the principal's view (a
            scenario may specialise a registered mechanism: `env.mechanisms` maps the name to its class).
        offers: the transfers posted for the current episode `(G, H, S, A)`.
        benchmarks: optimal and laissez-faire welfare per agent per episode, and the benchmark used.
        states, actions, private_rewards, external_rewards, transfers: this step's arrays `(N,)`.
        episode: episodes completed; `cumulative_regret` of welfare per agent.
        continuing: the market has review periods instead of episodes (welfare and regret are then
            per agent per period, and `episode` counts review periods).
        expected_welfare, agent_regret: this episode's exact expected welfare and agent regret per
            agent (against the best response to the offers posted), where the model is exact (else NaN).
    """

    def __init__(self, scenario="pollution", n_agents=1, graph="watts_strogatz", mechanism="two_phase",
                 scheme=None, learner=None, mdp=None, rng=None, graph_params=None,
                 scenario_params=None, learner_params=None, mechanism_params=None, benchmark=True,
                 agent_snapshot_every=0, shared_principal=False):
        rng, n_agents = check_seed("rng", rng), check_int("n_agents", n_agents, low=1)
        check_agents(n_agents)
        graph_params, scenario_params, learner_params, mechanism_params = (
            check_mapping(name, value) for name, value in (
                ("graph_params", graph_params), ("scenario_params", scenario_params),
                ("learner_params", learner_params), ("mechanism_params", mechanism_params)))
        benchmark = check_benchmarks(benchmark)
        shared_principal = check_bool("shared_principal", shared_principal)
        agent_snapshot_every = check_int("agent_snapshot_every", agent_snapshot_every, low=0)
        check_own_economy(scenario, mdp, n_agents, graph_params, scenario_params, shared_principal)
        super().__init__(rng=rng)
        self.arguments = {"scenario": scenario, "n_agents": n_agents, "graph": graph, "scheme": scheme,
                          "learner": learner, "mdp": mdp, "graph_params": graph_params,
                          "scenario_params": scenario_params, "learner_params": learner_params,
                          "shared_principal": shared_principal}
        self.seed_argument = rng if isinstance(rng, (int, np.integer)) else self._rng  # an int, or the state
        self.scenario_name = "custom" if mdp is not None else choice_name(scenario)
        if mdp is not None:
            learner = TabularEnv.default_learner if learner is None else learner
            check_model_size(learner, n_agents, 1 if shared_principal else n_agents, mdp.n_states, mdp.n_actions,
                             mdp.horizon)
            self.env = TabularEnv(mdp, n_agents, shared_principal)
        else:
            self.env = make_environment(scenario, n_agents, graph, self.rng.spawn(1)[0], graph_params, scenario_params)
            learner = self.env.default_learner if learner is None else learner
            check_environment_size(learner, self.env, placed=self.env.n_agents <= MESA_SPACE_LIMIT)
        env = self.env
        named_graph = mdp is None and isinstance(scenario, str) and isinstance(graph, (str, os.PathLike))
        self.settings = {"scenario": self.scenario_name, "n_agents": env.n_agents,
                         "graph": os.fspath(graph) if named_graph else None,
                         "mechanism": choice_name(mechanism), "scheme": None}
        self.continuing = env.discount is not None
        if self.continuing and "discount" in learner_params:
            raise ValueError("learner_params: the discount is the market's (set scenario_params.discount)")
        self.learner = make_learner(learner, env.n_agents, env.n_states, env.n_actions, env.horizon, self.rng,
                                    scenario_payoff_range=env.payoff_range(), discount=env.discount,
                                    priors=env.learner_priors(), **learner_params)
        self.settings["learner"] = self.learner.name
        institution = env.mechanisms.get(mechanism, mechanism) if isinstance(mechanism, str) else mechanism
        if takes_scheme(institution):
            scheme = "fine" if scheme is None else scheme
            self.settings["scheme"] = choice_name(scheme)
        elif scheme is not None:
            raise ValueError(f"scheme: the {choice_name(mechanism)} mechanism takes no transfer scheme, got "
                             f"{choice_name(scheme)!r}")
        self.mechanism = make_mechanism(institution, env.principal_view(), scheme, exact=env.local_mdp(),
                                        **mechanism_params)
        if isinstance(benchmark, dict):  # computed before, for this economy
            self.rng.spawn(1)
            self.benchmarks = dict(benchmark)
        elif benchmark:
            self.benchmarks = env.welfare_benchmarks(self.rng.spawn(1)[0])
        else:
            self.benchmarks = {"optimal_welfare": np.nan, "laissez_faire_welfare": np.nan, "benchmark": "none"}
        self.optimal_welfare = float(self.benchmarks["optimal_welfare"])
        self.step_benchmark = self.optimal_welfare / env.horizon

        n = env.n_agents
        self.states = np.zeros(n, dtype=np.int64)
        self.actions = np.zeros(n, dtype=np.int64)
        self.private_rewards, self.external_rewards, self.transfers = np.zeros(n), np.zeros(n), np.zeros(n)
        self.transfers_received = np.zeros(n)
        self.offers = np.zeros((self.mechanism.n_groups, env.horizon, env.n_states, env.n_actions))  # none yet
        self.action_shares = np.zeros(env.n_actions)
        self.target_share = np.nan  # share of agents taking the target action this step
        self.h, self.episode, self.cumulative_regret = 0, 0, 0.0
        self.step_h = self.step_episode = 0  # the step and episode the last collected step belonged to
        self.episode_open = False  # begin_episode has run (by step, or early by an RL env's reset)
        self.step_welfare = self.step_transfers = 0.0
        self.expected_welfare = self.agent_regret = np.nan
        self.episode_log, self.replica_welfare, self.replica_agent_regret = [], [], []
        self._episode_totals = np.zeros(3)

        self.agent_snapshot_every = agent_snapshot_every
        self.agent_snapshots = []
        self.place_agents()
        if self.continuing:
            self.setup_continuing()
        reporters = self.continuing_reporters() if self.continuing else self.model_reporters()
        self.datacollector = mesa.DataCollector(model_reporters=reporters)

    # --- set-up ---------------------------------------------------------------------------
    def place_agents(self):
        """One `LearningAgent` per population row (on its network cell where that is affordable), and
        one `Principal` per group."""
        n = self.env.n_agents
        topology = getattr(self.env, "topology", None)
        self.grid = None
        if topology is not None and n <= MESA_SPACE_LIMIT:
            self.grid = Network(topology.to_networkx(), capacity=1, random=self.random, layout=None)
        self.learning_agents = [LearningAgent(self, row) for row in range(n)]
        if self.grid is not None:
            for agent in self.learning_agents:
                agent.cell = self.grid[agent.row]
        self.principals = [Principal(self, g) for g in range(self.env.n_groups)]

    def model_reporters(self):
        reporters = {
            "episode": "step_episode", "h": "step_h", "phase": "phase", "welfare": "step_welfare",
            "benchmark_welfare": "step_benchmark", "transfers": "step_transfers",
            "cumulative_regret": "cumulative_regret", "expected_welfare": "expected_welfare",
            "mean_state": "mean_state", "share_target": "target_share",
        }
        for a, name in enumerate(self.env.action_names):
            reporters[f"share_{name}"] = lambda m, a=a: float(m.action_shares[a])
        return reporters

    @property
    def phase(self):
        return self.mechanism.phase

    @property
    def mean_state(self):
        return int(self.states.sum()) / self.env.n_agents  # an integer sum: exact, and cheaper than mean()

    def target_actions(self):
        """The action the institution steers towards at each `(group, h, s)`, `(G, H, S)`: its declared
        target where it has one, else the environment's desirable (subsidised) action."""
        targets = self.mechanism.targets()
        return np.where(targets >= 0, targets, self.env.subsidised_action)

    # --- one step -------------------------------------------------------------------------------
    def step(self):
        """Advance every agent by one time step (in a continuing market, one period)."""
        if self.continuing:
            self.step_period()
            return
        env, h = self.env, self.h
        self.step_episode, self.step_h = self.episode, h
        if not self.episode_open:
            self.begin_episode()
        states = self.states
        self.actions = self.learner.act(h, states)
        next_states, self.private_rewards, self.external_rewards = env.step(self.actions, self.rng)
        self.settle(h, states)
        self.learner.update(h, states, self.actions, self.private_rewards, self.transfers, next_states)
        self.mechanism.record(StepRecord(h, env.groups, states, self.actions, next_states, self.external_rewards,
                                         self.transfers, env.public_observations()))
        self.states = next_states
        self.h = (h + 1) % env.horizon
        if self.h == 0:
            self.end_episode()
        self.datacollector.collect(self)
        if self.agent_snapshot_every and self.steps % self.agent_snapshot_every == 0:
            self.snapshot_agents()

    def snapshot_agents(self):
        """Record every agent's state, action, reward and transfer this step (vectorised, not per agent)."""
        self.agent_snapshots.append((self.steps, self.states.copy(), self.actions.copy(),
                                     self.private_rewards.copy(), self.transfers.copy()))

    def begin_episode(self):
        """Reset the local states, post the institution's transfers and let learners plan on them (in a
        continuing market: begin a review period, see `begin_review`)."""
        if self.continuing:
            self.begin_review()
            return
        self.states = self.env.reset(self.rng)
        self.offers = self.mechanism.post_offers()
        self.learner.begin_episode(self.offers, self.env.groups)
        self.episode_targets = self.target_actions()  # fixed while this episode's offers stand
        exact = None
        if self.env.welfare_is_exact:
            exact = self.env.exact_values(self.learner.behaviour_policy(), self.offers, self.env.groups)
        self.agent_expected_welfare = None if exact is None else exact["welfare"]
        self.agent_expected_regret = None if exact is None else exact["best"] - exact["agent"]
        self.expected_welfare = np.nan if exact is None else float(exact["welfare"].mean())
        self.agent_regret = np.nan if exact is None else float(self.agent_expected_regret.mean())
        self.episode_open = True

    def settle(self, h, states):
        """Pay the posted transfer for the action taken; welfare counts only `r + u` (transfers cancel)."""
        n = self.env.n_agents
        offers, targets = (np.ascontiguousarray(table[:, h]) for table in (self.offers, self.episode_targets))
        chosen, on_target = settle_step(offers, targets, self.env.groups, states, self.actions, self.transfers,
                                        self.transfers_received)
        private, external, paid = (float(x.sum()) for x in (self.private_rewards, self.external_rewards,
                                                             self.transfers))
        self.action_shares = chosen / n
        self.target_share = on_target / n
        self.step_welfare, self.step_transfers = (private + external) / n, paid / n
        self._episode_totals += (self.step_welfare, self.step_transfers, private / n)

    def end_episode(self):
        """Book the episode's welfare and regret, and let the institution learn from it."""
        welfare, transfers, private = self._episode_totals
        exact = not np.isnan(self.expected_welfare)
        assessed = self.expected_welfare if exact else welfare
        self.cumulative_regret += self.optimal_welfare - assessed
        self.episode_log.append((self.episode, welfare, self.expected_welfare, transfers, private,
                                 self.cumulative_regret, self.agent_regret, self.mechanism.phase))
        if exact:
            self.replica_welfare.append(self.agent_expected_welfare)
            self.replica_agent_regret.append(self.agent_expected_regret)
        self._episode_totals[:] = 0.0
        self.episode += 1
        self.episode_open = False
        self.mechanism.end_episode()

    # --- running and results -----------------------------------------------------------------
    def run_episodes(self, episodes, progress=False):
        """Advance `episodes` whole episodes (review periods in a continuing market; with a progress bar
        if asked)."""
        length = self.env.review_every if self.continuing else self.env.horizon
        done = self.review.periods if self.continuing else self.h
        episodes = check_int("episodes", episodes, low=0, high=MAX_COUNT // length)
        check_run_length(self, "episodes", episodes * length - done)
        self.run_steps(episodes * length - done, progress)

    def run_steps(self, steps, progress=False):
        """Advance `steps` time steps (periods in a continuing market; with a progress bar if asked)."""
        steps = check_int("steps", steps, low=0, high=MAX_COUNT)
        check_run_length(self, "steps", steps)
        if self.continuing:
            self.run_periods(steps, progress)
            return
        steps = range(steps)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"{self.scenario_name}/{self.settings['mechanism']}", unit="step",
                         mininterval=0.5, leave=False)
        for _ in steps:
            self.step()

    def episodes_frame(self):
        """One row per completed episode: welfare (realised and expected), transfers, welfare regret so far,
        this episode's agent regret (exact models only), phase."""
        columns = ["episode", "welfare", "expected_welfare", "transfers", "agent_reward", "cumulative_regret",
                   "agent_regret", "phase"]
        frame = pd.DataFrame(self.episode_log, columns=columns)
        frame["optimal_welfare"] = self.optimal_welfare
        frame["laissez_faire_welfare"] = self.benchmarks["laissez_faire_welfare"]
        return frame

    def steps_frame(self):
        """One row per step (per review period in a continuing market, whose `period` column counts the
        periods): the DataCollector's model-level reporters."""
        frame = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        if not self.continuing:
            frame.insert(0, "step", np.arange(1, len(frame) + 1))
        return frame

    def agents_frame(self):
        """Agent-level snapshots: one row per (step, agent)."""
        columns = ["step", "agent", "state", "action", "reward", "transfer"]
        if not self.agent_snapshots:
            return pd.DataFrame(columns=columns)
        n = self.env.n_agents
        parts = [pd.DataFrame({"step": np.full(n, t), "agent": np.arange(n), "state": s, "action": a,
                               "reward": r, "transfer": tau}) for t, s, a, r, tau in self.agent_snapshots]
        return pd.concat(parts, ignore_index=True)

    def summary(self):
        """The figures of `summary.json`: welfare benchmarks, gap closed, regret and its slope, transfers."""
        if self.continuing:
            self.measure_laissez_faire()
        out = summarise(self.episodes_frame(), self.benchmarks)
        if self.continuing:
            out.update(self.converged_figures())
        out.update(self.mechanism.summary())
        out.update(self.env.summary_extras(self.steps_frame()))
        out.update(self.estimate_figures())
        out.update({k: v for k, v in self.settings.items() if v is not None})
        out["benchmark"] = self.benchmarks["benchmark"]
        return out

    def estimate_figures(self):
        """The mechanism's estimates against their exact counterparts, where it has estimates (see
        `metrics.estimate_figures`; the errors only where the exact local model is known)."""
        estimates = self.mechanism.estimates()
        return {} if estimates is None else estimate_figures(estimates, self.env.local_mdp())

    def measure_laissez_faire(self, progress=False):
        """A continuing market's laissez-faire benchmark, the welfare its learners reach without offers:
        this run's own final welfare without an institution, else that of a twin run without offers
        (same market, learners and seed, run the same way). Measured once."""
        if not np.isnan(self.benchmarks["laissez_faire_welfare"]) or self.benchmarks["benchmark"] == "none" \
                or self.last_review is None:
            return
        twin = self
        if not isinstance(self.mechanism, LaissezFaire):
            twin = MarketModel(**{**self.arguments, "scheme": None}, mechanism="none", benchmark=False,
                               rng=self.twin_rng())
            if self.ran_to_convergence:
                twin.run_to_convergence(self.convergence_limit, progress)
            else:
                twin.run_periods(self.period, progress)
        self.benchmarks["laissez_faire_welfare"] = twin.last_review.welfare
        self.benchmarks["laissez_faire"] = self.env.review_figures(twin.last_review)

    def twin_rng(self):
        """The seed this model was built from (an int, or a fresh generator in the state it started in)."""
        if isinstance(self.seed_argument, (int, np.integer)):
            return self.seed_argument
        generator = np.random.Generator(type(self.rng.bit_generator)())
        generator.bit_generator.state = self.seed_argument
        return generator
