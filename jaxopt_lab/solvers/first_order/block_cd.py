"""Proximal block coordinate descent, cyclic or greedy (Gauss-Southwell)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import check_callable, uses_line_search
from jaxopt_lab.core.types import OptStep
from jaxopt_lab.solvers.first_order._step import CompositeState, FirstOrderSolver


class BlockCDState(CompositeState):
    """State of :class:`BlockCoordinateDescent`.

    Attributes:
      iter_num: sweeps done (one sweep = ``n_blocks`` block updates).
      error: ``||x - prox(x - grad f(x), hyperparams_prox, 1)||`` after the sweep.
      value: ``f`` after the sweep.
      aux: auxiliary output of ``fun``.
      status: :class:`jaxopt_lab.Status` code.
    """

    __slots__ = ()


@dataclasses.dataclass(eq=False)
class BlockCoordinateDescent(FirstOrderSolver):
    """Proximal coordinate descent for ``min_x f(x, *args) + sum_j g(x_j, hyperparams_prox)``.

    The blocks ``x_j`` are the entries of a 1-D ``x`` or the rows of a 2-D ``x``. A block
    update is ``x_j <- block_prox(x_j - grad_j f(x) / L_j, hyperparams_prox, 1 / L_j)``
    with ``L_j`` the block's curvature: the Hessian diagonal entry (its trace over the row
    for 2-D blocks, an upper bound on the block's largest eigenvalue for convex ``f``),
    obtained with Hessian-vector products against basis vectors at the start of every
    sweep, or ``1 / stepsize`` when a positive ``stepsize`` is given. ``selection="cyclic"``
    visits blocks in order; ``"greedy"`` (Gauss-Southwell) makes ``n_blocks`` updates per
    sweep, each on the block whose proximal-gradient step is largest.

    Args:
      fun: smooth part ``f(params, *args, **kwargs)``.
      block_prox: ``block_prox(x_j, hyperparams_prox, scaling)`` of the separable part,
        e.g. :func:`jaxopt_lab.ops.prox.prox_lasso`; ``hyperparams_prox`` is shared by blocks.
      stepsize: ``<= 0`` (default) for ``1 / L_j`` from the Hessian diagonal, else a fixed
        step for every block (may be traced).
      selection: ``"cyclic"`` or ``"greedy"``.
      maxiter: maximum sweeps.
      tol: stop when the fixed-point residual is ``<= tol``.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver` (implicit solve default: normal CG).

    Returns:
      ``run(init_params, hyperparams_prox, *args, **kwargs)`` returns
      ``OptStep(params, BlockCDState)``.

    References:
      Tseng and Yun, "A coordinate gradient descent method for nonsmooth separable
      minimization", Math. Program., 2009; Nutini et al., "Coordinate descent converges
      faster with the Gauss-Southwell rule than random selection", 2015 (arXiv:1506.00552);
      Wright, "Coordinate descent algorithms", 2015 (arXiv:1502.04759).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "block_prox", "maxiter", "tol", "verbose", "implicit_diff", "implicit_diff_solve", "jit",
        "unroll",
    )
    # jaxopt's named leading run arguments (also accepted by keyword).
    _run_keywords: ClassVar[tuple[str, ...]] = ("hyperparams_prox",)

    _state_cls = BlockCDState
    _hyperparams_name = "hyperparams_prox"

    fun: Callable
    block_prox: Callable
    _: dataclasses.KW_ONLY
    stepsize: float | jax.Array = 0.0
    selection: str = "cyclic"
    maxiter: int = 500
    tol: float = 1e-4

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.block_prox, "block_prox")
        if self.selection not in ("cyclic", "greedy"):
            raise ValueError(f"`selection` must be 'cyclic' or 'greedy', got {self.selection!r}.")

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        if not isinstance(init_params, (jax.Array, np.ndarray)) or jnp.ndim(init_params) not in (1, 2):
            raise ValueError("`init_params` must be a 1-D or 2-D array (blocks = entries or rows), got "
                             f"{type(init_params).__name__} of shape {jnp.shape(init_params)}.")

    def _prox_all(self, z, hp, scalings):
        return jax.vmap(self.block_prox, in_axes=(0, None, 0))(z, hp, scalings)

    def _inv_lipschitz(self, x, fun_args, kwargs):
        dtype = jnp.result_type(x)
        if not uses_line_search(self.stepsize):
            return jnp.full(x.shape[:1], self.stepsize, dtype)
        grad = lambda p: jax.grad(self._value_fun())(p, *fun_args, **kwargs)
        basis = jnp.eye(x.size, dtype=dtype).reshape((x.size,) + x.shape)
        diag = jax.vmap(lambda v: jnp.vdot(v, jax.jvp(grad, (x,), (v,))[1]))(basis)
        lips = jnp.sum(diag.reshape(x.shape[0], -1), axis=1)
        return jnp.where(lips > 0, 1.0 / jnp.where(lips > 0, lips, 1.0), 1.0).astype(dtype)

    def _finish(self, x, hp, fun_args, kwargs, iter_num):
        (value, aux), grad = self._value_and_grad_fun()(x, *fun_args, **kwargs)
        error = jnp.linalg.norm(x - self._prox_all(x - grad, hp, jnp.ones(x.shape[:1], x.dtype)))
        return self._state(iter_num, error, value, aux, x.dtype)

    def init_state(self, init_params, hyperparams_prox, *args, **kwargs) -> BlockCDState:
        """Residual and value at ``init_params``.

        Args:
          init_params: 1-D or 2-D array.
          hyperparams_prox: hyperparameters of ``block_prox``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`BlockCDState`.
        """
        x = jnp.asarray(init_params)
        return self._finish(x, hyperparams_prox, args, kwargs, jnp.asarray(0, jnp.int32))

    def update(self, params, state: BlockCDState, hyperparams_prox, *args, **kwargs) -> OptStep:
        """One sweep of ``n_blocks`` block updates.

        Args:
          params: current point.
          state: current :class:`BlockCDState`.
          hyperparams_prox: hyperparameters of ``block_prox``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the sweep.
        """
        x = jnp.asarray(params)
        hp = hyperparams_prox
        steps = self._inv_lipschitz(x, args, kwargs)
        grad_fn = lambda p: jax.grad(self._value_fun())(p, *args, **kwargs)

        def cyclic(j, x):
            g = grad_fn(x)[j]
            return x.at[j].set(self.block_prox(x[j] - steps[j] * g, hp, steps[j]))

        def greedy(_, x):
            # Gauss-Southwell-prox rule: the block whose prox-gradient step moves it most.
            cand = self._prox_all(x - steps.reshape((-1,) + (1,) * (x.ndim - 1)) * grad_fn(x), hp, steps)
            moves = jnp.sum((cand - x).reshape(x.shape[0], -1) ** 2, axis=1)
            j = jnp.argmax(moves)
            return x.at[j].set(cand[j])

        x = jax.lax.fori_loop(0, x.shape[0], cyclic if self.selection == "cyclic" else greedy, x)
        return OptStep(x, self._finish(x, hp, args, kwargs, state.iter_num + 1))

    def _unit_step(self, x, g, hp):
        return self._prox_all(x - g, hp, jnp.ones(x.shape[:1], x.dtype))
