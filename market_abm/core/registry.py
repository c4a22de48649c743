"""One place that lists the named learners, transfer schemes and mechanisms, so that the CLI,
sweeps and the visualizer offer the same choices."""

from __future__ import annotations

import inspect

from market_abm.core.baselines import FixedSubsidy, LaissezFaire, Oracle, Pigouvian
from market_abm.core.learners import LEARNERS, make_learner
from market_abm.core.institution import Mechanism
from market_abm.core.two_phase import TwoPhaseMechanism
from market_abm.core.schemes import SCHEMES, make_scheme
from market_abm.core.validation import check_keywords

MECHANISMS = {
    "none": LaissezFaire,
    "two_phase": TwoPhaseMechanism,
    "oracle": Oracle,
    "pigouvian": Pigouvian,
    "subsidy": FixedSubsidy,
}


def make_mechanism(name, view, scheme="fine", /, exact=None, **params):
    """The registered mechanism `name` (or a `Mechanism` subclass) built from the principal's `view`;
    `scheme` only for those that take one, and the `exact` local model only for benchmarks (oracle).

    `params` are checked against the mechanism's signature: `view`, `scheme` and `exact` are the model's to set."""
    cls = name if isinstance(name, type) and issubclass(name, Mechanism) else None
    if cls is None and isinstance(name, str):
        cls = MECHANISMS.get(name)
    if cls is None:
        raise ValueError(f"mechanism: must be one of {sorted(MECHANISMS)}, got {name!r}")
    params = check_keywords("mechanism_params", params, cls, given=("view", "scheme", "exact"), owner=cls.name)
    if takes_scheme(cls):
        params["scheme"] = make_scheme(scheme, view.horizon, view.n_states, view.n_actions)
    if "exact" in inspect.signature(cls).parameters:
        params["exact"] = exact
    return cls(view, **params)


def takes_scheme(mechanism):
    """Whether the mechanism (a registered name or a `Mechanism` subclass) posts through a transfer scheme."""
    cls = MECHANISMS.get(mechanism) if isinstance(mechanism, str) else mechanism
    return "scheme" in inspect.signature(cls).parameters


__all__ = ["LEARNERS", "MECHANISMS", "SCHEMES", "make_learner", "make_mechanism", "make_scheme"]
