"""Quasi-Newton solvers: BFGS, DFP, L-BFGS, L-BFGS-B and nonlinear conjugate gradients."""

from jaxopt_lab.solvers.quasi_newton.bfgs import BFGS, BfgsState
from jaxopt_lab.solvers.quasi_newton.dfp import DFP
from jaxopt_lab.solvers.quasi_newton.lbfgs import LBFGS, LbfgsState
from jaxopt_lab.solvers.quasi_newton.lbfgsb import LBFGSB, LbfgsbState
from jaxopt_lab.solvers.quasi_newton.nonlinear_cg import NonlinearCG, NonlinearCGState

__all__ = [
    "BFGS",
    "BfgsState",
    "DFP",
    "LBFGS",
    "LbfgsState",
    "LBFGSB",
    "LbfgsbState",
    "NonlinearCG",
    "NonlinearCGState",
]
