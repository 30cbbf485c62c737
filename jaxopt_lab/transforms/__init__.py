"""optax gradient transformations from the research literature.

Each algorithm is a ``scale_by_*`` block plus a lowercase recipe, one file each;
``__all__`` lists only transform factories and their state classes. The operators
some transforms use (Newton-Schulz :func:`~jaxopt_lab.ops.orthogonalize.orthogonalize`,
the sparsifying proxes and compressors of :mod:`jaxopt_lab.ops.sparsify`) live in
:mod:`jaxopt_lab.ops`; helpers of a single transform (``norm_test``, ``dct_basis``,
``mfac_ihvp`` ...) and the schedule :func:`refined_schedule` stay in their modules. All
of them (``HELPERS``) remain importable from here and from ``jaxopt_lab``.
"""

import sys as _sys

from jaxopt_lab.ops.orthogonalize import ns_schedule, orthogonalize  # noqa: F401 (HELPERS)
from jaxopt_lab.ops.sparsify import (  # noqa: F401 (HELPERS)
    group_envelope_prox_norms,
    prox_group_envelope,
    prox_topk,
    random_k_compressor,
    soft_threshold,
    top_k_compressor,
    topk_magnitude_mask,
)
from jaxopt_lab.transforms import root_optimizer
from jaxopt_lab.transforms.adahessian import ScaleByAdaHessianState, adahessian, scale_by_adahessian
from jaxopt_lab.transforms.adamp import *  # noqa: F401,F403
from jaxopt_lab.transforms.adamp import __all__ as _adamp_all
from jaxopt_lab.transforms.adaptive_batch_size import *  # noqa: F401,F403
from jaxopt_lab.transforms.adaptive_batch_size import __all__ as _abs_all
from jaxopt_lab.transforms.adaptive_batch_size import (  # noqa: F401 (HELPERS)
    coordinate_norm_test,
    inner_product_test,
    norm_test,
)
from jaxopt_lab.transforms.clip_by_coordinate import *  # noqa: F401,F403
from jaxopt_lab.transforms.clip_by_coordinate import __all__ as _clip_all
from jaxopt_lab.transforms.diffgrad import *  # noqa: F401,F403
from jaxopt_lab.transforms.diffgrad import __all__ as _diffgrad_all
from jaxopt_lab.transforms.econtrol import *  # noqa: F401,F403
from jaxopt_lab.transforms.econtrol import __all__ as _econtrol_all
from jaxopt_lab.transforms.layerwise_noise_adaptive import *  # noqa: F401,F403
from jaxopt_lab.transforms.layerwise_noise_adaptive import __all__ as _lna_all
from jaxopt_lab.transforms.lowrank_dct import *  # noqa: F401,F403
from jaxopt_lab.transforms.lowrank_dct import __all__ as _lowrank_dct_all
from jaxopt_lab.transforms.lowrank_dct import dct_basis  # noqa: F401
from jaxopt_lab.transforms.mfac import ScaleByMfacState, mfac, mfac_ihvp, scale_by_mfac  # noqa: F401
from jaxopt_lab.transforms.perp_grad import *  # noqa: F401,F403
from jaxopt_lab.transforms.perp_grad import __all__ as _perp_all
from jaxopt_lab.transforms.prox_update import *  # noqa: F401,F403
from jaxopt_lab.transforms.prox_update import __all__ as _prox_update_all
from jaxopt_lab.transforms.refined_schedule import refined_schedule  # noqa: F401 (HELPERS: a schedule)
from jaxopt_lab.transforms.root_optimizer import *  # noqa: F401,F403
from jaxopt_lab.transforms.root_optimizer import __all__ as _root_all
from jaxopt_lab.transforms.sophia import ScaleBySophiaState, scale_by_sophia, sophia
from jaxopt_lab.transforms.sora import *  # noqa: F401,F403
from jaxopt_lab.transforms.sora import HELPERS as _sora_helpers
from jaxopt_lab.transforms.sora import __all__ as _sora_all
from jaxopt_lab.transforms.sora import (  # noqa: F401 (HELPERS)
    sora_gate_mask,
    sora_init,
    sora_merge,
    sora_prune,
    sora_xi_schedule,
)
from jaxopt_lab.transforms.zeroth_order import (
    ScaleByZoEstimateState,
    scale_by_zo_estimate,
    zo_adam,
    zo_sgd,
    zo_signsgd,
)

__all__ = [
    # Zeroth-order recipes (estimators in jaxopt_lab.zeroth_order).
    "ScaleByZoEstimateState", "scale_by_zo_estimate", "zo_adam", "zo_sgd", "zo_signsgd",
    # First-order and proximal transforms.
    *_adamp_all, *_clip_all, *_diffgrad_all, *_perp_all, *_root_all, *_econtrol_all,
    *_lowrank_dct_all, *_prox_update_all, *_abs_all, *_lna_all, *_sora_all,
    # Second-order transforms.
    "ScaleByAdaHessianState", "adahessian", "scale_by_adahessian", "ScaleByMfacState", "mfac",
    "scale_by_mfac", "ScaleBySophiaState", "scale_by_sophia", "sophia",
]

# Operators, a schedule and single-transform helpers: importable from here, not transforms.
HELPERS = [
    "coordinate_norm_test", "dct_basis", "group_envelope_prox_norms", "inner_product_test", "mfac_ihvp",
    "norm_test",
    "ns_schedule", "orthogonalize", "prox_group_envelope", "prox_topk", "random_k_compressor",
    "refined_schedule", "soft_threshold", "top_k_compressor", "topk_magnitude_mask", *_sora_helpers,
]

# Module path of earlier releases: ``transforms/root.py`` is now ``root_optimizer.py`` (the
# attribute ``jaxopt_lab.transforms.root`` is the ROOT recipe).
_sys.modules.setdefault(f"{__name__}.root", root_optimizer)
