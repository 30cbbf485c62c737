"""The solver contract every iterative solver shares.

A solver is a dataclass subclassing :class:`IterativeSolver`. It declares its
options as fields and writes ``init_state``, ``update`` and ``optimality_fun``;
``run`` (the loop, status codes, verbose printing, jit and implicit
differentiation) comes from here.

Solvers are registered as pytrees: options holding floats or arrays (step sizes,
tolerances, regularization) are leaves, everything else (functions, ``maxiter``,
memory sizes, flags) is static. ``run`` is jitted with the solver as an argument, so
a new tolerance or step size reuses the compiled program, and a ``vmap`` over a
solver built from traced hyperparameters works.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import _loop
from jaxopt_lab import implicit_diff as idf
from jaxopt_lab import linear_solve as ls
from jaxopt_lab import tree_util as tu

PyTree = Any


class Status(enum.IntEnum):
    """Per-instance outcome of a solve, stored as ``state.status`` (int32).

    Attributes:
      RUNNING: the solve has not stopped yet.
      CONVERGED: ``state.error <= tol``.
      MAX_ITER: stopped at ``maxiter`` without reaching ``tol``.
      NONFINITE: a value, gradient or error became NaN or infinite; the last
        finite iterate is returned.
      LINESEARCH_FAILED: the line search found no acceptable step.
      INFEASIBLE: the problem was detected infeasible (constrained solvers).
      STALLED: no progress possible in floating point before ``tol``.
      UNBOUNDED: the objective is unbounded below on the feasible set (a feasible
        direction of negative curvature was found, e.g. a QP whose ``Q`` is indefinite on
        the constraints' null space); the point returned is a saddle, not a minimizer.
    """

    RUNNING = 0
    CONVERGED = 1
    MAX_ITER = 2
    NONFINITE = 3
    LINESEARCH_FAILED = 4
    INFEASIBLE = 5
    STALLED = 6
    UNBOUNDED = 7


def status_name(code) -> str:
    """Name of a status code (``int`` or scalar array).

    Args:
      code: a status value.

    Returns:
      The :class:`Status` member name, e.g. ``"CONVERGED"``.
    """
    return Status(int(code)).name


class OptStep(NamedTuple):
    """Result of ``update`` and ``run``: the parameters and the solver state.

    Attributes:
      params: the current (after ``run``, the final) parameters, a pytree.
      state: the solver's state after the step (a solver-specific ``NamedTuple``).
    """

    params: Any
    state: Any


class KKTSolution(NamedTuple):
    """Primal and dual variables of a constrained problem (jaxopt name).

    Attributes:
      primal: the primal solution, a pytree.
      dual_eq: the multipliers of the equality constraints (``None`` when absent).
      dual_ineq: the multipliers of the inequality constraints (``None`` when absent).
    """

    primal: Any
    dual_eq: Any = None
    dual_ineq: Any = None


class LinearOperator:
    """A dense matrix wrapped as an operator (jaxopt compatibility helper).

    Args:
      A: a 2-D array.
    """

    def __init__(self, A):
        self.A = jnp.asarray(A)

    def shape(self):
        """Shape of the matrix."""
        return self.A.shape

    def matvec(self, x):
        """``A x``."""
        return self.A @ x

    def rmatvec(self, x):
        """``A^T x``."""
        return self.A.T @ x

    def __call__(self, x):
        return self.matvec(x)


# --------------------------------------------------------------------------- pytree


class _Static:
    """Hashable-by-identity wrapper for unhashable static options (dicts, lists)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, _Static) and other.value is self.value


def _is_dynamic(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float | complex | np.floating):
        return True
    if isinstance(value, jax.Array | np.ndarray):
        return True
    return isinstance(value, jax.core.Tracer)


def _hashable(value):
    try:
        hash(value)
        return value
    except TypeError:
        return _Static(value)


def _flatten(solver):
    dyn_names, dyn_vals, static = [], [], []
    for f in dataclasses.fields(solver):
        v = getattr(solver, f.name)
        if _is_dynamic(v) and not solver._static_option(f.name, v):
            dyn_names.append(f.name)
            dyn_vals.append(v)
        else:
            static.append((f.name, _hashable(v)))
    return dyn_vals, (tuple(dyn_names), tuple(static))


