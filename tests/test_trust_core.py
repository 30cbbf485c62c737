"""Status codes that can be trusted: SciPy wrappers, the run loop's non-finite guard, the
shared stopping rule, OptaxSolver / SGD errors at the returned params, argument errors."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from jaxopt_lab import base
from tests import problems as P
from tests.registry import SOLVERS

S = jl.Status


def _gnorm(f, x, *args):
    return float(jnp.linalg.norm(jax.grad(f)(x, *args)))


# ----------------------------------------------------------------- SciPy wrappers
# CONVERGED exactly when our own error at the returned params is <= tol.


def test_scipy_bounded_minimize_success_with_large_error_is_stalled():
    # A large constant makes L-BFGS-B stop on its relative-reduction test (SciPy: success)
    # far from the optimum; the projected gradient there is ~1.7, tol is 1e-6.
    d = jnp.asarray([1.0, 10.0, 100.0, 1000.0])
    f = lambda x: 1e6 + 0.5 * jnp.sum(d * (x - 3.0) ** 2)
    out = jl.ScipyBoundedMinimize(fun=f, tol=1e-6).run(jnp.zeros(4), (-1.0, 5.0))
    assert bool(out.state.success)  # SciPy's verdict, kept in the state
    resid = out.params - jnp.clip(out.params - jax.grad(f)(out.params), -1.0, 5.0)
    np.testing.assert_allclose(out.state.error, jnp.linalg.norm(resid), rtol=1e-10)
    assert float(out.state.error) > 1.0
    assert int(out.state.status) == S.STALLED


def test_scipy_bounded_minimize_converged_when_error_below_tol():
    d = jnp.asarray([1.0, 10.0, 100.0, 1000.0])
    f = lambda x: 0.5 * jnp.sum(d * (x - 3.0) ** 2)
    out = jl.ScipyBoundedMinimize(fun=f, tol=1e-8).run(jnp.zeros(4), (-1.0, 2.0))
    np.testing.assert_allclose(out.params, 2.0)  # all bounds active: projected gradient 0
    assert float(out.state.error) <= 1e-8
    assert int(out.state.status) == S.CONVERGED


def test_scipy_newton_cg_status_from_our_error_not_scipy_version():
    # SciPy's xtol forced tiny: Newton-CG ends on "precision loss" (success False, status 2)
    # at a point whose gradient norm is ~1e-7, below tol = 1e-6. Our status must not depend
    # on how a given SciPy version words or numbers that stop.
    A, b = P.ridge_data()
    solver = jl.ScipyMinimize(fun=P.ridge_fun, method="Newton-CG", tol=1e-6, options={"xtol": 1e-14})
    out = solver.run(jnp.zeros(6), 1.5, A, b)
    err = _gnorm(P.ridge_fun, out.params, 1.5, A, b)
    np.testing.assert_allclose(out.state.error, err, rtol=1e-8)
    assert err <= 1e-6
    assert int(out.state.status) == S.CONVERGED
    # The same solve with tol below what it reaches: not converged, and a precision stop.
    tight = jl.ScipyMinimize(fun=P.ridge_fun, method="Newton-CG", tol=1e-14).run(jnp.zeros(6), 1.5, A, b)
    assert float(tight.state.error) > 1e-14
    assert int(tight.state.status) == S.STALLED


def test_scipy_minimize_linesearch_failure_and_maxiter():
    # A wrong gradient: L-BFGS-B's line search ends ABNORMAL, BFGS reports precision loss.
    vg = lambda x: (jnp.sum((x - 1.0) ** 2), -0.5 * (x - 1.0))
    lb = jl.ScipyMinimize(fun=vg, value_and_grad=True, method="L-BFGS-B", tol=1e-8).run(jnp.zeros(3))
    assert int(lb.state.status) == S.LINESEARCH_FAILED
    bf = jl.ScipyMinimize(fun=vg, value_and_grad=True, method="BFGS", tol=1e-8).run(jnp.zeros(3))
    assert int(bf.state.status) == S.STALLED
    fun, x0, _ = P.rosenbrock(4)
    out = jl.ScipyMinimize(fun=fun, method="L-BFGS-B", maxiter=3, tol=1e-8).run(x0)
    assert int(out.state.status) == S.MAX_ITER


def _lsq_res(x):
    return jnp.asarray([1e3 * (x[0] - 1.0), x[1] - 2.0, 10.0 * (x[0] * x[1] - 2.0)])


def _lsq_error(x):
    return _gnorm(lambda y: 0.5 * jnp.sum(_lsq_res(y) ** 2), x)


@pytest.mark.parametrize("bounded", [False, True])
def test_scipy_least_squares_status_from_normal_equations(bounded):
    loose = {"ftol": 1e-2, "xtol": 1e-2, "gtol": 1e-2}
    run = (lambda s: s.run(jnp.zeros(2), (-5.0, 5.0))) if bounded else (lambda s: s.run(jnp.zeros(2)))
    cls = jl.ScipyBoundedLeastSquares if bounded else jl.ScipyLeastSquares
    out = run(cls(fun=_lsq_res, tol=1e-8, options=loose))
    assert bool(out.state.success)
    np.testing.assert_allclose(out.state.error, _lsq_error(out.params), rtol=1e-6)
    assert float(out.state.error) > 1e-8
    assert int(out.state.status) == S.STALLED
    tight = run(cls(fun=_lsq_res, tol=1e-6, options={"ftol": 1e-14, "xtol": 1e-14, "gtol": 1e-14}))
    assert float(tight.state.error) <= 1e-6
    assert int(tight.state.status) == S.CONVERGED
    capped = run(cls(fun=_lsq_res, tol=1e-8, options={"max_nfev": 2}))
    assert int(capped.state.status) == S.MAX_ITER


def test_scipy_root_finding_status_from_residual():
    th = jnp.asarray([0.5, 2.0, -3.0])
    G = lambda x: x ** 3 + x - th
    loose = jl.ScipyRootFinding(optimality_fun=G, tol=1e-10, options={"xtol": 1e-2}).run(jnp.zeros(3))
    assert bool(loose.state.success)
    np.testing.assert_allclose(loose.state.error, jnp.linalg.norm(G(loose.params)), rtol=1e-8)
    assert float(loose.state.error) > 1e-10
    assert int(loose.state.status) == S.STALLED
    capped = jl.ScipyRootFinding(optimality_fun=G, tol=1e-10, options={"maxfev": 3}).run(jnp.zeros(3))
    assert int(capped.state.status) == S.MAX_ITER
    exact = jl.ScipyRootFinding(optimality_fun=G, tol=1e-10).run(jnp.zeros(3))
    assert float(exact.state.error) <= 1e-10
    assert int(exact.state.status) == S.CONVERGED


def test_scipy_minimize_nonfinite():
    # Unbounded below: BFGS walks to -inf / NaN values.
    f = lambda x: -jnp.exp(jnp.sum(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = jl.ScipyMinimize(fun=f, method="BFGS", tol=1e-8).run(jnp.ones(2))
    assert int(out.state.status) == S.NONFINITE


# ------------------------------------------------------- non-finite stop of the loop

def _nan_after(x):
    """Finite while x[0] <= 1; gradient descent from 0 towards 3 crosses it after a few steps."""
    return 0.5 * jnp.sum((x - 3.0) ** 2) + jnp.where(x[0] > 1.0, jnp.nan, 0.0)


_AT_INPUT = {
    "OptaxSolver-sgd": lambda f, **k: jl.OptaxSolver(f, optax.sgd(0.1), **k),
    "OptaxSolver-adam": lambda f, **k: jl.OptaxSolver(f, optax.adam(0.3), **k),
    "PolyakSGD": lambda f, **k: jl.PolyakSGD(f, max_stepsize=0.1, **k),
    "ArmijoSGD": lambda f, **k: jl.ArmijoSGD(f, max_stepsize=0.1, **k),
}


# Gradient descent evaluates at its input (or the extrapolated point) too; with a fixed
# step nothing stops it from stepping into the NaN region.
_FIRST_ORDER = {
    "GradientDescent": (lambda f, **k: jl.GradientDescent(f, stepsize=0.9, acceleration=False, **k), ()),
    "GradientDescent-accel": (lambda f, **k: jl.GradientDescent(f, stepsize=0.9, **k), ()),
    "ProximalGradient": (lambda f, **k: jl.ProximalGradient(f, stepsize=0.9, acceleration=False, **k),
                         (None,)),
    "ProximalGradient-accel": (lambda f, **k: jl.ProximalGradient(f, stepsize=0.9, **k), (None,)),
}
_NONFINITE_CASES = {**{k: (v, ()) for k, v in _AT_INPUT.items()}, **_FIRST_ORDER}


@pytest.mark.parametrize("name", list(_NONFINITE_CASES))
def test_nonfinite_stop_returns_last_finite_point_with_its_state(name):
    make, extra = _NONFINITE_CASES[name]
    solver = make(_nan_after, maxiter=100)
    out = solver.run(jnp.zeros(3), *extra)
    assert int(out.state.status) == S.NONFINITE
    assert int(out.state.iter_num) >= 2  # it did take finite steps first
    value = float(_nan_after(out.params))
    assert np.isfinite(value) and bool(jnp.all(jnp.isfinite(out.params)))
    np.testing.assert_allclose(out.state.value, value, rtol=1e-12)
    np.testing.assert_allclose(out.state.error, _gnorm(_nan_after, out.params), rtol=1e-12)


def test_nonfinite_stop_per_lane_under_vmap():
    # Lane 0 crosses into the NaN region, lane 1 (target 0.5) converges: each keeps its own
    # last finite point and the state describing it.
    f = lambda x, c: 0.5 * jnp.sum((x - c) ** 2) + jnp.where(x[0] > 1.0, jnp.nan, 0.0)
    solver = jl.OptaxSolver(f, optax.sgd(0.1), maxiter=200, tol=1e-6)
    out = jax.jit(jax.vmap(lambda c: solver.run(jnp.zeros(3), c)))(jnp.asarray([3.0, 0.5]))
    assert [int(s) for s in out.state.status] == [S.NONFINITE, S.CONVERGED]
    for i, c in enumerate((3.0, 0.5)):
        p = out.params[i]
        np.testing.assert_allclose(out.state.value[i], f(p, c), rtol=1e-12)
        np.testing.assert_allclose(out.state.error[i], _gnorm(f, p, c), rtol=1e-12)


class _State(NamedTuple):
    iter_num: jax.Array
    error: jax.Array
    status: jax.Array


@pytest.mark.parametrize("solver_status", [S.LINESEARCH_FAILED, S.STALLED])
def test_nonfinite_error_wins_over_solver_status(solver_status):
    state = _State(jnp.asarray(3), jnp.asarray(jnp.nan), jnp.asarray(int(solver_status), jnp.int32))
    assert int(base.update_status(state, 1e-3, 100).status) == S.NONFINITE
    finite = state._replace(error=jnp.asarray(0.5))
    assert int(base.update_status(finite, 1e-3, 100).status) == solver_status
    # A finite error with a NaN value is NONFINITE too; INFEASIBLE (a certificate) is kept.
    assert int(base.update_status(finite, 1e-3, 100, value=jnp.nan).status) == S.NONFINITE
    infeasible = state._replace(status=jnp.asarray(int(S.INFEASIBLE), jnp.int32))
    assert int(base.update_status(infeasible, 1e-3, 100).status) == S.INFEASIBLE


@jax.custom_jvp
def _nan_grad_beyond_one(x):
    return jnp.sum(x)


@_nan_grad_beyond_one.defjvp
def _nan_grad_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    slope = jnp.where(x > 1.0, jnp.nan, 1.0)
    return jnp.sum(x), jnp.sum(slope * t)


def test_nan_gradient_with_finite_value_is_nonfinite():
    f = lambda x: 0.5 * jnp.sum((x - 3.0) ** 2) + 0.0 * _nan_grad_beyond_one(x)
    assert np.isfinite(float(f(jnp.full(3, 2.0))))
    assert not np.isfinite(_gnorm(f, jnp.full(3, 2.0)))
    out = jl.OptaxSolver(f, optax.sgd(0.1), maxiter=100).run(jnp.zeros(3))
    assert int(out.state.status) == S.NONFINITE
    np.testing.assert_allclose(out.state.error, _gnorm(f, out.params), rtol=1e-12)
    assert np.isfinite(float(out.state.error))


# ------------------------------------------- OptaxSolver / SGD error at the returned params

@pytest.mark.parametrize("name", list(_AT_INPUT))
@pytest.mark.parametrize("maxiter", [7, 2000])
def test_error_and_value_are_those_of_the_returned_params(name, maxiter):
    d = jnp.linspace(1.0, 5.0, 6)
    fun = lambda x: 0.5 * jnp.sum(d * (x - 1.0) ** 2)  # minimum value 0 (Polyak's assumption)
    x0 = jnp.zeros(6)
    out = _AT_INPUT[name](fun, maxiter=maxiter, tol=1e-4).run(x0)
    assert int(out.state.status) == (S.MAX_ITER if maxiter == 7 else S.CONVERGED)
    np.testing.assert_allclose(out.state.value, fun(out.params), rtol=1e-12)
    np.testing.assert_allclose(out.state.error, _gnorm(fun, out.params), rtol=1e-10)
    if maxiter == 2000:
        assert _gnorm(fun, out.params) <= 1e-4


def test_optax_update_after_convergence_keeps_params():
    fun, x0, _ = P.quadratic(4, cond=3.0)
    solver = jl.OptaxSolver(fun, optax.sgd(0.2), tol=1e-3)
    x_star = jnp.linalg.solve(jax.hessian(fun)(x0), -jax.grad(fun)(jnp.zeros(4)))
    state = solver.init_state(x_star)
    assert int(state.status) == S.CONVERGED
    step = solver.update(x_star, state._replace(status=jnp.asarray(0, jnp.int32)))
    np.testing.assert_array_equal(step.params, x_star)
    assert int(step.state.status) == S.CONVERGED


# ------------------------------------------------------------------- argument errors

def _classes_with_tol():
    out = []
    for name in jl.solvers.__all__:
        cls = getattr(jl.solvers, name)
        if inspect.isclass(cls) and "tol" in inspect.signature(cls).parameters:
            out.append(name)
    return out


def _build_with_tol(name, tol):
    """``jl.<name>(..., tol=tol)`` with placeholder functions for its required arguments."""
    cls = getattr(jl, name)
    f = lambda x, *a: jnp.sum(x ** 2)  # noqa: E731
    special = {"AndersonWrapper": dict(solver=jl.GradientDescent(f)),
               "Bisection": dict(optimality_fun=f, lower=-1.0, upper=1.0),
               "OptaxSolver": dict(fun=f, opt=optax.sgd(0.1)),
               "ProjectedGradient": dict(fun=f, projection=jl.projection.projection_box),
               "ScipyRootFinding": dict(optimality_fun=f)}
    kwargs = special.get(name) or {
        p.name: f for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty and p.name != "tol"
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return cls(**kwargs, tol=tol)


@pytest.mark.parametrize("tol", [np.inf, np.nan, -1e-3])
@pytest.mark.parametrize("name", _classes_with_tol())
def test_every_solver_rejects_a_bad_tol_naming_it(name, tol):
    # tol=inf would report CONVERGED at once; NaN would never stop (EqualityConstrainedQP,
    # OSQP, BoxOSQP and the line-search classes accepted inf before).
    _build_with_tol(name, 1e-3)  # the placeholders make a valid solver
    with pytest.raises(ValueError, match="`tol`"):
        _build_with_tol(name, tol)


def _quad_fun():
    return P.quadratic(4, cond=3.0)[0]


@pytest.mark.parametrize("entry", SOLVERS, ids=[e.name for e in SOLVERS])
def test_integer_and_empty_init_params_are_rejected(entry):
    solver = entry.make(_quad_fun(), **entry.options)
    if isinstance(getattr(solver, "solver", solver), jl.CvxpyQP):
        pytest.skip("CvxpyQP ignores init_params (CVXPY chooses its own start)")
    with pytest.raises(TypeError, match="init_params"):
        solver.run(jnp.arange(4, dtype=jnp.int32))
    if entry.stepwise:
        with pytest.raises(TypeError, match="init_params"):
            solver.init_state(jnp.arange(4, dtype=jnp.int32))
        with pytest.raises(ValueError, match="init_params"):
            solver.init_state({})
    with pytest.raises(ValueError, match="init_params"):
        solver.run({})


_NO_HALF = {
    # Armijo test below 16-bit rounding (MAX_ITER at tol 3e-2 where float32 converges).
    "ArmijoSGD": lambda fun: jl.ArmijoSGD(fun, tol=3e-2, maxiter=300),
    # LAPACK has no 16-bit kernels: these ended in NotImplementedError("Unsupported dtype").
    "AndersonAcceleration": lambda fun: jl.AndersonAcceleration(
        lambda x: x - 0.1 * jax.grad(fun)(x), tol=3e-2, maxiter=300),
    "AndersonWrapper": lambda fun: jl.AndersonWrapper(
        jl.GradientDescent(fun, stepsize=0.1, acceleration=False), tol=3e-2, maxiter=300),
}


@pytest.mark.parametrize("name", list(_NO_HALF))
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_rejected_where_unsupported(dtype, name):
    fun, x0, _ = P.quadratic(4, cond=3.0, dtype=dtype)
    solver = _NO_HALF[name](fun)
    with pytest.raises(TypeError, match="init_params.*float32"):
        solver.run(x0)
    with pytest.raises(TypeError, match="init_params"):
        solver.init_state(x0)
    # Solvers that work in 16-bit floats keep accepting them (at a 16-bit tolerance).
    out = jl.OptaxSolver(fun, optax.adam(0.05), tol=3e-2, maxiter=300).run(x0)
    assert out.params.dtype == dtype and int(out.state.status) == S.CONVERGED


def test_float32_defaults_without_x64():
    # A subprocess without x64: the default float32 path of the fixed solvers.
    code = textwrap.dedent("""
        import jax.numpy as jnp, optax, jaxopt_lab as jl
        Q = jnp.diag(jnp.asarray([1.0, 3.0, 10.0]))
        f = lambda x: 0.5 * x @ Q @ x - jnp.sum(x)
        for s in (jl.OptaxSolver(f, optax.adam(0.05), maxiter=3000), jl.PolyakSGD(f, max_stepsize=0.1),
                  jl.ArmijoSGD(f, maxiter=3000)):
            out = s.run(jnp.zeros(3))
            g = jnp.linalg.norm(Q @ out.params - 1.0)
            assert out.params.dtype == jnp.float32, out.params.dtype
            gap = abs(float(out.state.error) - float(g))
            assert gap <= 1e-5 * max(1.0, float(g)), (type(s), out.state.error, g)
            print(type(s).__name__, int(out.state.status), float(out.state.error))
    """)
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
