"""`MarketModel` as a PettingZoo `ParallelEnv`: outside learners play the learning agents, while the
principal's institution and the externality stay in the model.

One `step(actions)` is one `MarketModel.step()` (the institution's staging runs unchanged), and an
env episode is one model episode of `H` steps. `reset()` keeps the model, so the principal keeps
what it learned across episodes (its Phase 1 search spans many of them); `reset(seed=s)` builds a
fresh model with `rng=s`, so the same seed replays the same run. A model cannot abandon an episode
half-way, so `reset()` in mid-episode (without a seed) is an error. In a continuing market (pricing)
an env episode is one review period of the institution, truncated (not terminated) at its end: the
market goes on, and `reset()` continues it from the same states.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

try:
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError("market_abm.rl needs the rl extra: pip install 'market-abm[rl]'") from err

from market_abm.model import MarketModel
from market_abm.rl.external import ExternalLearner


class MarketParallelEnv(ParallelEnv):
    """One PettingZoo agent per learning agent of a `MarketModel`.

    Observation of agent `i` (a `Dict` space): its local `state`, the time step `h` (`0..H-1` while
    acting, `H` in the observation that ends an episode) and the `transfers` `(A,)` its principal has
    posted for each action at `(h, state)` (payoff units; zero after the last step). Action: an index
    into the scenario's `action_names`. Reward: private reward plus transfer received. Infos: the
    population's `welfare` per agent this step, the mechanism's `phase`, the `episode` number, and the
    agent's `private_reward`, `transfer` and `external_reward`; at reset, the whole `offers`
    `(H, S, A)` its principal posted for the episode (contracts are public). Every agent terminates
    after step `H`: the horizon is part of each agent's decision problem (it observes `h`), so there
    is nothing to bootstrap beyond it, and no agent is truncated.

    The dict API costs a Python loop over agents per step (building the dicts); the model's own
    stages stay vectorised.

    Attributes:
        model: the `MarketModel` being played (its frames and `summary()` hold the run's data).
        possible_agents: `agent_0 .. agent_{N-1}`, fixed; `agents`: those acting in this episode.
        policy: optional, the outside agents' policy for each episode (see `ExternalLearner`).
    """

    metadata = {"name": "market_abm_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, scenario="pollution", n_agents=1, policy=None, **model_kwargs):
        for key in ("learner", "learner_params"):
            if key in model_kwargs:
                raise ValueError(f"{key}: the env's agents are played from outside, through step(actions)")
        self.model_kwargs = dict(model_kwargs, scenario=scenario, n_agents=n_agents)
        self.policy = policy
        self.render_mode = None
        self.model = self.build_model(self.model_kwargs.pop("rng", None))
        env = self.model.env
        self.possible_agents = [f"agent_{i}" for i in range(env.n_agents)]
        self.agent_rows = {name: i for i, name in enumerate(self.possible_agents)}
        self.agents = []
        self.action_names = list(env.action_names)
        self._observation_spaces, self._action_spaces = {}, {}

    def build_model(self, rng):
        """A fresh model whose learning agents are external, seeded by `rng`."""
        model = MarketModel(learner=ExternalLearner, learner_params={"policy": self.policy}, rng=rng,
                            **self.model_kwargs)
        model.settings["learner"] = ExternalLearner.name  # a name, not the class, in summaries
        if hasattr(self, "possible_agents") and model.env.n_agents != len(self.possible_agents):
            raise ValueError(f"seed: the model built for it has {model.env.n_agents} agents, "
                             f"not {len(self.possible_agents)}")
        return model

    # --- spaces ---------------------------------------------------------------------------
    def observation_space(self, agent):
        self.row_of(agent)
        if agent not in self._observation_spaces:
            env = self.model.env
            self._observation_spaces[agent] = spaces.Dict({
                "state": spaces.Discrete(env.n_states),
                "h": spaces.Discrete(env.horizon + 1),
                "transfers": spaces.Box(-np.inf, np.inf, shape=(env.n_actions,), dtype=np.float64),
            })
        return self._observation_spaces[agent]

    def action_space(self, agent):
        self.row_of(agent)
        if agent not in self._action_spaces:
            self._action_spaces[agent] = spaces.Discrete(self.model.env.n_actions)
        return self._action_spaces[agent]

    def row_of(self, agent):
        """The population row of a named agent."""
        try:
            return self.agent_rows[agent]
        except (KeyError, TypeError):
            raise ValueError(f"agent: unknown agent {agent!r}; agents are {self.agent_range()}") from None

    def agent_range(self):
        names = self.possible_agents
        return repr(names[0]) if len(names) == 1 else f"{names[0]!r} .. {names[-1]!r}"

    # --- the PettingZoo contract ------------------------------------------------------------
    def reset(self, seed=None, options=None):
        """Begin the next episode of the same model, or of a fresh model seeded by `seed`."""
        if seed is not None:
            self.model = self.build_model(seed)
        model = self.model
        if model.h != 0:
            raise ValueError(f"reset: the episode is at step {model.h} of {model.env.horizon}; finish it "
                             "with step(), or pass a seed to start a fresh model")
        if not model.episode_open:
            model.begin_episode()
        self.agents = self.possible_agents[:]
        offers = model.offers[model.env.groups]
        offers.flags.writeable = False
        infos = {name: {"phase": int(model.phase), "episode": model.episode, "offers": table}
                 for name, table in zip(self.agents, offers)}
        return self.observe(), infos

    def step(self, actions):
        """Every agent acts; the model runs one staged step; returns observations, rewards,
        terminations (true after step `H`; never in a continuing market), truncations (at the end of
        a continuing market's review period, where the market goes on) and infos."""
        model = self.model
        if not self.agents:
            raise ValueError("actions: no episode is running; call reset() first")
        model.learner.hand_in(self.action_array(actions))
        model.step()
        done = not model.episode_open if model.continuing else model.h == 0
        names = self.agents
        rewards = dict(zip(names, (model.private_rewards + model.transfers).tolist()))
        infos = {name: {"welfare": model.step_welfare, "phase": int(model.phase), "episode": model.episode,
                        "private_reward": r, "transfer": tau, "external_reward": u}
                 for name, r, tau, u in zip(names, model.private_rewards.tolist(), model.transfers.tolist(),
                                            model.external_rewards.tolist())}
        observations = self.observe(done)
        terminations = dict.fromkeys(names, done and not model.continuing)
        truncations = dict.fromkeys(names, done and model.continuing)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def observe(self, done=False):
        """Each agent's local state, the time step and the transfers posted for its actions there."""
        model = self.model
        states = model.states
        if done:
            h, transfers = model.env.horizon, np.zeros((len(states), model.env.n_actions))
        else:
            h, transfers = model.h, model.offers[model.env.groups, model.h, states]
        h = np.int64(h)
        return {name: {"state": s, "h": h, "transfers": t}
                for name, s, t in zip(self.possible_agents, states, transfers)}

    def action_array(self, actions):
        """The actions `(N,)` from a dict `{agent: action}`; anything else is a one-line ValueError."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions: must be a dict {{agent: action}}, got {type(actions).__name__}")
        unknown = [name for name in actions if name not in self.agent_rows]
        if unknown:
            raise ValueError(f"actions: unknown agent {unknown[0]!r}; agents are {self.agent_range()}")
        if len(actions) < len(self.possible_agents):
            missing = next(name for name in self.possible_agents if name not in actions)
            raise ValueError(f"actions: no action for {missing!r}; every agent acts every step")
        values = [actions[name] for name in self.possible_agents]
        array = np.asarray(values) if all(np.ndim(v) == 0 for v in values) else np.asarray(values, dtype=object)
        n_actions = self.model.env.n_actions
        valid = np.issubdtype(array.dtype, np.integer) and bool(((array >= 0) & (array < n_actions)).all())
        if not valid:
            bad = next(name for name in self.possible_agents if not self.is_action(actions[name], n_actions))
            names = ", ".join(f"{a}={name}" for a, name in enumerate(self.action_names))
            raise ValueError(f"actions: {bad!r} chose {actions[bad]!r}; must be an integer in "
                             f"[0, {n_actions - 1}] ({names})")
        return array.astype(np.int64)

    @staticmethod
    def is_action(value, n_actions):
        value = np.asarray(value)
        return value.ndim == 0 and np.issubdtype(value.dtype, np.integer) and 0 <= value < n_actions

    def render(self):
        """No rendering: the run's data are in `env.model` (and the Solara app shows a `MarketModel`)."""

    def close(self):
        """Nothing to release."""


def parallel_env(scenario="pollution", n_agents=1, **model_kwargs):
    """The model as a PettingZoo `ParallelEnv`; `model_kwargs` go to `MarketModel` (mechanism, scheme,
    graph, rng, scenario_params, ...), and `policy` optionally declares the outside policy
    (see `ExternalLearner`)."""
    return MarketParallelEnv(scenario, n_agents, **model_kwargs)
