"""Orthogonalization of a matrix by Newton-Schulz iterations: its approximate polar factor ``U V^T``.

``orthogonalize(G)`` maximizes ``<G, D>`` over the unit spectral-norm ball, so it is the
linear minimization oracle (up to sign) of that ball, the direction of Muon/ROOT-style
updates; :func:`ns_schedule` picks the iteration's coefficients from the matrix shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Coefficients = Sequence[tuple[float, float, float]]
_QUINTIC = (3.4445, -4.7750, 2.0315)  # fast growth of small singular values (Muon's quintic)
_CUBIC = (1.5, -0.5, 0.0)  # Newton-Schulz polishing, converges quadratically to 1 on (0, sqrt 3)


def ns_schedule(shape: tuple[int, int]) -> Coefficients:
    """Shape-adaptive Newton-Schulz schedule: quintic steps then cubic polishing steps.

    After Frobenius normalization the singular values of an ``m x n`` matrix with a
    spread-out spectrum sit near ``1 / sqrt(min(m, n))``; the quintic multiplies small
    singular values by ``a = 3.4445`` per step, so the number of quintic steps grows like
    ``log(sqrt(min(m, n))) / log(a)`` (enough to lift ``sigma >= 1 / (30 sqrt(min(m, n)))`` into
    ``[0.68, 1.13]``), followed by three cubic steps that map that band to ``1 +- 1e-3``.

    Args:
      shape: the matrix shape ``(m, n)``.

    Returns:
      A list of ``(a, b, c)`` triples, one per iteration ``X <- a X + b (X X^T) X + c (X X^T)^2 X``.

    References:
      He et al., "ROOT: Robust Orthogonalized Optimizer for Neural Network Training", 2025
      (arXiv:2511.20626) - dimension-robust orthogonalization; this schedule is our
      shape-dependent stand-in for the paper's tabulated per-shape coefficients.
    """
    r = min(shape)
    n_quintic = max(3, math.ceil(math.log(0.7 * 30.0 * math.sqrt(r)) / math.log(_QUINTIC[0])))
    return [_QUINTIC] * n_quintic + [_CUBIC] * 3


def orthogonalize(x: jax.Array, coefficients: Coefficients | None = None, eps: float = 1e-7) -> jax.Array:
    """Approximate polar factor ``U V^T`` of a matrix by Newton-Schulz iterations.

    Args:
      x: an ``(m, n)`` matrix.
      coefficients: the ``(a, b, c)`` schedule; default :func:`ns_schedule` of ``x.shape``.
      eps: Frobenius-norm safeguard.

    Returns:
      The orthogonalized matrix in ``x``'s dtype (computed in at least float32).

    References:
      He et al., "ROOT: Robust Orthogonalized Optimizer for Neural Network Training", 2025
      (arXiv:2511.20626); Jordan et al., "Muon: An optimizer for hidden layers", 2024.
    """
    coefficients = ns_schedule(x.shape) if coefficients is None else coefficients
    X = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    transpose = X.shape[0] > X.shape[1]
    X = X.T if transpose else X
    X = X / (jnp.linalg.norm(X) + eps)
    for a, b, c in coefficients:
        A = X @ X.T
        X = a * X + (b * A + c * (A @ A)) @ X
    return (X.T if transpose else X).astype(x.dtype)


__all__ = ["ns_schedule", "orthogonalize"]
