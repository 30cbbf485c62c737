"""ROOT: robust orthogonalized momentum (outlier soft-thresholding + shape-adaptive Newton-Schulz)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core import tree_util as tu

Coefficients = Sequence[tuple[float, float, float]]
_QUINTIC = (3.4445, -4.7750, 2.0315)  # fast growth of small singular values (Muon's quintic)
_CUBIC = (1.5, -0.5, 0.0)  # Newton-Schulz polishing, converges quadratically to 1 on (0, sqrt 3)


def check_matrix_leaves(tree, who: str) -> None:
    """Raise a ``ValueError`` naming the first leaf of ``tree`` that is not a matrix.

    Args:
      tree: a pytree of arrays (masked-out leaves, ``optax.MaskedNode``, are skipped).
      who: the transform's name, used in the message.

    Returns:
      None.
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.ndim(leaf) != 2:
            raise ValueError(
                f"{who}: leaf {jax.tree_util.keystr(path) or '<root>'} has shape {jnp.shape(leaf)}, but "
                f"{who} acts on matrices only; mask it out with optax.masked/optax.partition "
                "(or pass `fallback=` to the recipe).")


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


class ScaleByRootState(NamedTuple):
    """State of :func:`scale_by_root`: the momentum buffer.

    Attributes:
      mu: the momentum ``M_t = beta M_{t-1} + g_t``, a pytree of matrices like the
        parameters.
    """

    mu: optax.Updates


def scale_by_root(
    beta: float = 0.95, threshold: float | None = 3.0, nesterov: bool = True, eps: float = 1e-7,
    coefficients: Callable[[tuple[int, int]], Coefficients] | None = None,
) -> optax.GradientTransformation:
    """ROOT direction for matrix parameters.

    ``M_t = beta M_{t-1} + g_t``; the outliers ``O_t = T_eps(M_t)`` (element-wise soft
    thresholding) are removed, leaving the clipped part ``B_t = M_t - O_t = clip(M_t, -eps_t, eps_t)``,
    which is orthogonalized with a shape-dependent Newton-Schulz schedule and scaled by
    ``sqrt(max(1, m / n))``. Here ``eps_t = threshold * RMS(M_t)`` so the split is scale-free
    (``threshold=None`` keeps all of ``M_t``). Every leaf must be a matrix.

    Args:
      beta: momentum decay.
      threshold: outlier threshold in units of the momentum's RMS (``> 0``) or ``None``.
      nesterov: orthogonalize ``g_t + beta M_t`` instead of ``M_t``.
      eps: normalization safeguard.
      coefficients: ``shape -> [(a, b, c), ...]`` to override :func:`ns_schedule` (e.g. the
        paper's tabulated per-shape coefficients).

    Returns:
      An ``optax.GradientTransformation``.

    References:
      He, Han, Zhou, Chen, Liu, Chen, Wang, "ROOT: Robust Orthogonalized Optimizer for
      Neural Network Training", 2025 (arXiv:2511.20626).
    """
    if isinstance(threshold, int | float) and threshold <= 0:
        raise ValueError(f"threshold must be positive (or None), got {threshold}.")
    if isinstance(beta, int | float) and not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must lie in [0, 1), got {beta}.")
    schedule = ns_schedule if coefficients is None else coefficients

    def init(params):
        check_matrix_leaves(params, "scale_by_root")
        return ScaleByRootState(jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        tu.check_update_args("scale_by_root", grads, params, state_like=state.mu)
        del params
        check_matrix_leaves(grads, "scale_by_root")
        mu = jax.tree_util.tree_map(lambda m, g: (beta * m + g).astype(g.dtype), state.mu, grads)

        def leaf(m, g):
            M = (g + beta * m) if nesterov else m
            if threshold is not None:
                Mf = M.astype(jnp.promote_types(M.dtype, jnp.float32))
                cut = threshold * jnp.sqrt(jnp.mean(Mf * Mf))
                M = jnp.clip(Mf, -cut, cut)  # B_t = M_t - T_eps[M_t]
            scale = math.sqrt(max(1.0, g.shape[0] / g.shape[1]))
            return (scale * orthogonalize(M, schedule(g.shape), eps)).astype(g.dtype)

        return jax.tree_util.tree_map(leaf, mu, grads), ScaleByRootState(mu)

    return optax.GradientTransformation(init, update)


def root(
    learning_rate: optax.ScalarOrSchedule, beta: float = 0.95, threshold: float | None = 3.0,
    nesterov: bool = True, eps: float = 1e-7, fallback: optax.GradientTransformation | None = None,
) -> optax.GradientTransformation:
    """ROOT optimizer; non-matrix leaves go to ``fallback`` through ``optax.partition``.

    Args:
      learning_rate: step size or schedule for the matrix leaves.
      beta, threshold, nesterov, eps: see :func:`scale_by_root`.
      fallback: a complete optimizer (with its own learning rate, e.g. ``optax.adam(1e-3)``)
        for leaves with ``ndim != 2``; without it such leaves raise a ``ValueError``.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      He et al., "ROOT: Robust Orthogonalized Optimizer for Neural Network Training", 2025
      (arXiv:2511.20626).
    """
    core = optax.chain(scale_by_root(beta, threshold, nesterov, eps),
                       optax.scale_by_learning_rate(learning_rate))
    if fallback is None:
        return core
    label = lambda p: "matrix" if jnp.ndim(p) == 2 else "other"
    labels = lambda params: jax.tree_util.tree_map(label, params)
    return optax.partition({"matrix": core, "other": fallback}, labels)


__all__ = ["ScaleByRootState", "scale_by_root", "root", "orthogonalize", "ns_schedule"]
