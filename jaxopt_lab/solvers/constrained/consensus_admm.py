"""Global-consensus ADMM: ``min sum_i fun(x, *args_i) + g(x)`` with the data split into blocks."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.types import OptStep
from jaxopt_lab.solvers.constrained.admm import _ADMMBase


class ConsensusADMMState(NamedTuple):
    """State of :class:`ConsensusADMM`.

    Attributes:
      iter_num: iterations done.
      value: ``sum_i fun(z, *args_i)`` at the consensus point ``z``.
      error: Boyd's stopping test as one number (see :class:`ADMMState`).
      primal_residual: ``||r|| = sqrt(sum_i ||x_i - z||^2)``.
      dual_residual: ``||s|| = rho sqrt(N) ||z - z_prev||``.
      x_blocks: the local variables ``x_i``, stacked on a leading axis of size ``N``.
      dual: the multipliers ``y_i`` of ``x_i = z`` (unscaled), stacked likewise.
      rho: the current penalty.
      inner_tol: tolerance of the next inner x-update solves.
      inner_iter_num: inner iterations so far, summed over blocks.
      factor: Cholesky factors of ``Q_i + rho I`` (``quadratic=True``; else empty).
      factor_rho: the ``rho`` of ``factor``.
      hessian: the ``Q_i`` (``quadratic=True``; else empty).
      linear: the ``c_i`` (``quadratic=True``; else empty).
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    x_blocks: Any
    dual: Any
    rho: jax.Array
    inner_tol: jax.Array
    inner_iter_num: jax.Array
    factor: jax.Array
    factor_rho: jax.Array
    hessian: jax.Array
    linear: jax.Array
    status: jax.Array


def _stack(tree, n):
    return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n,) + jnp.shape(a)), tree)


