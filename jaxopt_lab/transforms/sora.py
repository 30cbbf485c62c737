"""SoRA: gated low-rank adapters, the proximal gate step with its sparsity schedule, rank pruning."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab.core.checks import check_update_args
from jaxopt_lab.transforms._checks import check_stage


class ScaleBySoraProxState(NamedTuple):
    """State of :func:`scale_by_sora_prox`.

    Attributes:
      count: updates done (int32 scalar); the step ``t`` at which the schedules are read.
    """

    count: jax.Array


def _at(value, count):
    return value(count) if callable(value) else value


def scale_by_sora_prox(xi: optax.ScalarOrSchedule, learning_rate: optax.ScalarOrSchedule = 1.0
                       ) -> optax.GradientTransformation:
    """The proximal step of SoRA's gates: soft thresholding at ``learning_rate_t * xi_t``.

    Placed after a step producing ``u`` on the gate leaves ``g``, it returns
    ``T(g + u) - g`` with ``T(z) = sign(z) max(|z| - learning_rate_t xi_t, 0)``; with
    ``u = -learning_rate_t grad`` this is the paper's gate update (Ding et al., Eq. 5)
    ``g_{t+1} = T_{eta_t xi}(g_t - eta_t grad_g L(g_t))``. ``learning_rate=1.0`` thresholds at
    ``xi_t`` alone, as the authors' released optimizer does after its AdamW step.

    Args:
      xi: sparsity strength ``xi >= 0`` or a schedule of it (see :func:`sora_xi_schedule`).
      learning_rate: the step size ``eta_t`` (float or schedule) multiplying ``xi``.

    Returns:
      An ``optax.GradientTransformation`` that requires ``params``.

    References:
      Ding, Lv, Wang, Chen, Wang, Zheng, Sun, Liu, "Sparse Low-rank Adaptation of
      Pre-trained Language Models", 2023 (arXiv:2311.11696).
    """
    if isinstance(xi, int | float) and xi < 0:
        raise ValueError(f"xi must be non-negative, got {xi}.")

    def init(params):
        del params
        return ScaleBySoraProxState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_sora_prox needs `params` in update(updates, state, params).")
        check_update_args("scale_by_sora_prox", updates, params, name="updates")
        thresh = _at(learning_rate, state.count) * _at(xi, state.count)

        def leaf(u, g):
            z = g + u
            new = jnp.sign(z) * jnp.maximum(jnp.abs(z) - thresh, 0.0)
            return (new - g).astype(u.dtype)

        new_updates = jax.tree_util.tree_map(leaf, updates, params)
        return new_updates, ScaleBySoraProxState(optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def _complement(mask):
    if callable(mask):
        return lambda params: jax.tree_util.tree_map(lambda m: not m, mask(params))
    return jax.tree_util.tree_map(lambda m: not m, mask)


def sora(learning_rate: optax.ScalarOrSchedule, xi: optax.ScalarOrSchedule, gate_mask: Any,
         base: optax.GradientTransformation | None = None,
         gate_optimizer: optax.GradientTransformation | None = None) -> optax.GradientTransformation:
    """SoRA's optimizer: proximal gradient on the gates, ``base`` on every other leaf.

    Gate leaves get ``g <- T_{eta_t xi_t}(g - eta_t d)`` with ``d`` the gradient (or the
    direction of ``gate_optimizer``) and ``T`` soft thresholding (:func:`scale_by_sora_prox`);
    the other leaves (the adapters' down and up projections, a head) get ``base``. Use the
    parameterization of :func:`sora_init` / :func:`sora_merge`, the mask of
    :func:`sora_gate_mask` and, after training, :func:`sora_prune`.

    Args:
      learning_rate: ``eta_t`` of the gate step (float or schedule).
      xi: the sparsity strength, a float or a schedule (:func:`sora_xi_schedule`).
      gate_mask: pytree of bools (or ``params -> pytree``) marking the gate leaves.
      base: optimizer of the non-gate leaves (default ``optax.adamw(learning_rate)``).
      gate_optimizer: a preconditioning stage for the gates before the step (e.g.
        ``optax.scale_by_adam()``, as in the authors' code); ``None`` is the paper's
        plain gradient step.

    Returns:
      An ``optax.GradientTransformation`` that requires ``params``.

    References:
      Ding et al., "Sparse Low-rank Adaptation of Pre-trained Language Models", 2023
      (arXiv:2311.11696).
    """
    if base is None:
        base = optax.adamw(learning_rate)
    stages = [] if gate_optimizer is None else [gate_optimizer]
    gate_tx = optax.chain(*stages, optax.scale_by_learning_rate(learning_rate),
                          scale_by_sora_prox(xi, learning_rate))
    # Checked first: optax.masked would otherwise fail on a mismatched tree with a bare
    # pytree-structure message that names neither the argument nor the leaf.
    return optax.chain(check_stage("sora", "updates"), optax.masked(gate_tx, gate_mask),
                       optax.masked(base, _complement(gate_mask)))


def sora_xi_schedule(xi_init: float, xi_max: float, num_stages: int, stage_steps: int,
                     spacing: str = "linear") -> optax.Schedule:
    """SoRA's sparsifying scheduler: ``xi`` raised stage by stage from ``xi_init`` to ``xi_max``.

    Stage ``k = min(step // stage_steps, num_stages - 1)`` uses ``xi_k``, the ``k``-th of
    ``num_stages`` values spaced ``"linear"`` (evenly), ``"geometric"`` (evenly in
    ``log xi``) or ``"log_linear"`` (evenly in ``exp xi``) between the two ends; training
    through the stages traces the accuracy-sparsity path (the paper's Algorithm 1).

    Args:
      xi_init: first value (``>= 0``; ``> 0`` for ``"geometric"``).
      xi_max: last value (``>= xi_init``).
      num_stages: number of values (``>= 1``).
      stage_steps: optimizer steps per stage (``>= 1``).
      spacing: ``"linear"``, ``"geometric"`` or ``"log_linear"``.

    Returns:
      An ``optax.Schedule`` (step -> xi).

    References:
      Ding et al., "Sparse Low-rank Adaptation of Pre-trained Language Models", 2023
      (arXiv:2311.11696).
    """
    if spacing not in ("linear", "geometric", "log_linear"):
        raise ValueError(f"spacing must be 'linear', 'geometric' or 'log_linear', got {spacing!r}.")
    if not isinstance(num_stages, int) or num_stages < 1:
        raise ValueError(f"num_stages must be an int >= 1, got {num_stages!r}.")
    if not isinstance(stage_steps, int) or stage_steps < 1:
        raise ValueError(f"stage_steps must be an int >= 1, got {stage_steps!r}.")
    if xi_init < 0 or xi_max < xi_init or (spacing == "geometric" and xi_init <= 0):
        raise ValueError(f"need 0 <= xi_init <= xi_max (xi_init > 0 for 'geometric'), got xi_init={xi_init}, "
                         f"xi_max={xi_max}.")
    if spacing == "linear":
        values = np.linspace(xi_init, xi_max, num_stages)
    elif spacing == "geometric":
        values = np.exp(np.linspace(np.log(xi_init), np.log(xi_max), num_stages))
    else:
        values = np.log(np.linspace(np.exp(xi_init), np.exp(xi_max), num_stages))
    table = jnp.asarray(values, jnp.float32)

    def schedule(count):
        return table[jnp.minimum(jnp.asarray(count) // stage_steps, num_stages - 1)]

    return schedule


def sora_init(key: jax.Array, in_features: int, out_features: int, rank: int,
              dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    """Parameters of one gated adapter ``Delta = A diag(gate) B`` (``x @ Delta`` convention).

    ``A`` (``in_features x rank``, the down projection) is Gaussian with variance
    ``1 / in_features``, ``B`` (``rank x out_features``) is zero and the gate is one, so
    the adapter starts at ``Delta = 0`` as LoRA does.

    Args:
      key: PRNG key.
      in_features, out_features: shape of the frozen weight ``W`` (``y = x @ W``).
      rank: the largest rank ``r_max`` (number of gates).
      dtype: parameter dtype.

    Returns:
      ``{"lora_a": A, "lora_b": B, "gate": g}``.

    References:
      Ding et al., "Sparse Low-rank Adaptation of Pre-trained Language Models", 2023
      (arXiv:2311.11696).
    """
    for name, v in (("in_features", in_features), ("out_features", out_features), ("rank", rank)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}.")
    a = jax.random.normal(key, (in_features, rank), dtype) / np.sqrt(in_features)
    return {"lora_a": a, "lora_b": jnp.zeros((rank, out_features), dtype), "gate": jnp.ones((rank,), dtype)}


def sora_merge(kernel: jax.Array, adapter: dict[str, jax.Array]) -> jax.Array:
    """The adapted weight ``W + A diag(gate) B``.

    Args:
      kernel: frozen weight ``W`` of shape ``(in_features, out_features)``.
      adapter: ``{"lora_a", "lora_b", "gate"}`` as made by :func:`sora_init`.

    Returns:
      An array shaped like ``kernel``.
    """
    a, b, g = adapter["lora_a"], adapter["lora_b"], adapter["gate"]
    if a.shape[0] != kernel.shape[0] or b.shape[1] != kernel.shape[1] or g.shape != (a.shape[1],) \
            or b.shape[0] != a.shape[1]:
        raise ValueError(f"adapter shapes lora_a {a.shape}, gate {g.shape}, lora_b {b.shape} do not fit "
                         f"kernel {kernel.shape}.")
    return kernel + (a * g) @ b


def sora_gate_mask(params: Any) -> Any:
    """Pytree of bools marking the leaves stored under a ``"gate"`` key.

    Args:
      params: a params pytree holding adapters made by :func:`sora_init`.

    Returns:
      A pytree like ``params`` with ``True`` at the gates.
    """
    def is_gate(path, _):
        last = path[-1] if path else None
        return getattr(last, "key", getattr(last, "name", None)) == "gate"

    return jax.tree_util.tree_map_with_path(is_gate, params)


def sora_prune(params: Any, tol: float = 0.0) -> Any:
    """Drop the ranks whose gate is zero: every adapter gets smaller ``A``, ``gate``, ``B``.

    Runs on the host (shapes change, so not under ``jit``). The pruned adapter gives the
    same ``A diag(gate) B`` up to the dropped gates (exactly when ``tol = 0``).

    Args:
      params: a params pytree; each dict with keys ``lora_a``, ``lora_b``, ``gate`` is pruned.
      tol: gates with ``|gate| <= tol`` are dropped.

    Returns:
      The params with pruned adapters (other leaves unchanged).
    """
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol}.")

    def prune(node):
        if isinstance(node, dict):
            if {"lora_a", "lora_b", "gate"} <= set(node):
                keep = np.flatnonzero(np.abs(np.asarray(node["gate"])) > tol)
                out = {k: prune(v) for k, v in node.items()}
                out["lora_a"] = jnp.asarray(node["lora_a"])[:, keep]
                out["lora_b"] = jnp.asarray(node["lora_b"])[keep, :]
                out["gate"] = jnp.asarray(node["gate"])[keep]
                return out
            return type(node)((k, prune(v)) for k, v in node.items())
        return node

    return prune(params)


__all__ = ["ScaleBySoraProxState", "scale_by_sora_prox", "sora"]
HELPERS = ["sora_gate_mask", "sora_init", "sora_merge", "sora_prune", "sora_xi_schedule"]
