"""Iterative solvers with jaxopt's contract (``init_state`` / ``update`` / ``run``)."""

from jaxopt_lab.solvers.gradient_descent import GradientDescent, ProxGradState
from jaxopt_lab.solvers.lbfgs import LBFGS, LbfgsState
from jaxopt_lab.solvers.optax_solver import OptaxSolver, OptaxState

__all__ = [
    "GradientDescent",
    "LBFGS",
    "LbfgsState",
    "OptaxSolver",
    "OptaxState",
    "ProxGradState",
]
