"""Every named choice of a model, in one place: scenarios, graphs, learners, mechanisms and transfer
schemes. The CLI, sweeps, the visualizer and the RL env offer these names, and `market-abm list`
prints them with a line on each.

Wherever a name is accepted, a user's own object is accepted too: a `PopulationEnv` for `scenario`,
a networkx graph or an edge-list file for `graph`, a `Learner` or `Mechanism` subclass, and a
`TransferScheme` of the economy's sizes for `scheme`.
"""

from __future__ import annotations

import copy
import inspect
import re

from market_abm.core.baselines import FixedSubsidy, LaissezFaire, Oracle, Pigouvian
from market_abm.core.calvano import CalvanoQ
from market_abm.core.environment import PopulationEnv
from market_abm.core.institution import Mechanism
from market_abm.core.learners import ContractAwareLearner, Learner
from market_abm.core.q_learning import boltzmann, epsilon_greedy, optimistic_q
from market_abm.core.schemes import TransferScheme, fine, per_action, stationary, threshold
from market_abm.core.two_phase import TwoPhaseMechanism
from market_abm.core.validation import check_fields, check_keywords
from market_abm.environments.graphs import GRAPHS, make_topology
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
LEARNERS = {
    "contract_aware": ContractAwareLearner,
    "epsilon_greedy": epsilon_greedy,
    "optimistic_q": optimistic_q,
    "boltzmann": boltzmann,
    "calvano_q": CalvanoQ,
}
MECHANISMS = {
    "none": LaissezFaire,
    "two_phase": TwoPhaseMechanism,
    "oracle": Oracle,
    "pigouvian": Pigouvian,
    "subsidy": FixedSubsidy,
}
SCHEMES = {"fine": fine, "stationary": stationary, "per_action": per_action, "threshold": threshold}
KINDS = {"scenario": SCENARIOS, "graph": GRAPHS, "learner": LEARNERS, "mechanism": MECHANISMS, "scheme": SCHEMES}
POPULATION = ("n_agents", "n_states", "n_actions", "horizon", "rng")  # what make_learner passes every learner


def choices():
    """Every registered choice as `(kind, name, description)`, kind by kind, in the order registered."""
    return [(kind, name, description(factory)) for kind, table in KINDS.items() for name, factory in table.items()]


def description(factory):
    """The first sentence of a factory's docstring, on one line, without a closing `(see ...)` pointer."""
    text = " ".join(inspect.getdoc(factory).split("\n\n")[0].split())
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z`])", text)[0]
    return re.sub(r"\s*\(see [^()]*\)(?=\.?$)", "", sentence)


def registered(kind, name, own=""):
    """The factory registered as `name` among the choices of `kind`; `own` tells the message what a user
    may give instead."""
    table = KINDS[kind]
    if isinstance(name, str) and name in table:
        return table[name]
    raise ValueError(f"{kind}: must be one of {sorted(table)}{own}, got {name!r}")


def choice_name(choice):
    """The name a run records for a choice: its registered name, or the `name` of a user's own object
    (`custom` without one)."""
    return choice if isinstance(choice, str) else getattr(choice, "name", "custom")


def subclass(choice, base):
    return isinstance(choice, type) and issubclass(choice, base)


def scenario_params(cls, params):
    """A parameter dataclass from keyword arguments, each a field of it and of the field's type."""
    return cls(**check_fields("scenario_params", cls, params))


def make_environment(scenario, n_agents, graph, rng, graph_params, params):
    """The population environment of a registered scenario on a graph (one node for one agent), or a
    copy of a user's own `PopulationEnv`, so that the models built from it share no state."""
    if isinstance(scenario, PopulationEnv):
        return copy.deepcopy(scenario)
    factory = registered("scenario", scenario, " or a PopulationEnv")
    topology = make_topology(graph, n_agents, rng, **graph_params)
    return factory(topology.n_nodes, topology, **params)


def make_learner(name, n_agents, n_states, n_actions, horizon, rng, /, scenario_payoff_range=None, discount=None,
                 priors=None, **params):
    """The registered learner `name`, or a user's `Learner` subclass, for the population.

    `params` are checked against the learner's signature: the sizes and `rng` are the model's to set.
    The scenario's bounds of the per-step private payoff go to learners that take a `payoff_range`
    not given in `params`. A continuing market's `discount` goes to learners that take one; a learner
    that does not cannot learn the market. `priors` are the scenario's prior knowledge, given to
    learners that take them by name unless `params` give them (Calvano's `prior_payoff`)."""
    factory = name if subclass(name, Learner) else registered("learner", name, " or a Learner subclass")
    label = getattr(factory, "name", name)
    accepted = inspect.signature(factory).parameters
    if discount is not None and "discount" not in accepted:
        raise ValueError(f"learner: {label!r} cannot learn a continuing market (it takes no discount)")
    params = check_keywords("learner_params", params, factory, given=POPULATION, owner=label)
    if discount is not None:
        params["discount"] = discount
    if scenario_payoff_range is not None and "payoff_range" not in params and "payoff_range" in accepted:
        params["payoff_range"] = scenario_payoff_range
    for key, value in (priors or {}).items():
        if key in accepted:
            params.setdefault(key, value)
    return factory(n_agents, n_states, n_actions, horizon, rng, **params)


def make_scheme(scheme, horizon, n_states, n_actions):
    """The registered scheme `scheme` for an `(H, S, A)` decision problem, or a user's own
    `TransferScheme`, which must partition a problem of those sizes."""
    if not isinstance(scheme, TransferScheme):
        return registered("scheme", scheme, " or a TransferScheme")(horizon, n_states, n_actions)
    own, economy = (scheme.horizon, scheme.n_states, scheme.n_actions), (horizon, n_states, n_actions)
    if own != economy:
        raise ValueError(f"scheme: the TransferScheme is for (horizon, n_states, n_actions) = {own}, but the "
                         f"economy's are {economy}")
    return scheme


def make_mechanism(name, view, scheme="fine", /, exact=None, **params):
    """The registered mechanism `name` (or a `Mechanism` subclass) built from the principal's `view`;
    `scheme` only for those that take one, and the `exact` local model only for benchmarks (oracle).

    `params` are checked against the mechanism's signature: `view`, `scheme` and `exact` are the model's to set."""
    cls = name if subclass(name, Mechanism) else registered("mechanism", name, " or a Mechanism subclass")
    params = check_keywords("mechanism_params", params, cls, given=("view", "scheme", "exact"), owner=cls.name)
    if takes_scheme(cls):
        params["scheme"] = make_scheme(scheme, view.horizon, view.n_states, view.n_actions)
    if "exact" in inspect.signature(cls).parameters:
        params["exact"] = exact
    return cls(view, **params)


def takes_scheme(mechanism):
    """Whether the mechanism (a registered name or a `Mechanism` subclass) posts through a transfer scheme."""
    cls = mechanism if subclass(mechanism, Mechanism) else registered("mechanism", mechanism, " or a Mechanism subclass")
    return "scheme" in inspect.signature(cls).parameters
