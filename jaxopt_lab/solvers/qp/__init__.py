"""Quadratic programs: box-constrained CD, equality-constrained QP, OSQP, iterative refinement."""

from jaxopt_lab.solvers.qp.box_cdqp import BoxCDQP, BoxCDQPState
from jaxopt_lab.solvers.qp.eq_qp import EqQPState, EqualityConstrainedQP
from jaxopt_lab.solvers.qp.iterative_refinement import IterativeRefinement, IterativeRefinementState
from jaxopt_lab.solvers.qp.osqp import OSQP, BoxOSQP, BoxOSQPState

__all__ = [
    "BoxCDQP",
    "BoxCDQPState",
    "EqQPState",
    "EqualityConstrainedQP",
    "IterativeRefinement",
    "IterativeRefinementState",
    "OSQP",
    "BoxOSQP",
    "BoxOSQPState",
]
