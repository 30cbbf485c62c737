"""Line searches: pure functions used inside solver steps (:mod:`.functions`) and jaxopt's
line-search objects (:mod:`.solvers`).
"""

from jaxopt_lab.solvers.linesearch.solvers import (
    BacktrackingLineSearch,
    HagerZhangLineSearch,
    LineSearchState,
    ZoomLineSearch,
)

__all__ = [
    "BacktrackingLineSearch",
    "HagerZhangLineSearch",
    "LineSearchState",
    "ZoomLineSearch",
]
