"""Named scenarios: each turns (number of agents, graph, parameters) into a population environment."""

from __future__ import annotations

from market_abm.core.validation import check_fields
from market_abm.environments.graphs import make_topology
from market_abm.environments.insurance import InsuranceEnv, InsuranceParams
from market_abm.environments.pollution import PollutionEnv, PollutionParams
from market_abm.environments.pricing import PricingEnv, PricingParams


def pollution(n_agents, topology, **params):
    """Firms emitting into a diffusing pollution stock (see `environments.pollution`)."""
    return PollutionEnv(topology, scenario_params(PollutionParams, params))


def insurance(n_agents, topology, **params):
    """Insured households choosing prevention against contagious losses (see `environments.insurance`)."""
    return InsuranceEnv(topology, scenario_params(InsuranceParams, params))


def pricing(n_agents, topology, **params):
    """Pricing algorithms in logit markets with their neighbours, a continuing market (see `environments.pricing`)."""
    return PricingEnv(topology, scenario_params(PricingParams, params))


SCENARIOS = {"pollution": pollution, "insurance": insurance, "pricing": pricing}
SIZE_FIELDS = ("levels", "action_names", "horizon")  # the scenario parameters that set the states, actions, steps


def scenario_params(cls, params):
    """A parameter dataclass from keyword arguments, each a field of it and of the field's type."""
    return cls(**check_fields("scenario_params", cls, params))


def make_environment(scenario, n_agents, graph, rng, graph_params, params):
    """The population environment of a registered scenario on a graph (one node for one agent)."""
    if not isinstance(scenario, str) or scenario not in SCENARIOS:
        raise ValueError(f"scenario: must be one of {sorted(SCENARIOS)}, got {scenario!r}")
    topology = make_topology(graph, n_agents, rng, **graph_params)
    return SCENARIOS[scenario](topology.n_nodes, topology, **params)
