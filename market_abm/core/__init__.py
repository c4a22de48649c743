"""The core, numpy with no Mesa (per-agent loops compiled by numba): tabular MDPs and exact solvers,
learners, transfer schemes, mechanisms, metrics."""

from market_abm.core.environment import PopulationEnv, TabularEnv
from market_abm.core.learners import Learner
from market_abm.core.mdp import TabularMDP
from market_abm.core.institution import CellEstimates, Mechanism, PrincipalView, StepRecord
from market_abm.core.two_phase import TwoPhaseMechanism
from market_abm.core.registry import LEARNERS, MECHANISMS, SCHEMES, make_learner, make_mechanism, make_scheme
from market_abm.core.schemes import TransferScheme

__all__ = [
    "LEARNERS", "MECHANISMS", "SCHEMES", "CellEstimates", "Learner", "Mechanism", "PopulationEnv",
    "PrincipalView", "StepRecord", "TabularEnv",
    "TabularMDP", "TransferScheme", "TwoPhaseMechanism", "make_learner", "make_mechanism", "make_scheme",
]
