"""Saddle-point solvers for ``min_x max_y fun(x, y, *args)``: mirror prox and optimistic mirror descent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import all_concrete, check_callable, check_positive
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status

_MIRRORS = ("euclidean", "entropy")


class SaddlePointState(NamedTuple):
    """State of :class:`MirrorProx` and :class:`OptimisticMirrorDescent`.

    Attributes:
      iter_num: iterations done (rejected trial steps included).
      error: at the averaged point (the returned params): the duality gap of the
        linearization for players on simplices (``mirror="entropy"``; the exact duality gap
        for a bilinear game, an upper bound for a convex-concave ``fun``) plus the norm of
        the projected-gradient residual ``x - P(x - grad)`` for Euclidean players.
      iterate: the current (last, not averaged) point ``(x, y)``.
      leading: the previous leading point ``w_{t-1}`` (:class:`OptimisticMirrorDescent`;
        ``init_params`` at first), else ``None``.
      prediction: the operator ``(grad_x f, -grad_y f)`` at ``leading``
        (:class:`OptimisticMirrorDescent`), else ``None``.
      stepsize: the current step size.
      weight_sum: sum of the step sizes of the accepted steps (the averaging weights).
      credit: the sum, over the accepted steps, of the terms of the regret bound that the
        step-size test keeps non-positive (:class:`OptimisticMirrorDescent` with the adaptive
        step; ``<= 0``, zero otherwise).
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    iterate: Any
    leading: Any
    prediction: Any
    stepsize: jax.Array
    weight_sum: jax.Array
    credit: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class _SaddlePointSolver(IterativeSolver):
    """What mirror prox and optimistic mirror descent share: mirror steps, divergences, the gap,
    and the step itself. A subclass writes where the leading step's operator comes from
    (:meth:`_prediction`) and the adaptive step's acceptance test (:meth:`_test`)."""

    # Whether the state carries the previous leading point and its operator (optimistic).
    _optimistic = False
    # The initial step is this factor over a secant estimate of the Lipschitz constant.
    _lipschitz_factor = 1.0

    fun: Callable
    _: dataclasses.KW_ONLY
    mirror: str | tuple = "euclidean"
    projection_x: Callable | None = None
    projection_y: Callable | None = None
    stepsize: float | jax.Array | None = None
    maxiter: int = 5000
    tol: float = 1e-4
    implicit_diff: bool = False

    def __post_init__(self):
        super().__post_init__()
        mirrors = self._mirrors()
        if len(mirrors) != 2 or any(m not in _MIRRORS for m in mirrors):
            raise ValueError(f"`mirror` must be one of {_MIRRORS} or a pair of them, got {self.mirror!r}.")
        for m, name in zip(mirrors, ("projection_x", "projection_y"), strict=True):
            proj = getattr(self, name)
            if proj is not None:
                check_callable(proj, name)
                if m == "entropy":
                    raise ValueError(f"`{name}` is not used with mirror='entropy' (that player's set is "
                                     "the simplex); pass None or use mirror='euclidean'.")
        if self.stepsize is not None:
            check_positive(self.stepsize, "stepsize")

    def _mirrors(self) -> tuple:
        return (self.mirror, self.mirror) if isinstance(self.mirror, str) else tuple(self.mirror)

    def _check_run_args(self, init_params, args, kwargs) -> None:
        if not (isinstance(init_params, tuple | list) and len(init_params) == 2):
            raise ValueError("`init_params` must be a pair (x0, y0) of the min and max players' points, "
                             f"got {type(init_params).__name__}.")
        super()._check_run_args(tuple(init_params), args, kwargs)
        for z, m, name in zip(init_params, self._mirrors(), ("x0", "y0"), strict=True):
            if m == "entropy" and all_concrete(z) and not all(
                    bool(np.all(np.asarray(leaf) > 0)) for leaf in jax.tree_util.tree_leaves(z)):
                raise ValueError(f"`init_params` ({name}): mirror='entropy' needs a point with positive "
                                 "entries (e.g. the uniform distribution).")

    # ------------------------------------------------------------------ geometry
    def _operator(self, z, args, kwargs):
        """``F(x, y) = (grad_x f, -grad_y f)``."""
        gx, gy = jax.grad(self.fun, argnums=(0, 1))(z[0], z[1], *args, **kwargs)
        return gx, tu.tree_negative(gy)

    def _prox(self, k, z, g, eta):
        """Mirror step of player ``k`` from ``z`` along ``-eta g``."""
        if self._mirrors()[k] == "entropy":
            flat, unravel = ravel_pytree(z)
            gf, _ = ravel_pytree(g)
            return unravel(jnp.sum(flat) * jax.nn.softmax(jnp.log(flat) - eta * gf))
        out = tu.tree_add_scalar_mul(z, -eta, g)
        proj = (self.projection_x, self.projection_y)[k]
        return out if proj is None else proj(out)

    def _step(self, z, g, eta):
        return tuple(self._prox(k, z[k], g[k], eta) for k in range(2))

    def _bregman(self, u, z):
        """``D(u, z)``, summed over the players (KL or half squared distance)."""
        total = 0.0
        for k, m in enumerate(self._mirrors()):
            if m == "entropy":
                uf, _ = ravel_pytree(u[k])
                zf, _ = ravel_pytree(z[k])
                total = total + jnp.sum(jax.scipy.special.xlogy(uf, uf) - jax.scipy.special.xlogy(uf, zf)
                                        - uf + zf)
            else:
                total = total + 0.5 * tu.tree_l2_norm(tu.tree_sub(u[k], z[k]), squared=True)
        return total

    def _norms(self, dz, dF):
        """Primal and dual norms of a point difference and an operator difference."""
        primal, dual = 0.0, 0.0
        for k, m in enumerate(self._mirrors()):
            a, _ = ravel_pytree(dz[k])
            b, _ = ravel_pytree(dF[k])
            if m == "entropy":
                primal, dual = primal + jnp.sum(jnp.abs(a)) ** 2, dual + jnp.max(jnp.abs(b)) ** 2
            else:
                primal, dual = primal + jnp.sum(a * a), dual + jnp.sum(b * b)
        return jnp.sqrt(primal), jnp.sqrt(dual)

    def _gap(self, z, args, kwargs, dtype):
        """``state.error`` at ``z`` (see :class:`SaddlePointState`)."""
        F = self._operator(z, args, kwargs)
        total = jnp.zeros((), dtype)
        for k, m in enumerate(self._mirrors()):
            if m == "entropy":
                zf, _ = ravel_pytree(z[k])
                gf, _ = ravel_pytree(F[k])
                total = total + jnp.vdot(gf, zf) - jnp.sum(zf) * jnp.min(gf)
            else:
                res = tu.tree_sub(z[k], self._prox(k, z[k], F[k], 1.0))
                total = total + tu.tree_l2_norm(res)
        return total.astype(dtype)

    def optimality_fun(self, params, *args, **kwargs):
        """Fixed-point residual ``z - prox_z(F(z))`` (zero exactly at saddle points).

        Args:
          params: a pair ``(x, y)``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A pair like ``params``.
        """
        z = tuple(params)
        return tu.tree_sub(z, self._step(z, self._operator(z, args, kwargs), 1.0))

    def _initial_stepsize(self, z, F, args, kwargs, dtype, factor):
        """``stepsize``, or ``factor`` over a secant estimate of the operator's Lipschitz constant."""
        if self.stepsize is not None:
            return jnp.asarray(self.stepsize, dtype)
        _, fnorm = self._norms(z, F)
        t = 1 / jnp.maximum(fnorm, jnp.finfo(dtype).tiny)
        w = self._step(z, F, t)
        dz, dF = self._norms(tu.tree_sub(w, z), tu.tree_sub(self._operator(w, args, kwargs), F))
        est = dF / dz
        return jnp.where(jnp.isfinite(est) & (est > 0), factor / est, 1).astype(dtype)

    def init_state(self, init_params, *args, **kwargs) -> SaddlePointState:
        """Step size and gap at ``init_params = (x0, y0)``.

        Args:
          init_params: the pair ``(x0, y0)``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`SaddlePointState`; for :class:`OptimisticMirrorDescent` its
          ``prediction`` is ``F`` at ``init_params``.
        """
        z = tuple(init_params)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(z))
        F = self._operator(z, args, kwargs)
        eta = self._initial_stepsize(z, F, args, kwargs, dtype, self._lipschitz_factor)
        error = self._gap(z, args, kwargs, dtype)
        leading = (z, F) if self._optimistic else (None, None)
        return SaddlePointState(jnp.asarray(0, jnp.int32), error, z, *leading, eta,
                                jnp.zeros((), dtype), jnp.zeros((), dtype),
                                jnp.asarray(Status.RUNNING, jnp.int32))

    def update(self, params, state: SaddlePointState, *args, **kwargs) -> OptStep:
        """One step: the leading point ``w``, the actual step ``z+``, the step-size test.

        ``w = prox_z(eta M)`` with ``M`` from :meth:`_prediction`, ``z+ = prox_z(eta F(w))``.
        With the adaptive step a rejected trial halves ``eta`` and leaves the iterate, the
        prediction and the average unchanged; an accepted one averages ``w`` in with weight
        ``eta``.

        Args:
          params: the current averaged point ``(x, y)``.
          state: current :class:`SaddlePointState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep((x_avg, y_avg), state)``.
        """
        z, eta = state.iterate, state.stepsize
        M = self._prediction(z, state, args, kwargs)
        w = self._step(z, M, eta)
        Fw = self._operator(w, args, kwargs)
        z_next = self._step(z, Fw, eta)
        if self.stepsize is None:
            accepted, credit = self._test(state, M, w, Fw, z_next)
            eta_next = jnp.where(accepted, eta, eta / 2)
        else:
            accepted, eta_next, credit = jnp.asarray(True), eta, state.credit
        leading = (None, None)
        if self._optimistic:
            leading = (tu.tree_where(accepted, w, state.leading), tu.tree_where(accepted, Fw, M))
        dtype = eta.dtype
        total = state.weight_sum + jnp.where(accepted, eta, 0)
        frac = jnp.where(accepted, eta / jnp.where(total > 0, total, 1), 0).astype(dtype)
        avg = jax.tree_util.tree_map(lambda a, b: (1 - frac) * a + frac * b, tuple(params), w)
        z = tu.tree_where(accepted, z_next, state.iterate)
        error = self._gap(avg, args, kwargs, dtype)
        new = SaddlePointState(state.iter_num + 1, error, z, *leading, eta_next.astype(dtype),
                               total.astype(dtype), jnp.asarray(credit, dtype), state.status)
        return OptStep(avg, new)

    def _prediction(self, z, state, args, kwargs):
        """The operator value the leading step ``w = prox_z(eta M)`` moves along."""
        raise NotImplementedError

    def _test(self, state, M, w, Fw, z_next):
        """The adaptive step's test: ``(accepted, credit)`` (``credit``: the new ``state.credit``)."""
        raise NotImplementedError

    def _accept(self, state, w, Fw, z_next):
        """Nemirovski's test ``eta <F(w), w - z+> - D(z+, z) <= 0`` (up to rounding)."""
        eta = state.stepsize
        lin = eta * tu.tree_vdot(Fw, tu.tree_sub(w, z_next))
        div = self._bregman(z_next, state.iterate)
        return lin - div <= self._rounding(eta, Fw, w, z_next, div)

    @staticmethod
    def _rounding(eta, F, w, z_next, div):
        """Rounding in a test's two terms (once the iterates stop moving, both are at its level):
        a bound on the error of the inner products, ``sum |F| (|w| + |z+|)``."""
        mag = tu.tree_vdot(tu.tree_map(jnp.abs, F), tu.tree_add(tu.tree_map(jnp.abs, w),
                                                                 tu.tree_map(jnp.abs, z_next)))
        return 64 * jnp.finfo(eta.dtype).eps * (eta * mag + div)


