"""SciPy's minimizers, least-squares and root solvers behind jaxopt's contract.

Parameters may be any pytree: they are raveled into one float vector for SciPy, the
objective and its gradient (or residuals and Jacobian) are evaluated by one jitted JAX
function, and the result comes back as the original pytree in an
``OptStep(params, state)``. Derivatives of the solution with respect to ``*args`` and
``**kwargs`` (forward and reverse mode) come from the implicit function theorem
applied to each problem's optimality
condition (the gradient, the projected-gradient fixed point for bounds, the normal
equations of least squares, the residual of a root), through the shared
:class:`~jaxopt_lab.solvers.host._base.HostSolver` ``run`` and
:class:`jaxopt_lab.ImplicitAdjoint`.

These wrappers run SciPy on the host: ``run`` cannot be traced, so it cannot be called
inside ``jax.jit`` or ``jax.vmap`` (a clear ``TypeError`` says so). ``jax.grad`` and
``jax.jvp`` of an un-jitted call work.

References:
  Virtanen et al., "SciPy 1.0: Fundamental Algorithms for Scientific Computing in
  Python", 2020 (arXiv:1907.10121); Blondel et al., "Efficient and Modular Implicit
  Differentiation", 2021 (arXiv:2105.15183).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as sopt

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_tolerance
from jaxopt_lab.core.solver import value_and_grad_fun, value_fun
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.host._base import HostSolver


class ScipyMinimizeInfo(NamedTuple):
    """State returned by the SciPy wrappers (jaxopt's fields plus the shared ones).

    Attributes:
      fun_val: objective (or cost) at the solution.
      success: SciPy's success flag.
      status: a :class:`jaxopt_lab.Status` code: CONVERGED only when ``error`` (our own
        optimality measure at the returned params) is ``<= tol`` (``tol``, else the
        ``gtol`` option, else 1e-5), whatever SciPy's ``success``; otherwise NONFINITE,
        MAX_ITER (SciPy hit an iteration or evaluation cap), LINESEARCH_FAILED (SciPy says
        its line search failed) or STALLED (precision loss, no progress, ``ftol``/``xtol``
        met with ``error > tol``).
      iter_num: SciPy's iteration count (function evaluations where it has none).
      hess_inv: dense inverse-Hessian estimate (BFGS only, else None).
      num_fun_eval, num_jac_eval, num_hess_eval: evaluation counts.
      value: same as ``fun_val`` (the shared state field).
      error: norm of the optimality function at the solution.
      scipy_status: SciPy's own status integer.
    """

    fun_val: jax.Array
    success: jax.Array
    status: jax.Array
    iter_num: jax.Array
    hess_inv: Any
    num_fun_eval: jax.Array
    num_jac_eval: jax.Array
    num_hess_eval: jax.Array
    value: jax.Array
    error: jax.Array
    scipy_status: jax.Array


ScipyRootInfo = ScipyMinimizeInfo
ScipyLeastSquaresInfo = ScipyMinimizeInfo


# ------------------------------------------------------------------ raveling helpers
def _spec(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(np.shape(x)), jnp.result_type(x)) for x in leaves)


def _unravel(flat, spec):
    treedef, meta = spec
    out, start = [], 0
    for shape, dtype in meta:
        size = int(np.prod(shape, dtype=int))
        out.append(flat[start:start + size].reshape(shape).astype(dtype))
        start += size
    return jax.tree_util.tree_unflatten(treedef, out)


def _ravel(tree, dtype=jnp.float64):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.concatenate([jnp.ravel(x).astype(dtype) for x in leaves]) if leaves else jnp.zeros(0, dtype)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _eval_vg(vg, spec, x, args, kwargs):
    (value, _), grad = vg(_unravel(x, spec), *args, **kwargs)
    return value.astype(x.dtype), _ravel(grad, x.dtype)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _eval_hvp(vg, spec, x, v, args, kwargs):
    g = lambda y: _ravel(vg(_unravel(y, spec), *args, **kwargs)[1], x.dtype)
    return jax.jvp(g, (x,), (v,))[1]


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _eval_res_jac(fun, spec, use_jacrev, x, args, kwargs):
    res = lambda y: _ravel(fun(_unravel(y, spec), *args, **kwargs), x.dtype)
    jac = jax.jacrev(res)(x) if use_jacrev else jax.jacfwd(res)(x)
    return res(x), jac


@jax.jit
def _optimality_error(solver, params, args, kwargs):
    # The solver is a pytree (numeric options traced): a new tol does not recompile.
    return tu.tree_l2_norm(solver.optimality_fun(params, *args, **kwargs))


@functools.cache
def _vg_of(fun, has_aux, value_and_grad):
    """``(params, *a) -> ((value, aux), grad)``, cached so that jit reuses its program."""
    return value_and_grad_fun(fun, has_aux, value_and_grad)


def _check_host_call(name, *trees):
    for leaf in jax.tree_util.tree_leaves(trees):
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError(
                f"{name}.run calls SciPy on the host and cannot run under jax.jit, jax.vmap or other "
                "tracing transformations; call it outside jit (jax.grad / jax.jvp of an un-jitted "
                "call are supported through implicit differentiation).")
    for leaf in jax.tree_util.tree_leaves(trees[0]):
        if jnp.iscomplexobj(leaf):
            raise TypeError(f"{name}: complex `init_params` are not supported by SciPy's real solvers.")


# What SciPy's messages say when it stopped on an iteration / evaluation cap, or because a
# line search failed. SciPy's integer codes differ between methods and have changed between
# releases (e.g. Newton-CG), so the outcome is read from our own error first, then from the
# message; the codes only back it up where they are documented per method.
_CAP_WORDS = ("maximum number", "maxfev", "maxiter", "max_nfev", "limit", "exceed")
_LINESEARCH_WORDS = ("line search", "linesearch", "lnsrch", "abnormal")
_DEFAULT_TOL = 1e-5  # SciPy's default gradient tolerance (BFGS, L-BFGS-B)


def _status(res, fun_val, error, tol, maxiter_hit):
    """Our status from our own error at the returned params, and SciPy's reason otherwise.

    ``CONVERGED`` only when ``error <= tol`` (whatever SciPy's ``success``); otherwise
    ``NONFINITE`` for non-finite values, ``MAX_ITER`` when SciPy hit an iteration or
    evaluation cap, ``LINESEARCH_FAILED`` where SciPy says its line search failed, and
    ``STALLED`` for every other stop (precision loss, no progress, ``ftol``/``xtol``
    satisfied while the optimality error is still above ``tol``).
    """
    values = (np.asarray(fun_val, np.float64), np.asarray(res.x, np.float64), np.asarray(error, np.float64))
    if not all(np.all(np.isfinite(v)) for v in values):
        return Status.NONFINITE
    if float(error) <= tol:
        return Status.CONVERGED
    message = str(getattr(res, "message", "")).lower()
    if maxiter_hit or any(w in message for w in _CAP_WORDS):
        return Status.MAX_ITER
    if any(w in message for w in _LINESEARCH_WORDS):
        return Status.LINESEARCH_FAILED
    return Status.STALLED


def _params_dtype(params):
    """The floating dtype of the state: the params' (widest) dtype, as for every solver."""
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
    return dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.result_type(float)


def _info(res, fun_val, status, error, dtype, hess_inv=None):
    # SciPy works in float64 internally; the state follows the params' dtype (the
    # documented rule), so float32 params give a float32 value, error and hess_inv.
    nfev = int(getattr(res, "nfev", 0) or 0)
    njev = int(getattr(res, "njev", 0) or 0)
    nhev = int(getattr(res, "nhev", 0) or 0)
    nit = int(getattr(res, "nit", nfev) or 0)
    fv = jnp.asarray(fun_val, dtype)
    hess_inv = None if hess_inv is None else jnp.asarray(hess_inv, dtype)
    return ScipyMinimizeInfo(fv, jnp.asarray(bool(res.success)), jnp.asarray(int(status), jnp.int32),
                             jnp.asarray(nit, jnp.int32), hess_inv, jnp.asarray(nfev, jnp.int32),
                             jnp.asarray(njev, jnp.int32), jnp.asarray(nhev, jnp.int32), fv,
                             jnp.asarray(error, dtype), jnp.asarray(int(res.status), jnp.int32))


def _flat_bounds(bounds, params, dtype):
    if bounds is None:
        return None
    lower, upper = bounds
    lo = _ravel(_broadcast_like(lower, params), dtype)
    hi = _ravel(_broadcast_like(upper, params), dtype)
    if np.any(np.asarray(lo) > np.asarray(hi)):
        raise ValueError("`bounds`: some lower bounds exceed the upper bounds.")
    return np.asarray(lo), np.asarray(hi)


def _broadcast_like(bound, params):
    if jax.tree_util.tree_structure(bound) == jax.tree_util.tree_structure(params):
        return jax.tree_util.tree_map(lambda b, p: jnp.broadcast_to(b, jnp.shape(p)), bound, params)
    return jax.tree_util.tree_map(lambda p: jnp.broadcast_to(jnp.asarray(bound), jnp.shape(p)), params)


def _projected_grad_residual(x, grad, bounds):
    """``x - clip(x - grad, lower, upper)``: zero exactly at a KKT point of the box problem."""
    lower, upper = (_broadcast_like(b, x) for b in bounds)
    return jax.tree_util.tree_map(lambda p, g, lo, hi: p - jnp.clip(p - g, lo, hi), x, grad, lower, upper)


# ------------------------------------------------------------------ shared run
@dataclasses.dataclass(eq=False, kw_only=True)
class _ScipyBase(HostSolver):
    """What the SciPy wrappers share: options, raveling, and the result with our own status."""

    method: str | None = None
    dtype: Any = np.float64
    options: dict | None = None
    tol: float | None = None
    maxiter: int = 500
    has_aux: bool = False
    jit: bool = True  # jaxopt's keyword; the JAX evaluations handed to SciPy are always jitted

    def __post_init__(self):
        super().__post_init__()
        check_int(self.maxiter, "maxiter", minimum=1)
        check_tolerance(self.tol, "tol")
        if self.method is not None and not isinstance(self.method, str):
            raise TypeError(f"`method` must be a SciPy method name (str) or None, got {self.method!r}.")
        if self.options is not None and not isinstance(self.options, dict):
            raise TypeError(f"`options` must be a dict or None, got {type(self.options).__name__}.")
        if self.dtype is not None and not jnp.issubdtype(self.dtype, jnp.floating):
            raise TypeError(f"`dtype` must be a floating dtype, got {self.dtype!r}.")

    @property
    def _jax_dtype(self):
        """``dtype`` as JAX can hold it (float64 becomes float32 without x64, silently)."""
        return jax.dtypes.canonicalize_dtype(float if self.dtype is None else self.dtype)

    def _status_tol(self) -> float:
        """The tolerance on ``state.error`` for ``CONVERGED``: ``tol``, else the ``gtol``
        option, else ``1e-5`` (SciPy's default gradient tolerance)."""
        if self.tol is not None:
            return float(self.tol)
        return float((self.options or {}).get("gtol", _DEFAULT_TOL))

    def _scipy_tol(self) -> float | None:
        """``tol`` as SciPy takes it (a Python float; the solver may have been rebuilt from arrays)."""
        return None if self.tol is None else float(self.tol)

    def _scipy_options(self, extra=None):
        opts = dict(self.options or {})
        opts.update(extra or {})
        return opts

    def _start(self, init_params, trees):
        """Host-call checks, the raveling spec and SciPy's float vector ``x0``."""
        _check_host_call(type(self).__name__, init_params, *trees)
        return _spec(init_params), np.asarray(_ravel(init_params, self._jax_dtype))

    def _result(self, res, spec, init_params, opt_args, kwargs, fun_val, maxiter_hit,
                hess_inv=None) -> OptStep:
        """SciPy's result as ``OptStep(params, ScipyMinimizeInfo)``, the status from our own error.

        ``opt_args`` are ``optimality_fun``'s positional arguments after the params.
        """
        params = _unravel(jnp.asarray(res.x, self._jax_dtype), spec)
        params = jax.tree_util.tree_map(lambda p, x: p.astype(jnp.result_type(x)), params, init_params)
        error = _optimality_error(self, params, opt_args, kwargs)
        # fun_val None (root finding): the residual ``res.fun`` is checked for finiteness and
        # the state's value is its norm, our error.
        status = _status(res, res.fun if fun_val is None else fun_val, error, self._status_tol(), maxiter_hit)
        value = error if fun_val is None else fun_val
        return OptStep(params, _info(res, value, status, error, _params_dtype(init_params), hess_inv))


@dataclasses.dataclass(eq=False)
class ScipyMinimize(_ScipyBase):
    """``scipy.optimize.minimize`` on a JAX objective, with implicit derivatives.

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar`` (``(value, aux)`` if ``has_aux``;
        ``(value, grad)`` if ``value_and_grad``).
      method: SciPy method name (default: SciPy's choice, BFGS here without bounds).
      dtype: float dtype of the raveled parameters given to SciPy.
      callback: called with the parameter pytree after each SciPy iteration.
      tol: SciPy's ``tol``, and the tolerance on ``state.error`` (the gradient norm, or the
        projected-gradient residual with bounds) for ``state.status == CONVERGED``; when
        None, the ``gtol`` option or 1e-5.
      options: SciPy's ``options`` dict (``maxiter`` is added from ``maxiter``).
      maxiter: SciPy's iteration cap.
      value_and_grad: ``fun`` returns ``(value, grad)``.
      has_aux: ``fun`` returns ``(value, aux)``.
      adjoint, implicit_diff, implicit_diff_solve: implicit differentiation (see
        :class:`~jaxopt_lab.solvers.host._base.HostSolver`; default linear solve: CG).
      jit: accepted for jaxopt compatibility (the JAX evaluations are always jitted).

    Returns:
      ``run(init_params, *args, **kwargs) -> OptStep(params, ScipyMinimizeInfo)``.

    References:
      Virtanen et al., "SciPy 1.0", 2020 (arXiv:1907.10121); Blondel et al.,
      "Efficient and Modular Implicit Differentiation", 2021 (arXiv:2105.15183).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "method", "dtype", "jit", "implicit_diff_solve", "has_aux", "fun", "callback", "tol", "options",
        "maxiter", "value_and_grad",
    )

    fun: Callable
    _: dataclasses.KW_ONLY
    callback: Callable | None = None
    value_and_grad: bool = False
    # The optimality Jacobian is a Hessian.
    _default_solve: ClassVar[Callable[..., Any]] = staticmethod(ls.solve_cg)

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.fun, "fun")

    def optimality_fun(self, params, *args, **kwargs):
        """Gradient of ``fun``: zero at an unconstrained minimizer."""
        return jax.grad(self._value_fun())(params, *args, **kwargs)

    def _value_fun(self) -> Callable:
        return value_fun(self.fun, self.has_aux, self.value_and_grad)

    def _minimize(self, init_params, bounds, args, kwargs):
        spec, x0 = self._start(init_params, (bounds, args, kwargs))
        vg = _vg_of(self.fun, self.has_aux, self.value_and_grad)
        dtype = self._jax_dtype
        fg = lambda x: tuple(np.asarray(v, np.float64) for v in _eval_vg(vg, spec, jnp.asarray(x, dtype),
                                                                         args, kwargs))
        hessp = None
        if self.method is not None and self.method.lower() in ("newton-cg", "trust-ncg", "trust-krylov"):
            hessp = lambda x, v: np.asarray(_eval_hvp(vg, spec, jnp.asarray(x, self._jax_dtype),
                                                      jnp.asarray(v, self._jax_dtype), args, kwargs))
        cb = None
        if self.callback is not None:
            cb = lambda xk, *_: self.callback(_unravel(jnp.asarray(xk), spec))
        flat_bounds = _flat_bounds(bounds, init_params, self._jax_dtype)
        sb = None if flat_bounds is None else sopt.Bounds(*flat_bounds)
        res = sopt.minimize(fg, x0, jac=True, hessp=hessp, method=self.method, bounds=sb,
                            tol=self._scipy_tol(), callback=cb,
                            options=self._scipy_options({"maxiter": self.maxiter}))
        hess_inv = getattr(res, "hess_inv", None)
        hess_inv = jnp.asarray(hess_inv) if isinstance(hess_inv, np.ndarray) else None
        maxiter_hit = int(getattr(res, "nit", 0) or 0) >= self.maxiter
        return self._result(res, spec, init_params, args if bounds is None else (bounds, *args), kwargs,
                            res.fun, maxiter_hit, hess_inv)

    def _host_run(self, init_params, *args, **kwargs):
        return self._minimize(init_params, None, args, kwargs)


@dataclasses.dataclass(eq=False)
class ScipyBoundedMinimize(ScipyMinimize):
    """``scipy.optimize.minimize`` with box constraints (default method ``L-BFGS-B``).

    ``run(init_params, bounds, *args, **kwargs)`` with ``bounds = (lower, upper)``,
    each a pytree like the parameters or a scalar (``None`` for no bounds). Implicit
    derivatives use the projected-gradient fixed point ``x = clip(x - grad f(x))``,
    whose Jacobian fixes the active coordinates.

    Args:
      fun, method, dtype, callback, tol, options, maxiter, value_and_grad: as for
        :class:`ScipyMinimize` (``method`` defaults to ``"L-BFGS-B"``).

    Returns:
      ``run(init_params, bounds, *args, **kwargs) -> OptStep(params, ScipyMinimizeInfo)``.

    References:
      Byrd, Lu, Nocedal and Zhu, "A Limited Memory Algorithm for Bound Constrained
      Optimization", 1995; Blondel et al., 2021 (arXiv:2105.15183).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "method", "dtype", "jit", "implicit_diff_solve", "has_aux", "fun", "callback", "tol", "options",
        "maxiter", "value_and_grad",
    )
    # jaxopt's named leading run argument (also accepted by keyword).
    _run_keywords: ClassVar[tuple[str, ...]] = ("bounds",)

    # The projection makes the optimality Jacobian non-symmetric.
    _default_solve: ClassVar[Callable[..., Any]] = staticmethod(ls.solve_normal_cg)

    def __post_init__(self):
        super().__post_init__()
        if self.method is None:
            self.method = "L-BFGS-B"

    def optimality_fun(self, params, bounds, *args, **kwargs):
        """Projected-gradient residual ``x - clip(x - grad f(x), lower, upper)``."""
        grad = jax.grad(self._value_fun())(params, *args, **kwargs)
        return grad if bounds is None else _projected_grad_residual(params, grad, bounds)

    def _host_run(self, init_params, bounds, *args, **kwargs):
        return self._minimize(init_params, bounds, args, kwargs)


_LOSSES = {  # SciPy's robust losses rho(z), z = r^2
    "linear": lambda z: z,
    "soft_l1": lambda z: 2.0 * (jnp.sqrt(1.0 + z) - 1.0),
    "huber": lambda z: jnp.where(z <= 1.0, z, 2.0 * jnp.sqrt(jnp.maximum(z, 1.0)) - 1.0),
    "cauchy": lambda z: jnp.log1p(z),
    "arctan": lambda z: jnp.arctan(z),
}


@dataclasses.dataclass(eq=False)
class ScipyLeastSquares(_ScipyBase):
    """``scipy.optimize.least_squares`` on JAX residuals, with implicit derivatives.

    Minimizes ``0.5 sum rho(r_i(params)^2)`` with SciPy's robust ``loss`` (``f_scale``
    may be given in ``options``); the Jacobian comes from ``jax.jacrev`` (or
    ``jax.jacfwd``). Implicit derivatives use the normal equations, i.e. the gradient
    of that cost. ``state.error`` is the norm of that gradient (``J^T r`` for the linear
    loss) and ``state.status`` is CONVERGED exactly when it is ``<= tol``.

    Args:
      fun: ``fun(params, *args, **kwargs) -> residual pytree``.
      loss: ``"linear"``, ``"soft_l1"``, ``"huber"``, ``"cauchy"`` or ``"arctan"``.
      use_jacrev: reverse-mode Jacobian (else forward mode).
      method, dtype, options: SciPy's ``method`` (default ``"trf"``), the float dtype
        for SciPy, and other ``least_squares`` keywords.
      tol: tolerance on ``state.error`` for CONVERGED (not passed to SciPy, whose
        ``xtol``/``ftol``/``gtol`` go in ``options``); when None, the ``gtol`` option or 1e-5.

    Returns:
      ``run(init_params, *args, **kwargs) -> OptStep(params, ScipyMinimizeInfo)``.

    References:
      Branch, Coleman and Li, "A Subspace, Interior, and Conjugate Gradient Method for
      Large-Scale Bound-Constrained Minimization Problems", 1999; Blondel et al., 2021
      (arXiv:2105.15183).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "method", "dtype", "jit", "implicit_diff_solve", "has_aux", "fun", "loss", "options",
        "use_jacrev",
    )

    fun: Callable
    _: dataclasses.KW_ONLY
    loss: str = "linear"
    use_jacrev: bool = True
    # The optimality Jacobian is the cost's Hessian.
    _default_solve: ClassVar[Callable[..., Any]] = staticmethod(ls.solve_cg)

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.fun, "fun")
        if self.loss not in _LOSSES:
            raise ValueError(f"`loss` must be one of {sorted(_LOSSES)}, got {self.loss!r}.")

    def _cost(self, params, *args, **kwargs):
        res = self.fun(params, *args, **kwargs)
        res = res[0] if self.has_aux else res
        c = jnp.asarray((self.options or {}).get("f_scale", 1.0))
        z = sum(jnp.sum(_LOSSES[self.loss](r ** 2 / c**2)) for r in jax.tree_util.tree_leaves(res))
        return 0.5 * c**2 * z

    def optimality_fun(self, params, *args, **kwargs):
        """Gradient of the cost ``0.5 sum rho(r^2)`` (``J^T r`` for the linear loss)."""
        return jax.grad(self._cost)(params, *args, **kwargs)

    def _lsq(self, init_params, bounds, args, kwargs):
        spec, x0 = self._start(init_params, (bounds, args, kwargs))
        fun = self.fun if not self.has_aux else _first_output(self.fun)
        cache: dict = {}

        def both(x):
            key = np.asarray(x).tobytes()
            if key not in cache:
                cache.clear()
                xj = jnp.asarray(x, self._jax_dtype)
                r, J = _eval_res_jac(fun, spec, self.use_jacrev, xj, args, kwargs)
                cache[key] = (np.asarray(r, np.float64), np.asarray(J, np.float64))
            return cache[key]

        flat_bounds = _flat_bounds(bounds, init_params, self._jax_dtype)
        kw = dict(self.options or {})
        if flat_bounds is not None:
            kw["bounds"] = flat_bounds
        r0 = both(x0)[0]
        if np.all(np.isfinite(r0)):
            res = sopt.least_squares(lambda x: both(x)[0], x0, jac=lambda x: both(x)[1],
                                     method=self.method or "trf", loss=self.loss, **kw)
        else:
            # SciPy raises on non-finite residuals at the start (e.g. NaN in the data); report
            # it as a NONFINITE status, as every other solver does, and return the start.
            res = sopt.OptimizeResult(x=x0, cost=0.5 * float(np.sum(r0**2)), success=False, status=-1,
                                      nfev=1, njev=0, message="non-finite residuals at the initial point")
        return self._result(res, spec, init_params, args if bounds is None else (bounds, *args), kwargs,
                            res.cost, res.status == 0)

    def _host_run(self, init_params, *args, **kwargs):
        return self._lsq(init_params, None, args, kwargs)


def _first_output(fun):
    return lambda *a, **k: fun(*a, **k)[0]


@dataclasses.dataclass(eq=False)
class ScipyBoundedLeastSquares(ScipyLeastSquares):
    """``scipy.optimize.least_squares`` with box constraints.

    ``run(init_params, bounds, *args, **kwargs)`` with ``bounds = (lower, upper)``
    (pytrees like the parameters, or scalars). Implicit derivatives use the
    projected-gradient fixed point of the cost.

    Args:
      fun, loss, use_jacrev, method, dtype, options: as for :class:`ScipyLeastSquares`.

    Returns:
      ``run(init_params, bounds, *args, **kwargs) -> OptStep(params, ScipyMinimizeInfo)``.

    References:
      Branch, Coleman and Li, 1999; Blondel et al., 2021 (arXiv:2105.15183).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "method", "dtype", "jit", "implicit_diff_solve", "has_aux", "fun", "loss", "options",
        "use_jacrev",
    )
    # jaxopt's named leading run argument (also accepted by keyword).
    _run_keywords: ClassVar[tuple[str, ...]] = ("bounds",)

    # The projection makes the optimality Jacobian non-symmetric.
    _default_solve: ClassVar[Callable[..., Any]] = staticmethod(ls.solve_normal_cg)

    def optimality_fun(self, params, bounds, *args, **kwargs):
        """Projected-gradient residual of the least-squares cost."""
        grad = jax.grad(self._cost)(params, *args, **kwargs)
        return grad if bounds is None else _projected_grad_residual(params, grad, bounds)

    def _host_run(self, init_params, bounds, *args, **kwargs):
        return self._lsq(init_params, bounds, args, kwargs)


