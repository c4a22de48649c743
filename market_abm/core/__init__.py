"""The core, numpy with no Mesa (per-agent loops compiled by numba): tabular MDPs and exact solvers,
learners, transfer schemes, mechanisms, metrics. The named choices among them are listed in
`market_abm.registry`."""

from market_abm.core.environment import PopulationEnv, TabularEnv
from market_abm.core.learners import Learner
from market_abm.core.mdp import TabularMDP
from market_abm.core.institution import CellEstimates, Mechanism, PrincipalView, StepRecord
from market_abm.core.two_phase import TwoPhaseMechanism
from market_abm.core.schemes import TransferScheme

__all__ = [
    "CellEstimates", "Learner", "Mechanism", "PopulationEnv", "PrincipalView", "StepRecord", "TabularEnv",
    "TabularMDP", "TransferScheme", "TwoPhaseMechanism",
]
