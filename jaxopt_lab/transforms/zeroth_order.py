"""Zeroth-order optax transforms: a ZO gradient estimate in place of the incoming gradient.

``update(updates, state, params, *, value_fn, key)``: ``value_fn(params) -> scalar`` is
the loss to estimate the gradient of and ``key`` a PRNG key (not needed by ``cge``).
The incoming ``updates`` are ignored (only their dtypes are used), so ZO transforms
come first in a chain; clipping, schedules, weight decay and any optax transform can
follow.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_update_args
from jaxopt_lab.transforms._checks import check_stage
from jaxopt_lab.zeroth_order import wrappers


class ScaleByZoEstimateState(NamedTuple):
    """State of :func:`scale_by_zo_estimate`.

    Attributes:
      count: number of estimates made.
      value: ``value_fn(params)`` at the last update (free: every estimator evaluates it).
    """

    count: jax.Array
    value: jax.Array


def scale_by_zo_estimate(method: str = "rge", **options) -> optax.GradientTransformationExtraArgs:
    """Replace the updates by a zeroth-order gradient estimate of ``value_fn`` at ``params``.

    Args:
      method: ``"rge"``, ``"cge"``, ``"spsa"`` or ``"forward_gradient"``.
      **options: estimator options (``num_directions``, ``smoothing``, ``difference``,
        ``distribution``, ``mask``, ``chunk_size`` ...), checked now.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes ``params`` and
      the extra arguments ``value_fn=`` (params -> scalar) and ``key=`` (PRNG key).

    References:
      Ghadimi and Lan, "Stochastic first- and zeroth-order methods for nonconvex
      stochastic programming", 2013 (arXiv:1309.5549).
    """
    _, needs_key = wrappers.check_method(method, options)

    def init(params):
        del params
        return ScaleByZoEstimateState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.float32))

    def update(updates, state, params=None, *, value_fn=None, key=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(f"scale_by_zo_estimate({method!r}).update needs `params`.")
        check_update_args(f"scale_by_zo_estimate({method!r})", updates, params, name="updates",
                             value_fn=value_fn)
        if value_fn is None:
            raise ValueError(f"scale_by_zo_estimate({method!r}).update needs the extra argument "
                             "`value_fn=` (params -> scalar loss).")
        if needs_key and key is None:
            raise ValueError(f"scale_by_zo_estimate({method!r}).update needs the extra argument "
                             "`key=` (a PRNG key).")
        value, g = wrappers.estimate(method, value_fn, params, key, **options)
        g = jax.tree_util.tree_map(lambda e, u: e.astype(u.dtype), g, updates)
        new_state = ScaleByZoEstimateState(optax.safe_increment(state.count),
                                           jnp.asarray(value, jnp.float32))
        return g, new_state

    return optax.GradientTransformationExtraArgs(init, update)


def _estimator_options(num_directions, smoothing, difference, distribution, mask, chunk_size) -> dict:
    """The options given explicitly (``None`` means the estimator's default)."""
    given = dict(num_directions=num_directions, smoothing=smoothing, difference=difference,
                 distribution=distribution, mask=mask, chunk_size=chunk_size)
    return {k: v for k, v in given.items() if v is not None}


def zo_sgd(learning_rate: optax.ScalarOrSchedule, method: str = "rge", momentum: float | None = None,
           num_directions: int | None = None, smoothing: float | None = None,
           difference: str | None = None, distribution: str | None = None, mask=None,
           chunk_size: int | None = None) -> optax.GradientTransformationExtraArgs:
    """ZO-SGD: SGD (optionally with heavy-ball momentum) on a zeroth-order estimate.

    Args:
      learning_rate: step size or schedule.
      method: estimator name (see :func:`scale_by_zo_estimate`).
      momentum: optional heavy-ball coefficient.
      num_directions, smoothing, difference, distribution, mask, chunk_size: estimator
        options (``None``: the estimator's default; see :mod:`jaxopt_lab.zeroth_order`).
        Under ``optax.inject_hyperparams`` pass ``static_args=("num_directions",)``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` taking ``value_fn=`` and ``key=``.

    References:
      Ghadimi and Lan, "Stochastic first- and zeroth-order methods for nonconvex
      stochastic programming", 2013 (arXiv:1309.5549).
    """
    options = _estimator_options(num_directions, smoothing, difference, distribution, mask, chunk_size)
    parts = [scale_by_zo_estimate(method, **options)]
    if momentum is not None:
        parts.append(optax.trace(decay=momentum))
    return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))


def zo_adam(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
            eps: float = 1e-8, method: str = "rge", num_directions: int | None = None,
            smoothing: float | None = None, difference: str | None = None,
            distribution: str | None = None, mask=None,
            chunk_size: int | None = None) -> optax.GradientTransformationExtraArgs:
    """ZO-AdaMM: Adam moments of a zeroth-order gradient estimate.

    Args:
      learning_rate: step size or schedule.
      b1, b2: decay rates of the first and second moments.
      eps: added to the denominator.
      method: estimator name (see :func:`scale_by_zo_estimate`).
      num_directions, smoothing, difference, distribution, mask, chunk_size: estimator
        options (``None``: the estimator's default; see :mod:`jaxopt_lab.zeroth_order`).
        Under ``optax.inject_hyperparams`` pass ``static_args=("num_directions",)``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` taking ``value_fn=`` and ``key=``.

    References:
      Chen et al., "ZO-AdaMM: Zeroth-order adaptive momentum method for black-box
      optimization", 2019 (arXiv:1910.06513).
    """
    options = _estimator_options(num_directions, smoothing, difference, distribution, mask, chunk_size)
    return optax.chain(scale_by_zo_estimate(method, **options), check_stage("zo_adam", "params", eps=eps),
                       optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
                       optax.scale_by_learning_rate(learning_rate))


def zo_signsgd(learning_rate: optax.ScalarOrSchedule, method: str = "rge",
               num_directions: int | None = None, smoothing: float | None = None,
               difference: str | None = None, distribution: str | None = None, mask=None,
               chunk_size: int | None = None) -> optax.GradientTransformationExtraArgs:
    """ZO-signSGD: steps along the sign of a zeroth-order gradient estimate.

    Args:
      learning_rate: step size or schedule.
      method: estimator name (see :func:`scale_by_zo_estimate`).
      num_directions, smoothing, difference, distribution, mask, chunk_size: estimator
        options (``None``: the estimator's default; see :mod:`jaxopt_lab.zeroth_order`).
        Under ``optax.inject_hyperparams`` pass ``static_args=("num_directions",)``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` taking ``value_fn=`` and ``key=``.

    References:
      Liu, Chen, Chen and Hong, "signSGD via zeroth-order oracle", ICLR 2019.
    """
    options = _estimator_options(num_directions, smoothing, difference, distribution, mask, chunk_size)
    sign = optax.stateless(lambda u, p=None: jax.tree_util.tree_map(jnp.sign, u))
    return optax.chain(scale_by_zo_estimate(method, **options), sign,
                       optax.scale_by_learning_rate(learning_rate))
