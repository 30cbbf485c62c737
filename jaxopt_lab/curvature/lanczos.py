"""Lanczos extreme eigenvalues and stochastic Lanczos quadrature (SLQ) densities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core.checks import check_callable, check_int, check_positive
from jaxopt_lab.curvature.probes import rademacher_like


class LanczosResult(NamedTuple):
    """Output of :func:`lanczos`.

    Attributes:
      eigenvalues: the ``num_iters`` Ritz values, ascending; the first and last
        approximate the smallest and largest eigenvalues.
      eigenvectors: Ritz vectors, a pytree like ``params`` with a leading
        ``num_iters`` axis (row ``i`` belongs to ``eigenvalues[i]``).
      alphas, betas: diagonal (``num_iters``) and off-diagonal (``num_iters - 1``)
        of the Lanczos tridiagonal matrix.
      weights: squared first components of the tridiagonal's eigenvectors
        (the Gauss quadrature weights used by SLQ; they sum to 1).
    """

    eigenvalues: jax.Array
    eigenvectors: Any
    alphas: jax.Array
    betas: jax.Array
    weights: jax.Array


class SLQResult(NamedTuple):
    """Output of :func:`slq_density`.

    Attributes:
      grid: points where the density is evaluated.
      density: estimated spectral density on ``grid`` (integrates to about 1).
      nodes: Ritz values per probe, shape ``(n_samples, num_iters)``.
      weights: quadrature weights per probe, same shape; for a function ``f``,
        ``d * mean(sum(weights * f(nodes), axis=1))`` estimates ``tr f(H)``.
    """

    grid: jax.Array
    density: jax.Array
    nodes: jax.Array
    weights: jax.Array


def lanczos(matvec: Callable, params: Any, key: jax.Array, num_iters: int) -> LanczosResult:
    """Lanczos tridiagonalization with full reorthogonalization.

    Builds an orthonormal basis of the Krylov space of ``matvec`` from a
    Rademacher start vector; the eigenvalues of the ``num_iters x num_iters``
    tridiagonal matrix (Ritz values) converge first to the extreme eigenvalues.
    On breakdown (an invariant subspace) the basis is continued with a fresh
    random vector, so ``num_iters = dim`` recovers the whole spectrum.

    Args:
      matvec: symmetric linear map on pytrees like ``params`` (e.g.
        ``lambda v: hvp(loss, params, v)``).
      params: a pytree fixing the structure, shapes and dtype.
      key: PRNG key for the start vector.
      num_iters: Krylov dimension (static int, ``1 <= num_iters <= dim``).

    Returns:
      A :class:`LanczosResult`.

    References:
      Lanczos, "An iteration method for the solution of the eigenvalue problem
      of linear differential and integral operators", 1950; Ghorbani, Krishnan
      and Xiao, "An Investigation into Neural Net Optimization via Hessian
      Eigenvalue Density", 2019 (arXiv:1901.10159).
    """
    check_callable(matvec, "matvec")
    flat, unravel = ravel_pytree(params)
    d = flat.shape[0]
    check_int(num_iters, "num_iters", minimum=1)
    if num_iters > d:
        raise ValueError(f"`num_iters` must be <= the dimension {d}, got {num_iters}.")
    dtype = flat.dtype
    mv = lambda x: ravel_pytree(matvec(unravel(x)))[0].astype(dtype)
    eps = jnp.finfo(dtype).eps

    def fresh(k):
        return ravel_pytree(rademacher_like(k, params))[0]

    def orth(V, w):
        for _ in range(2):  # twice is enough (Parlett's "twice is enough")
            w = w - V.T @ (V @ w)
        return w

    v0 = fresh(key)
    v0 = v0 / jnp.linalg.norm(v0)

    def body(j, carry):
        V, v, v_prev, beta_prev, alphas, betas = carry
        V = V.at[j].set(v)
        w = mv(v)
        alpha = jnp.vdot(w, v)
        w = orth(V, w - alpha * v - beta_prev * v_prev)
        beta = jnp.linalg.norm(w)
        scale = jnp.abs(alpha) + beta_prev + beta
        broke = beta <= 1e3 * eps * scale + jnp.finfo(dtype).tiny
        # A Gaussian vector (never exactly in the Krylov space), orthogonalized and
        # normalized twice so that tiny remainders do not lose orthogonality.
        r = jax.random.normal(jax.random.fold_in(key, j + 1), (d,), dtype)
        for _ in range(2):
            r = orth(V, r)
            r = r / jnp.maximum(jnp.linalg.norm(r), jnp.finfo(dtype).tiny)
        v_next = jnp.where(broke, r, w / jnp.where(broke, 1.0, beta))
        beta = jnp.where(broke, 0.0, beta)
        return V, v_next, v, beta, alphas.at[j].set(alpha), betas.at[j].set(beta)

    zeros = jnp.zeros((num_iters,), dtype)
    init = (jnp.zeros((num_iters, d), dtype), v0, jnp.zeros_like(v0), jnp.zeros([], dtype),
            zeros, zeros)
    V, _, _, _, alphas, betas = jax.lax.fori_loop(0, num_iters, body, init)
    betas = betas[:-1]
    T = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
    theta, S = jnp.linalg.eigh(T)
    vecs = jax.vmap(unravel)((V.T @ S).T)
    return LanczosResult(theta, vecs, alphas, betas, S[0] ** 2)


def slq_density(matvec: Callable, params: Any, key: jax.Array, num_iters: int, *,
                n_samples: int = 1, num_points: int = 256, sigma: float | None = None,
                grid: jax.Array | None = None) -> SLQResult:
    """Spectral density of a symmetric operator by stochastic Lanczos quadrature.

    Each of ``n_samples`` Rademacher probes ``v`` gives a Gauss quadrature
    ``{(theta_j, tau_j)}`` of the spectral measure ``v^T delta(H - t) v / ||v||^2``;
    the density is their average smoothed by Gaussians of width ``sigma``.

    Args:
      matvec: symmetric linear map on pytrees like ``params``.
      params: a pytree fixing the structure, shapes and dtype.
      key: PRNG key (one sub-key per probe).
      num_iters: Lanczos steps per probe (static).
      n_samples: number of probes (static int ``>= 1``), run in one ``vmap``.
      num_points: grid size when ``grid`` is not given (static).
      sigma: Gaussian width (default: 1% of the Ritz value range).
      grid: evaluation points (default: ``num_points`` points spanning the Ritz
        values with a margin of ``5 sigma``).

    Returns:
      An :class:`SLQResult`.

    References:
      Ubaru, Chen and Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
      quadrature", 2017; Ghorbani, Krishnan and Xiao, 2019 (arXiv:1901.10159).
    """
    check_int(n_samples, "n_samples", minimum=1)
    check_positive(sigma, "sigma")
    keys = jax.random.split(key, n_samples)
    res = jax.vmap(lambda k: lanczos(matvec, params, k, num_iters))(keys)
    nodes, weights = res.eigenvalues, res.weights
    lo, hi = jnp.min(nodes), jnp.max(nodes)
    width = jnp.maximum(hi - lo, 1e-6 * jnp.maximum(jnp.abs(hi), 1.0))
    s = 0.01 * width if sigma is None else jnp.asarray(sigma, nodes.dtype)
    if grid is None:
        grid = jnp.linspace(lo - 5 * s, hi + 5 * s, num_points, dtype=nodes.dtype)
    diff = grid[:, None, None] - nodes[None]
    kern = jnp.exp(-0.5 * (diff / s) ** 2) / (s * jnp.sqrt(2 * jnp.pi))
    density = jnp.mean(jnp.sum(weights[None] * kern, axis=-1), axis=-1)
    return SLQResult(grid, density, nodes, weights)
