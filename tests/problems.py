"""Test problems with known solutions, each also in a nested-dict pytree form.

- quadratic: ``0.5 x^T Q x - c^T x`` with a chosen condition number; ``x* = Q^{-1} c``.
- rosenbrock: ``sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``; ``x* = 1``.
- ridge: ``0.5 ||A x - b||^2 + 0.5 lam ||x||^2`` with
  ``x*(lam) = (A^T A + lam I)^{-1} A^T b`` and ``dx*/dlam = -(A^T A + lam I)^{-1} x*``.
- logistic: L2-regularized binary logistic regression (smooth, strongly convex).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def quadratic(d: int = 8, cond: float = 10.0, seed: int = 0, dtype=jnp.float64):
    """Return ``(fun, x0, x_star)`` for a quadratic with condition number ``cond``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.logspace(0, np.log10(cond), d)
    Q = jnp.asarray((q * eig) @ q.T, dtype)
    c = jnp.asarray(rng.standard_normal(d), dtype)
    fun = lambda x: 0.5 * x @ (Q @ x) - c @ x
    x_star = np.linalg.solve(np.asarray(Q, np.float64), np.asarray(c, np.float64))  # LAPACK has no bf16
    return fun, jnp.zeros(d, dtype), jnp.asarray(x_star, dtype)


def rosenbrock(d: int = 4, dtype=jnp.float64):
    """Return ``(fun, x0, x_star)`` for the Rosenbrock function."""
    fun = lambda x: jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    x0 = jnp.asarray(np.tile([-1.2, 1.0], d // 2), dtype)
    return fun, x0, jnp.ones(d, dtype)


def ridge_data(n: int = 40, d: int = 6, seed: int = 0, dtype=jnp.float64):
    """Random ``(A, b)`` for ridge regression."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((n, d)), dtype), jnp.asarray(rng.standard_normal(n), dtype)


def ridge_fun(x, lam, A, b):
    """Ridge objective ``0.5 ||A x - b||^2 + 0.5 lam ||x||^2``."""
    r = A @ x - b
    return 0.5 * jnp.sum(r**2) + 0.5 * lam * jnp.sum(x**2)


def ridge_solution(lam, A, b):
    """Closed-form ridge solution."""
    d = A.shape[1]
    return jnp.linalg.solve(A.T @ A + lam * jnp.eye(d, dtype=A.dtype), A.T @ b)


def ridge_solution_derivative(lam, A, b):
    """Closed-form ``dx*/dlam = -(A^T A + lam I)^{-1} x*``."""
    d = A.shape[1]
    H = A.T @ A + lam * jnp.eye(d, dtype=A.dtype)
    return -jnp.linalg.solve(H, ridge_solution(lam, A, b))


def logistic_data(n: int = 60, d: int = 5, seed: int = 0, dtype=jnp.float64):
    """Random binary classification data ``(X, y)`` with labels in {0, 1}."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(float)
    return jnp.asarray(X, dtype), jnp.asarray(y, dtype)


def logistic_fun(w, lam, X, y):
    """Mean logistic loss plus ``0.5 lam ||w||^2``."""
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * lam * jnp.sum(w**2)


def to_tree(x):
    """Split a flat vector into a nested-dict pytree (and back with :func:`from_tree`)."""
    k = x.shape[0] // 2
    return {"a": x[:k], "b": {"c": x[k:]}}


def from_tree(t):
    """Inverse of :func:`to_tree`."""
    return jnp.concatenate([t["a"], t["b"]["c"]])


def tree_version(fun):
    """``fun`` of a flat vector turned into a function of the nested-dict pytree."""
    return lambda t, *args, **kwargs: fun(from_tree(t), *args, **kwargs)
