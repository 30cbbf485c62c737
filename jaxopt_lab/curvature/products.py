"""Hessian-vector and Gauss-Newton-vector products."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxopt_lab.core.checks import check_callable


def hvp(fun: Callable, params: Any, v: Any, *args, **kwargs) -> Any:
    """Hessian-vector product ``nabla^2 fun(params) v`` by forward-over-reverse.

    Costs about two gradient evaluations and never forms the Hessian.

    Args:
      fun: scalar function ``fun(params, *args, **kwargs)``.
      params: point (a pytree).
      v: direction, a pytree like ``params``.
      *args, **kwargs: passed to ``fun``.

    Returns:
      A pytree like ``params``.

    References:
      Pearlmutter, "Fast exact multiplication by the Hessian", 1994.
    """
    check_callable(fun, "fun")
    grad = jax.grad(lambda p: fun(p, *args, **kwargs))
    return jax.jvp(grad, (params,), (v,))[1]


def gnvp(model_fn: Callable, loss_fn: Callable, params: Any, v: Any, *args, **kwargs) -> Any:
    """Gauss-Newton-vector product ``J^T H_L J v`` of ``loss_fn(model_fn(params))``.

    ``J`` is the Jacobian of the model output with respect to ``params`` and
    ``H_L`` the Hessian of ``loss_fn`` with respect to the output; the product is
    positive semi-definite whenever ``loss_fn`` is convex in the output.

    Args:
      model_fn: ``model_fn(params, *args, **kwargs) -> outputs`` (a pytree).
      loss_fn: ``loss_fn(outputs) -> scalar``.
      params: point (a pytree).
      v: direction, a pytree like ``params``.
      *args, **kwargs: passed to ``model_fn``.

    Returns:
      A pytree like ``params``.

    References:
      Schraudolph, "Fast curvature matrix-vector products for second-order
      gradient descent", 2002.
    """
    check_callable(model_fn, "model_fn")
    check_callable(loss_fn, "loss_fn")
    f = lambda p: model_fn(p, *args, **kwargs)
    out, jv = jax.jvp(f, (params,), (v,))
    hjv = jax.jvp(jax.grad(loss_fn), (out,), (jv,))[1]
    _, vjp = jax.vjp(f, params)
    return vjp(hjv)[0]