@dataclasses.dataclass(eq=False)
class MirrorProx(_SaddlePointSolver):
    """Mirror prox (extragradient) for ``min_x max_y fun(x, y, *args)``, convex-concave ``fun``.

    With ``F(x, y) = (grad_x f, -grad_y f)``, each step takes a leading mirror step
    ``w = prox_z(eta F(z))`` and the actual step ``z+ = prox_z(eta F(w))``; the returned
    params are the ``eta``-weighted average of the leading points, whose duality gap is at
    most ``max_u D(u, z_0) / sum_t eta_t``: ``O(1/T)`` with a bounded step (``eta <= 1/L``
    for an ``L``-Lipschitz ``F``).

    ``mirror`` chooses each player's geometry (one string for both, or a pair):
    ``"euclidean"`` steps are ``P(z - eta g)`` with ``projection_x``/``projection_y``
    (``None``: unconstrained), ``"entropy"`` steps are multiplicative weights
    ``z * exp(-eta g)`` normalized to the mass of ``z`` (the simplex of the initial point's
    mass; start inside it, e.g. uniform).

    ``stepsize=None`` (default) starts from a secant estimate of ``1/L`` and halves the step
    whenever Nemirovski's acceptance test ``eta <F(w), w - z+> - D(z+, z) <= 0`` fails; a
    rejected step leaves the iterate and the average unchanged. A number gives a fixed step.

    ``state.error`` is the duality gap of the averaged point for players on simplices
    (exact for bilinear games, an upper bound for convex-concave ``fun``) and a
    projected-gradient residual for Euclidean players (:class:`SaddlePointState`).
    Derivatives go through the iterations (``implicit_diff=False``; :meth:`optimality_fun`
    is the fixed-point residual, for ``implicit_diff=True`` where the saddle point is
    differentiable).

    Args:
      fun: ``fun(x, y, *args, **kwargs)``, convex in ``x`` and concave in ``y``.
      mirror: ``"euclidean"``, ``"entropy"`` or a pair of them (static).
      projection_x, projection_y: Euclidean projections ``P(z) -> z`` onto each player's set
        (``None``: unconstrained; not used with the entropy mirror).
      stepsize: a fixed step ``> 0`` (may be traced), or ``None`` for the adaptive one.
      maxiter: maximum iterations.
      tol: stop when ``state.error <= tol``.
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run((x0, y0), *args, **kwargs)`` returns ``OptStep((x_avg, y_avg), SaddlePointState)``.

    References:
      Nemirovski, "Prox-Method with Rate of Convergence O(1/t) for Variational Inequalities
      with Lipschitz Continuous Monotone Operators and Smooth Convex-Concave Saddle Point
      Problems", SIAM J. Optim., 2004; Korpelevich, "The extragradient method for finding
      saddle points and other problems", 1976.
    """

    def _prediction(self, z, state, args, kwargs):
        # The extragradient step: the operator at the current iterate (a second call).
        return self._operator(z, args, kwargs)

    def _test(self, state, M, w, Fw, z_next):
        return self._accept(state, w, Fw, z_next), state.credit


