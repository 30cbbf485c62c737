"""Constrained solvers: constraints as functions, results as ``KKTSolution``."""

from jaxopt_lab.solvers.constrained.admm import ADMM, ADMMState
from jaxopt_lab.solvers.constrained.augmented_lagrangian import AugmentedLagrangian, AugmentedLagrangianState
from jaxopt_lab.solvers.constrained.consensus_admm import ConsensusADMM, ConsensusADMMState

__all__ = [
    "ADMM",
    "ADMMState",
    "ConsensusADMM",
    "ConsensusADMMState",
    "AugmentedLagrangian",
    "AugmentedLagrangianState",
]
