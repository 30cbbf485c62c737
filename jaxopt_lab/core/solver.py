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

import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import loop as _loop
from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.adjoint import ImplicitAdjoint, UnrollAdjoint, resolve_adjoint
from jaxopt_lab.core.checks import (
    check_callable,
    check_finite_tree,
    check_int,
    check_params_dtype,
    check_params_tree,
    check_standard_options,
    check_tolerance,
)
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls

# --------------------------------------------------------------------------- pytree


class ById:
    """Hashable-by-identity wrapper: an unhashable static value (a dict, a list, a function
    object) used as pytree aux data or a static jit argument.

    Attributes:
      value: the wrapped object; two wrappers are equal when they hold the same object.
    """

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, ById) and other.value is self.value


def is_dynamic(value) -> bool:
    """Whether an option value is a pytree leaf of a solver (traced under jit).

    Args:
      value: an option value.

    Returns:
      ``True`` for floats, complex numbers, arrays and tracers; ``False`` for bools,
      ints, strings, callables and everything else (static).
    """
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
        return ById(value)


def _flatten(solver):
    dyn_names, dyn_vals, static = [], [], []
    for f in dataclasses.fields(solver):
        v = getattr(solver, f.name)
        if is_dynamic(v) and not solver._static_option(f.name, v):
            dyn_names.append(f.name)
            dyn_vals.append(v)
        else:
            static.append((f.name, _hashable(v)))
    return dyn_vals, (tuple(dyn_names), tuple(static))


def _unflatten(cls, aux, leaves):
    dyn_names, static = aux
    obj = object.__new__(cls)
    for name, v in static:
        object.__setattr__(obj, name, v.value if isinstance(v, ById) else v)
    for name, v in zip(dyn_names, leaves, strict=True):
        object.__setattr__(obj, name, v)
    return obj


def register_options_pytree(cls: type) -> None:
    """Register a solver dataclass as a pytree: numeric options are leaves, the rest is static.

    Floats and arrays (step sizes, tolerances) become leaves unless
    ``cls._static_option(name, value)`` says they select a mode; functions, integers,
    flags, strings and adjoints are static (unhashable ones by identity). So a jitted
    function taking the solver as an argument does not recompile for a new tolerance.

    Args:
      cls: a dataclass with a ``_static_option(name, value) -> bool`` method.
    """
    jax.tree_util.register_pytree_node(cls, _flatten, functools.partial(_unflatten, cls))


def value_fun(fun: Callable, has_aux: bool = False, value_and_grad: bool = False) -> Callable:
    """``fun`` returning only the objective value.

    Args:
      fun: the objective, returning ``value``, ``(value, aux)`` with ``has_aux``, or
        ``(value, grad)`` / ``((value, aux), grad)`` with ``value_and_grad``.
      has_aux, value_and_grad: how ``fun`` returns.

    Returns:
      ``(params, *args, **kwargs) -> value``.
    """
    if value_and_grad:
        fun = lambda *a, _f=fun, **k: _f(*a, **k)[0]
    if has_aux:
        return lambda *a, _f=fun, **k: _f(*a, **k)[0]
    return fun


def value_and_grad_fun(fun: Callable, has_aux: bool = False, value_and_grad: bool = False) -> Callable:
    """``(params, *args, **kwargs) -> ((value, aux), grad)`` with ``aux=None`` if absent.

    Args:
      fun, has_aux, value_and_grad: as for :func:`value_fun`.

    Returns:
      The function.
    """
    if value_and_grad:
        if has_aux:
            vg = lambda *a, **k: (lambda r: ((r[0][0], r[0][1]), r[1]))(fun(*a, **k))
        else:
            vg = lambda *a, **k: (lambda r: ((r[0], None), r[1]))(fun(*a, **k))
    elif has_aux:
        vg = jax.value_and_grad(fun, has_aux=True)
    else:
        vg_plain = jax.value_and_grad(fun)
        vg = lambda *a, **k: (lambda r: ((r[0], None), r[1]))(vg_plain(*a, **k))
    return _real_valued(vg)


def _real_valued(vg: Callable) -> Callable:
    """``vg`` raising a ``TypeError`` that names ``fun`` when the objective is complex-valued
    (checked on dtypes at trace time; an objective of complex params must be real)."""
    message = ("`fun` must return a real scalar, got a complex value; for complex params "
               "minimize a real objective such as `jnp.sum(jnp.abs(residual) ** 2)`.")

    def checked(*a, **k):
        try:
            (value, aux), grad = vg(*a, **k)
        except TypeError as e:
            if "real-valued outputs" in str(e):
                raise TypeError(message) from e
            raise
        if jnp.iscomplexobj(value):
            raise TypeError(message)
        return (value, aux), grad
    return checked


