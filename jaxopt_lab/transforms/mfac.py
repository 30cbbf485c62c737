"""M-FAC: matrix-free inverse-Hessian-vector products over a window of gradients."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core.checks import check_int, check_positive, check_update_args


def _check_window(m: int, d: int, name: str) -> None:
    if m > d:
        raise ValueError(f"`{name}` (window size {m}) must be <= the parameter dimension {d}.")


def mfac_ihvp(grads: jax.Array, v: jax.Array, damping: float | jax.Array) -> jax.Array:
    """``(damping * I + (1/m) G^T G)^{-1} v`` for a window ``G`` of ``m`` gradients.

    By the Woodbury identity this equals
    ``(v - G^T (m * damping * I + G G^T)^{-1} G v) / damping``: one ``m x m``
    Cholesky factorization and two products with ``G`` (``O(dm + m^3)``).

    Args:
      grads: ``(m, d)`` array, one gradient per row.
      v: ``(d,)`` vector.
      damping: ``> 0``.

    Returns:
      A ``(d,)`` array.

    References:
      Frantar, Kurtic and Alistarh, "M-FAC: Efficient Matrix-Free Approximations
      of Second-Order Information", 2021 (arXiv:2107.03356), Section 3.1.
    """
    check_positive(damping, "damping")
    if jnp.ndim(grads) != 2:
        raise ValueError(f"`grads` must be an (m, d) array, got shape {jnp.shape(grads)}.")
    m, d = grads.shape
    _check_window(m, d, "grads")
    if jnp.shape(v) != (d,):
        raise ValueError(f"`v` must have shape ({d},), got {jnp.shape(v)}.")
    gram = grads @ grads.T + m * damping * jnp.eye(m, dtype=grads.dtype)
    c = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gram), grads @ v)
    return (v - c @ grads) / damping  # c @ G avoids materializing G^T on CPU


class ScaleByMfacState(NamedTuple):
    """State of :func:`scale_by_mfac`.

    Attributes:
      count: steps taken (int32).
      grads: ``(m, d)`` ring buffer of flattened gradients (zeros before filled).
      gram: ``G G^T``.
      inv: ``(m * damping * I + G G^T)^{-1}``, kept up to date in ``O(m^2)``.
      damping: the damping ``inv`` was computed with.
    """

    count: jax.Array
    grads: jax.Array
    gram: jax.Array
    inv: jax.Array
    damping: jax.Array


def scale_by_mfac(num_grads: int | None = None, damping: float = 1e-4) -> optax.GradientTransformation:
    """Precondition by the inverse of ``damping * I + (1/m) sum_i g_i g_i^T``.

    The dynamic algorithm: each step replaces the oldest gradient of the window,
    updates the Gram matrix row (``O(dm)``) and the inverse of
    ``m * damping * I + G G^T`` by a rank-2 Woodbury correction (``O(m^2)``), and
    returns ``F^{-1} g = (g - G^T inv (G g)) / damping`` where ``G g`` is the new
    Gram row, so a step costs ``O(dm + m^2)``. To bound rounding drift the inverse
    is recomputed by Cholesky every ``m`` steps (``O(m^3 / m)`` amortized) and
    whenever ``damping`` changes. Gradients are flattened over the pytree; the
    window is empty (zeros) at the start. For bfloat16 gradients the state is
    float32 and the update is cast back.

    Args:
      num_grads: window size ``m`` (a static Python int ``<=`` the parameter count;
        ``None`` means 8). It sets the window's shape: under ``optax.inject_hyperparams``
        pass it in ``static_args`` (left at ``None`` it needs nothing).
      damping: ``lambda > 0``.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Frantar, Kurtic and Alistarh, "M-FAC: Efficient Matrix-Free Approximations
      of Second-Order Information", 2021 (arXiv:2107.03356), Section 3.2.
    """
    m = 8 if num_grads is None else check_int(num_grads, "num_grads", minimum=1)
    check_positive(damping, "damping")

    def _dtype(tree):
        flat = ravel_pytree(tree)[0]
        return jnp.promote_types(flat.dtype, jnp.float32), flat.shape[0]

    def init(params):
        dtype, d = _dtype(params)
        _check_window(m, d, "num_grads")
        lam = jnp.asarray(damping, dtype)
        return ScaleByMfacState(jnp.zeros([], jnp.int32), jnp.zeros((m, d), dtype),
                                jnp.zeros((m, m), dtype), jnp.eye(m, dtype=dtype) / (m * lam), lam)

    def update(grads, state, params=None):
        check_update_args("scale_by_mfac", grads, params)
        flat, unravel = ravel_pytree(grads)
        if flat.shape[0] != state.grads.shape[1]:
            raise ValueError(f"grads: {flat.shape[0]} entries in all, but the M-FAC state was "
                             f"initialized for {state.grads.shape[1]}.")
        dtype = state.grads.dtype
        g = flat.astype(dtype)
        lam = jnp.asarray(damping, dtype)
        i = state.count % m
        G = state.grads.at[i].set(g)
        row = G @ g                                   # new Gram row, also G g: O(dm)
        gram = state.gram.at[i].set(row).at[:, i].set(row)
        # Rank-2 Woodbury: gram' - gram = e_i a^T + a e_i^T with a = delta - delta_i/2 e_i.
        delta = row - state.gram[i]
        a = delta.at[i].add(-0.5 * delta[i])
        W = state.inv
        WU = jnp.stack([W[:, i], W @ a], axis=1)      # (m, 2)
        U = jnp.stack([jnp.zeros(m, dtype).at[i].set(1.0), a], axis=1)
        S = jnp.asarray([[0.0, 1.0], [1.0, 0.0]], dtype) + U.T @ WU
        inv = W - WU @ jnp.linalg.solve(S, WU.T)
        exact = lambda _: jnp.linalg.inv(gram + m * lam * jnp.eye(m, dtype=dtype))
        refresh = (i == m - 1) | (lam != state.damping)
        inv = jax.lax.cond(refresh, exact, lambda _: inv, None)
        # (inv @ row) @ G, not G.T @ (...): XLA:CPU would materialize the (d, m) transpose
        # of the window every step (an extra O(dm) copy), which hid the linear scaling.
        out = (g - (inv @ row) @ G) / lam
        upd = unravel(out.astype(flat.dtype))
        upd = jax.tree_util.tree_map(lambda u, x: u.astype(x.dtype), upd, grads)
        return upd, ScaleByMfacState(state.count + 1, G, gram, inv, lam)

    return optax.GradientTransformation(init, update)


def mfac(learning_rate: optax.ScalarOrSchedule, num_grads: int | None = None,
         damping: float = 1e-4) -> optax.GradientTransformation:
    """M-FAC preconditioned gradient descent: ``chain(scale_by_mfac, scale_by_learning_rate)``.

    Args:
      learning_rate: step size or schedule.
      num_grads, damping: see :func:`scale_by_mfac`.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Frantar, Kurtic and Alistarh, 2021 (arXiv:2107.03356).
    """
    return optax.chain(scale_by_mfac(num_grads, damping), optax.scale_by_learning_rate(learning_rate))