@dataclasses.dataclass(eq=False)
class ConsensusADMM(_ADMMBase):
    """Global-consensus ADMM for ``min_x sum_i fun(x, *args_i) + g(x)``.

    The data ``*args`` carry a leading block axis of size ``N`` (``in_axes`` as in
    ``jax.vmap``): block ``i`` owns ``fun(x_i, *args_i)``, and the blocks agree through
    ``x_i = z`` (Boyd et al. 2011, section 7.1). Each iteration::

        x_i = argmin fun(x_i, *args_i) + rho/2 ||x_i - z + u_i||^2   (all blocks at once, vmapped)
        z   = prox(mean_i(alpha x_i + (1 - alpha) z + u_i), hyperparams_prox, 1 / (N rho))
        u_i = u_i + alpha x_i + (1 - alpha) z_prev - z

    The block updates are one ``vmap``; with ``mesh`` the block axis is sharded over the
    mesh's devices (``jax.sharding``), so each device solves its own blocks and only the
    average crosses devices. Inner solves, ``quadratic=True`` (batched Cholesky factors),
    residual balancing, over-relaxation, the stopping test (``N n`` entries in both
    residuals) and status codes are as in :class:`jaxopt_lab.ADMM`.

    Implicit derivatives of ``z`` with respect to ``hyperparams_prox`` and ``*args``
    come from the proximal-gradient fixed point of the whole problem,
    ``z = prox(z - s sum_i grad fun(z, *args_i), hyperparams_prox, s)`` with
    ``s = 1 / (N rho)``.

    Args:
      fun: per-block objective ``fun(x, *args_i, **kwargs)`` (``(value, aux)`` with
        ``has_aux``).
      prox: ``prox(v, hyperparams_prox, scaling)``, the proximal operator of ``g``.
      in_axes: which ``*args`` carry the block axis (``jax.vmap`` convention; static).
      mesh: an optional ``jax.sharding.Mesh``; the block axis is sharded over
        ``axis_name`` (its first axis by default). ``N`` must be a multiple of its size.
      axis_name: the mesh axis of the blocks.
      rho, alpha, quadratic, residual_balancing, mu, tau, atol, inner_solver,
        inner_maxiter, maxiter, tol: as for :class:`jaxopt_lab.ADMM`.
      implicit_diff, implicit_diff_solve, has_aux, jit, unroll, verbose, adjoint: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run(init_params, hyperparams_prox, *args, **kwargs)`` (``init_params`` shaped like
      one block's ``x``) returns ``OptStep(z, ConsensusADMMState)``.

    References:
      Boyd, Parikh, Chu, Peleato and Eckstein, "Distributed Optimization and Statistical
      Learning via the Alternating Direction Method of Multipliers", Foundations and
      Trends in Machine Learning, 2011, chapter 7.
    """

    _: dataclasses.KW_ONLY
    in_axes: Any = 0
    mesh: Mesh | None = None
    axis_name: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.mesh is not None:
            if not isinstance(self.mesh, Mesh):
                raise TypeError("`mesh` must be a jax.sharding.Mesh or None, got "
                                f"{type(self.mesh).__name__}.")
            if self.axis_name is not None and self.axis_name not in self.mesh.axis_names:
                raise ValueError(f"`axis_name` {self.axis_name!r} is not an axis of `mesh` "
                                 f"{self.mesh.axis_names}.")

    # ------------------------------------------------------------------ blocks
    def _args_axes(self, args):
        if isinstance(self.in_axes, tuple | list):
            if len(self.in_axes) != len(args):
                raise ValueError(f"`in_axes` has {len(self.in_axes)} entries for {len(args)} `*args`.")
            return tuple(self.in_axes)
        return (self.in_axes,) * len(args)

    def _num_blocks(self, args) -> int:
        sizes = set()
        for arg, axis in zip(args, self._args_axes(args), strict=True):
            if axis is None:
                continue
            for leaf in jax.tree_util.tree_leaves(arg):
                if jnp.ndim(leaf) <= axis:
                    raise ValueError(f"`*args` leaves split into blocks need an axis {axis}, got shape "
                                     f"{jnp.shape(leaf)}.")
                sizes.add(jnp.shape(leaf)[axis])
        if len(sizes) != 1:
            raise ValueError("ConsensusADMM needs `*args` with one block axis of a common size "
                             f"(`in_axes={self.in_axes!r}`), got block sizes {sorted(sizes)}.")
        return sizes.pop()

    def _block_sharding(self):
        axis = self.axis_name or self.mesh.axis_names[0]
        return NamedSharding(self.mesh, P(axis)), self.mesh.shape[axis]

    def _constrain(self, tree):
        if self.mesh is None:
            return tree
        sharding = self._block_sharding()[0]
        return jax.tree_util.tree_map(lambda a: jax.lax.with_sharding_constraint(a, sharding), tree)

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        n = self._num_blocks(args[1:])  # args[0] is hyperparams_prox
        if self.quadratic and (not hasattr(init_params, "shape") or jnp.ndim(init_params) != 1):
            raise ValueError("With `quadratic=True`, `init_params` must be a 1-D array, got shape "
                             f"{jnp.shape(init_params)}.")
        if self.mesh is not None and n % self._block_sharding()[1]:
            raise ValueError(f"The {n} blocks of `*args` cannot be split evenly over the "
                             f"{self._block_sharding()[1]} devices of `mesh`.")

    def _vmap(self, fn, args, num_stacked: int):
        """``fn(*stacked, args)`` vmapped over the leading axis of ``num_stacked`` arguments and
        the ``in_axes`` of ``args``."""
        return jax.vmap(fn, in_axes=(0,) * num_stacked + (self._args_axes(args),))

    # ------------------------------------------------------------------ pieces
    def _block_value(self, x, args, kwargs):
        return self._value_fun()(x, *args, **kwargs)

    def _total_value(self, z, args, kwargs):
        vals = jax.vmap(lambda a: self._block_value(z, a, kwargs), in_axes=(self._args_axes(args),))(args)
        return jnp.sum(vals)

    def _x_objective(self, x, v, rho, *args, **kwargs):
        return self._value_fun()(x, *args, **kwargs) + 0.5 * rho * tu.tree_l2_norm(tu.tree_sub(x, v),
                                                                                   squared=True)

    def _factor(self, Q, rho):
        eye = jnp.eye(Q.shape[-1], dtype=Q.dtype)
        return jnp.linalg.cholesky(Q + rho * eye)

    def _x_update(self, x_blocks, v_blocks, state, args, kwargs):
        rho = state.rho
        if self.quadratic:
            factor = self._current_factor(state)
            solve = lambda L, b: jax.scipy.linalg.cho_solve((L, True), b)
            x_new = jax.vmap(solve)(factor, rho * v_blocks - state.linear)
            return x_new, jnp.asarray(0, jnp.int32), factor, rho
        solver = self._inner_solver_for(self._x_objective, state.inner_tol)

        def block(x, v, a):
            out = solver.run(x, v, rho, *a, **kwargs)
            return out.params, jnp.asarray(getattr(out.state, "iter_num", 0), jnp.int32)

        x_new, inner = self._vmap(block, args, 2)(x_blocks, v_blocks, args)
        return x_new, jnp.sum(inner).astype(jnp.int32), state.factor, state.factor_rho

    # ------------------------------------------------------------------ solver contract
    def init_state(self, init_params, hyperparams_prox=None, *args, **kwargs) -> ConsensusADMMState:
        """State with every block at ``init_params`` and zero duals.

        Args:
          init_params: initial ``z`` (one block's shape).
          hyperparams_prox: hyperparameters of ``prox``.
          *args, **kwargs: the blocks' data (leading block axis) and options of ``fun``.

        Returns:
          A :class:`ConsensusADMMState`.
        """
        del hyperparams_prox
        z = init_params
        n = self._num_blocks(args)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(z))
        x_blocks = self._constrain(_stack(z, n))
        quadratic_data = None
        if self.quadratic:
            data = lambda a: self._quadratic_data(z, a, kwargs)
            quadratic_data = jax.vmap(data, in_axes=(self._args_axes(args),))(args)
        grad = jax.grad(lambda v: self._total_value(v, args, kwargs))(z)
        shared = self._initial_fields(jnp.asarray(self.rho, dtype), grad, quadratic_data, dtype)
        return ConsensusADMMState(value=self._total_value(z, args, kwargs).astype(dtype), x_blocks=x_blocks,
                                  dual=tu.tree_zeros_like(x_blocks), **shared)

    def update(self, params, state: ConsensusADMMState, hyperparams_prox=None, *args,
               **kwargs) -> OptStep:
        """One consensus-ADMM iteration.

        Args:
          params: current consensus point ``z``.
          state: current :class:`ConsensusADMMState`.
          hyperparams_prox: hyperparameters of ``prox``.
          *args, **kwargs: the blocks' data and options of ``fun``.

        Returns:
          ``OptStep(z, state)``.
        """
        dtype = state.rho.dtype
        rho, z_prev = state.rho, params
        n = jax.tree_util.tree_leaves(state.x_blocks)[0].shape[0]
        z_b = _stack(z_prev, n)
        u = tu.tree_scalar_mul(1.0 / rho, state.dual)
        v = tu.tree_sub(z_b, u)
        x, inner, factor, factor_rho = self._x_update(state.x_blocks, v, state, args, kwargs)
        x = self._constrain(x)
        x_hat = tu.tree_add(tu.tree_scalar_mul(self.alpha, x), tu.tree_scalar_mul(1.0 - self.alpha, z_b))
        mean = jax.tree_util.tree_map(lambda a: jnp.mean(a, axis=0), tu.tree_add(x_hat, u))
        z = self.prox(mean, hyperparams_prox, 1.0 / (n * rho))
        z_b = _stack(z, n)
        u = self._constrain(tu.tree_add(u, tu.tree_sub(x_hat, z_b)))
        y = tu.tree_scalar_mul(rho, u)
        r = tu.tree_l2_norm(tu.tree_sub(x, z_b)).astype(dtype)
        s = (rho * np.sqrt(n) * tu.tree_l2_norm(tu.tree_sub(z, z_prev))).astype(dtype)
        scale_p = jnp.maximum(tu.tree_l2_norm(x), np.sqrt(n) * tu.tree_l2_norm(z)).astype(dtype)
        scale_d = tu.tree_l2_norm(y).astype(dtype)
        size = sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(x))
        shared = self._next_fields(state, r, s, (scale_p, scale_d), (size, size), inner, factor, factor_rho)
        value = self._total_value(z, args, kwargs).astype(dtype)
        return OptStep(z, ConsensusADMMState(value=value, x_blocks=x, dual=y, **shared))

    def optimality_fun(self, params, hyperparams_prox=None, *args, **kwargs):
        """``z - prox(z - s sum_i grad fun(z, *args_i), hyperparams_prox, s)``, ``s = 1 / (N rho)``.

        Args:
          params: the consensus point ``z``.
          hyperparams_prox: hyperparameters of ``prox``.
          *args, **kwargs: the blocks' data and options of ``fun``.

        Returns:
          The residual, a pytree like ``params``.
        """
        n = self._num_blocks(args)
        s = 1.0 / (n * jnp.asarray(self.rho))
        grad = jax.grad(lambda v: self._total_value(v, args, kwargs))(params)
        return tu.tree_sub(params, self.prox(tu.tree_add_scalar_mul(params, -s, grad), hyperparams_prox, s))

    def run(self, init_params, hyperparams_prox=None, *args, **kwargs) -> OptStep:
        """Run consensus ADMM from ``init_params``.

        Args:
          init_params: initial consensus point (gets no derivative).
          hyperparams_prox: hyperparameters of ``prox``; derivatives flow to them.
          *args, **kwargs: the blocks' data (a leading block axis, per ``in_axes``) and
            options of ``fun``; derivatives flow to them. With ``mesh`` the block axis of
            concrete arrays is placed on the mesh first.

        Returns:
          ``OptStep(z, ConsensusADMMState)``.
        """
        if self.mesh is not None:
            self._check_run_args(init_params, (hyperparams_prox, *args), kwargs)
            sharding = self._block_sharding()[0]
            args = tuple(
                arg if axis != 0 else jax.tree_util.tree_map(
                    lambda a: a if isinstance(a, jax.core.Tracer) else jax.device_put(a, sharding), arg)
                for arg, axis in zip(args, self._args_axes(args), strict=True))
        return super().run(init_params, hyperparams_prox, *args, **kwargs)