# --------------------------------------------------------------------------- positional


def _own_fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def map_positional(cls: type, args: tuple, kwargs: dict) -> dict:
    """Constructor arguments of ``cls`` as keywords, positional ones named by ``cls._positional``.

    ``cls._positional`` lists jaxopt's constructor parameters in jaxopt's order. A name
    there that ``cls`` has no option for (e.g. ``prox`` of jaxopt's ``GradientDescent``)
    is accepted only with jaxopt's default ``None``, positionally or by keyword.

    Args:
      cls: a dataclass with a ``_positional`` tuple of names.
      args: positional constructor arguments.
      kwargs: keyword constructor arguments.

    Returns:
      All arguments as a ``dict`` of keywords.

    Raises:
      TypeError: too many positional arguments, a name given twice, or a non-``None``
        value for a jaxopt parameter that ``cls`` does not have.
    """
    names = tuple(getattr(cls, "_positional", ()))
    fields = _own_fields(cls)
    if len(args) > len(names):
        raise TypeError(f"{cls.__name__}() takes at most {len(names)} positional arguments "
                        f"{names} but {len(args)} were given")
    out = dict(kwargs)
    for name, value in zip(names, args, strict=False):
        if name in out:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
        out[name] = value
    for name in [n for n in out if n in names and n not in fields]:
        if out[name] is not None:
            raise TypeError(f"{cls.__name__}() has no option {name!r} (jaxopt's {name}={out[name]!r} "
                            f"is not supported); only {name}=None is accepted")
        del out[name]
    return out


def _wrap_init(cls: type) -> None:
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            break
    if init is None or getattr(init, "_maps_positional", False):
        return

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if type(self)._positional:
            kwargs = map_positional(type(self), args, kwargs)
            args = ()
        init(self, *args, **kwargs)

    __init__._maps_positional = True  # type: ignore[attr-defined]
    klass.__init__ = __init__  # type: ignore[misc]


class _PositionalSignature:
    """``cls.__signature__``: jaxopt's positional parameters first, then the other options."""

    def __get__(self, obj, cls):
        if obj is not None or not cls._positional or not dataclasses.is_dataclass(cls):
            return None
        fields = _own_fields(cls)
        P = inspect.Parameter

        def default(f):
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return P.empty

        params = []
        for name in cls._positional:
            f = fields.get(name)
            params.append(P(name, P.POSITIONAL_OR_KEYWORD, default=None if f is None else default(f)))
        params += [P(n, P.KEYWORD_ONLY, default=default(f)) for n, f in fields.items()
                   if n not in cls._positional]
        return inspect.Signature(params, __validate_parameters__=False)


def bind_run_keywords(names: tuple[str, ...], args: tuple, kwargs: dict, owner: str = "run"):
    """Move jaxopt's named leading ``run`` arguments from ``kwargs`` into ``args``.

    jaxopt's ``run(init_params, hyperparams_prox=None, *args, **kwargs)`` (and
    ``bounds``, ``hyperparams_proj``, ``params_obj`` / ``params_eq`` / ``params_ineq``)
    names the arguments after ``init_params``; our solvers read them positionally. A
    name given by keyword takes its place; a skipped earlier one is ``None`` (jaxopt's
    default).

    Args:
      names: the leading parameter names, in order.
      args: positional arguments after ``init_params`` (or ``params, state``).
      kwargs: keyword arguments.
      owner: the method's name, for error messages.

    Returns:
      ``(args, kwargs)``.

    Raises:
      TypeError: a name given both positionally and by keyword.
    """
    given = [i for i, n in enumerate(names) if n in kwargs]
    if not given:
        return args, kwargs
    out, kwargs = list(args), dict(kwargs)
    for i in range(max(given) + 1):
        name = names[i]
        if name in kwargs:
            if i < len(out):
                raise TypeError(f"{owner}() got multiple values for argument {name!r}")
            out.append(kwargs.pop(name))
        elif i >= len(out):
            out.append(None)
    return tuple(out), kwargs


