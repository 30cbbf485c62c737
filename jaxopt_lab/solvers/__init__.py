"""Iterative solvers with jaxopt's contract (``init_state`` / ``update`` / ``run``)."""

from jaxopt_lab.solvers.anderson import (
    AndersonAcceleration,
    AndersonState,
    AndersonWrapper,
    AndersonWrapperState,
)
from jaxopt_lab.solvers.bisection import Bisection, BisectionState
from jaxopt_lab.solvers.box_cdqp import BoxCDQP, BoxCDQPState
from jaxopt_lab.solvers.broyden import Broyden, BroydenState
from jaxopt_lab.solvers.cbo import CBOState, ConsensusBasedOptimization
from jaxopt_lab.solvers.eq_qp import EqQPState, EqualityConstrainedQP
from jaxopt_lab.solvers.fixed_point import FixedPointIteration, FixedPointState
from jaxopt_lab.solvers.gauss_newton import GaussNewton, GaussNewtonState
from jaxopt_lab.solvers.gradient_descent import GradientDescent, ProxGradState
from jaxopt_lab.solvers.lbfgs import LBFGS, LbfgsState
from jaxopt_lab.solvers.levenberg_marquardt import LevenbergMarquardt, LevenbergMarquardtState
from jaxopt_lab.solvers.optax_solver import OptaxSolver, OptaxState
from jaxopt_lab.solvers.osqp import OSQP, BoxOSQP, BoxOSQPState

__all__ = [
    "GradientDescent",
    "LBFGS",
    "LbfgsState",
    "OptaxSolver",
    "OptaxState",
    "ProxGradState",
    "AndersonAcceleration",
    "AndersonState",
    "AndersonWrapper",
    "AndersonWrapperState",
    "Bisection",
    "BisectionState",
    "Broyden",
    "BroydenState",
    "CBOState",
    "ConsensusBasedOptimization",
    "FixedPointIteration",
    "FixedPointState",
    "GaussNewton",
    "GaussNewtonState",
    "LevenbergMarquardt",
    "LevenbergMarquardtState",
    "BoxCDQP",
    "BoxCDQPState",
    "EqQPState",
    "EqualityConstrainedQP",
    "OSQP",
    "BoxOSQP",
    "BoxOSQPState",
]

# Second-order solvers (issue 4).
from jaxopt_lab.solvers.newton_cg import NewtonCG, NewtonCGState  # noqa: E402
from jaxopt_lab.solvers.regularized_newton import RegularizedNewton, RegularizedNewtonState  # noqa: E402

__all__ += ["NewtonCG", "NewtonCGState", "RegularizedNewton", "RegularizedNewtonState"]

# jaxopt parity: smooth, bound-constrained and composite solvers (issue 8).
from jaxopt_lab.solvers.bfgs import BFGS, BfgsState  # noqa: E402
from jaxopt_lab.solvers.lbfgsb import LBFGSB, LbfgsbState  # noqa: E402
from jaxopt_lab.solvers.linesearch import (  # noqa: E402
    BacktrackingLineSearch,
    HagerZhangLineSearch,
    LineSearchState,
    ZoomLineSearch,
)
from jaxopt_lab.solvers.nonlinear_cg import NonlinearCG, NonlinearCGState  # noqa: E402
from jaxopt_lab.solvers.projected_gradient import ProjectedGradient  # noqa: E402
from jaxopt_lab.solvers.proximal_gradient import ProximalGradient  # noqa: E402

__all__ += ["BFGS", "BfgsState", "LBFGSB", "LbfgsbState", "BacktrackingLineSearch", "HagerZhangLineSearch",
            "LineSearchState", "ZoomLineSearch", "NonlinearCG", "NonlinearCGState", "ProjectedGradient",
            "ProximalGradient"]
from jaxopt_lab.solvers.armijo_sgd import ArmijoSGD, ArmijoSGDState  # noqa: E402
from jaxopt_lab.solvers.polyak_sgd import PolyakSGD, PolyakSGDState  # noqa: E402

__all__ += ["ArmijoSGD", "ArmijoSGDState", "PolyakSGD", "PolyakSGDState"]

# jaxopt parity: SciPy wrappers, iterative refinement, CvxpyQP (issue 8).
from jaxopt_lab.solvers.cvxpy_qp import CvxpyQP  # noqa: E402
from jaxopt_lab.solvers.iterative_refinement import IterativeRefinement, IterativeRefinementState  # noqa: E402
from jaxopt_lab.solvers.scipy_wrappers import (  # noqa: E402
    ScipyBoundedLeastSquares,
    ScipyBoundedMinimize,
    ScipyLeastSquares,
    ScipyMinimize,
    ScipyMinimizeInfo,
    ScipyRootFinding,
)

__all__ += ["CvxpyQP", "IterativeRefinement", "IterativeRefinementState", "ScipyBoundedLeastSquares",
            "ScipyBoundedMinimize", "ScipyLeastSquares", "ScipyMinimize", "ScipyMinimizeInfo",
            "ScipyRootFinding"]

# jaxopt parity: block coordinate descent and mirror descent.
from jaxopt_lab.solvers.block_cd import BlockCDState, BlockCoordinateDescent  # noqa: E402
from jaxopt_lab.solvers.mirror_descent import (  # noqa: E402
    MirrorDescent,
    MirrorDescentState,
    projection_grad_simplex_kl,
)

__all__ += ["BlockCDState", "BlockCoordinateDescent", "MirrorDescent", "MirrorDescentState",
            "projection_grad_simplex_kl"]
