"""The core, numpy with no Mesa (per-agent loops compiled by numba): tabular MDPs and exact solvers,
learners, transfer schemes, mechanisms, metrics."""

from market_abm.core.environment import PopulationEnv, TabularEnv
from market_abm.core.learners import Learner
from market_abm.core.mdp import TabularMDP
from market_abm.core.mechanism import Mechanism, TwoPhaseMechanism
from market_abm.core.registry import LEARNERS, MECHANISMS, SCHEMES, make_learner, make_mechanism, make_scheme
from market_abm.core.schemes import TransferScheme

__all__ = [
    "LEARNERS", "MECHANISMS", "SCHEMES", "Learner", "Mechanism", "PopulationEnv", "TabularEnv",
    "TabularMDP", "TransferScheme", "TwoPhaseMechanism", "make_learner", "make_mechanism", "make_scheme",
]
