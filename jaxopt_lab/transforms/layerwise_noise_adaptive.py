"""Noise-adaptive layer-wise step sizes for LMO-based (geometry-aware) updates."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_decay, check_positive, check_update_args
from jaxopt_lab.ops.orthogonalize import orthogonalize
from jaxopt_lab.transforms._checks import check_matrix_leaves

_GEOMETRIES = ("auto", "spectral", "sign", "euclidean")


def _lmo_and_dual_norm(x, geometry, eps):
    """Direction ``d`` maximizing ``<x, d>`` on the unit ball of the layer's norm, and ``||x||_*``."""
    acc = jnp.promote_types(x.dtype, jnp.float32)
    xf = x.astype(acc)
    if geometry == "auto":
        geometry = "spectral" if x.ndim == 2 else "euclidean"
    if geometry == "spectral":  # spectral ball; dual is the nuclear norm <x, U V^T>
        d = orthogonalize(xf)
        return d, jnp.sum(d * xf)
    if geometry == "sign":  # l_inf ball; dual is l1
        return jnp.sign(xf), jnp.sum(jnp.abs(xf))
    nrm = jnp.linalg.norm(xf)  # l2 ball; self-dual
    return xf / (nrm + eps), nrm


class ScaleByLayerwiseNoiseAdaptiveState(NamedTuple):
    """State: step count, momentum ``B`` and per-leaf noise estimate ``H`` (scalars).

    Attributes:
      count: number of updates taken (int32 scalar), used to bias-correct ``noise``.
      momentum: the momentum ``B``, an exponential moving average of the gradients, a
        pytree like the parameters.
      noise: per leaf, a scalar ``H`` (at least float32): the exponential moving average of
        ``||G - B^{prev}||_*^2``, stored without bias correction.
    """

    count: jax.Array
    momentum: optax.Updates
    noise: optax.Updates


def scale_by_layerwise_noise_adaptive(
    b1: float = 0.9, b2: float = 0.99, geometry: str = "auto", eps: float = 1e-8,
) -> optax.GradientTransformation:
    """LMO direction of the momentum, with a per-layer step from a running noise estimate.

    Per leaf ``l`` (a layer): ``B_l <- b1 B_l + (1 - b1) G_l``;
    ``H_l <- b2 H_l + (1 - b2) ||G_l - B_l^{prev}||_*^2`` (the gradient's deviation from its
    running mean, in the dual norm of the layer's geometry, bias-corrected); the update is
    ``s_l * LMO(B_l)`` with ``s_l = sqrt(mean_j H_j) / sqrt(H_l)`` (capped at 10): layers whose
    gradients are noisier than the group's average get smaller steps, quieter ones larger.
    All leaves of the pytree form one group; use ``optax.partition`` for several groups.
    This follows the paper's recipe (variance in the LMO's dual norm -> layer-wise rates);
    the exact normalization here is ours.

    Args:
      b1: momentum decay.
      b2: decay of the noise estimate.
      geometry: ``"auto"`` (spectral for matrices, euclidean otherwise), ``"spectral"``,
        ``"sign"`` (l_inf), ``"euclidean"``.
      eps: safeguard.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Hao, Gong, Xu, Wang, Liu, "Noise-Adaptive Layerwise Learning Rates: Accelerating
      Geometry-Aware Optimization for Deep Neural Network Training", 2025 (arXiv:2510.14009).
    """
    if geometry not in _GEOMETRIES:
        raise ValueError(f"geometry must be one of {_GEOMETRIES}, got {geometry!r}.")
    check_decay(b1, "b1")
    check_decay(b2, "b2")
    check_positive(eps, "eps", allow_zero=True)

    def init(params):
        if geometry == "spectral":
            check_matrix_leaves(params, "scale_by_layerwise_noise_adaptive(geometry='spectral')")
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        acc = lambda p: jnp.promote_types(p.dtype, jnp.float32)
        noise = jax.tree_util.tree_map(lambda p: jnp.zeros([], acc(p)), params)
        return ScaleByLayerwiseNoiseAdaptiveState(jnp.zeros([], jnp.int32), zeros, noise)

    def update(grads, state, params=None):
        check_update_args("scale_by_layerwise_noise_adaptive", grads, params, state_like=state.momentum)
        del params
        count = state.count + 1
        dev = jax.tree_util.tree_map(lambda g, b: _lmo_and_dual_norm(g - b, geometry, eps)[1] ** 2,
                                     grads, state.momentum)
        noise = jax.tree_util.tree_map(lambda h, d: (b2 * h + (1 - b2) * d).astype(h.dtype), state.noise, dev)
        # ``b1 + 0 * min(d, 0)`` is b1 (d >= 0; NaN only with a NaN gradient). The data dependence on the
        # deviation orders the momentum's in-place overwrite after the deviation has read the old momentum;
        # without it XLA copies the momentum to a temporary every step (40 MB and ~2.5x the step time on
        # a 10M-parameter tree, vs ~1.1x optax.adam with it).
        decay = lambda b, d: (b1 + 0 * jnp.minimum(d, 0)).astype(b.dtype)
        mom = jax.tree_util.tree_map(lambda b, g, d: (decay(b, d) * b + (1 - b1) * g).astype(g.dtype),
                                     state.momentum, grads, dev)
        h_hat = [h / (1 - b2**count) for h in jax.tree_util.tree_leaves(noise)]
        mean_h = sum(h_hat) / max(len(h_hat), 1)
        treedef = jax.tree_util.tree_structure(grads)
        h_hat = jax.tree_util.tree_unflatten(treedef, h_hat)

        def leaf(b, g, h):
            scale = jnp.minimum(jnp.sqrt((mean_h + eps) / (h + eps)), 10.0)
            return (scale * _lmo_and_dual_norm(b, geometry, eps)[0]).astype(g.dtype)

        updates = jax.tree_util.tree_map(leaf, mom, grads, h_hat)
        return updates, ScaleByLayerwiseNoiseAdaptiveState(count, mom, noise)

    return optax.GradientTransformation(init, update)


def layerwise_noise_adaptive(
    learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.99, geometry: str = "auto",
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Noise-adaptive layer-wise LMO optimizer: :func:`scale_by_layerwise_noise_adaptive` + learning rate.

    Args:
      learning_rate: base step size or schedule.
      b1, b2, geometry, eps: see :func:`scale_by_layerwise_noise_adaptive`.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Hao et al., "Noise-Adaptive Layerwise Learning Rates: Accelerating Geometry-Aware
      Optimization for Deep Neural Network Training", 2025 (arXiv:2510.14009).
    """
    return optax.chain(scale_by_layerwise_noise_adaptive(b1, b2, geometry, eps),
                       optax.scale_by_learning_rate(learning_rate))


__all__ = ["ScaleByLayerwiseNoiseAdaptiveState", "scale_by_layerwise_noise_adaptive",
           "layerwise_noise_adaptive"]
