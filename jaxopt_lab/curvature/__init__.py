"""Curvature oracles: Hessian- and Gauss-Newton-vector products, diagonal and
trace estimators, Lanczos extreme eigenvalues and spectral densities.

Every estimator takes an explicit PRNG key; Rademacher probes come from packed
random bits (:func:`rademacher_like`), 32 signs per generated word.
"""

from jaxopt_lab.curvature.estimators import fisher_diag, gnb_diag, hutchinson_diag, hutchinson_trace
from jaxopt_lab.curvature.lanczos import LanczosResult, SLQResult, lanczos, slq_density
from jaxopt_lab.curvature.probes import rademacher_like
from jaxopt_lab.curvature.products import gnvp, hvp

__all__ = [
    "LanczosResult",
    "SLQResult",
    "fisher_diag",
    "gnb_diag",
    "gnvp",
    "hutchinson_diag",
    "hutchinson_trace",
    "hvp",
    "lanczos",
    "rademacher_like",
    "slq_density",
]
