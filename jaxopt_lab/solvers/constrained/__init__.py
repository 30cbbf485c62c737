"""Constrained solvers: constraints as functions, results as ``KKTSolution``."""

from jaxopt_lab.solvers.constrained.augmented_lagrangian import AugmentedLagrangian, AugmentedLagrangianState

__all__ = [
    "AugmentedLagrangian",
    "AugmentedLagrangianState",
]