def _unflatten(cls, aux, leaves):
    dyn_names, static = aux
    obj = object.__new__(cls)
    for name, v in static:
        object.__setattr__(obj, name, v.value if isinstance(v, _Static) else v)
    for name, v in zip(dyn_names, leaves, strict=True):
        object.__setattr__(obj, name, v)
    return obj


# --------------------------------------------------------------------------- checks


def is_concrete(x) -> bool:
    """True when ``x`` holds a value known at trace time (not a tracer).

    Args:
      x: any object; only ``jax.core.Tracer`` instances count as not concrete.

    Returns:
      ``False`` if ``x`` is a JAX tracer, ``True`` otherwise (a Python ``bool``).
    """
    return not isinstance(x, jax.core.Tracer)


def check_callable(value, name: str) -> None:
    """Raise ``TypeError`` unless ``value`` is callable.

    Args:
      value: the object to check.
      name: the argument name used in the message.
    """
    if not callable(value):
        raise TypeError(f"`{name}` must be callable, got {type(value).__name__}.")


def check_positive(value, name: str, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` if a concrete ``value`` is not positive (or non-negative).

    Traced values are not checked (they cannot be inspected before tracing).

    Args:
      value: a number or array.
      name: the argument name used in the message.
      allow_zero: accept zero.
    """
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}.")
    bad = np.any(arr < 0) if allow_zero else np.any(arr <= 0)
    if bad or np.any(np.isnan(arr)):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {rule}, got {value!r}.")


def check_int(value, name: str, minimum: int = 1) -> None:
    """Raise unless ``value`` is a Python integer ``>= minimum``.

    Args:
      value: the value to check.
      name: the argument name used in the message.
      minimum: smallest allowed value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int (static), got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")


def check_finite_tree(tree, name: str) -> None:
    """Raise ``ValueError`` if a concrete pytree holds NaN or infinite entries.

    Args:
      tree: a pytree of arrays (traced leaves are skipped).
      name: the argument name used in the message.
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if not is_concrete(leaf):
            continue
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            where = jax.tree_util.keystr(path) or "(root)"
            raise ValueError(f"`{name}` has non-finite entries at {where}.")


def check_params_tree(tree, name: str = "init_params") -> None:
    """Raise ``TypeError`` if a pytree has non-numeric leaves.

    Args:
      tree: a pytree of arrays.
      name: the argument name used in the message.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"`{name}` is an empty pytree.")
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if isinstance(leaf, jax.Array | np.ndarray | numbers.Number) or hasattr(leaf, "dtype"):
            continue
        where = jax.tree_util.keystr(path) or "(root)"
        raise TypeError(f"`{name}` leaf {where} is a {type(leaf).__name__}, expected an array.")


def check_tolerance(value, name: str = "tol") -> None:
    """Raise ``ValueError`` unless a concrete tolerance is a finite number ``>= 0``.

    ``tol=inf`` would stop every solve at once with a false ``CONVERGED``; NaN would
    never stop one. Traced values and ``None`` are not checked.

    Args:
      value: the tolerance (a number or array).
      name: the argument name used in the message.
    """
    check_positive(value, name, allow_zero=True)
    if value is not None and is_concrete(value) and not np.all(np.isfinite(np.asarray(value))):
        raise ValueError(f"`{name}` must be finite (a number >= 0), got {value!r}.")


def check_params_dtype(tree, name: str = "init_params", allow_half: bool = True) -> None:
    """Raise ``TypeError`` for parameters a solver cannot iterate on.

    Integer and boolean leaves are rejected (an update would be truncated or the gradient
    undefined), and so is an empty pytree (``ValueError``). With ``allow_half=False``,
    float16 and bfloat16 leaves are rejected too: their 3-4 significant digits cannot
    tell a line search's sufficient decrease from rounding. Works on tracers (only
    dtypes and structure are read), so it can run inside ``jit`` at trace time.

    Args:
      tree: the parameter pytree.
      name: the argument name used in the message.
      allow_half: accept float16 / bfloat16 leaves.
    """
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise ValueError(f"`{name}` is an empty pytree; give at least one float array.")
    for path, leaf in leaves:
        if not hasattr(leaf, "dtype") and not isinstance(leaf, numbers.Number):
            continue
        dtype = jnp.result_type(leaf)
        where = jax.tree_util.keystr(path) or "(root)"
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"`{name}` leaf {where} has dtype {dtype}; solvers need floating-point params "
                f"(an integer update would be truncated): cast it, e.g. `x.astype(jnp.float32)`.")
        if not allow_half and dtype in (jnp.float16, jnp.bfloat16):
            raise TypeError(
                f"`{name}` leaf {where} has dtype {dtype}, which this solver does not support "
                "(its line search cannot resolve a sufficient decrease in 16-bit floats): "
                "use float32 or float64.")


def check_same_structure(a, b, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` when two pytrees differ in structure or leaf shapes.

    Args:
      a, b: the pytrees.
      name_a, name_b: their names for the message.
    """
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if ta != tb:  # type: ignore[operator]
        raise ValueError(f"`{name_a}` and `{name_b}` have different pytree structures: {ta} vs {tb}.")
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b), strict=True
    ):
        if jnp.shape(x) != jnp.shape(y):
            where = jax.tree_util.keystr(path) or "(root)"
            raise ValueError(
                f"`{name_a}` and `{name_b}` differ in shape at {where}: "
                f"{jnp.shape(x)} vs {jnp.shape(y)}."
            )


# jaxopt keywords that mean the same in every solver having them: ``stepsize`` >= 0
# (0 selects a line search), the Wolfe constants and line-search factors > 0.
_STANDARD_OPTIONS = {"stepsize": True, "c1": False, "c2": False, "decrease_factor": False,
                     "max_stepsize": False}


def check_standard_options(solver) -> None:
    """Raise ``ValueError`` naming the option for NaN options and bad standard keywords.

    Every concrete floating option (a Python float or an array) must be free of NaN;
    the standard jaxopt keywords must also satisfy their rule: ``stepsize >= 0`` (``0``
    selects a line search) and ``c1``, ``c2``, ``decrease_factor``, ``max_stepsize`` > 0.
    Traced values, callables, ``None`` and non-numeric options are not checked.
    Called by :meth:`IterativeSolver.__post_init__`, so each solver gets it once.

    Args:
      solver: a dataclass instance (an :class:`IterativeSolver`).
    """
    for f in dataclasses.fields(solver):
        value = getattr(solver, f.name, None)
        if value is None or isinstance(value, bool) or callable(value) or not is_concrete(value):
            continue
        if not isinstance(value, numbers.Number | np.ndarray | jax.Array):
            continue
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.number):
            continue
        if np.issubdtype(arr.dtype, np.inexact) and np.any(np.isnan(arr)):
            raise ValueError(f"`{f.name}` must not be NaN, got {value!r}.")
        if f.name in _STANDARD_OPTIONS:
            check_positive(value, f.name, allow_zero=_STANDARD_OPTIONS[f.name])


# --------------------------------------------------------------------------- base


def update_status(state, tol, maxiter, value=None):
    """The shared stopping rule, applied after ``init_state`` and every ``update``.

    A status already set by the solver (e.g. ``INFEASIBLE``) is kept, except that a
    non-finite error or value turns ``LINESEARCH_FAILED`` or ``STALLED`` into
    ``NONFINITE``; otherwise a non-finite error or value gives ``NONFINITE``,
    ``error <= tol`` gives ``CONVERGED`` and ``iter_num >= maxiter`` gives ``MAX_ITER``.

    Args:
      state: a solver state with ``error``, ``iter_num`` and ``status`` fields.
      tol: tolerance on ``state.error``.
      maxiter: iteration cap.
      value: optional objective value checked for finiteness.

    Returns:
      The state with its ``status`` field updated.
    """
    # An infinite error before the first iteration means "not computed yet".
    finite = ~jnp.isnan(state.error) & (jnp.isfinite(state.error) | (state.iter_num == 0))
    if value is not None:
        finite = finite & jnp.all(jnp.isfinite(value))
    # A non-finite value or error is what went wrong, whatever the solver concluded from it
    # (a line search fails, or sees no progress, on a NaN gradient): it wins over those.
    overridable = (state.status == Status.LINESEARCH_FAILED) | (state.status == Status.STALLED)
    status = jnp.where(
        ~finite,
        Status.NONFINITE,
        jnp.where(
            state.error <= tol,
            Status.CONVERGED,
            jnp.where(state.iter_num >= maxiter, Status.MAX_ITER, Status.RUNNING),
        ),
    )
    keep = (state.status != Status.RUNNING) & ~(overridable & ~finite)
    status = jnp.where(keep, state.status, status)
    return state._replace(status=status.astype(jnp.int32))


def _with_status(method: Callable, is_update: bool) -> Callable:
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        if not is_update:
            init_params = args[0] if args else kwargs.get("init_params")
            if init_params is not None:
                self._check_init_params(init_params)
        out = method(self, *args, **kwargs)
        state = out.state if is_update else out
        if not hasattr(state, "status"):
            return out
        state = self._finalize(state, getattr(state, "value", None))
        return OptStep(out.params, state) if is_update else state

    wrapped._with_status = True  # type: ignore[attr-defined]
    return wrapped


@dataclasses.dataclass(eq=False, kw_only=True)
class IterativeSolver:
    """Base class of every iterative solver.

    Subclasses are dataclasses that declare ``fun`` and their own options, and
    implement ``init_state``, ``update`` and ``optimality_fun``. Their state is a
    ``NamedTuple`` with at least ``iter_num``, ``error`` and ``status``.

    Attributes:
      maxiter: maximum number of iterations (static).
      tol: tolerance on ``state.error`` (may be traced).
      verbose: print ``iter_num``, ``error`` and ``status`` every iteration.
      implicit_diff: differentiate ``run`` with the implicit function theorem
        (default); otherwise differentiate through the unrolled iterations.
      implicit_diff_solve: linear solver for implicit differentiation
        (default: conjugate gradients, the optimality Jacobian being a Hessian).
      has_aux: whether ``fun`` returns ``(value, aux)``.
      jit: jit-compile ``run``.
      unroll: ``True`` runs a ``lax.scan`` of ``maxiter`` masked steps (reverse-mode
        differentiable); ``"auto"`` unrolls when ``implicit_diff`` is False.
    """

    maxiter: int = 500
    tol: float = 1e-3
    verbose: bool | int = False
    implicit_diff: bool = True
    implicit_diff_solve: Callable | None = None
    has_aux: bool = False
    jit: bool = True
    unroll: bool | str = "auto"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(
            cls, _flatten, functools.partial(_unflatten, cls)
        )
        # The stopping rule lives here once: every solver's init_state/update
        # returns a state whose status is already up to date.
        for name in ("init_state", "update"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_with_status", False):
                setattr(cls, name, _with_status(method, name == "update"))

    def __post_init__(self):
        check_int(self.maxiter, "maxiter", minimum=1)
        check_tolerance(self.tol, "tol")
        if self.unroll not in (True, False, "auto"):
            raise ValueError(f"`unroll` must be True, False or 'auto', got {self.unroll!r}.")
        if self.implicit_diff_solve is not None:
            check_callable(self.implicit_diff_solve, "implicit_diff_solve")
        if hasattr(self, "fun"):
            check_callable(self.fun, "fun")
        check_standard_options(self)

    # -- what subclasses write ------------------------------------------------
    def init_state(self, init_params, *args, **kwargs):
        """Initial solver state. Implemented by each solver."""
        raise NotImplementedError

    def update(self, params, state, *args, **kwargs) -> OptStep:
        """One iteration. Implemented by each solver."""
        raise NotImplementedError

    def optimality_fun(self, params, *args, **kwargs):
        """The residual that is zero at a solution (default: gradient of ``fun``)."""
        fun = self._value_fun()
        return jax.grad(fun)(params, *args, **kwargs)

    # -- shared plumbing ----------------------------------------------------------
    def _static_option(self, name: str, value) -> bool:
        """Whether a numeric option selects a mode and must stay static.

        Numbers are traced by default. A solver overrides this for sentinels that
        switch algorithms (e.g. ``stepsize <= 0`` selecting a line search), so
        that the mode survives jit while other values remain traced.
        """
        del name, value
        return False

    @staticmethod
    def _nonpositive_sentinel(value) -> bool:
        return is_concrete(value) and np.ndim(value) == 0 and float(value) <= 0

    def _value_fun(self) -> Callable:
        """``fun`` returning only the objective value."""
        fun = self.fun  # type: ignore[attr-defined]
        if getattr(self, "value_and_grad", False):
            fun = lambda *a, _f=fun, **k: _f(*a, **k)[0]
        if self.has_aux:
            return lambda *a, _f=fun, **k: _f(*a, **k)[0]
        return fun

    def _value_and_grad_fun(self) -> Callable:
        """``(params, *args) -> ((value, aux), grad)`` with ``aux=None`` if absent."""
        fun = self.fun  # type: ignore[attr-defined]
        if getattr(self, "value_and_grad", False):
            if self.has_aux:
                return lambda *a, **k: (lambda r: ((r[0][0], r[0][1]), r[1]))(fun(*a, **k))
            return lambda *a, **k: (lambda r: ((r[0], None), r[1]))(fun(*a, **k))
        if self.has_aux:
            vg = jax.value_and_grad(fun, has_aux=True)
            return vg
        vg = jax.value_and_grad(fun)
        return lambda *a, **k: (lambda r: ((r[0], None), r[1]))(vg(*a, **k))

    def _implicit_solve(self) -> Callable:
        if self.implicit_diff_solve is not None:
            return self.implicit_diff_solve
        return ls.solve_cg

    def _finalize(self, state, value=None):
        return update_status(state, self.tol, self.maxiter, value)

    # Whether float16 / bfloat16 params work (False for solvers built on a line search).
    _supports_half = True
    # Whether ``update(params_k)`` returns a state describing ``params_k`` (its value and
    # error are evaluated at the input, as SGD-type solvers must with a new mini-batch per
    # call) rather than the returned params. The run loop then keeps the previous iterate
    # so that a NONFINITE stop returns a finite point with its own state, and refreshes the
    # state at the returned params when ``maxiter`` ends the run (see ``_state_at``).
    _state_at_input = False

    def _check_init_params(self, init_params) -> None:
        """Dtype checks on ``init_params`` (also on tracers), run by ``init_state`` and ``run``."""
        check_params_dtype(init_params, "init_params", allow_half=self._supports_half)

    def _check_run_args(self, init_params, args, kwargs) -> None:
        """Checks made before tracing; solvers may extend."""
        check_params_tree(init_params)
        self._check_init_params(init_params)
        check_finite_tree(init_params, "init_params")

    def _state_at(self, params, state, *args, **kwargs):
        """``state`` with ``value``, ``error`` (gradient norm) and ``aux`` evaluated at ``params``.

        Used by the run loop of ``_state_at_input`` solvers when ``maxiter`` ends a run.
        """
        (value, aux), grad = self._value_and_grad_fun()(params, *args, **kwargs)
        error = tu.tree_l2_norm(grad).astype(jnp.result_type(state.error))
        return state._replace(value=jnp.asarray(value).astype(jnp.result_type(state.value)),
                              error=error, aux=aux)

    def _counted_state_at(self, params, state, *args, **kwargs):
        """:meth:`_state_at`, with the evaluation added to ``num_fun_eval`` when the state counts them."""
        fresh = self._state_at(params, state, *args, **kwargs)
        if hasattr(fresh, "num_fun_eval"):
            fresh = fresh._replace(num_fun_eval=fresh.num_fun_eval + 1)
        return fresh

    def _finish_run(self, prev_params, params, state, *args, **kwargs):
        """After the loop of a ``_state_at_input`` solver: make a MAX_ITER state describe ``params``.

        The value and error are re-evaluated at the returned params (one evaluation per run):
        ``CONVERGED`` if the error there is ``<= tol``; ``NONFINITE`` with the previous
        (finite) iterate and its state if they are not finite.
        """
        maxed = state.status == Status.MAX_ITER
        # Evaluated only when maxiter ended the run (both branches run under vmap).
        fresh = jax.lax.cond(maxed, lambda: self._counted_state_at(params, state, *args, **kwargs),
                             lambda: state)
        ok = jnp.isfinite(fresh.error) & jnp.all(jnp.isfinite(fresh.value))
        status = jnp.where(~ok, Status.NONFINITE,
                           jnp.where(fresh.error <= self.tol, Status.CONVERGED, Status.MAX_ITER))
        status = jnp.where(maxed, status, state.status).astype(jnp.int32)
        params = tu.tree_where(maxed & ~ok, prev_params, params)
        state = tu.tree_where(maxed & ok, fresh, state)
        return params, state._replace(status=status)

    def _run_loop(self, init_params, *args, **kwargs) -> OptStep:
        state = self.init_state(init_params, *args, **kwargs)
        unroll = bool(self.unroll) if self.unroll != "auto" else not self.implicit_diff
        step = lambda p, s: self.update(p, s, *args, **kwargs)
        finish = None
        if self._state_at_input:
            finish = lambda prev, p, s: self._finish_run(prev, p, s, *args, **kwargs)
        return _loop.run(step, init_params, state, self.maxiter, unroll=unroll,
                         verbose=self.verbose, jit=self.jit, name=type(self).__name__,
                         lookback=self._state_at_input, finish=finish)

    def _run_differentiable(self, init_params, args, kwargs) -> OptStep:
        if not self.implicit_diff:
            return self._run_loop(init_params, *args, **kwargs)
        # The solver's own leaves (traced step sizes, tolerances) are passed as an
        # argument rather than closed over: custom_jvp rules must not capture
        # tracers. The optimality function ignores them, so they get no derivative.
        leaves, treedef = jax.tree_util.tree_flatten(self)

        def solver_fun(x0, solver_leaves, *a, **k):
            return treedef.unflatten(solver_leaves)._run_loop(x0, *a, **k)

        def optimality_fun(x, solver_leaves, *a, **k):
            return treedef.unflatten(solver_leaves).optimality_fun(x, *a, **k)

        decorated = idf.custom_root(
            optimality_fun, has_aux=True, solve=self._implicit_solve()
        )(solver_fun)
        return decorated(init_params, leaves, *args, **kwargs)

    def run(self, init_params, *args, **kwargs) -> OptStep:
        """Run the solver from ``init_params`` until ``tol`` or ``maxiter``.

        Args:
          init_params: initial point (a pytree); gets no derivative.
          *args, **kwargs: passed to ``fun``; derivatives flow to them
            (implicitly, in forward and reverse mode, when ``implicit_diff``).

        Returns:
          ``OptStep(params, state)``; ``state.status`` tells how the solve ended.
        """
        self._check_run_args(init_params, args, kwargs)
        if self.jit:
            return _jitted_run(self, init_params, args, kwargs)
        return self._run_differentiable(init_params, args, kwargs)

    def l2_optimality_error(self, params, *args, **kwargs) -> jax.Array:
        """Norm of ``optimality_fun`` at ``params``."""
        return tu.tree_l2_norm(self.optimality_fun(params, *args, **kwargs))

    def replace(self, **changes):
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)


@jax.jit
def _jitted_run(solver, init_params, args, kwargs):
    return solver._run_differentiable(init_params, args, kwargs)


def signature_params(fun: Callable) -> list[str]:
    """Parameter names of ``fun`` (empty if it has no inspectable signature).

    Args:
      fun: a callable.

    Returns:
      The names of its parameters in order, as given by ``inspect.signature``, or ``[]``
      when the signature cannot be inspected.
    """
    try:
        return list(inspect.signature(fun).parameters)
    except (TypeError, ValueError):
        return []
