"""Nonlinear least squares: Gauss-Newton and Levenberg-Marquardt."""

from jaxopt_lab.solvers.least_squares.gauss_newton import GaussNewton, GaussNewtonState
from jaxopt_lab.solvers.least_squares.levenberg_marquardt import LevenbergMarquardt, LevenbergMarquardtState

__all__ = [
    "GaussNewton",
    "GaussNewtonState",
    "LevenbergMarquardt",
    "LevenbergMarquardtState",
]