def _with_run_keywords(method: Callable, n_fixed: int, names: tuple[str, ...]) -> Callable:
    """``method`` accepting ``type(self)._run_keywords`` by keyword; its signature shows them."""

    fixed_names = ("params", "state") if n_fixed == 2 else ("init_params",)

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        names_now = type(self)._run_keywords
        if names_now and any(n in kwargs for n in names_now):
            if len(args) < n_fixed:  # init_params (params, state) by keyword too
                kwargs = dict(kwargs)
                args = args + tuple(kwargs.pop(n) for n in fixed_names[len(args):] if n in kwargs)
            fixed, rest = args[:n_fixed], args[n_fixed:]
            owner = f"{type(self).__name__}.{method.__name__}"
            rest, kwargs = bind_run_keywords(names_now, rest, kwargs, owner)
            args = fixed + rest
        return method(self, *args, **kwargs)

    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return wrapped
    params = list(sig.parameters.values())
    present = {p.name for p in params}
    extra = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
             for n in names if n not in present]
    if extra:
        cut = next((i for i, p in enumerate(params) if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD,
                                                                   p.KEYWORD_ONLY)), len(params))
        params = params[:cut] + extra + params[cut:]
        wrapped.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            params, return_annotation=sig.return_annotation, __validate_parameters__=False)
    return wrapped


class JaxoptPositional:
    """Mixin: jaxopt's positional constructor order and named ``run`` arguments.

    Solvers are keyword-only dataclasses. A subclass that sets ``_positional`` to jaxopt's
    constructor parameters, in jaxopt's order, also accepts them positionally
    (``OptaxSolver(fun, opt)``); ``inspect.signature`` of the class shows that order.
    Keyword use is unchanged. See :func:`map_positional` for the errors.

    A subclass that sets ``_run_keywords`` (e.g. ``("hyperparams_prox",)``) has ``run``,
    ``init_state`` and ``update`` accept those leading arguments by keyword, as jaxopt's
    do (see :func:`bind_run_keywords`).

    Attributes:
      _positional: jaxopt's constructor parameter names, in jaxopt's order (class attribute).
      _run_keywords: leading ``run`` arguments that may be given by keyword (class attribute).
    """

    _positional: ClassVar[tuple[str, ...]] = ()
    _run_keywords: ClassVar[tuple[str, ...]] = ()
    __signature__: ClassVar = _PositionalSignature()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own_names = "_run_keywords" in cls.__dict__
        for name, n_fixed in (("run", 1), ("init_state", 1), ("update", 2)):
            method = cls.__dict__.get(name)
            if method is None and own_names and cls._run_keywords:
                method = getattr(cls, name, None)
            if method is None or not callable(method):
                continue
            setattr(cls, name, _with_run_keywords(method, n_fixed, cls._run_keywords))

    def __new__(cls, *args, **kwargs):
        # The dataclass decorator writes __init__ after __init_subclass__ has run, so the
        # positional mapping is put around it on first construction.
        del args, kwargs
        _wrap_init(cls)
        return object.__new__(cls)


# --------------------------------------------------------------------------- base

