"""Static M-FAC: an inverse empirical Fisher from ``m`` fixed gradients, precomputed once.

The damped empirical Fisher ``F = lambda I + (1/m) sum_i g_i g_i^T`` is the sum of
``lambda I`` and ``m`` rank-one terms. Adding them one at a time, Sherman-Morrison gives
``F_i^{-1} = F_{i-1}^{-1} - v_i v_i^T / d_i`` with ``v_i = F_{i-1}^{-1} g_i`` and
``d_i = m + g_i^T v_i``, so

    ``F^{-1} x = x / lambda - sum_i v_i (v_i^T x) / d_i``.

Every ``v_i`` is a combination ``sum_j B_ij g_j`` of the gradients; the coefficients
``B`` (lower triangular) and the ``d_i`` follow from the Gram matrix ``K = G G^T`` alone,
in ``O(m^3)``, after which ``V = B G`` costs one ``O(d m^2)`` product. Then an
inverse-Hessian-vector product costs ``O(d m)`` and one entry of ``F^{-1}`` costs
``O(m)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core.checks import check_positive
from jaxopt_lab.linalg import linear_solve as ls

PyTree = Any


def mfac_coefficients(gram: jax.Array, damping: float | jax.Array) -> tuple[jax.Array, jax.Array]:
    """Coefficients of the static M-FAC recursion from the Gram matrix of the gradients.

    Row ``i`` of ``B`` expresses ``v_i = F_{i-1}^{-1} g_i = sum_j B_ij g_j``:
    ``B_i = e_i / lambda - sum_{j<i} (v_j^T g_i / d_j) B_j`` with ``v_j^T g_i = (B K)_ji``
    and ``d_i = m + (B K)_ii``.

    Args:
      gram: ``K = G G^T``, shape ``(m, m)``.
      damping: ``lambda > 0``.

    Returns:
      ``(B, d)``: the ``(m, m)`` lower-triangular coefficients and the ``(m,)``
      denominators.

    References:
      Frantar, Kurtic and Alistarh, "M-FAC: Efficient Matrix-Free Approximations of
      Second-Order Information", 2021 (arXiv:2107.03356), Section 3.1 (static algorithm).
    """
    gram = jnp.asarray(gram)
    m = gram.shape[0]
    lam = jnp.asarray(damping, gram.dtype)

    def row(i, carry):
        B, d = carry
        dots = B @ gram[:, i]                       # v_j^T g_i; rows j >= i of B are still 0
        c = jnp.where(jnp.arange(m) < i, dots / d, 0.0)
        b_i = jnp.zeros(m, gram.dtype).at[i].set(1.0 / lam) - c @ B
        d_i = m + b_i @ gram[:, i]                  # m + g_i^T v_i
        return B.at[i].set(b_i), d.at[i].set(d_i)

    init = (jnp.zeros((m, m), gram.dtype), jnp.ones(m, gram.dtype))
    return jax.lax.fori_loop(0, m, row, init)


@dataclasses.dataclass(frozen=True, eq=False)
class MFACStatic:
    """Precomputed static M-FAC inverse of ``lambda I + (1/m) sum_i g_i g_i^T``.

    Build it with :func:`mfac_static`. Calling it (``mfac(x)``, the same as
    :meth:`ihvp`) applies ``F^{-1}`` to a pytree like the gradients, so it can be passed
    as a preconditioner ``M=`` to :func:`jaxopt_lab.linalg.linear_solve.solve_cg` or to
    :func:`jaxopt_lab.bilevel.hypergradient`; :meth:`solve` is a linear solver for a
    solver's ``implicit_diff_solve=``.

    Attributes:
      vectors: ``V``, shape ``(m, d)``: row ``i`` is ``v_i = F_{i-1}^{-1} g_i``.
      denominators: ``d``, shape ``(m,)``: ``d_i = m + g_i^T v_i``.
      damping: ``lambda``.
      unravel: flat ``(d,)`` vector -> pytree like one gradient (static).
    """

    vectors: jax.Array
    denominators: jax.Array
    damping: jax.Array
    unravel: Callable = dataclasses.field(metadata=dict(static=True))

    def _flat_ihvp(self, x: jax.Array) -> jax.Array:
        coef = (self.vectors @ x) / self.denominators            # O(dm)
        return x / self.damping - coef @ self.vectors             # O(dm)

    def ihvp(self, x: PyTree) -> PyTree:
        """``F^{-1} x`` in ``O(dm)``.

        Args:
          x: a pytree like one gradient.

        Returns:
          ``F^{-1} x``, same structure and dtypes as ``x``.
        """
        flat, unravel = ravel_pytree(x)
        if flat.shape != (self.vectors.shape[1],):
            raise ValueError(f"`x` has {flat.size} entries in all, but the M-FAC inverse was built "
                             f"from gradients with {self.vectors.shape[1]}.")
        out = self._flat_ihvp(flat.astype(self.vectors.dtype)).astype(flat.dtype)
        return unravel(out)

    __call__ = ihvp

    def element(self, k: int | jax.Array, l: int | jax.Array) -> jax.Array:  # noqa: E741
        """Entry ``(k, l)`` of ``F^{-1}`` (indices into the flattened parameters) in ``O(m)``.

        Args:
          k, l: flat indices.

        Returns:
          A scalar.
        """
        vk, vl = self.vectors[:, k], self.vectors[:, l]
        return jnp.where(k == l, 1.0 / self.damping, 0.0) - jnp.sum(vk * vl / self.denominators)

    def diag(self) -> PyTree:
        """The diagonal of ``F^{-1}`` (``O(m)`` per entry, ``O(dm)`` in all).

        Returns:
          A pytree like one gradient.
        """
        flat = 1.0 / self.damping - (1.0 / self.denominators) @ (self.vectors * self.vectors)
        return self.unravel(flat)

    def solve(self, matvec: Callable, b: PyTree, ridge: float | None = None, **kwargs) -> PyTree:
        """Solve ``A x = b`` by conjugate gradients preconditioned by this inverse.

        The signature of :mod:`jaxopt_lab.linalg.linear_solve` solvers, so it serves as a
        solver's ``implicit_diff_solve=``. It is exact in one iteration when
        ``A = F``.

        Args:
          matvec: ``v -> A v`` (symmetric positive definite).
          b: right-hand side.
          ridge: optional ``lambda`` added to ``A``.
          **kwargs: passed to :func:`jaxopt_lab.linalg.linear_solve.solve_cg` (``tol``,
            ``maxiter``, ``init``, ``return_info``).

        Returns:
          ``x`` (and a :class:`~jaxopt_lab.linalg.linear_solve.LinearSolveInfo` with
          ``return_info=True``).
        """
        return ls.solve_cg(matvec, b, ridge=ridge, M=self, **kwargs)


jax.tree_util.register_dataclass(MFACStatic, data_fields=["vectors", "denominators", "damping"],
                                 meta_fields=["unravel"])


def mfac_static(grads: PyTree, damping: float | jax.Array = 1e-4) -> MFACStatic:
    """Precompute the static M-FAC inverse of ``lambda I + (1/m) sum_i g_i g_i^T``.

    Costs ``O(d m^2 + m^3)`` once (the Gram matrix, the coefficient recursion and
    ``V = B G``); afterwards an inverse-Hessian-vector product costs ``O(dm)`` and an
    entry of the inverse ``O(m)``. The gradients are fixed (the dynamic, sliding-window
    algorithm is :func:`jaxopt_lab.transforms.scale_by_mfac`). bfloat16/float16
    gradients are processed in float32.

    Args:
      grads: the ``m`` gradients: an ``(m, d)`` array, or a pytree whose leaves all have
        a leading axis of size ``m`` (e.g. per-example gradients from
        ``jax.vmap(jax.grad(loss))``).
      damping: ``lambda > 0`` (may be traced).

    Returns:
      An :class:`MFACStatic`.

    References:
      Frantar, Kurtic and Alistarh, "M-FAC: Efficient Matrix-Free Approximations of
      Second-Order Information", 2021 (arXiv:2107.03356), Section 3.1.
    """
    check_positive(damping, "damping")
    grads = jax.tree_util.tree_map(jnp.asarray, grads)
    leaves = jax.tree_util.tree_leaves(grads)
    if not leaves:
        raise ValueError("`grads` is empty.")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("`grads` leaves must share a leading axis of size m (one gradient per row), "
                         f"got leading sizes {sorted(map(str, sizes))}.")
    example = jax.tree_util.tree_map(lambda x: x[0], grads)
    unravel = ravel_pytree(example)[1]
    G = jax.vmap(lambda g: ravel_pytree(g)[0])(grads)
    if not jnp.issubdtype(G.dtype, jnp.floating):
        raise TypeError(f"`grads` must be real floating point, got {G.dtype}.")
    G = G.astype(jnp.promote_types(G.dtype, jnp.float32))
    B, d = mfac_coefficients(G @ G.T, damping)
    return MFACStatic(B @ G, d, jnp.asarray(damping, G.dtype), unravel)


__all__ = ["MFACStatic", "mfac_coefficients", "mfac_static"]
