"""First-order solvers: gradient descent, proximal and projected gradient, mirror descent,
block coordinate descent.
"""

from jaxopt_lab.solvers.first_order.block_cd import BlockCDState, BlockCoordinateDescent
from jaxopt_lab.solvers.first_order.gradient_descent import (
    GradientDescent,
    GradientDescentState,
    ProxGradState,
)
from jaxopt_lab.solvers.first_order.mirror_descent import (
    MirrorDescent,
    MirrorDescentState,
    projection_grad_simplex_kl,
)
from jaxopt_lab.solvers.first_order.projected_gradient import ProjectedGradient, ProjectedGradientState
from jaxopt_lab.solvers.first_order.proximal_gradient import ProximalGradient, ProximalGradientState

__all__ = [
    "BlockCDState",
    "BlockCoordinateDescent",
    "GradientDescent",
    "GradientDescentState",
    "ProxGradState",
    "MirrorDescent",
    "MirrorDescentState",
    "projection_grad_simplex_kl",
    "ProjectedGradient",
    "ProjectedGradientState",
    "ProximalGradient",
    "ProximalGradientState",
]
