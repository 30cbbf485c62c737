"""Stochastic estimators of the Hessian diagonal and trace, and of the
Gauss-Newton and empirical Fisher diagonals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int
from jaxopt_lab.curvature.probes import rademacher_like


def _probe_products(fun, params, key, n_samples, args, kwargs):
    """Probes ``z`` (leading axis ``n_samples``) and ``z * (H z)``."""
    check_callable(fun, "fun")
    check_int(n_samples, "n_samples", minimum=1)
    z = rademacher_like(key, params, n_samples)
    grad = jax.grad(lambda p: fun(p, *args, **kwargs))
    hz = jax.vmap(lambda v: jax.jvp(grad, (params,), (v,))[1])(z)
    return jax.tree_util.tree_map(lambda a, b: a * b, z, hz)


def hutchinson_diag(fun: Callable, params: Any, key: jax.Array, *args, n_samples: int = 1,
                    **kwargs) -> Any:
    """Unbiased estimate of the Hessian diagonal, ``mean_i z_i * (H z_i)``.

    With Rademacher ``z``, ``E[z * Hz] = diag(H)``; the variance of entry ``j`` for
    one probe is ``sum_{k != j} H_jk^2``, divided by ``n_samples`` for the mean.

    Args:
      fun: scalar function ``fun(params, *args, **kwargs)``.
      params: point (a pytree).
      key: PRNG key for the probes.
      *args, **kwargs: passed to ``fun``.
      n_samples: number of probes (static int ``>= 1``), evaluated in one ``vmap``.

    Returns:
      A pytree like ``params``.

    References:
      Bekas, Kokiopoulou and Saad, "An estimator for the diagonal of a matrix",
      2007; Yao et al., "ADAHESSIAN: An Adaptive Second Order Optimizer for
      Machine Learning", 2020 (arXiv:2006.00719).
    """
    zhz = _probe_products(fun, params, key, n_samples, args, kwargs)
    return jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=0), zhz)


def hutchinson_trace(fun: Callable, params: Any, key: jax.Array, *args, n_samples: int = 1,
                     **kwargs) -> jax.Array:
    """Unbiased estimate of the Hessian trace, ``mean_i z_i^T H z_i``.

    Args:
      fun: scalar function ``fun(params, *args, **kwargs)``.
      params: point (a pytree).
      key: PRNG key for the probes.
      *args, **kwargs: passed to ``fun``.
      n_samples: number of Rademacher probes (static int ``>= 1``); the variance
        of one probe is ``2 sum_{j != k} H_jk^2``.

    Returns:
      A scalar array.

    References:
      Hutchinson, "A stochastic estimator of the trace of the influence matrix
      for Laplacian smoothing splines", 1990.
    """
    zhz = _probe_products(fun, params, key, n_samples, args, kwargs)
    sums = [jnp.sum(x.reshape(n_samples, -1), axis=1) for x in jax.tree_util.tree_leaves(zhz)]
    return jnp.mean(sum(sums))


def gnb_diag(logits_fn: Callable, params: Any, key: jax.Array, *args, n_samples: int = 1,
             **kwargs) -> Any:
    """Gauss-Newton-Bartlett estimate of the Gauss-Newton diagonal of a softmax
    cross-entropy loss, with labels sampled from the model.

    For ``logits_fn(params)`` of shape ``(..., C)`` (``B`` rows) and the mean
    cross-entropy ``L``, labels ``y_hat ~ softmax(logits)`` give a gradient
    ``g_hat`` of ``L(params; y_hat)``; ``B * g_hat * g_hat`` is an unbiased estimate
    of the diagonal of the Gauss-Newton matrix ``(1/B) sum_b J_b^T (diag(p_b) -
    p_b p_b^T) J_b`` (Bartlett's identity). The model is evaluated once; each
    sample costs one vector-Jacobian product.

    Args:
      logits_fn: ``logits_fn(params, *args, **kwargs) -> logits`` of shape ``(..., C)``.
      params: point (a pytree).
      key: PRNG key for the sampled labels.
      *args, **kwargs: passed to ``logits_fn``.
      n_samples: number of label draws averaged (static int ``>= 1``).

    Returns:
      A pytree like ``params``.

    References:
      Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for
      Language Model Pre-training", 2023 (arXiv:2305.14342), Algorithm 2.
    """
    check_callable(logits_fn, "logits_fn")
    check_int(n_samples, "n_samples", minimum=1)
    logits, vjp = jax.vjp(lambda p: logits_fn(p, *args, **kwargs), params)
    n_rows = logits.size // logits.shape[-1]
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    labels = jax.random.categorical(key, logits.astype(jnp.float32), axis=-1,
                                    shape=(n_samples, *logits.shape[:-1]))

    def one(y):
        cot = (probs - jax.nn.one_hot(y, logits.shape[-1])) / n_rows
        g = vjp(cot.astype(logits.dtype))[0]
        return jax.tree_util.tree_map(lambda x: n_rows * x * x, g)

    est = jax.vmap(one)(labels)
    return jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=0), est)


def fisher_diag(loss_fn: Callable, params: Any, *args, **kwargs) -> Any:
    """Diagonal of the empirical Fisher ``(1/n) sum_i g_i g_i^T``.

    Args:
      loss_fn: ``loss_fn(params, *args, **kwargs) -> (n,)`` per-example losses;
        ``g_i`` is the gradient of the ``i``-th.
      params: point (a pytree).
      *args, **kwargs: passed to ``loss_fn``.

    Returns:
      A pytree like ``params``: ``(1/n) sum_i g_i * g_i``.

    References:
      Kunstner, Balles and Hennig, "Limitations of the empirical Fisher
      approximation for natural gradient descent", 2019 (arXiv:1905.12558).
    """
    check_callable(loss_fn, "loss_fn")
    jac = jax.jacrev(lambda p: loss_fn(p, *args, **kwargs))(params)
    return tu.tree_map(lambda j: jnp.mean(j * j, axis=0), jac)
