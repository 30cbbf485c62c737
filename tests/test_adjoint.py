"""Differentiation as an object: ``adjoint=ImplicitAdjoint(...)`` / ``UnrollAdjoint()`` and
jaxopt's ``implicit_diff``/``implicit_diff_solve``/``unroll`` keywords as its aliases.

Derivatives are checked against the ridge closed form ``dx*/dlam = -(A^T A + lam I)^{-1} x*``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab.linalg import linear_solve as ls
from tests import problems as P

A, B = P.ridge_data(n=12, d=4)
A = A / np.sqrt(A.shape[0])  # Lipschitz constant near 1: a fixed step of 0.5 converges
X0 = jnp.zeros(4)
LAM = 1.5
EXPECTED = P.ridge_solution_derivative(LAM, A, B)


def _fixed_gd(**kw):
    return jl.GradientDescent(P.ridge_fun, stepsize=0.5, acceleration=False, maxiter=400, tol=1e-12, **kw)


def _ridge_solution(solver):
    if isinstance(solver, jl.ScipyBoundedMinimize):
        return lambda lam, b=B: solver.run(X0, (-1e3, 1e3), lam, A, b).params
    return lambda lam, b=B: solver.run(X0, lam, A, b).params


def _derivatives(solver):
    """d x*/d lam in forward and reverse mode, and the vjp / jvp pair in the data ``b``."""
    sol = _ridge_solution(solver)
    jvp = jax.jvp(sol, (LAM,), (1.0,))[1]
    rev = jax.jacrev(sol)(LAM)
    v = jnp.asarray(np.random.default_rng(0).standard_normal(B.shape))
    w = jnp.asarray(np.random.default_rng(1).standard_normal(X0.shape))
    g_b = jax.vjp(lambda b: sol(LAM, b), B)[1](w)[0]
    jvp_b = jax.jvp(lambda b: sol(LAM, b), (B,), (v,))[1]
    return jvp, rev, (float(jnp.vdot(g_b, v)), float(jnp.vdot(w, jvp_b)))


SOLVERS = {
    "GradientDescent": lambda **kw: jl.GradientDescent(P.ridge_fun, tol=1e-10, maxiter=5000, **kw),
    "LBFGS": lambda **kw: jl.LBFGS(P.ridge_fun, tol=1e-10, **kw),
    "ScipyMinimize": lambda **kw: jl.ScipyMinimize(fun=P.ridge_fun, method="BFGS", tol=1e-8,
                                                   options={"gtol": 1e-10}, **kw),
}


# The explicit adjoints are also checked against the default in the tests below; their full
# derivative matrix runs with the slow suite.
@pytest.mark.parametrize("adjoint", [
    pytest.param(None, id="default"),
    pytest.param(jl.ImplicitAdjoint(), id="ImplicitAdjoint()", marks=pytest.mark.slow),
    pytest.param(jl.ImplicitAdjoint(solve=ls.solve_lu), id="ImplicitAdjoint(solve_lu)",
                 marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_implicit_derivatives_of_ridge_match_closed_form(name, adjoint):
    solver = SOLVERS[name](adjoint=adjoint)
    out = _ridge_solution(solver)(LAM)
    np.testing.assert_allclose(out, P.ridge_solution(LAM, A, B), atol=1e-8)
    jvp, rev, (vjp_b, jvp_b) = _derivatives(solver)
    np.testing.assert_allclose(jvp, EXPECTED, atol=1e-7)
    np.testing.assert_allclose(rev, EXPECTED, atol=1e-7)
    np.testing.assert_allclose(vjp_b, jvp_b, rtol=1e-6)


def test_implicit_adjoint_is_the_default():
    default, explicit = _fixed_gd(), _fixed_gd(adjoint=jl.ImplicitAdjoint())
    a, b = default.run(X0, LAM, A, B), explicit.run(X0, LAM, A, B)
    np.testing.assert_array_equal(a.params, b.params)
    assert int(a.state.iter_num) == int(b.state.iter_num)
    np.testing.assert_array_equal(jax.jacrev(_ridge_solution(default))(LAM),
                                  jax.jacrev(_ridge_solution(explicit))(LAM))


def test_implicit_diff_false_is_unroll_adjoint():
    alias, explicit = _fixed_gd(implicit_diff=False), _fixed_gd(adjoint=jl.UnrollAdjoint())
    g_alias = jax.grad(lambda lam: _ridge_solution(alias)(lam).sum())(LAM)
    g_explicit = jax.grad(lambda lam: _ridge_solution(explicit)(lam).sum())(LAM)
    assert float(g_alias) == float(g_explicit)
    # Unrolled: the derivative of 400 gradient steps, which have converged here.
    np.testing.assert_allclose(g_explicit, EXPECTED.sum(), rtol=1e-6)
    # Forward mode through the scan too.
    np.testing.assert_allclose(jax.jvp(_ridge_solution(explicit), (LAM,), (1.0,))[1], EXPECTED, atol=1e-7)


def test_unroll_adjoint_differs_from_implicit_short_of_convergence():
    """Unrolled derivatives are those of the iterations actually run (here 5 steps from 0),
    implicit ones those of the exact solution at the returned point."""
    short = dict(maxiter=5)
    unrolled = jl.GradientDescent(P.ridge_fun, stepsize=0.5, acceleration=False, tol=1e-12,
                                  adjoint=jl.UnrollAdjoint(), **short)
    x = lambda lam: unrolled.run(X0, lam, A, B).params
    # Closed form of 5 steps x_{k+1} = x_k - eta (H(lam) x_k - A^T b), differentiated in lam.
    eta = 0.5

    def five_steps(lam):
        H = A.T @ A + lam * jnp.eye(4)
        xk = X0
        for _ in range(5):
            xk = xk - eta * (H @ xk - A.T @ B)
        return xk

    np.testing.assert_allclose(jax.jacrev(x)(LAM), jax.jacfwd(five_steps)(LAM), atol=1e-12)
    assert float(jnp.max(jnp.abs(jax.jacrev(x)(LAM) - EXPECTED))) > 1e-3


def test_unroll_false_alias_is_a_while_loop_with_forward_mode_only():
    alias = _fixed_gd(implicit_diff=False, unroll=False)
    explicit = _fixed_gd(adjoint=jl.UnrollAdjoint(scan=False))
    assert alias._adjoint() == explicit.adjoint == jl.UnrollAdjoint(scan=False)
    np.testing.assert_allclose(jax.jvp(_ridge_solution(explicit), (LAM,), (1.0,))[1], EXPECTED, atol=1e-7)
    with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
        jax.grad(lambda lam: _ridge_solution(explicit)(lam).sum())(LAM)


def test_custom_solve_is_used_and_gives_the_same_derivatives():
    calls = []

    def counting_lu(matvec, b, **kw):
        calls.append(1)
        return ls.solve_lu(matvec, b, **kw)

    for solver in (_fixed_gd(adjoint=jl.ImplicitAdjoint(solve=counting_lu)),
                   _fixed_gd(implicit_diff_solve=counting_lu)):
        before = len(calls)
        rev = jax.jacrev(_ridge_solution(solver))(LAM)
        assert len(calls) > before, "the adjoint's linear solve was not called"
        np.testing.assert_allclose(rev, jax.jacrev(_ridge_solution(_fixed_gd()))(LAM), atol=1e-9)
    host = jl.ScipyMinimize(fun=P.ridge_fun, method="BFGS", tol=1e-8, options={"gtol": 1e-10},
                            adjoint=jl.ImplicitAdjoint(solve=counting_lu))
    before = len(calls)
    np.testing.assert_allclose(jax.jacrev(_ridge_solution(host))(LAM), EXPECTED, atol=1e-7)
    assert len(calls) > before


def test_float32_implicit_derivatives():
    A32, B32 = A.astype(jnp.float32), B.astype(jnp.float32)
    solver = jl.LBFGS(P.ridge_fun, tol=1e-5, adjoint=jl.ImplicitAdjoint(solve=ls.solve_cg))
    sol = lambda lam: solver.run(jnp.zeros(4, jnp.float32), lam, A32, B32).params
    rev = jax.jacrev(sol)(jnp.float32(LAM))
    assert rev.dtype == jnp.float32
    np.testing.assert_allclose(rev, EXPECTED, atol=1e-4)
    np.testing.assert_allclose(jax.jvp(sol, (jnp.float32(LAM),), (jnp.float32(1.0),))[1], EXPECTED, atol=1e-4)


def test_conflicting_arguments_raise_naming_both():
    f = ls.solve_lu
    cases = [
        dict(adjoint=jl.ImplicitAdjoint(), implicit_diff=False),
        dict(adjoint=jl.UnrollAdjoint(), implicit_diff_solve=f),
        dict(adjoint=jl.ImplicitAdjoint(solve=ls.solve_cg), implicit_diff_solve=f),
        dict(adjoint=jl.ImplicitAdjoint(), unroll=True),
        dict(adjoint=jl.UnrollAdjoint(scan=True), unroll=False),
    ]
    for kw in cases:
        other = next(k for k in kw if k != "adjoint")
        with pytest.raises(ValueError, match=rf"adjoint=.*{other}"):
            jl.GradientDescent(P.ridge_fun, **kw)
    with pytest.raises(TypeError, match="adjoint"):
        jl.GradientDescent(P.ridge_fun, adjoint="implicit")
    with pytest.raises(TypeError, match="solve"):
        jl.ImplicitAdjoint(solve=3)
    with pytest.raises(TypeError, match="scan"):
        jl.UnrollAdjoint(scan="yes")
    with pytest.raises(ValueError, match="unroll"):
        jl.GradientDescent(P.ridge_fun, unroll="always")
    # Host solvers cannot unroll SciPy's iterations.
    with pytest.raises(ValueError, match="adjoint=UnrollAdjoint"):
        jl.ScipyMinimize(fun=P.ridge_fun, adjoint=jl.UnrollAdjoint())
    with pytest.raises(ValueError, match="implicit_diff=False"):
        jl.ScipyMinimize(fun=P.ridge_fun, adjoint=jl.ImplicitAdjoint(), implicit_diff=False)


def test_agreeing_aliases_are_accepted():
    f = ls.solve_lu
    assert jl.GradientDescent(P.ridge_fun, adjoint=jl.ImplicitAdjoint(solve=f), implicit_diff_solve=f,
                              implicit_diff=True)._adjoint() == jl.ImplicitAdjoint(solve=f)
    # ImplicitAdjoint() takes the solver's default solve, which implicit_diff_solve sets.
    solver = jl.GradientDescent(P.ridge_fun, adjoint=jl.ImplicitAdjoint(), implicit_diff_solve=f)
    assert solver._implicit_solve() is f
    assert jl.GradientDescent(P.ridge_fun, adjoint=jl.UnrollAdjoint(), implicit_diff=False,
                              unroll=True)._adjoint() == jl.UnrollAdjoint()
    # A keyword at its class default is not "given": OptaxSolver's default is implicit_diff=False.
    import optax

    opt = jl.OptaxSolver(opt=optax.sgd(0.1), fun=P.ridge_fun, adjoint=jl.ImplicitAdjoint())
    assert opt._adjoint() == jl.ImplicitAdjoint()
    assert jl.OptaxSolver(opt=optax.sgd(0.1), fun=P.ridge_fun)._adjoint() == jl.UnrollAdjoint()
    # replace keeps the adjoint and accepts a new one where no alias conflicts.
    gd = _fixed_gd(adjoint=jl.UnrollAdjoint())
    assert gd.replace(tol=1e-6).adjoint == jl.UnrollAdjoint()
    assert gd.replace(adjoint=jl.ImplicitAdjoint())._adjoint() == jl.ImplicitAdjoint()


def test_adjoints_are_static_hashable_and_frozen():
    a, b = jl.ImplicitAdjoint(solve=ls.solve_cg), jl.ImplicitAdjoint(solve=ls.solve_cg)
    assert a == b and hash(a) == hash(b) and a != jl.ImplicitAdjoint()
    assert jl.UnrollAdjoint() == jl.UnrollAdjoint() and hash(jl.UnrollAdjoint()) == hash(jl.UnrollAdjoint())
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.solve = None
    assert repr(jl.ImplicitAdjoint()) == "ImplicitAdjoint()"
    assert repr(a) == "ImplicitAdjoint(solve=solve_cg)"
    assert repr(jl.ImplicitAdjoint(symmetric=False)) == "ImplicitAdjoint(symmetric=False)"
    assert repr(jl.UnrollAdjoint()) == "UnrollAdjoint()"
    assert repr(jl.UnrollAdjoint(scan=False)) == "UnrollAdjoint(scan=False)"
    solver = _fixed_gd(adjoint=a)
    leaves, treedef = jax.tree_util.tree_flatten(solver)
    assert all(isinstance(leaf, float | jax.Array) for leaf in leaves), leaves  # numbers only
    assert jax.tree_util.tree_unflatten(treedef, leaves).adjoint == a


@pytest.mark.parametrize("adjoint", [jl.ImplicitAdjoint(solve=ls.solve_lu), jl.UnrollAdjoint()],
                         ids=["implicit", "unroll"])
def test_no_retrace_for_a_new_tol_with_an_adjoint(adjoint):
    traces = []

    def counted(x, lam, A, b):
        traces.append(1)
        return P.ridge_fun(x, lam, A, b)

    make = lambda tol: jl.GradientDescent(counted, stepsize=0.5, acceleration=False, maxiter=300, tol=tol,
                                          adjoint=adjoint)
    grad = lambda solver: jax.grad(lambda lam: solver.run(X0, lam, A, B).params.sum())(LAM)
    make(1e-8).run(X0, LAM, A, B)
    g1 = grad(make(1e-8))
    n = len(traces)
    out = make(1e-9).run(X0, LAM, A, B)
    g2 = grad(make(1e-9))
    assert len(traces) == n, "a new tol recompiled the solve"
    assert float(out.state.error) <= 1e-9
    np.testing.assert_allclose([g1, g2], [EXPECTED.sum()] * 2, rtol=1e-6)


def test_host_solver_without_implicit_diff_has_no_derivatives():
    solver = jl.ScipyMinimize(fun=P.ridge_fun, method="BFGS", tol=1e-8, implicit_diff=False)
    np.testing.assert_allclose(solver.run(X0, LAM, A, B).params, P.ridge_solution(LAM, A, B), atol=1e-7)
    with pytest.raises(TypeError, match="host"):
        jax.grad(lambda lam: solver.run(X0, lam, A, B).params.sum())(LAM)


def test_host_solvers_share_the_host_base_and_have_run_only():
    from jaxopt_lab.solvers.host._base import HostSolver

    for cls in (jl.ScipyMinimize, jl.ScipyBoundedMinimize, jl.ScipyLeastSquares, jl.ScipyBoundedLeastSquares,
                jl.ScipyRootFinding, jl.CvxpyQP):
        assert issubclass(cls, HostSolver) and not issubclass(cls, jl.base.IterativeSolver), cls
        assert not hasattr(cls, "init_state") and not hasattr(cls, "update"), cls
    with pytest.raises(AttributeError, match="run"):
        jl.CvxpyQP().init_state(None)


def test_host_solver_option_checks_name_the_argument():
    f = lambda x: jnp.sum(x**2)
    cases = [(dict(method=3), TypeError, "method"), (dict(options=[("gtol", 1e-6)]), TypeError, "options"),
             (dict(dtype=jnp.int32), TypeError, "dtype"), (dict(maxiter=0), ValueError, "maxiter"),
             (dict(tol=-1.0), ValueError, "tol"),
             (dict(implicit_diff_solve=3), TypeError, "implicit_diff_solve")]
    for kw, err, name in cases:
        with pytest.raises(err, match=name):
            jl.ScipyMinimize(fun=f, **kw)
    with pytest.raises(TypeError, match="fun"):
        jl.ScipyLeastSquares(fun=None)
    with pytest.raises(TypeError, match="implicit_diff_solve"):
        jl.CvxpyQP(implicit_diff_solve="gmres")
    with pytest.raises(TypeError, match="adjoint"):
        jl.CvxpyQP(adjoint=ls.solve_lu)


@pytest.mark.slow  # a fresh interpreter without x64
def test_host_solvers_in_default_float32_without_x64():
    """Without x64 (JAX's default): float32 results, implicit derivatives, and no dtype warnings
    from the float64 the SciPy wrappers ask for by default."""
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("error", UserWarning)
        import jax, jax.numpy as jnp, jaxopt_lab as jl
        Q = jnp.diag(jnp.asarray([1.0, 3.0, 10.0]))
        f = lambda x, c: 0.5 * x @ Q @ x - c @ x
        c = jnp.ones(3)
        solver = jl.ScipyMinimize(fun=f, method="BFGS", tol=1e-4)
        out = solver.run(jnp.zeros(3), c)
        assert out.params.dtype == jnp.float32 and int(out.state.status) == 1, out
        jac = jax.jacrev(lambda c: solver.run(jnp.zeros(3), c).params)(c)
        assert jnp.allclose(jac, jnp.linalg.inv(Q), atol=1e-4), jac
        lsq = jl.ScipyLeastSquares(fun=lambda x: x - 2.0, tol=1e-4).run(jnp.zeros(2))
        root = jl.ScipyRootFinding(optimality_fun=lambda x: x**3 - 8.0, tol=1e-4).run(jnp.ones(2))
        assert lsq.params.dtype == root.params.dtype == jnp.float32
        assert jnp.allclose(lsq.params, 2.0) and jnp.allclose(root.params, 2.0, atol=1e-4)
    """)
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
