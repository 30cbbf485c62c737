"""Matrix-free, pytree-aware linear solvers.

Every solver takes ``matvec`` (a linear function from a pytree to a pytree of the
same structure) and a right-hand side ``b``, and returns ``x`` with ``A x = b``.
An optional ``ridge`` solves ``(A + ridge * I) x = b`` instead. With
``return_info=True`` the solvers also return a :class:`LinearSolveInfo` with the
final residual norm and the number of iterations, which the hypergradient
diagnostics report.

The Krylov solvers use :mod:`jax.scipy.sparse.linalg` where it serves (GMRES,
BiCGSTAB); conjugate gradients is written here because the diagnostics need its
iteration count and the bilevel methods its preconditioner and warm start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.control import bounded_while_loop

PyTree = Any


class LinearSolveInfo(NamedTuple):
    """What a linear solve reports.

    Attributes:
      residual_norm: ``||b - A x||`` at the returned ``x``.
      iterations: iterations used (0 for direct solvers).
    """

    residual_norm: jax.Array
    iterations: jax.Array


def _with_ridge(matvec: Callable, ridge) -> Callable:
    if ridge is None:
        return matvec
    return lambda x: tu.tree_add_scalar_mul(matvec(x), ridge, x)


def _check_callable(matvec):
    if not callable(matvec):
        raise TypeError(f"`matvec` must be callable, got {type(matvec).__name__}.")


def _info(matvec, x, b, iterations) -> LinearSolveInfo:
    res = tu.tree_l2_norm(tu.tree_sub(b, matvec(x)))
    return LinearSolveInfo(res, jnp.asarray(iterations, jnp.int32))


def _finish(x, matvec, b, iterations, return_info):
    if return_info:
        return x, _info(matvec, x, b, iterations)
    return x


def solve_cg(
    matvec: Callable,
    b: PyTree,
    ridge: float | None = None,
    init: PyTree | None = None,
    tol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Callable | None = None,
    return_info: bool = False,
    unroll: bool = False,
):
    """Conjugate gradients for a symmetric positive definite operator.

    Stops when ``||r|| <= max(tol * ||b||, atol)``.

    Args:
      matvec: the linear operator ``v -> A v`` (symmetric positive definite).
      b: right-hand side, a pytree.
      ridge: optional ``lambda`` added to the diagonal of ``A``.
      init: warm start (defaults to zeros).
      tol: relative tolerance on the residual norm (default: ``1e-12`` in
        float64, ``10 * eps`` in lower precision).
      atol: absolute tolerance on the residual norm.
      maxiter: maximum iterations (default: ``max(100, 2 * size(b))``).
      M: optional preconditioner ``v -> M^{-1} v`` (approximates ``A^{-1}``).
      return_info: also return a :class:`LinearSolveInfo`.
      unroll: iterate in a masked ``lax.scan`` of ``maxiter`` steps instead of a
        ``lax.while_loop``: the same ``x``, and reverse-mode derivatives through the
        iterations (for solvers that differentiate by unrolling).

    Returns:
      ``x`` (and the info when ``return_info``).

    References:
      Hestenes and Stiefel, "Methods of conjugate gradients for solving linear
      systems", 1952.
    """
    _check_callable(matvec)
    A = _with_ridge(matvec, ridge)
    size = sum(jnp.size(x) for x in jax.tree_util.tree_leaves(b))
    maxiter = max(100, 2 * size) if maxiter is None else int(maxiter)
    tol = default_tol(b) if tol is None else tol
    precond = M if M is not None else (lambda v: v)
    x0 = tu.tree_zeros_like(b) if init is None else init
    r0 = tu.tree_sub(b, A(x0)) if init is not None else b
    z0 = precond(r0)
    rz0 = tu.tree_vdot(r0, z0)
    bnorm = tu.tree_l2_norm(b)
    threshold = jnp.maximum(tol * bnorm, atol)

    def cond(carry):
        _, r, _, _, k = carry
        return (tu.tree_l2_norm(r) > threshold) & (k < maxiter)

    def body(carry):
        x, r, p, rz, k = carry
        Ap = A(p)
        pAp = tu.tree_vdot(p, Ap)
        alpha = jnp.where(pAp > 0, rz / jnp.where(pAp > 0, pAp, 1.0), 0.0)
        x = tu.tree_add_scalar_mul(x, alpha, p)
        r = tu.tree_add_scalar_mul(r, -alpha, Ap)
        z = precond(r)
        rz_new = tu.tree_vdot(r, z)
        beta = jnp.where(rz != 0, rz_new / jnp.where(rz != 0, rz, 1.0), 0.0)
        p = tu.tree_add_scalar_mul(z, beta, p)
        # A non-positive curvature direction stops the iteration.
        k = jnp.where(pAp > 0, k + 1, maxiter)
        return x, r, p, rz_new, k

    x, r, _, _, k = bounded_while_loop(cond, body, (x0, r0, z0, rz0, jnp.asarray(0)), maxiter,
                                       unroll=unroll)
    if return_info:
        return x, LinearSolveInfo(tu.tree_l2_norm(r), k.astype(jnp.int32))
    return x


def default_tol(b: PyTree) -> float:
    """Relative tolerance reachable in the precision of ``b``.

    Args:
      b: a pytree of arrays.

    Returns:
      ``1e-12`` for float64 leaves, ``10 * eps`` for lower precisions.
    """
    leaves = jax.tree_util.tree_leaves(b)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.float32
    eps = float(jnp.finfo(dtype).eps)
    return 1e-12 if eps < 1e-12 else 10 * eps


def _transpose(matvec: Callable, example: PyTree) -> Callable:
    transposed = jax.linear_transpose(matvec, example)
    return lambda y: transposed(y)[0]


def solve_normal_cg(
    matvec: Callable,
    b: PyTree,
    ridge: float | None = None,
    init: PyTree | None = None,
    return_info: bool = False,
    **kwargs,
):
    """Conjugate gradients on the normal equations ``A^T A x = A^T b``.

    Works for any non-singular (or least-squares) ``A``; the ridge is added to
    ``A^T A``. Squares the condition number, so prefer :func:`solve_cg` for
    symmetric operators and :func:`solve_gmres` for well-conditioned
    non-symmetric ones.

    Args:
      matvec: the linear operator ``v -> A v``.
      b: right-hand side.
      ridge: optional ``lambda`` in ``(A^T A + lambda I) x = A^T b``.
      init: warm start.
      return_info: also return a :class:`LinearSolveInfo` (residual of ``A x = b``).
      **kwargs: passed to :func:`solve_cg` (``tol``, ``maxiter``, ``M``, ``unroll``).

    Returns:
      ``x`` (and the info when ``return_info``).
    """
    _check_callable(matvec)
    example = b if init is None else init
    rmatvec = _transpose(matvec, example)
    normal = lambda v: rmatvec(matvec(v))
    x, info = solve_cg(normal, rmatvec(b), ridge=ridge, init=init, return_info=True, **kwargs)
    return _finish(x, matvec, b, info.iterations, return_info)


def solve_gmres(
    matvec: Callable,
    b: PyTree,
    ridge: float | None = None,
    init: PyTree | None = None,
    tol: float | None = None,
    atol: float = 0.0,
    restart: int = 20,
    maxiter: int | None = None,
    M: Callable | None = None,
    solve_method: str = "batched",
    return_info: bool = False,
):
    """GMRES (via ``jax.scipy.sparse.linalg.gmres``) for general operators.

    Args:
      matvec: the linear operator.
      b: right-hand side.
      ridge: optional diagonal shift.
      init: warm start.
      tol, atol: relative (default :func:`default_tol`) and absolute tolerances.
      restart: Krylov subspace size between restarts.
      maxiter: maximum number of restarts.
      M: optional preconditioner.
      solve_method: ``"batched"`` or ``"incremental"`` (see JAX's gmres).
      return_info: also return a :class:`LinearSolveInfo` (iterations are the
        restart cap, JAX does not report the count used).

    Returns:
      ``x`` (and the info when ``return_info``).
    """
    _check_callable(matvec)
    A = _with_ridge(matvec, ridge)
    tol = default_tol(b) if tol is None else tol
    x, _ = jax.scipy.sparse.linalg.gmres(
        A, b, x0=init, tol=tol, atol=atol, restart=restart, maxiter=maxiter, M=M,
        solve_method=solve_method,
    )
    return _finish(x, A, b, -1, return_info)


def solve_bicgstab(
    matvec: Callable,
    b: PyTree,
    ridge: float | None = None,
    init: PyTree | None = None,
    tol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Callable | None = None,
    return_info: bool = False,
):
    """BiCGSTAB (via ``jax.scipy.sparse.linalg.bicgstab``) for general operators.

    Args:
      matvec: the linear operator.
      b: right-hand side.
      ridge: optional diagonal shift.
      init: warm start.
      tol, atol: relative (default :func:`default_tol`) and absolute tolerances.
      maxiter: maximum iterations.
      M: optional preconditioner.
      return_info: also return a :class:`LinearSolveInfo`.

    Returns:
      ``x`` (and the info when ``return_info``).
    """
    _check_callable(matvec)
    A = _with_ridge(matvec, ridge)
    tol = default_tol(b) if tol is None else tol
    x, _ = jax.scipy.sparse.linalg.bicgstab(A, b, x0=init, tol=tol, atol=atol, maxiter=maxiter, M=M)
    return _finish(x, A, b, -1, return_info)


def materialize(matvec: Callable, example: PyTree) -> tuple[jax.Array, Callable]:
    """Dense matrix of a linear operator on pytrees.

    Args:
      matvec: the linear operator.
      example: a pytree with the operator's input structure.

    Returns:
      ``(A, unravel)``: the ``(n, n)`` matrix acting on raveled vectors and the
      function turning a raveled vector back into a pytree.
    """
    flat, unravel = ravel_pytree(example)
    flat_mv = lambda v: ravel_pytree(matvec(unravel(v)))[0]
    A = jax.jacfwd(flat_mv)(jnp.zeros_like(flat))
    return A, unravel


def _dense_solver(decompose: Callable, name: str, summary: str) -> Callable:
    """A dense solver: materialize the operator (``n`` JVPs), then ``decompose(A, b)``."""

    def solve(matvec: Callable, b: PyTree, ridge: float | None = None, return_info: bool = False, **_):
        _check_callable(matvec)
        A_op = _with_ridge(matvec, ridge)
        A, unravel = materialize(A_op, b)
        x = unravel(decompose(A, ravel_pytree(b)[0]))
        return _finish(x, A_op, b, 0, return_info)

    solve.__name__ = solve.__qualname__ = name
    solve.__doc__ = f"""{summary}

    Args:
      matvec: the operator (materialized with ``n`` JVPs).
      b: right-hand side.
      ridge: optional diagonal shift.
      return_info: also return a :class:`LinearSolveInfo`.

    Returns:
      ``x`` (and the info when ``return_info``).
    """
    return solve


def _qr_solve(A, v):
    q, r = jnp.linalg.qr(A)
    return jax.scipy.linalg.solve_triangular(r, q.T @ v)


solve_cholesky = _dense_solver(
    lambda A, v: jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(A), v),
    "solve_cholesky", "Dense Cholesky solve of a symmetric positive definite operator.")
solve_lu = _dense_solver(jnp.linalg.solve, "solve_lu", "Dense LU solve of a general square operator.")
solve_inv = _dense_solver(lambda A, v: jnp.linalg.inv(A) @ v, "solve_inv",
                          "Dense solve through the explicit inverse (for small, tested references).")
solve_qr = _dense_solver(_qr_solve, "solve_qr", "Dense QR solve of a general square operator.")


SYMMETRIC_SOLVERS = (solve_cg, solve_cholesky)


def solve_iterative_refinement(
    matvec: Callable,
    b: PyTree,
    ridge: float | None = None,
    solve: Callable | None = None,
    maxiter: int = 10,
    tol: float | None = None,
    init: PyTree | None = None,
    matvec_bar: Callable | None = None,
    return_info: bool = False,
):
    """Iterative refinement: repeated corrections by an inexact inner solver.

    ``x <- x + solve(A_bar + ridge I, b - A x)`` until ``||b - A x|| <= tol ||b||``.
    The inner system may be regularized (``ridge``) or approximate
    (``matvec_bar``); the residual is always that of the exact ``A``, so the
    iterates converge to ``A^{-1} b`` when the inner solve is a good enough
    approximation (e.g. a regularized solve of an ill-conditioned system).

    Args:
      matvec: the operator ``A``.
      b: right-hand side.
      ridge: regularization of the inner solves (default ``1e-6``).
      solve: inner solver ``solve(matvec, b, ridge=...)`` (default :func:`solve_gmres`).
      maxiter: maximum number of corrections (static).
      tol: relative residual tolerance (default :func:`default_tol`).
      init: warm start (defaults to zeros).
      matvec_bar: operator used by the inner solves (default ``matvec``).
      return_info: also return a :class:`LinearSolveInfo`.

    Returns:
      ``x`` (and the info when ``return_info``).

    References:
      Wilkinson, "Rounding Errors in Algebraic Processes", 1963; Higham, "Accuracy and
      Stability of Numerical Algorithms", 2002, chapter 12.
    """
    _check_callable(matvec)
    solve = solve_gmres if solve is None else solve
    inner = matvec if matvec_bar is None else matvec_bar
    ridge = 1e-6 if ridge is None else ridge
    tol = default_tol(b) if tol is None else tol
    threshold = tol * tu.tree_l2_norm(b)
    x0 = tu.tree_zeros_like(b) if init is None else init

    def cond(carry):
        _, r, k = carry
        return (tu.tree_l2_norm(r) > threshold) & (k < maxiter)

    def body(carry):
        x, r, k = carry
        x = tu.tree_add(x, solve(inner, r, ridge=ridge))
        return x, tu.tree_sub(b, matvec(x)), k + 1

    x, r, k = jax.lax.while_loop(cond, body, (x0, tu.tree_sub(b, matvec(x0)), jnp.asarray(0)))
    if return_info:
        return x, LinearSolveInfo(tu.tree_l2_norm(r), k.astype(jnp.int32))
    return x


def solve_sketch(
    matvec: Callable,
    b: PyTree,
    key: jax.Array,
    sketch_size: int = 8,
    maxiter: int = 1000,
    tol: float | None = None,
    ridge: float | None = None,
    init: PyTree | None = None,
    sketch: str = "gaussian",
    return_info: bool = False,
):
    """Randomized iterative sketching (sketch-and-project) for a square system ``A x = b``.

    Each iteration draws a sketch ``S`` (``n x s``) and projects the iterate onto the
    solutions of the sketched system ``S^T A x = S^T b``:
    ``x <- x + A^T S (S^T A A^T S)^+ S^T (b - A x)``. With Gaussian sketches this
    converges linearly in expectation for any non-singular ``A`` (symmetric or not);
    ``sketch="rows"`` picks ``s`` random rows (randomized block Kaczmarz). The operator is
    matrix-free: each iteration costs ``s`` transposed products (one batched ``vjp``)
    and one ``matvec``. Stops when ``||b - A x|| <= tol ||b||`` or after ``maxiter``
    iterations.

    Args:
      matvec: the linear operator ``v -> A v`` on pytrees.
      b: right-hand side, a pytree.
      key: a PRNG key for the sketches.
      sketch_size: number of sketch columns ``s`` per iteration (static; clipped to ``n``).
      maxiter: maximum iterations (static).
      tol: relative residual tolerance (default :func:`default_tol`).
      ridge: optional ``lambda`` added to the diagonal of ``A``.
      init: warm start (defaults to zeros).
      sketch: ``"gaussian"`` (dense Gaussian ``S``) or ``"rows"`` (block Kaczmarz).
      return_info: also return a :class:`LinearSolveInfo`.

    Returns:
      ``x`` (and the info when ``return_info``).

    References:
      Gower and Richtarik, "Randomized iterative methods for linear systems", SIAM J.
      Matrix Anal. Appl., 2015 (arXiv:1506.03296).
    """
    _check_callable(matvec)
    if sketch not in ("gaussian", "rows"):
        raise ValueError(f"`sketch` must be 'gaussian' or 'rows', got {sketch!r}.")
    if isinstance(sketch_size, bool) or not isinstance(sketch_size, int) or sketch_size < 1:
        raise ValueError(f"`sketch_size` must be an int >= 1, got {sketch_size!r}.")
    if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 0:
        raise ValueError(f"`maxiter` must be an int >= 0, got {maxiter!r}.")
    A = _with_ridge(matvec, ridge)
    flat_b, unravel = ravel_pytree(b)
    n = flat_b.shape[0]
    s = min(sketch_size, n)
    dtype = flat_b.dtype
    flat_A = lambda v: ravel_pytree(A(unravel(v)))[0]
    flat_AT = jax.linear_transpose(flat_A, flat_b)
    tol = default_tol(b) if tol is None else tol
    threshold = tol * jnp.linalg.norm(flat_b)
    x0 = jnp.zeros_like(flat_b) if init is None else ravel_pytree(init)[0].astype(dtype)
    eye = jnp.eye(n, dtype=dtype)

    def draw(k):
        if sketch == "gaussian":
            return jax.random.normal(k, (n, s), dtype)
        return eye[:, jax.random.permutation(k, n)[:s]]

    def cond(carry):
        _, r, _, i = carry
        return (jnp.linalg.norm(r) > threshold) & (i < maxiter)

    def body(carry):
        x, r, k, i = carry
        k, sub = jax.random.split(k)
        S = draw(sub)
        ATS = jax.vmap(lambda col: flat_AT(col)[0], in_axes=1, out_axes=1)(S)  # (n, s)
        gram = ATS.T @ ATS
        # Pseudo-inverse through a symmetric eigendecomposition: the sketched Gram matrix
        # is PSD and may be singular (a rank-deficient sketch).
        w, V = jnp.linalg.eigh(gram)
        cutoff = s * jnp.finfo(dtype).eps * jnp.max(w)
        winv = jnp.where(w > cutoff, 1.0 / jnp.where(w > cutoff, w, 1.0), 0.0)
        lam = V @ (winv * (V.T @ (S.T @ r)))
        x = x + ATS @ lam
        return x, flat_b - flat_A(x), k, i + 1

    r0 = flat_b - flat_A(x0)
    x, r, _, k = jax.lax.while_loop(cond, body, (x0, r0, key, jnp.asarray(0)))
    if return_info:
        return unravel(x), LinearSolveInfo(jnp.linalg.norm(r), k.astype(jnp.int32))
    return unravel(x)