# While set (by ``jaxopt_lab.sweep.batch``, which drives solves itself), ``run`` hands
# ``(solver, init_params, args, kwargs)`` to it instead of solving: a solver ``run`` that
# adapts its arguments before calling the base ``run`` (OSQP, Bisection ...) is seen
# with the arguments the loop would get.
RUN_INTERCEPTOR: contextvars.ContextVar[Callable | None] = contextvars.ContextVar(
    "jaxopt_lab_run_interceptor", default=None)


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
class IterativeSolver(JaxoptPositional):
    """Base class of every iterative solver.

    Subclasses are dataclasses that declare ``fun`` and their own options, and
    implement ``init_state``, ``update`` and ``optimality_fun``. Their state is a
    ``NamedTuple`` with at least ``iter_num``, ``error`` and ``status``.

    Attributes:
      maxiter: maximum number of iterations (static).
      tol: tolerance on ``state.error`` (may be traced).
      verbose: print ``iter_num``, ``error`` and ``status`` every iteration.
      adjoint: how ``run`` is differentiated (a static option):
        :class:`~jaxopt_lab.core.adjoint.ImplicitAdjoint` (implicit function theorem, the
        default) or :class:`~jaxopt_lab.core.adjoint.UnrollAdjoint` (through the
        iterations). ``None``: built from the three jaxopt keywords below, its aliases.
      implicit_diff: alias: ``True`` (default) is ``ImplicitAdjoint()``, ``False`` is
        ``UnrollAdjoint()``.
      implicit_diff_solve: alias: ``f`` is ``ImplicitAdjoint(solve=f)``; also the
        solver's default linear solve for implicit derivatives (else conjugate gradients,
        the optimality Jacobian being a Hessian, or the family's choice).
      has_aux: whether ``fun`` returns ``(value, aux)``.
      jit: jit-compile ``run``.
      unroll: alias: with ``implicit_diff=False``, ``True``/``"auto"`` is
        ``UnrollAdjoint()`` (a masked ``lax.scan`` of ``maxiter`` steps) and ``False`` is
        ``UnrollAdjoint(scan=False)`` (a ``lax.while_loop``, forward mode only). With
        implicit derivatives the loop does not change results or derivatives and stops
        early. Given with ``adjoint``, a keyword must agree with it (else ``ValueError``).
    """

    maxiter: int = 500
    tol: float = 1e-3
    verbose: bool | int = False
    adjoint: ImplicitAdjoint | UnrollAdjoint | None = None
    implicit_diff: bool = True
    implicit_diff_solve: Callable | None = None
    has_aux: bool = False
    jit: bool = True
    unroll: bool | str = "auto"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_options_pytree(cls)
        # The stopping rule lives here once: every solver's init_state/update
        # returns a state whose status is already up to date.
        for name in ("init_state", "update"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_with_status", False):
                setattr(cls, name, _with_status(method, name == "update"))

    def __post_init__(self):
        check_int(self.maxiter, "maxiter", minimum=1)
        check_tolerance(self.tol, "tol")
        self._adjoint()  # bad or conflicting differentiation options raise here
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

    def _value_fun(self) -> Callable:
        """``fun`` returning only the objective value."""
        return value_fun(self.fun, self.has_aux, getattr(self, "value_and_grad", False))  # type: ignore[attr-defined]

    def _value_and_grad_fun(self) -> Callable:
        """``(params, *args) -> ((value, aux), grad)`` with ``aux=None`` if absent."""
        return value_and_grad_fun(self.fun, self.has_aux,  # type: ignore[attr-defined]
                                  getattr(self, "value_and_grad", False))

    def _adjoint(self) -> ImplicitAdjoint | UnrollAdjoint:
        """The adjoint ``run`` uses: ``adjoint``, or the one its jaxopt aliases build."""
        defaults = {f.name: f.default for f in dataclasses.fields(type(self))
                    if f.name in ("implicit_diff", "implicit_diff_solve", "unroll")}
        return resolve_adjoint(self.adjoint, self.implicit_diff, self.implicit_diff_solve, self.unroll,
                               defaults)

    def _unrolled(self) -> bool:
        """Whether ``run`` differentiates through its iterations (a scanning ``UnrollAdjoint``).

        The loops inside a step (line searches, inner linear solves) are then masked
        ``lax.scan``s too (:func:`jaxopt_lab.core.loop.bounded_while_loop`), so that the
        whole unrolled run has reverse-mode derivatives.
        """
        return self._adjoint().scan

    def _implicit_solve(self) -> Callable:
        """The default linear solve of :class:`ImplicitAdjoint` (``solve=None``) for this solver."""
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

    def _loop_step(self, params, state, args, kwargs) -> OptStep:
        """One ``update`` as the run loop takes it.

        The loop never steps a stopped state: it ends, or under ``vmap`` (and in a
        ``batch_run`` bucket) keeps a stopped lane's carry itself. A solver whose ``update``
        masks stopped states may skip that masking here; by default this is ``update``.
        """
        return self.update(params, state, *args, **kwargs)

    def _run_loop(self, init_params, *args, **kwargs) -> OptStep:
        state = self.init_state(init_params, *args, **kwargs)
        unroll = self._adjoint().scan
        step = lambda p, s: self._loop_step(p, s, args, kwargs)
        finish = None
        if self._state_at_input:
            finish = lambda prev, p, s: self._finish_run(prev, p, s, *args, **kwargs)
        return _loop.run(step, init_params, state, self.maxiter, unroll=unroll,
                         verbose=self.verbose, jit=self.jit, name=type(self).__name__,
                         lookback=self._state_at_input, finish=finish)

    def _run_differentiable(self, init_params, args, kwargs) -> OptStep:
        """The run loop, differentiated as the solver's adjoint says."""
        return self._adjoint().apply(self, _run_loop_of, init_params, args, kwargs)

    def run(self, init_params, *args, **kwargs) -> OptStep:
        """Run the solver from ``init_params`` until ``tol`` or ``maxiter``.

        Args:
          init_params: initial point (a pytree); gets no derivative.
          *args, **kwargs: passed to ``fun``; derivatives flow to them, in forward and
            reverse mode, as ``adjoint`` says (implicitly by default).

        Returns:
          ``OptStep(params, state)``; ``state.status`` tells how the solve ended.
        """
        intercept = RUN_INTERCEPTOR.get()
        if intercept is not None:
            return intercept(self, init_params, args, kwargs)
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


def _run_loop_of(solver, init_params, *args, **kwargs) -> OptStep:
    return solver._run_loop(init_params, *args, **kwargs)


@jax.jit
def _jitted_run(solver, init_params, args, kwargs):
    return solver._run_differentiable(init_params, args, kwargs)
