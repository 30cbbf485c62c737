"""EControl: compressed updates with error feedback whose strength is controlled by ``eta``."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_update_args
from jaxopt_lab.ops.sparsify import Compressor, top_k_compressor


class ScaleByEControlState(NamedTuple):
    """State of :func:`scale_by_econtrol`: error ``e``, estimator ``h`` and the PRNG key.

    Attributes:
      error: the accumulated compression error ``e`` (gradient mass not yet passed on), a
        pytree like the parameters; zeros at init.
      estimate: the compressed gradient estimator ``h`` (the last output), a pytree like
        the parameters; zeros at init.
      key: PRNG key for the compressor, split on every update.
    """

    error: optax.Updates
    estimate: optax.Updates
    key: jax.Array


def scale_by_econtrol(compressor: Compressor, eta: float = 0.1, seed: int = 0
                      ) -> optax.GradientTransformation:
    """Compressed gradient estimate with EControl's error feedback (single-worker form).

    Per leaf (paper, Algorithm 1): ``Delta = C(eta e + g - h)``, output ``h' = h + Delta``,
    ``e' = e + g - h'``. Summing the last line gives the error-feedback identity
    ``sum_t outputs + e_T = sum_t g_t``: nothing is lost, only delayed. ``eta`` scales how
    strongly the accumulated error is fed back (``eta = 0``: EF21-style estimator only); the
    analysis takes ``eta`` of the order of the compressor's contraction ``delta`` (``k / d`` for
    top-k), and ``eta`` near 1 can diverge.

    Args:
      compressor: ``(x, key) -> x'``, e.g. :func:`top_k_compressor`, :func:`random_k_compressor`.
      eta: error-feedback strength (``>= 0``).
      seed: seed of the compressor's PRNG key (kept in the state).

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Gao, Islamov, Stich, "EControl: Fast Distributed Optimization with Compression and
      Error Control", 2023 (arXiv:2311.05645).
    """
    if not callable(compressor):
        raise TypeError(f"compressor must be callable (x, key) -> x, got {type(compressor)}.")
    if isinstance(eta, int | float) and eta < 0:
        raise ValueError(f"eta must be non-negative, got {eta}.")

    def init(params):
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # distinct buffers (donation)
        return ScaleByEControlState(zeros(), zeros(), jax.random.PRNGKey(seed))

    def update(grads, state, params=None):
        check_update_args("scale_by_econtrol", grads, params, state_like=state.error)
        del params
        leaves, treedef = jax.tree_util.tree_flatten(grads)
        key, *keys = jax.random.split(state.key, len(leaves) + 1)
        keys = jax.tree_util.tree_unflatten(treedef, keys)

        def leaf(g, e, h, k):
            delta = compressor((eta * e + g - h).astype(g.dtype), k)
            h_new = (h + delta).astype(g.dtype)
            return h_new, (e + g - h_new).astype(g.dtype)

        out = jax.tree_util.tree_map(leaf, grads, state.error, state.estimate, keys)
        h_new, e_new = tu.tree_unzip(grads, out, 2)
        return h_new, ScaleByEControlState(e_new, h_new, key)

    return optax.GradientTransformation(init, update)


def econtrol(learning_rate: optax.ScalarOrSchedule, compressor: Compressor | None = None, eta: float = 0.1,
             seed: int = 0) -> optax.GradientTransformation:
    """SGD on EControl-compressed gradients.

    Args:
      learning_rate: step size or schedule.
      compressor: see :func:`scale_by_econtrol`; default ``top_k_compressor(1)``.
      eta, seed: see :func:`scale_by_econtrol`.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Gao, Islamov, Stich, "EControl: Fast Distributed Optimization with Compression and
      Error Control", 2023 (arXiv:2311.05645).
    """
    compressor = top_k_compressor(1) if compressor is None else compressor
    return optax.chain(scale_by_econtrol(compressor, eta, seed), optax.scale_by_learning_rate(learning_rate))


__all__ = ["ScaleByEControlState", "scale_by_econtrol", "econtrol"]
