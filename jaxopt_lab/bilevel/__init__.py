"""Bilevel optimization: a problem API, hypergradients with diagnostics, algorithms."""

from jaxopt_lab.bilevel.hypergradient import (
    HypergradDiagnostics,
    adjoint_solve,
    hypergradient,
    hyperobjective,
)
from jaxopt_lab.bilevel.problem import BilevelParams, BilevelProblem

__all__ = [
    "BilevelParams",
    "BilevelProblem",
    "HypergradDiagnostics",
    "adjoint_solve",
    "hypergradient",
    "hyperobjective",
]
