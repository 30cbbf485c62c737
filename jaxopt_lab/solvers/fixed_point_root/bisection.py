"""Bisection for scalar root finding."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import check_callable, is_concrete
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.fixed_point_root._step import split_aux


class BisectionState(NamedTuple):
    """State of :class:`Bisection`.

    Attributes:
      iter_num: iterations done.
      value: ``F(params)`` at the midpoint.
      error: ``|F(params)|``.
      low, high: current bracket.
      sign: ``+1`` if ``F`` is increasing on the bracket, ``-1`` if decreasing.
      aux: auxiliary output of ``optimality_fun``.
      num_fun_eval: evaluations of ``F``.
      status: :class:`jaxopt_lab.Status` code (``INFEASIBLE`` when the signs at
        ``lower`` and ``upper`` do not bracket a root).
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    low: jax.Array
    high: jax.Array
    sign: jax.Array
    aux: Any
    num_fun_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class Bisection(IterativeSolver):
    """Bisection on ``[lower, upper]`` for a scalar ``F(x) = 0``.

    Halves the bracket each iteration, keeping the half where ``F`` changes sign;
    the error ``|F(midpoint)|`` is compared with ``tol``. Implicit derivatives of
    the root follow ``dx/dtheta = -(dF/dx)^{-1} dF/dtheta``.

    Args:
      optimality_fun: scalar ``F(x, *args, **kwargs)`` (or ``(F, aux)`` with ``has_aux``).
      lower, upper: the bracket (may be traced).
      maxiter: maximum iterations (each halves the bracket).
      tol: stop when ``|F(x)| <= tol``.
      check_bracket: raise ``ValueError`` when concrete ``F(lower)`` and ``F(upper)``
        have the same sign; inside ``jit`` the status becomes ``INFEASIBLE``.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run(init_params=None, *args)`` returns ``OptStep(root, BisectionState)``;
      ``init_params`` is ignored (the bracket's midpoint starts).

    References:
      Burden and Faires, "Numerical Analysis", 9th ed., 2010, section 2.1.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "optimality_fun", "lower", "upper", "maxiter", "tol", "check_bracket", "verbose",
        "implicit_diff_solve", "has_aux", "jit", "unroll",
    )

    # The base class's ``optimality_fun`` method becomes this field's default (a
    # dataclass quirk), so the bracket gets defaults too; both are checked below.
    optimality_fun: Callable
    lower: float | None = None
    upper: float | None = None
    _: dataclasses.KW_ONLY
    maxiter: int = 30
    tol: float = 1e-5
    check_bracket: bool = True
    has_aux: bool = False

    def __post_init__(self):
        if self.optimality_fun is IterativeSolver.optimality_fun:
            raise TypeError("`optimality_fun` (the scalar function whose root is sought) is required.")
        if self.lower is None or self.upper is None:
            raise TypeError("`lower` and `upper` (the bracket) are required.")
        super().__post_init__()
        check_callable(self.optimality_fun, "optimality_fun")
        if is_concrete(self.lower) and is_concrete(self.upper):
            if np.any(np.asarray(self.lower) >= np.asarray(self.upper)):
                raise ValueError(f"`lower` must be < `upper`, got {self.lower} and {self.upper}.")
        if self.has_aux and not hasattr(self.optimality_fun, "with_aux"):
            # The field doubles as the base's ``optimality_fun`` hook, which must return
            # F only; the function with aux output stays reachable from the wrapper.
            user = self.optimality_fun
            strip = lambda x, *a, **k: user(x, *a, **k)[0]
            strip.with_aux = user
            self.optimality_fun = strip

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or ls.solve_normal_cg

    def _f(self, x, args, kwargs):
        fun = getattr(self.optimality_fun, "with_aux", self.optimality_fun)
        return split_aux(fun(x, *args, **kwargs), self.has_aux)

    def _check_run_args(self, init_params, args, kwargs) -> None:
        if self.check_bracket and all(is_concrete(a) for a in jax.tree_util.tree_leaves(
                (self.lower, self.upper, args, kwargs))):
            lo = self._f(jnp.asarray(self.lower), args, kwargs)[0]
            hi = self._f(jnp.asarray(self.upper), args, kwargs)[0]
            if np.any(np.sign(np.asarray(lo)) * np.sign(np.asarray(hi)) > 0):
                raise ValueError(
                    "`lower` and `upper` do not bracket a root: F(lower) = "
                    f"{float(lo):.3g} and F(upper) = {float(hi):.3g} have the same sign.")

    def run(self, init_params=None, *args, **kwargs) -> OptStep:
        """Bisect from the bracket's midpoint (``init_params`` is ignored).

        Args:
          init_params: ignored (jaxopt compatibility).
          *args, **kwargs: passed to ``optimality_fun``.

        Returns:
          ``OptStep(root, BisectionState)``.
        """
        del init_params
        mid = 0.5 * (jnp.asarray(self.lower) + jnp.asarray(self.upper))
        return super().run(mid, *args, **kwargs)

    def init_state(self, init_params, *args, **kwargs) -> BisectionState:
        """Evaluate ``F`` at the bracket ends and the midpoint.

        Args:
          init_params: the midpoint.
          *args, **kwargs: passed to ``optimality_fun``.

        Returns:
          A :class:`BisectionState`.
        """
        dtype = jnp.result_type(init_params, float)
        low, high = jnp.asarray(self.lower, dtype), jnp.asarray(self.upper, dtype)
        f_low, _ = self._f(low, args, kwargs)
        f_high, _ = self._f(high, args, kwargs)
        value, aux = self._f(0.5 * (low + high), args, kwargs)
        bracketed = jnp.sign(f_low) * jnp.sign(f_high) <= 0
        return BisectionState(
            iter_num=jnp.asarray(0, jnp.int32), value=value, error=jnp.abs(value).astype(dtype),
            low=low, high=high, sign=jnp.where(f_high >= f_low, 1.0, -1.0).astype(dtype), aux=aux,
            num_fun_eval=jnp.asarray(3, jnp.int32),
            status=jnp.where(bracketed, Status.RUNNING, Status.INFEASIBLE).astype(jnp.int32),
        )

    def update(self, params, state: BisectionState, *args, **kwargs) -> OptStep:
        """Keep the half of the bracket where ``F`` changes sign.

        Args:
          params: current midpoint.
          state: current :class:`BisectionState`.
          *args, **kwargs: passed to ``optimality_fun``.

        Returns:
          ``OptStep(new_midpoint, state)``.
        """
        above = state.sign * state.value > 0  # the root lies below the midpoint
        low = jnp.where(above, state.low, params)
        high = jnp.where(above, params, state.high)
        mid = 0.5 * (low + high)
        value, aux = self._f(mid, args, kwargs)
        new_state = state._replace(
            iter_num=state.iter_num + 1, value=value, error=jnp.abs(value).astype(state.error.dtype),
            low=low, high=high, aux=aux, num_fun_eval=state.num_fun_eval + 1)
        return OptStep(mid, new_state)
