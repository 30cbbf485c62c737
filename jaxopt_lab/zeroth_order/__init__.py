"""Zeroth-order (derivative-free) gradient estimation.

Estimators are pure functions ``(fun, params, key, *args, **options) -> (value,
grad_estimate)`` that evaluate every perturbation of one estimate in a single
``vmap``-ed call: randomized (:func:`rge`), coordinate-wise (:func:`cge`),
:func:`spsa` and the exact-JVP :func:`forward_gradient`. They are also exposed as
:func:`value_and_grad`, as optax transforms (``jaxopt_lab.zo_sgd`` ...) and as
``custom_jvp`` black boxes (:func:`blackbox`, forward and reverse mode); :mod:`.deepzero` holds the
DeepZero pruning and sparse-CGE helpers, :mod:`.layerwise` CGE with feature reuse,
:mod:`.lazy_adam` Adam on the observed coordinates of a sparse estimate.
"""

import sys as _sys

from jaxopt_lab.zeroth_order import wrappers
from jaxopt_lab.zeroth_order.coordinate import cge
from jaxopt_lab.zeroth_order.deepzero import (
    ScaleBySparseCGEState,
    deepzero_sgd,
    layerwise_density,
    random_sparse_mask,
    scale_by_sparse_cge,
    zo_saliency,
)
from jaxopt_lab.zeroth_order.grasp import zo_grasp_scores
from jaxopt_lab.zeroth_order.layerwise import LayerwiseLoss, cge_layerwise
from jaxopt_lab.zeroth_order.lazy_adam import ScaleByLazyAdamState, deepzero_adam, scale_by_lazy_adam
from jaxopt_lab.zeroth_order.randomized import forward_gradient, rge, spsa
from jaxopt_lab.zeroth_order.wrappers import METHODS, blackbox, estimate, value_and_grad

__all__ = [
    "METHODS",
    "LayerwiseLoss",
    "cge_layerwise",
    "ScaleBySparseCGEState",
    "deepzero_sgd",
    "deepzero_adam",
    "ScaleByLazyAdamState",
    "scale_by_lazy_adam",
    "layerwise_density",
    "random_sparse_mask",
    "scale_by_sparse_cge",
    "zo_grasp_scores",
    "zo_saliency",
    "blackbox",
    "cge",
    "estimate",
    "forward_gradient",
    "rge",
    "spsa",
    "value_and_grad",
]

# Module path of earlier releases: ``api.py`` is now ``wrappers.py``.
_sys.modules.setdefault(f"{__name__}.api", wrappers)