@dataclasses.dataclass(eq=False)
class OptimisticMirrorDescent(_SaddlePointSolver):
    """Optimistic mirror descent for ``min_x max_y fun(x, y, *args)``: one operator call per step.

    Mirror prox's leading step reuses the operator of the previous leading point as a
    prediction: ``w_t = prox_{z_t}(eta F(w_{t-1}))``, ``z_{t+1} = prox_{z_t}(eta F(w_t))``,
    so each step costs one evaluation of ``F = (grad_x f, -grad_y f)`` instead of two.

    Step sizes. With ``M_t = F(w_{t-1})``, the two mirror steps give, for every ``u``
    (Rakhlin and Sridharan 2013, Lemma 1, with the Bregman three-point identity)
    ``eta_t <F(w_t), w_t - u> <= D(u, z_t) - D(u, z_{t+1}) + e_t`` with
    ``e_t = eta_t <F(w_t) - M_t, w_t - z_{t+1}> - D(z_{t+1}, w_t) - D(w_t, z_t)``. Summed,
    the ``eta``-weighted average of the ``w_t`` has a duality gap at most
    ``(max_u D(u, z_0) + sum_t e_t) / sum_t eta_t``. For an ``F`` that is ``L``-Lipschitz
    (from the mirror's norm to its dual; ``D`` is 1-strongly convex), splitting
    ``||w_t - w_{t-1}|| <= ||w_t - z_t|| + ||z_t - w_{t-1}||`` with Young's inequality bounds
    ``e_t <= eta L D(z_t, w_{t-1}) - (1 - 2 eta L) D(z_{t+1}, w_t)``, so a fixed
    ``stepsize <= 1/(3L)`` keeps every partial sum ``sum_{s<=t} e_s <= -D(z_{t+1}, w_t) / 3``
    and gives an ``O(1/T)`` gap. ``stepsize=None`` (default) checks that inequality
    instead of assuming ``L``: it starts from a secant estimate of ``1/L`` and keeps a step
    while the running sum of the ``e_t`` (``state.credit``) stays ``<= -D(z_{t+1}, w_t) / 3``
    (the reserve that pays for the next step); otherwise the step is rejected (iterate,
    prediction and average unchanged) and ``eta`` halved (as ``eta -> 0`` the test passes).
    The bound ``max_u D(u, z_0) / sum_t eta_t`` then holds with steps as large as the
    iterates allow, never halved below ``1/(6L)``. A number gives a fixed step.
    ``mirror``, the projections and ``state.error`` are as in
    :class:`MirrorProx`; derivatives go through the iterations by default.

    Args:
      fun, mirror, projection_x, projection_y, stepsize, maxiter, tol, implicit_diff,
        implicit_diff_solve, jit, unroll, verbose: as for :class:`MirrorProx`.

    Returns:
      ``run((x0, y0), *args, **kwargs)``, as for :class:`MirrorProx`.

    References:
      Rakhlin and Sridharan, "Optimization, Learning, and Games with Predictable Sequences",
      NeurIPS 2013 (arXiv:1311.1869); Popov, "A modification of the Arrow-Hurwicz method
      for search of saddle points", 1980.
    """

    _optimistic = True

    def _prediction(self, z, state, args, kwargs):
        # The operator at the previous leading point, kept in the state: no second call.
        return state.prediction

    def _test(self, state, M, w, Fw, z_next):
        # The step's term e_t of the regret bound (see the class docstring); the step is
        # kept while the running sum of the e_t stays <= -D(z+, w) / 3, the reserve that
        # pays for the next step's ||z+ - w|| part of ||w_{t+1} - w_t||; else eta is halved.
        eta, z = state.stepsize, state.iterate
        d_next = self._bregman(z_next, w)
        div = d_next + self._bregman(w, z)
        term = eta * tu.tree_vdot(tu.tree_sub(Fw, M), tu.tree_sub(w, z_next)) - div
        credit = state.credit + term
        accepted = credit + d_next / 3 <= self._rounding(eta, tu.tree_sub(Fw, M), w, z_next, div)
        return accepted, jnp.where(accepted, jnp.minimum(credit, 0), state.credit)
