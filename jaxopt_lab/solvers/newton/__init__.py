"""Second-order solvers: Newton-CG and regularized Newton (fixed or adaptive regularization)."""

from jaxopt_lab.solvers.newton.adaptive_regularized_newton import (
    AdaptiveRegularizedNewton,
    AdaptiveRegularizedNewtonState,
)
from jaxopt_lab.solvers.newton.newton_cg import NewtonCG, NewtonCGState
from jaxopt_lab.solvers.newton.regularized_newton import RegularizedNewton, RegularizedNewtonState

__all__ = [
    "AdaptiveRegularizedNewton",
    "AdaptiveRegularizedNewtonState",
    "NewtonCG",
    "NewtonCGState",
    "RegularizedNewton",
    "RegularizedNewtonState",
]
