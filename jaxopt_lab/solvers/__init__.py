"""Iterative solvers with jaxopt's contract (``init_state`` / ``update`` / ``run``).

One folder per family, each with its shared step skeleton:
``first_order``, ``quasi_newton``, ``newton``, ``least_squares``, ``fixed_point_root``,
``qp``, ``stochastic``, ``host`` (SciPy/CVXPY wrappers) and ``linesearch``.
Every public class is re-exported here and at the top level; the flat module paths of
earlier releases (``jaxopt_lab.solvers.lbfgs`` ...) stay importable as aliases.
"""

import sys as _sys

from jaxopt_lab.solvers import (
    constrained,
    first_order,
    fixed_point_root,
    host,
    least_squares,
    linesearch,
    newton,
    optimal_transport,
    qp,
    quasi_newton,
    stochastic,
)
from jaxopt_lab.solvers.constrained import *  # noqa: F401,F403
from jaxopt_lab.solvers.first_order import *  # noqa: F401,F403
from jaxopt_lab.solvers.fixed_point_root import *  # noqa: F401,F403
from jaxopt_lab.solvers.host import *  # noqa: F401,F403
from jaxopt_lab.solvers.least_squares import *  # noqa: F401,F403
from jaxopt_lab.solvers.linesearch import *  # noqa: F401,F403
from jaxopt_lab.solvers.newton import *  # noqa: F401,F403
from jaxopt_lab.solvers.optimal_transport import *  # noqa: F401,F403
from jaxopt_lab.solvers.qp import *  # noqa: F401,F403
from jaxopt_lab.solvers.quasi_newton import *  # noqa: F401,F403
from jaxopt_lab.solvers.stochastic import *  # noqa: F401,F403

__all__ = [
    *first_order.__all__,
    *quasi_newton.__all__,
    *newton.__all__,
    *least_squares.__all__,
    *fixed_point_root.__all__,
    *qp.__all__,
    *stochastic.__all__,
    *host.__all__,
    *linesearch.__all__,
    *constrained.__all__,
    *optimal_transport.__all__,
]

# Flat module paths of earlier releases -> the module in its family folder.
_MOVED = {
    "block_cd": first_order.block_cd,
    "gradient_descent": first_order.gradient_descent,
    "mirror_descent": first_order.mirror_descent,
    "projected_gradient": first_order.projected_gradient,
    "proximal_gradient": first_order.proximal_gradient,
    "bfgs": quasi_newton.bfgs,
    "lbfgs": quasi_newton.lbfgs,
    "lbfgsb": quasi_newton.lbfgsb,
    "nonlinear_cg": quasi_newton.nonlinear_cg,
    "newton_cg": newton.newton_cg,
    "regularized_newton": newton.regularized_newton,
    "gauss_newton": least_squares.gauss_newton,
    "levenberg_marquardt": least_squares.levenberg_marquardt,
    "anderson": fixed_point_root.anderson,
    "bisection": fixed_point_root.bisection,
    "broyden": fixed_point_root.broyden,
    "fixed_point": fixed_point_root.fixed_point,
    "box_cdqp": qp.box_cdqp,
    "eq_qp": qp.eq_qp,
    "iterative_refinement": qp.iterative_refinement,
    "osqp": qp.osqp,
    "armijo_sgd": stochastic.armijo_sgd,
    "cbo": stochastic.cbo,
    "optax_solver": stochastic.optax_solver,
    "polyak_sgd": stochastic.polyak_sgd,
    "cvxpy_qp": host.cvxpy_qp,
    "scipy_wrappers": host.scipy_wrappers,
}
for _name, _module in _MOVED.items():
    _sys.modules.setdefault(f"{__name__}.{_name}", _module)
