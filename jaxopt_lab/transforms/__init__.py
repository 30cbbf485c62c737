"""optax gradient transformations from the research literature.

Each algorithm is a ``scale_by_*`` block plus a lowercase recipe, one file each.
"""

__all__: list[str] = []

from jaxopt_lab.transforms.zeroth_order import (  # noqa: E402
    ScaleByZoEstimateState,
    scale_by_zo_estimate,
    zo_adam,
    zo_sgd,
    zo_signsgd,
)

__all__ += ["ScaleByZoEstimateState", "scale_by_zo_estimate", "zo_adam", "zo_sgd", "zo_signsgd"]

# First-order and proximal transforms (issue 6).
from jaxopt_lab.transforms.adamp import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.adamp import __all__ as _adamp_all  # noqa: E402
from jaxopt_lab.transforms.adaptive_batch_size import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.adaptive_batch_size import __all__ as _abs_all  # noqa: E402
from jaxopt_lab.transforms.clip_by_coordinate import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.clip_by_coordinate import __all__ as _clip_all  # noqa: E402
from jaxopt_lab.transforms.diffgrad import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.diffgrad import __all__ as _diffgrad_all  # noqa: E402
from jaxopt_lab.transforms.econtrol import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.econtrol import __all__ as _econtrol_all  # noqa: E402
from jaxopt_lab.transforms.layerwise_noise_adaptive import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.layerwise_noise_adaptive import __all__ as _lna_all  # noqa: E402
from jaxopt_lab.transforms.lowrank_dct import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.lowrank_dct import __all__ as _lowrank_dct_all  # noqa: E402
from jaxopt_lab.transforms.perp_grad import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.perp_grad import __all__ as _perp_all  # noqa: E402
from jaxopt_lab.transforms.prox_update import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.prox_update import __all__ as _prox_update_all  # noqa: E402
from jaxopt_lab.transforms.refined_schedule import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.refined_schedule import __all__ as _refined_all  # noqa: E402
from jaxopt_lab.transforms.root import *  # noqa: E402,F401,F403
from jaxopt_lab.transforms.root import __all__ as _root_all  # noqa: E402

__all__ += [*_adamp_all, *_clip_all, *_diffgrad_all, *_perp_all, *_root_all, *_econtrol_all,
            *_lowrank_dct_all, *_prox_update_all, *_abs_all, *_lna_all, *_refined_all]

# Second-order transforms (issue 4).
from jaxopt_lab.transforms.adahessian import (  # noqa: E402
    ScaleByAdaHessianState,
    adahessian,
    scale_by_adahessian,
)
from jaxopt_lab.transforms.mfac import ScaleByMfacState, mfac, mfac_ihvp, scale_by_mfac  # noqa: E402
from jaxopt_lab.transforms.sophia import ScaleBySophiaState, scale_by_sophia, sophia  # noqa: E402

__all__ += ["ScaleByAdaHessianState", "adahessian", "scale_by_adahessian", "ScaleByMfacState", "mfac",
            "mfac_ihvp", "scale_by_mfac", "ScaleBySophiaState", "scale_by_sophia", "sophia"]
