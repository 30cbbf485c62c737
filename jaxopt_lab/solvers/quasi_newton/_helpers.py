"""What the quasi-Newton step uses besides its skeleton: the real view of complex params,
the curvature pair of a step, the first trial step and the float32 no-progress rule."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.types import Status

# Iterations in a row without progress after which a solve ends STALLED.
NO_PROGRESS_ITERS = 5


def no_progress(x, x_new, value, new_value, error, new_error, failed, dtype) -> jax.Array:
    """Whether an accepted step made no progress that the dtype can show.

    True when the step is at the rounding level of ``x`` (``||x_new - x|| <= 10 eps ||x||``),
    ``f`` did not decrease by more than four of its ulps and the error did not halve. In
    ``f``'s rounding regime a line search can keep accepting (approximate-Wolfe) steps that
    only move ``x`` by an ulp or not at all; a run of such steps is a stall, not progress.
    A healthy solve has either a step above rounding or a shrinking error.

    Args:
      x, x_new: the points before and after the step (pytrees).
      value, new_value: ``f`` there.
      error, new_error: the stopping measure there.
      failed: whether the line search failed (a failure is reported by its own status).
      dtype: the real dtype of ``f``.

    Returns:
      A boolean scalar.
    """
    eps = jnp.finfo(dtype).eps
    step = tu.tree_l2_norm(tu.tree_sub(x_new, x)).astype(dtype)
    tiny_step = step <= 10 * eps * tu.tree_l2_norm(x).astype(dtype)
    no_decrease = new_value >= value - 4 * eps * jnp.abs(value)
    no_error_drop = ~(new_error < 0.5 * error)
    return ~failed & tiny_step & no_decrease & no_error_drop


def stall_count(state, x, x_new, new_value, new_error, failed, status, tol):
    """``(num_no_progress, status)`` after the step ``x -> x_new``.

    The count of steps in a row without progress (:func:`no_progress`) goes up or back
    to 0; at :data:`NO_PROGRESS_ITERS` a running solve that has not reached ``tol`` ends
    ``STALLED`` (``tol`` below the dtype's reach) instead of running to ``maxiter``.

    Args:
      state: the quasi-Newton state before the step.
      x, x_new: the points before and after the step.
      new_value, new_error: ``f`` and the stopping measure at ``x_new``.
      failed: whether the line search failed.
      status: the status after the line search.
      tol: the solver's tolerance.

    Returns:
      A tuple ``(count, status)``.
    """
    dtype = jnp.result_type(state.value)
    idle = no_progress(x, x_new, state.value, new_value, state.error, new_error, failed, dtype)
    count = jnp.where(idle, state.num_no_progress + 1, 0).astype(jnp.int32)
    stall = (status == Status.RUNNING) & (count >= NO_PROGRESS_ITERS) & ~(new_error <= tol)
    return count, jnp.where(stall, Status.STALLED, status)


class ComplexView:
    """Complex params seen as real ones: each complex leaf becomes a real array with a
    trailing axis of 2 (real part, imaginary part).

    In this view the inner product is ``Re <x, y>`` and the gradient of a real ``f`` is
    ``conj(jax.grad(f))`` (jaxopt's convention for complex inputs), so every real-valued
    quasi-Newton formula applies unchanged.

    Args:
      like: a params pytree (its complex leaves are the ones converted).
    """

    def __init__(self, like):
        self._complex = jax.tree_util.tree_map(jnp.iscomplexobj, like)

    def to_real(self, tree):
        """A params-shaped pytree in the real view."""
        return jax.tree_util.tree_map(
            lambda c, a: jnp.stack([jnp.real(a), jnp.imag(a)], axis=-1) if c else a, self._complex, tree)

    def from_real(self, tree):
        """A real-view pytree back as params."""
        return jax.tree_util.tree_map(
            lambda c, a: jax.lax.complex(a[..., 0], a[..., 1]) if c else a, self._complex, tree)


def is_complex(tree) -> bool:
    """Whether a pytree has a complex leaf."""
    return any(jnp.iscomplexobj(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def real_problem(value_and_grad: Callable, params, args, kwargs):
    """``(x, x -> ((f, aux), g), view)``: ``fun`` bound to its arguments, over real params.

    Real params are returned as they are (``view`` is None); complex ones in their
    :class:`ComplexView`, with the gradient ``conj(jax.grad(f))`` in that view.

    Args:
      value_and_grad: ``(params, *args, **kwargs) -> ((f, aux), jax.grad(f))``.
      params: the current point.
      args, kwargs: the further arguments of ``fun``.

    Returns:
      A tuple ``(x, value_and_grad_of_x, view)``.
    """
    if not is_complex(params):
        return params, lambda x: value_and_grad(x, *args, **kwargs), None
    view = ComplexView(params)

    def real_vg(x):
        out, grad = value_and_grad(view.from_real(x), *args, **kwargs)
        return out, view.to_real(tu.tree_conj(grad))
    return view.to_real(params), real_vg, view


def curvature_pair(x, x_new, g, g_new, failed, dtype):
    """``(s, y, <s, y>, <y, y>, good)`` for the step ``x -> x_new``.

    ``good`` keeps the pair only with positive curvature ``<s, y> > eps <y, y>`` after a
    successful search, which keeps a BFGS-type approximation positive definite.

    Args:
      x, x_new: the points (pytrees).
      g, g_new: the gradients there.
      failed: whether the line search failed.
      dtype: dtype of the inner products.

    Returns:
      A tuple ``(s, y, sy, yy, good)``.
    """
    s, y = tu.tree_sub(x_new, x), tu.tree_sub(g_new, g)
    sy, yy = tu.tree_vdot(s, y).astype(dtype), tu.tree_vdot(y, y).astype(dtype)
    return s, y, sy, yy, (sy > jnp.finfo(dtype).eps * yy) & ~failed


def first_stepsize(norm, dtype):
    """``min(1, 1 / norm)``: the first trial step along an unscaled direction of that norm.

    Args:
      norm: the direction's norm.
      dtype: the dtype of the step.

    Returns:
      A scalar of ``dtype``.
    """
    return jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.asarray(norm, dtype), jnp.finfo(dtype).tiny))
