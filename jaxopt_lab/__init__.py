"""jaxopt_lab: differentiable optimization in JAX.

``import jaxopt_lab as jaxopt`` keeps jaxopt code running; on top come forward-mode
implicit differentiation, per-instance status under ``vmap``, traced
hyperparameters, optax transforms from the recent literature, bilevel, zeroth- and
second-order methods, and sweeps.
"""

import sys as _sys

from jaxopt_lab import base, bilevel, core, curvature, linalg, ops, sweep, zeroth_order
from jaxopt_lab.core import loop, tree_util
from jaxopt_lab.core.adjoint import ImplicitAdjoint, UnrollAdjoint
from jaxopt_lab.core.types import KKTSolution, OptStep, Status, status_name
from jaxopt_lab.linalg import implicit_diff, linear_solve
from jaxopt_lab.linalg.mfac_static import MFACStatic, mfac_static
from jaxopt_lab.ops import isotonic, lmo, loss, objective, perturbations, projection, prox
from jaxopt_lab.solvers import *  # noqa: F401,F403
from jaxopt_lab.solvers import __all__ as _solvers_all
from jaxopt_lab.sweep.batch import batch_run
from jaxopt_lab.transforms import *  # noqa: F401,F403
from jaxopt_lab.transforms import HELPERS as _transform_helpers
from jaxopt_lab.transforms import __all__ as _transforms_all
from jaxopt_lab.transforms import (  # noqa: F401  operators/helpers the transforms use (not transforms)
    coordinate_norm_test,
    dct_basis,
    group_envelope_prox_norms,
    inner_product_test,
    mfac_ihvp,
    norm_test,
    ns_schedule,
    orthogonalize,
    prox_group_envelope,
    prox_topk,
    random_k_compressor,
    refined_schedule,
    soft_threshold,
    sora_gate_mask,
    sora_init,
    sora_merge,
    sora_prune,
    sora_xi_schedule,
    top_k_compressor,
    topk_magnitude_mask,
)

# jaxopt's module paths (``jaxopt.prox``, ``jaxopt.tree_util`` ...) -> their home here.
for _module in (implicit_diff, isotonic, linear_solve, loop, loss, objective, perturbations,
                projection, prox, tree_util):
    _sys.modules.setdefault(f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}", _module)

__version__ = "0.1.0"

__all__ = [
    "ImplicitAdjoint", "UnrollAdjoint",
    "KKTSolution",
    "OptStep",
    "Status",
    "base",
    "batch_run",
    "loss",
    "objective",
    "bilevel",
    "curvature",
    "implicit_diff",
    "isotonic",
    "perturbations",
    "linear_solve",
    "linalg",
    "MFACStatic", "mfac_static",
    "lmo",
    "loop",
    "ops",
    "core",
    "projection",
    "prox",
    "status_name",
    "sweep",
    "tree_util",
    "zeroth_order",
    *_solvers_all,
    *_transforms_all,
    *_transform_helpers,
]
