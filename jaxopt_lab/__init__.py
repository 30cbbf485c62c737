"""jaxopt_lab: differentiable optimization in JAX.

``import jaxopt_lab as jaxopt`` keeps jaxopt code running; on top come forward-mode
implicit differentiation, per-instance status under ``vmap``, traced
hyperparameters, optax transforms from the recent literature, bilevel, zeroth- and
second-order methods, and sweeps.
"""

from jaxopt_lab import (
    base,
    bilevel,
    curvature,
    implicit_diff,
    isotonic,
    linear_solve,
    loss,
    objective,
    perturbations,
    projection,
    prox,
    sweep,
    tree_util,
    zeroth_order,
)
from jaxopt_lab.base import KKTSolution, OptStep, Status, status_name
from jaxopt_lab.solvers import *  # noqa: F401,F403
from jaxopt_lab.solvers import __all__ as _solvers_all
from jaxopt_lab.transforms import *  # noqa: F401,F403
from jaxopt_lab.transforms import __all__ as _transforms_all

__version__ = "0.1.0"

__all__ = [
    "KKTSolution",
    "OptStep",
    "Status",
    "base",
    "loss",
    "objective",
    "bilevel",
    "curvature",
    "implicit_diff",
    "isotonic",
    "perturbations",
    "linear_solve",
    "projection",
    "prox",
    "status_name",
    "sweep",
    "tree_util",
    "zeroth_order",
    *_solvers_all,
    *_transforms_all,
]
