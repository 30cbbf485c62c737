"""Coordinate-wise estimation with feature reuse for layer-wise (sequential) models.

For ``loss(layer_{L-1}(p_{L-1}, ... layer_0(p_0, x)))``, perturbing a coordinate of
``p_l`` leaves the activations ``h_0 = x, ..., h_l`` unchanged. DeepZero's feature
reuse computes them once and, for every perturbation of layer ``l``, re-runs only
layers ``l, ..., L-1`` and the loss. The estimate is the plain CGE estimate; the
work drops from ``k L`` layer evaluations to ``sum_l k_l (L - l)`` (``k_l`` perturbed
coordinates in layer ``l``), about half for equal layer costs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core.checks import check_callable
from jaxopt_lab.zeroth_order import _perturbations


@dataclasses.dataclass(frozen=True)
class LayerwiseLoss:
    """A loss of a sequential model, described layer by layer so CGE can reuse features.

    Calling it, ``LayerwiseLoss(layers, loss, inputs)(params)``, evaluates
    ``loss(layers[-1](params[-1], ... layers[0](params[0], inputs)))``, so it can be
    passed anywhere a ``fun(params) -> scalar`` is expected (``cge``, ``value_fn=``);
    :func:`cge_layerwise` and :func:`jaxopt_lab.zeroth_order.scale_by_sparse_cge` use the
    layer structure to reuse activations.

    Attributes:
      layers: ``layer(params_l, h) -> h`` for each layer, in order.
      loss: ``loss(h_L) -> scalar`` on the last activation (labels closed over).
      inputs: the input batch ``h_0``.

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025), Sec. 5 (feature reuse).
    """

    layers: Sequence[Callable]
    loss: Callable
    inputs: Any

    def __post_init__(self):
        if isinstance(self.layers, Callable) or len(self.layers) == 0:
            raise TypeError("`layers` must be a non-empty sequence of callables.")
        for i, layer in enumerate(self.layers):
            check_callable(layer, f"layers[{i}]")
        check_callable(self.loss, "loss")

    def activations(self, params: Sequence[Any]) -> list:
        """``[h_0, ..., h_L]`` for ``params`` (one entry per layer)."""
        if not isinstance(params, list | tuple) or len(params) != len(self.layers):
            raise ValueError(f"`params` must be a list or tuple with one entry per layer "
                             f"({len(self.layers)}), got {type(params).__name__}"
                             f"{'' if not isinstance(params, list | tuple) else f' of {len(params)}'}.")
        hs = [self.inputs]
        for layer, p in zip(self.layers, params, strict=True):
            hs.append(layer(p, hs[-1]))
        return hs

    def __call__(self, params: Sequence[Any]) -> jax.Array:
        return self.loss(self.activations(params)[-1])


def _layer_coords(mask_l, params_l, count):
    """Indices (into the flattened layer) to perturb, and their validity (traced masks)."""
    if mask_l is None:
        return jnp.arange(ravel_pytree(params_l)[0].size), None
    m = _perturbations.flat_mask(mask_l, params_l)
    if isinstance(m, np.ndarray):
        return jnp.asarray(np.flatnonzero(m)), None
    if count is None:
        raise ValueError("`num_coords` (static, one int per layer) is required with a traced `mask`.")
    idx = jnp.nonzero(m, size=count, fill_value=m.size)[0]
    return idx, idx < m.size


def cge_layerwise(model: LayerwiseLoss, params: Sequence[Any], *, smoothing: float = 1e-3,
                  mask: Sequence[Any] | None = None, difference: str = "forward",
                  num_coords: Sequence[int] | None = None,
                  chunk_size: int | None = None) -> tuple[jax.Array, list]:
    """CGE of a :class:`LayerwiseLoss` with feature reuse (the same estimate as ``cge``).

    The activations of the unperturbed model are computed once; the perturbations of
    layer ``l`` (one ``vmap``-ed call per layer) start from the cached input ``h_l``.

    Args:
      model: the layer-wise loss.
      params: a list/tuple with one parameter pytree per layer (``()`` for none).
      smoothing: ``mu > 0`` (may be traced).
      mask: optional list of boolean pytrees like ``params``: coordinates to estimate.
      difference: ``"forward"`` (``k + 1`` loss evaluations) or ``"central"`` (``2k + 1``).
      num_coords: with a traced ``mask``, the static number of ``True`` entries of each layer.
      chunk_size: evaluate at most this many perturbed points of a layer at once.

    Returns:
      ``(value, grad_estimate)``: the loss and a list like ``params``.

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025).
    """
    if not isinstance(model, LayerwiseLoss):
        raise TypeError(f"`model` must be a LayerwiseLoss, got {type(model).__name__}.")
    _perturbations.check_options(None, smoothing, chunk_size, difference)
    hs = model.activations(params)
    n = len(params)
    for name, seq in (("mask", mask), ("num_coords", num_coords)):
        if seq is not None and (not isinstance(seq, list | tuple) or len(seq) != n):
            raise ValueError(f"`{name}` must be a list or tuple with one entry per layer ({n}).")
    f0 = model.loss(hs[-1])
    if jnp.shape(f0) != () or not jnp.issubdtype(jnp.result_type(f0), jnp.floating):
        raise ValueError(f"`loss` must return a real scalar, got shape {jnp.shape(f0)}.")
    grads = []
    for l in range(n):
        x, unravel = ravel_pytree(params[l])
        if x.size == 0:
            grads.append(params[l])
            continue
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"`params[{l}]` must hold real floating-point arrays, got {x.dtype}.")
        idx, valid = _layer_coords(None if mask is None else mask[l], params[l],
                                   None if num_coords is None else num_coords[l])
        k = idx.shape[0]
        mu = jnp.asarray(smoothing, x.dtype)

        def tail(z, l=l, unravel=unravel):
            h = model.layers[l](unravel(z), hs[l])
            for m in range(l + 1, n):
                h = model.layers[m](params[m], h)
            return model.loss(h)

        if difference == "forward":
            coords, signs = idx, jnp.ones(k, x.dtype)
        else:
            coords = jnp.concatenate([idx, idx])
            signs = jnp.concatenate([jnp.ones(k, x.dtype), -jnp.ones(k, x.dtype)])
        values = _perturbations.batched_map(lambda i_s, x=x, mu=mu, tail=tail: tail(
            x.at[i_s[0]].add(i_s[1] * mu, mode="drop")), (coords, signs), chunk_size)
        mu_v = jnp.asarray(smoothing, values.dtype)
        if difference == "forward":
            coef = (values - f0) / mu_v
        else:
            coef = (values[:k] - values[k:]) / (2 * mu_v)
        coef = coef.astype(x.dtype)
        if valid is not None:
            coef = jnp.where(valid, coef, 0)
        grads.append(unravel(jnp.zeros_like(x).at[idx].add(coef, mode="drop")))
    return f0, type(params)(grads)
