"""Estimators chosen by name (``METHODS``, ``estimate``), wrapped as ``jax.value_and_grad``-like
functions and as ``custom_jvp`` black boxes (forward and reverse mode)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab.core.checks import check_callable
from jaxopt_lab.zeroth_order import _perturbations
from jaxopt_lab.zeroth_order.coordinate import cge
from jaxopt_lab.zeroth_order.randomized import forward_gradient, rge, spsa

# name -> (estimator, whether it takes a PRNG key)
METHODS: dict[str, tuple[Callable, bool]] = {
    "rge": (rge, True),
    "spsa": (spsa, True),
    "forward_gradient": (forward_gradient, True),
    "cge": (cge, False),
}


def check_method(method: str, options: dict) -> tuple[Callable, bool]:
    """Look up ``method`` and check its ``options`` before any tracing.

    Args:
      method: one of ``"rge"``, ``"cge"``, ``"spsa"``, ``"forward_gradient"``.
      options: keyword options for the estimator.

    Returns:
      ``(estimator, needs_key)``.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {sorted(METHODS)}, got {method!r}.")
    estimator, needs_key = METHODS[method]
    allowed = {p.name for p in inspect.signature(estimator).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)} for method {method!r}; "
                        f"allowed: {sorted(allowed)}.")
    _perturbations.check_options(options.get("num_directions"), options.get("smoothing"),
                          options.get("chunk_size"))
    return estimator, needs_key


def estimate(method: str, fun: Callable, params: Any, key, args=(), kwargs=None, **options):
    """Call estimator ``method`` uniformly (``key`` is ignored by ``cge``).

    Args:
      method: estimator name (see :func:`check_method`).
      fun: ``fun(params, *args, **kwargs) -> scalar``.
      params: a pytree of float arrays.
      key: a PRNG key (``None`` only for ``cge``).
      args, kwargs: passed to ``fun``.
      **options: estimator options.

    Returns:
      ``(value, grad_estimate)``.
    """
    estimator, needs_key = check_method(method, options)
    kwargs = {} if kwargs is None else kwargs
    if needs_key:
        if key is None:
            raise ValueError(f"`key` (a PRNG key) is required by method {method!r}.")
        return estimator(fun, params, key, *args, **options, **kwargs)
    return estimator(fun, params, *args, **options, **kwargs)


def value_and_grad(fun: Callable, method: str = "rge", **options) -> Callable:
    """A zeroth-order counterpart of ``jax.value_and_grad``.

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar``.
      method: ``"rge"``, ``"cge"``, ``"spsa"`` or ``"forward_gradient"``.
      **options: estimator options (``num_directions``, ``smoothing``, ``difference``,
        ``distribution``, ``mask``, ``chunk_size`` ...), checked now.

    Returns:
      ``vg(params, *args, key=None, **kwargs) -> (value, grad_estimate)``; ``key`` is
      required by every method except ``"cge"``.

    References:
      Liu et al., "A primer on zeroth-order optimization in signal processing and
      machine learning", 2020 (arXiv:2006.06224).
    """
    check_callable(fun, "fun")
    check_method(method, options)

    def vg(params, *args, key=None, **kwargs):
        return estimate(method, fun, params, key, args, kwargs, **options)

    return vg


def blackbox(fun: Callable, method: str = "rge", **options) -> Callable:
    """Wrap a (possibly non-differentiable) scalar function with a zeroth-order derivative.

    The primal pass returns ``fun(params, *args)``. Its derivative with respect to
    ``params`` is the ``method`` estimate ``g``: the rule is a ``jax.custom_jvp`` whose
    output tangent ``<g, dparams>`` is linear in the tangent, so forward mode
    (``jax.jvp``, ``jax.jacfwd``) uses it directly and reverse mode (``jax.grad``,
    ``jax.vjp``) transposes it. Both modes see the same ``g`` for the same ``key``, so
    ``jvp(v) == <grad, v>`` up to rounding. A black-box term can thus sit inside an
    otherwise differentiable loss. ``*args`` are treated as constants (their tangents
    are ignored, like ``lax.stop_gradient``); derivatives of ``g`` itself (Hessians) are
    not defined.

    Args:
      fun: ``fun(params, *args) -> scalar``; need not be traceable by autodiff.
      method: ``"rge"``, ``"cge"``, ``"spsa"`` or ``"forward_gradient"``.
      **options: estimator options, checked now.

    Returns:
      ``wrapped(params, *args, key=None) -> scalar``; ``key`` is required except for ``cge``.

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025).
    """
    check_callable(fun, "fun")
    _, needs_key = check_method(method, options)

    @jax.custom_jvp
    def call(params, key, args):
        return fun(params, *args)

    @call.defjvp
    def call_jvp(primals, tangents):
        params, key, args = primals
        dparams = tangents[0]
        value, g = estimate(method, fun, params, key, args, **options)
        value = jax.lax.stop_gradient(value)
        g = jax.lax.stop_gradient(g)
        # <g, dparams>: linear in the tangent, so JAX can transpose it for reverse mode.
        dots = [jnp.sum(a.astype(value.dtype) * b.astype(value.dtype))
                for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(dparams),
                                strict=True)]
        return value, sum(dots, jnp.zeros((), value.dtype))

    def wrapped(params, *args, key=None):
        if needs_key and key is None:
            raise ValueError(f"`key` (a PRNG key) is required by method {method!r}.")
        k = jnp.zeros((2,), jnp.uint32) if key is None else key
        return call(params, k, args)

    return wrapped
