"""Constrained solvers: constraints as functions, results as ``KKTSolution``."""

from jaxopt_lab.solvers.constrained.admm import ADMM, ADMMState
from jaxopt_lab.solvers.constrained.augmented_lagrangian import AugmentedLagrangian, AugmentedLagrangianState
from jaxopt_lab.solvers.constrained.consensus_admm import ConsensusADMM, ConsensusADMMState
from jaxopt_lab.solvers.constrained.frank_wolfe import FrankWolfe, FrankWolfeState, StochasticFrankWolfe
from jaxopt_lab.solvers.constrained.mirror_prox import MirrorProx, OptimisticMirrorDescent, SaddlePointState

__all__ = [
    "ADMM",
    "ADMMState",
    "ConsensusADMM",
    "ConsensusADMMState",
    "AugmentedLagrangian",
    "AugmentedLagrangianState",
    "FrankWolfe",
    "FrankWolfeState",
    "StochasticFrankWolfe",
    "MirrorProx",
    "OptimisticMirrorDescent",
    "SaddlePointState",
]
