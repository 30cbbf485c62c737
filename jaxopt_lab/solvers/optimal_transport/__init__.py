"""Entropic optimal transport: log-domain Sinkhorn and Sinkhorn-Newton-Sparse."""

from jaxopt_lab.solvers.optimal_transport.sinkhorn import Sinkhorn, SinkhornState
from jaxopt_lab.solvers.optimal_transport.sinkhorn_newton_sparse import (
    SinkhornNewtonSparse,
    SinkhornNewtonSparseState,
)

__all__ = ["Sinkhorn", "SinkhornNewtonSparse", "SinkhornNewtonSparseState", "SinkhornState"]
