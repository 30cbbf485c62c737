"""Quasi-Newton methods with a dense inverse-Hessian approximation (BFGS, DFP)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.solvers.quasi_newton._helpers import curvature_pair, first_stepsize
from jaxopt_lab.solvers.quasi_newton._step import QuasiNewtonSolver


class DenseApprox(NamedTuple):
    """A dense inverse-Hessian approximation.

    Attributes:
      H: inverse-Hessian approximation, shape ``(n, n)`` for ``n`` (real) parameters.
    """

    H: jax.Array


@dataclasses.dataclass(eq=False, kw_only=True)
class DenseQuasiNewton(QuasiNewtonSolver):
    """Base of the quasi-Newton methods that keep a dense inverse Hessian ``H``.

    Steps along ``-H g`` (along ``-g`` where that is not a descent direction; the first
    trial step is ``1 / ||g||`` on the first iteration, then 1). ``H`` starts at ``I`` and
    is replaced by ``<s, y> / <y, y> I`` before the first update (Nocedal and Wright,
    eq. 6.20); a pair failing the curvature test ``<s, y> > eps <y, y>``, or from a failed
    search, leaves ``H`` unchanged. A variant writes only ``_inverse_update``.
    """

    def _inverse_update(self, H: jax.Array, s: jax.Array, y: jax.Array, sy: jax.Array) -> jax.Array:
        """``H`` after the flat pair ``(s, y)`` with ``sy = <s, y> > 0``."""
        raise NotImplementedError

    def _init_approx(self, x, value, grad) -> DenseApprox:
        n = ravel_pytree(x)[0].shape[0]
        return DenseApprox(jnp.eye(n, dtype=jnp.result_type(value)))

    def _direction(self, x, grad, state, ctx):
        g_flat, unravel = ravel_pytree(grad)
        H = state.approx.H
        d_flat = -(H @ g_flat.astype(H.dtype))
        d_flat = jnp.where(jnp.dot(d_flat, g_flat) < 0, d_flat, -g_flat)  # not descent: -g
        first = state.iter_num == 0
        init_t = jnp.where(first, first_stepsize(state.error, H.dtype), 1.0)
        return unravel(d_flat.astype(g_flat.dtype)), init_t

    def _update_approx(self, state, x, grad, direction, ls, x_new) -> DenseApprox:
        H = state.approx.H
        dtype = H.dtype
        s, y, sy, yy, good = curvature_pair(x, x_new, grad, ls.grad, ls.failed, dtype)
        s, y = ravel_pytree(s)[0].astype(dtype), ravel_pytree(y)[0].astype(dtype)
        eye = jnp.eye(s.shape[0], dtype=dtype)
        H0 = jnp.where(state.iter_num == 0, sy / jnp.where(good, yy, 1.0) * eye, H)
        return DenseApprox(jnp.where(good, self._inverse_update(H0, s, y, jnp.where(good, sy, 1.0)), H))
