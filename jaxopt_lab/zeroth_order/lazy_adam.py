"""Lazy (masked) Adam for sparse gradient estimates, and the DeepZero-Adam recipe.

Sparse coordinate-wise estimation (CGE on a mask of ``k`` of ``d`` coordinates) gives
exact finite-difference partial derivatives on the mask and *no information* elsewhere
(the estimate is zero there). Plain Adam would treat those zeros as observations and
shrink the moments of every unobserved coordinate. Lazy Adam updates the moments, the
per-coordinate step count and the parameters only where a coordinate was observed:
for an observed coordinate ``i`` with estimate ``g_i`` and ``t_i`` observations so far,

    m_i <- b1 m_i + (1 - b1) g_i,    v_i <- b2 v_i + (1 - b2) g_i^2,    t_i <- t_i + 1,
    update_i = (m_i / (1 - b1^t_i)) / (sqrt(v_i / (1 - b2^t_i)) + eps),

and ``update_i = 0`` (moments and count unchanged) for the others. A coordinate counts as
observed when its incoming update is nonzero (sparse CGE writes exact zeros off its
mask); an on-mask estimate that is exactly zero is skipped, which changes nothing but
that coordinate's momentum step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_positive, check_update_args
from jaxopt_lab.zeroth_order.deepzero import scale_by_sparse_cge


class ScaleByLazyAdamState(NamedTuple):
    """State of :func:`scale_by_lazy_adam`.

    Attributes:
      counts: per-coordinate number of observations ``t_i`` (int32, like the parameters).
      mu: first moments ``m`` (like the parameters).
      nu: second moments ``v`` (like the parameters).
    """

    counts: Any
    mu: Any
    nu: Any


def scale_by_lazy_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam whose moments and steps change only on the coordinates observed this step.

    Args:
      b1: decay of the first moment, in ``[0, 1)`` (may be traced).
      b2: decay of the second moment, in ``[0, 1)`` (may be traced).
      eps: added to the bias-corrected root second moment (may be traced).

    Returns:
      An ``optax.GradientTransformation``; its updates are zero on the coordinates whose
      incoming update is zero, and the Adam direction with per-coordinate bias correction
      (``t_i`` observations of coordinate ``i``) elsewhere.

    References:
      Kingma and Ba, "Adam: A method for stochastic optimization", 2014 (arXiv:1412.6980);
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model training",
      2023 (arXiv:2310.02025).
    """
    for name, value in (("b1", b1), ("b2", b2)):
        if not isinstance(value, jax.Array) and not 0.0 <= float(value) < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {value}.")
    if not isinstance(eps, jax.Array):
        check_positive(eps, "eps")

    def init(params):
        zeros = lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p))
        return ScaleByLazyAdamState(
            jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), jnp.int32), params),
            jax.tree_util.tree_map(zeros, params), jax.tree_util.tree_map(zeros, params))

    def update(updates, state, params=None):
        del params
        check_update_args("scale_by_lazy_adam", updates, None, state_like=state.mu, name="updates",
                             eps=eps)

        def leaf(g, t, m, v):
            seen = g != 0
            t = t + seen.astype(jnp.int32)
            m = jnp.where(seen, b1 * m + (1 - b1) * g, m).astype(m.dtype)
            v = jnp.where(seen, b2 * v + (1 - b2) * jnp.square(g), v).astype(v.dtype)
            tf = jnp.maximum(t, 1).astype(m.dtype)
            m_hat = m / (1 - jnp.asarray(b1, m.dtype) ** tf)
            v_hat = v / (1 - jnp.asarray(b2, v.dtype) ** tf)
            u = jnp.where(seen, m_hat / (jnp.sqrt(v_hat) + eps), 0)
            return u.astype(g.dtype), t, m, v

        out = jax.tree_util.tree_map(leaf, updates, state.counts, state.mu, state.nu)
        u, counts, mu, nu = tu.tree_unzip(updates, out, 4)
        return u, ScaleByLazyAdamState(counts, mu, nu)

    return optax.GradientTransformation(init, update)


def deepzero_adam(learning_rate: optax.ScalarOrSchedule, density: Any, refresh_every: int = 1,
                  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, smoothing: float = 1e-3,
                  chunk_size: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Sparse CGE (:func:`~jaxopt_lab.zeroth_order.scale_by_sparse_cge`) plus lazy Adam.

    The coordinate-wise estimate is an exact finite-difference partial derivative on the
    mask, so per-coordinate Adam scaling is meaningful (a randomized estimate carries
    ``O(sqrt(d / q))`` relative noise on every coordinate instead).

    Args:
      learning_rate: step size or schedule.
      density: per-leaf densities (e.g. ``layerwise_density(zo_grasp_scores(...), sparsity)``).
      refresh_every: steps between mask redraws (an int ``>= 1``; may be traced).
      b1, b2, eps: lazy Adam options (:func:`scale_by_lazy_adam`).
      smoothing: CGE radius.
      chunk_size: evaluate at most this many points at once.
      Under ``optax.inject_hyperparams`` pass ``static_args=("density",)`` (the densities set
      the mask sizes, which must be concrete).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes ``value_fn=``
      (params -> scalar loss, or a :class:`~jaxopt_lab.zeroth_order.LayerwiseLoss` for
      feature reuse) and ``key=`` (PRNG key for the mask).

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025); Kingma and Ba, "Adam", 2014 (arXiv:1412.6980).
    """
    return optax.chain(scale_by_sparse_cge(density, refresh_every, smoothing, chunk_size=chunk_size),
                       scale_by_lazy_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))
