"""jaxopt's ``base`` module: the solver contract's types and base class, re-exported.

The code lives in :mod:`jaxopt_lab.core` (``types``, ``checks``, ``solver``); this module
keeps ``jaxopt_lab.base`` (and ``jaxopt.base`` code) working.
"""

from jaxopt_lab.core.checks import *  # noqa: F401,F403
from jaxopt_lab.core.checks import __all__ as _checks_all
from jaxopt_lab.core.solver import IterativeSolver, update_status
from jaxopt_lab.core.types import KKTSolution, LinearOperator, OptStep, PyTree, Status, status_name  # noqa: F401 (PyTree: type alias, importable)
from jaxopt_lab.solvers.stochastic._step import StochasticSolver

#: jaxopt's type of the ``unroll`` option: ``True``, ``False`` or ``"auto"``.
AutoOrBoolean = str | bool

__all__ = ["AutoOrBoolean", "IterativeSolver", "KKTSolution", "LinearOperator", "OptStep",
           "Status", "StochasticSolver", "status_name", "update_status", *_checks_all]
