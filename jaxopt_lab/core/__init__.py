"""The floor of the stack: result types, validators, the run loop, the solver base, pytree helpers.

Modules here import only each other and :mod:`jaxopt_lab.linalg` (whose modules import
only :mod:`jaxopt_lab.core.tree_util`); nothing here imports solvers, transforms or ops.
"""

from jaxopt_lab.core.types import KKTSolution, LinearOperator, OptStep, PyTree, Status, status_name  # noqa: F401 (PyTree: type alias, importable)

__all__ = ["KKTSolution", "LinearOperator", "OptStep", "Status", "status_name"]
