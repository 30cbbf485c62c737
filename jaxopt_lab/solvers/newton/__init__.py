"""Second-order solvers: Newton-CG and regularized Newton."""

from jaxopt_lab.solvers.newton.newton_cg import NewtonCG, NewtonCGState
from jaxopt_lab.solvers.newton.regularized_newton import RegularizedNewton, RegularizedNewtonState

__all__ = [
    "NewtonCG",
    "NewtonCGState",
    "RegularizedNewton",
    "RegularizedNewtonState",
]