@dataclasses.dataclass(eq=False)
class ScipyRootFinding(_ScipyBase):
    """``scipy.optimize.root`` on a JAX function, with implicit derivatives.

    Args:
      optimality_fun: ``F(params, *args, **kwargs) -> pytree like params``; ``run``
        returns a root of it. Its Jacobian (``jax.jacrev`` or ``jax.jacfwd``) is given
        to the methods that use one (``hybr``, ``lm``).
      method: SciPy's method (default ``"hybr"``).
      tol, options, dtype, use_jacrev: SciPy's ``tol`` and ``options``, the float
        dtype for SciPy, reverse- or forward-mode Jacobian. ``state.status`` is
        CONVERGED exactly when the residual norm is ``<= tol`` (1e-5 when None).

    Returns:
      ``run(init_params, *args, **kwargs) -> OptStep(params, ScipyMinimizeInfo)``.

    References:
      Powell, "A hybrid method for nonlinear equations", 1970 (MINPACK hybrd);
      Blondel et al., 2021 (arXiv:2105.15183).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "method", "dtype", "jit", "implicit_diff_solve", "has_aux", "optimality_fun", "tol", "options",
        "use_jacrev",
    )

    optimality_fun: Callable = None  # type: ignore[assignment]
    _: dataclasses.KW_ONLY
    use_jacrev: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.optimality_fun, "optimality_fun")

    def _host_run(self, init_params, *args, **kwargs):
        spec, x0 = self._start(init_params, (args, kwargs))
        method = self.method or "hybr"
        dtype = self._jax_dtype
        ev = lambda x: _eval_res_jac(self.optimality_fun, spec, self.use_jacrev, jnp.asarray(x, dtype),
                                     args, kwargs)
        jac = (lambda x: np.asarray(ev(x)[1], np.float64)) if method in ("hybr", "lm") else None
        res = sopt.root(lambda x: np.asarray(ev(x)[0], np.float64), x0, jac=jac, method=method,
                        tol=self._scipy_tol(), options=self.options)
        res.status = getattr(res, "status", 0)
        # A residual at or below ``tol`` is a root, even where MINPACK stops with "no
        # progress" after landing on it (e.g. a linear system solved in one step); SciPy's
        # ``success`` with a residual above ``tol`` is not. The state's value is the residual norm.
        res.fun = np.asarray(res.fun)
        return self._result(res, spec, init_params, args, kwargs, None, False)
