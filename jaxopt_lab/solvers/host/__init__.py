"""Host solvers: SciPy and CVXPY wrappers, run on the host (``run`` only, no ``update``)."""

from jaxopt_lab.solvers.host.cvxpy_qp import CvxpyQP
from jaxopt_lab.solvers.host.scipy_wrappers import (
    ScipyBoundedLeastSquares,
    ScipyBoundedMinimize,
    ScipyLeastSquares,
    ScipyMinimize,
    ScipyMinimizeInfo,
    ScipyRootFinding,
)

__all__ = [
    "CvxpyQP",
    "ScipyBoundedLeastSquares",
    "ScipyBoundedMinimize",
    "ScipyLeastSquares",
    "ScipyMinimize",
    "ScipyMinimizeInfo",
    "ScipyRootFinding",
]
