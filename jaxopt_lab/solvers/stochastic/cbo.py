"""Consensus-based optimization (CBO): a derivative-free particle method."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status


class CBOState(NamedTuple):
    """State of :class:`ConsensusBasedOptimization`.

    Attributes:
      iter_num: iterations done.
      value: ``fun`` at the consensus point (the params).
      error: particle spread ``sqrt(mean_i ||X_i - v||^2)`` around the consensus ``v``.
      particles: ``(num_particles, d)`` flattened particle positions.
      particle_values: ``fun`` at each particle.
      key: PRNG key for the next step.
      num_fun_eval: evaluations of ``fun`` so far.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    particles: jax.Array
    particle_values: jax.Array
    key: jax.Array
    num_fun_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class ConsensusBasedOptimization(IterativeSolver):
    """Consensus-based optimization with log-sum-exp weights, drift and noise.

    Particles ``X_i`` (drawn around ``init_params`` with spread ``init_std``) follow the
    Euler-Maruyama step of ``dX_i = -lam (X_i - v) dt + sigma D(X_i - v) dW_i`` towards the
    consensus point ``v = sum_i w_i X_i / sum_i w_i``, ``w_i = exp(-alpha f(X_i))``
    (a softmax of ``-alpha f``, computed stably). The noise is anisotropic
    (``D(z) = diag(z)``, dimension-free condition ``2 lam > sigma^2``) or isotropic
    (``D(z) = ||z|| I``, condition ``2 lam > d sigma^2``). ``params`` is the consensus
    point; the solve stops when the particle spread is ``<= tol``. Only values of
    ``fun`` are used (``num_particles + 1`` evaluations per step, the particles in one ``vmap``).

    Args:
      fun: objective ``fun(params, *args, **kwargs) -> scalar``.
      num_particles: number of particles (static).
      alpha: inverse temperature of the weights (large: consensus near the best particle).
      drift: ``lam``, the pull towards the consensus.
      noise: ``sigma``, the exploration noise scale.
      dt: time step.
      init_std: standard deviation of the initial particles around ``init_params``.
      anisotropic: coordinate-wise noise (default) or isotropic noise.
      key: PRNG key (default ``PRNGKey(0)``); may be traced (``vmap`` over seeds).
      maxiter, tol, verbose, jit: see :class:`jaxopt_lab.IterativeSolver`.
      implicit_diff: ``False`` (derivative-free; no implicit derivatives of ``run``).
      unroll: ``False``: a ``while_loop`` (differentiating through particles is not meaningful).

    Returns:
      ``run`` returns an ``OptStep(params, CBOState)``.

    References:
      Pinnau, Totzeck, Tse and Martin, "A consensus-based model for global optimization
      and its mean-field limit", 2017 (arXiv:1604.05648); Carrillo, Jin, Li and Zhu,
      "A consensus-based global optimization method for high dimensional machine
      learning problems", 2021 (arXiv:1909.09249); Riedl, Klock, Geldhauser and
      Fornasier, "Gradient is all you need?", 2023 (arXiv:2306.09778).
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    num_particles: int = 100
    alpha: float = 1e3
    drift: float = 1.0
    noise: float = 0.7
    dt: float = 0.1
    init_std: float = 1.0
    anisotropic: bool = True
    key: Any = None
    maxiter: int = 1000
    tol: float = 1e-6
    implicit_diff: bool = False
    unroll: bool | str = False

    def __post_init__(self):
        super().__post_init__()
        check_int(self.num_particles, "num_particles", minimum=2)
        for name in ("alpha", "dt", "init_std"):
            check_positive(getattr(self, name), name)
        for name in ("drift", "noise"):
            check_positive(getattr(self, name), name, allow_zero=True)
        if self.has_aux:
            raise ValueError("`has_aux=True` is not supported by ConsensusBasedOptimization.")

    def _values(self, X, unravel, args, kwargs):
        return jax.vmap(lambda z: self.fun(unravel(z), *args, **kwargs))(X)

    def _consensus(self, X, values):
        # Non-finite values get zero weight unless every value is non-finite.
        dtype = X.dtype
        logits = -jnp.asarray(self.alpha, values.dtype) * values
        logits = jnp.where(jnp.isnan(logits), -jnp.inf, logits)
        all_bad = jnp.all(jnp.isneginf(logits))
        w = jax.nn.softmax(jnp.where(all_bad, 0.0, logits))
        v = w.astype(dtype) @ X
        return jnp.where(all_bad, jnp.nan, v).astype(dtype)

    def init_state(self, init_params, *args, **kwargs) -> CBOState:
        """Draw the particles around ``init_params``.

        Args:
          init_params: centre of the initial particle cloud (a pytree).
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`CBOState`.
        """
        x, unravel = ravel_pytree(init_params)
        key = jax.random.PRNGKey(0) if self.key is None else self.key
        key, sub = jax.random.split(key)
        eps = jax.random.normal(sub, (self.num_particles, x.size), x.dtype)
        X = x + jnp.asarray(self.init_std, x.dtype) * eps
        value = self.fun(init_params, *args, **kwargs)
        return CBOState(
            iter_num=jnp.asarray(0, jnp.int32), value=value,
            error=jnp.asarray(jnp.inf, jnp.result_type(value)), particles=X,
            particle_values=self._values(X, unravel, args, kwargs), key=key,
            num_fun_eval=jnp.asarray(1 + self.num_particles, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: CBOState, *args, **kwargs) -> OptStep:
        """One Euler-Maruyama step of the particle system.

        Args:
          params: current consensus point (its value is not used; particles live in state).
          state: current :class:`CBOState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(consensus, state)`` after the step.
        """
        _, unravel = ravel_pytree(params)
        X = state.particles
        dtype = X.dtype
        v = self._consensus(X, state.particle_values)
        key, sub = jax.random.split(state.key)
        xi = jax.random.normal(sub, X.shape, dtype)
        dX = X - v
        dt = jnp.asarray(self.dt, dtype)
        if self.anisotropic:
            diffusion = dX * xi
        else:
            diffusion = jnp.linalg.norm(dX, axis=1, keepdims=True) * xi
        X_new = X - jnp.asarray(self.drift, dtype) * dt * dX \
            + jnp.asarray(self.noise, dtype) * jnp.sqrt(dt) * diffusion
        values_new = self._values(X_new, unravel, args, kwargs)
        v_new = self._consensus(X_new, values_new)
        new_params = unravel(v_new)
        value = self.fun(new_params, *args, **kwargs)
        spread = jnp.sqrt(jnp.mean(jnp.sum((X_new - v_new) ** 2, axis=1)))
        new_state = CBOState(
            iter_num=state.iter_num + 1, value=value,
            error=spread.astype(jnp.result_type(value)), particles=X_new,
            particle_values=values_new, key=key,
            num_fun_eval=state.num_fun_eval + self.num_particles + 1,
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )
        return OptStep(new_params, new_state)
