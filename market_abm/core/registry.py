"""One place that lists the named learners, transfer schemes and mechanisms, so that the CLI,
sweeps and the visualizer offer the same choices."""

from __future__ import annotations

import inspect

from market_abm.core.baselines import FixedSubsidy, LaissezFaire, Oracle, Pigouvian
from market_abm.core.learners import LEARNERS, make_learner
from market_abm.core.institution import Mechanism
from market_abm.core.two_phase import TwoPhaseMechanism
from market_abm.core.schemes import SCHEMES, make_scheme

MECHANISMS = {
    "none": LaissezFaire,
    "two_phase": TwoPhaseMechanism,
    "oracle": Oracle,
    "pigouvian": Pigouvian,
    "subsidy": FixedSubsidy,
}


def make_mechanism(name, view, scheme="fine", exact=None, **params):
    """The registered mechanism `name` (or a `Mechanism` subclass) built from the principal's `view`;
    `scheme` only for those that take one, and the `exact` local model only for benchmarks (oracle)."""
    cls = name if isinstance(name, type) and issubclass(name, Mechanism) else MECHANISMS.get(name)
    if cls is None:
        raise ValueError(f"mechanism: must be one of {sorted(MECHANISMS)}, got {name!r}")
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(params) - set(accepted) | (set(params) & {"view", "scheme", "exact"}))
    if unknown:
        raise ValueError(f"mechanism_params: {cls.name!r} takes no parameter {unknown[0]!r}")
    if "scheme" in accepted:
        params["scheme"] = make_scheme(scheme, view.horizon, view.n_states, view.n_actions)
    if "exact" in accepted:
        params["exact"] = exact
    return cls(view, **params)


__all__ = ["LEARNERS", "MECHANISMS", "SCHEMES", "make_learner", "make_mechanism", "make_scheme"]
