"""Stochastic solvers: optax-driven and step-size-adaptive SGD, consensus-based optimization."""

from jaxopt_lab.solvers.stochastic.armijo_sgd import ArmijoSGD, ArmijoSGDState
from jaxopt_lab.solvers.stochastic.cbo import CBOState, ConsensusBasedOptimization
from jaxopt_lab.solvers.stochastic.optax_solver import OptaxSolver, OptaxState
from jaxopt_lab.solvers.stochastic.polyak_sgd import PolyakSGD, PolyakSGDState

__all__ = [
    "ArmijoSGD",
    "ArmijoSGDState",
    "CBOState",
    "ConsensusBasedOptimization",
    "OptaxSolver",
    "OptaxState",
    "PolyakSGD",
    "PolyakSGDState",
]
