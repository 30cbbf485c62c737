"""Fixed points and roots: fixed-point iteration, Anderson acceleration, Broyden, bisection."""

from jaxopt_lab.solvers.fixed_point_root.anderson import (
    AndersonAcceleration,
    AndersonState,
    AndersonWrapper,
    AndersonWrapperState,
)
from jaxopt_lab.solvers.fixed_point_root.bisection import Bisection, BisectionState
from jaxopt_lab.solvers.fixed_point_root.broyden import Broyden, BroydenState
from jaxopt_lab.solvers.fixed_point_root.fixed_point import FixedPointIteration, FixedPointState

__all__ = [
    "AndersonAcceleration",
    "AndersonState",
    "AndersonWrapper",
    "AndersonWrapperState",
    "Bisection",
    "BisectionState",
    "Broyden",
    "BroydenState",
    "FixedPointIteration",
    "FixedPointState",
]
