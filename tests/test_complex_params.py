"""Complex parameters in the smooth solvers (issue 17 item 6).

jaxopt's convention: the objective is real, the params may be complex, the descent
direction is ``-conj(jax.grad(f))`` and inner products are ``Re <x, y>``. Checked on a
complex least-squares problem ``||A z - b||^2`` against ``numpy.linalg.lstsq``, against
jaxopt 0.8.5 (LBFGS on the same complex problem; GradientDescent on its real view, since
jaxopt's own GradientDescent steps along the unconjugated gradient and diverges) and
against our own solvers on the real view, in complex128 and complex64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl

jaxopt = pytest.importorskip("jaxopt")


def _problem(dtype, m=12, n=5, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) + 1j * rng.standard_normal((m, n))
    b = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    z_star = np.linalg.lstsq(A, b, rcond=None)[0]
    A, b = jnp.asarray(A, dtype), jnp.asarray(b, dtype)
    return (lambda z: jnp.sum(jnp.abs(A @ z - b) ** 2)), z_star


# tol on the gradient norm (||grad f|| ~ 2 ||A^H A|| ||z - z*||): reachable in complex64.
_TOL = {jnp.complex128: 1e-9, jnp.complex64: 1e-3}
_ATOL = {jnp.complex128: 1e-9, jnp.complex64: 5e-4}

_SOLVERS = {
    "GradientDescent": lambda f, tol: jl.GradientDescent(f, tol=tol, maxiter=3000),
    "LBFGS": lambda f, tol: jl.LBFGS(f, tol=tol, maxiter=500),
    "BFGS": lambda f, tol: jl.BFGS(f, tol=tol, maxiter=500),
    "NonlinearCG": lambda f, tol: jl.NonlinearCG(f, tol=tol, maxiter=500),
}


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64], ids=["c128", "c64"])
@pytest.mark.parametrize("name", sorted(_SOLVERS))
def test_complex_least_squares_matches_lstsq(name, dtype):
    fun, z_star = _problem(dtype)
    out = jax.jit(_SOLVERS[name](fun, _TOL[dtype]).run)(jnp.zeros(5, dtype))
    assert out.params.dtype == dtype
    assert int(out.state.status) == jl.Status.CONVERGED, jl.status_name(out.state.status)
    np.testing.assert_allclose(np.asarray(out.params), z_star, atol=_ATOL[dtype])
    assert float(out.state.error) <= _TOL[dtype]
    if name != "GradientDescent":  # (its error is measured at the extrapolated point)
        # The error is the norm of the gradient at the returned point.
        g = jax.grad(fun)(out.params)
        np.testing.assert_allclose(float(out.state.error), float(jnp.linalg.norm(g)), rtol=1e-3)


def test_lbfgs_complex_matches_jaxopt():
    fun, z_star = _problem(jnp.complex128)
    z0 = jnp.zeros(5, jnp.complex128)
    ours = jl.LBFGS(fun, tol=1e-9).run(z0)
    ref = jaxopt.LBFGS(fun, tol=1e-9).run(z0)
    np.testing.assert_allclose(np.asarray(ours.params), np.asarray(ref.params), atol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.params), z_star, atol=1e-9)
    # Same small number of iterations (a few either way: the line searches differ).
    assert int(ours.state.iter_num) <= int(ref.state.iter_num) + 6
    # state.grad keeps jax.grad's convention, as jaxopt's does.
    np.testing.assert_allclose(np.asarray(ours.state.grad), np.asarray(jax.grad(fun)(ours.params)),
                               atol=1e-9)


def test_lbfgs_complex_first_iterate_matches_jaxopt():
    # The first step is along -conj(grad) in both libraries: same direction, so the
    # first iterates lie on the same ray from z0.
    fun, _ = _problem(jnp.complex128)
    z0 = jnp.zeros(5, jnp.complex128)
    ours = jl.LBFGS(fun, tol=1e-9, maxiter=1).run(z0).params
    ref = jaxopt.LBFGS(fun, tol=1e-9, maxiter=1).run(z0).params
    d = -jnp.conj(jax.grad(fun)(z0))
    for z in (ours, ref):
        cos = float(jnp.real(jnp.vdot(z - z0, d)) / (jnp.linalg.norm(z - z0) * jnp.linalg.norm(d)))
        assert cos > 1 - 1e-12


def _real_view(fun):
    return lambda r: fun(r[:, 0] + 1j * r[:, 1])


@pytest.mark.parametrize("acceleration", [True, False])
def test_gradient_descent_complex_is_its_real_view_and_beats_jaxopt(acceleration):
    # Our complex iterates are exactly the real-view (Re z, Im z) iterates. jaxopt's
    # GradientDescent on complex params steps along jax.grad itself (not its conjugate) and
    # diverges; on the real view it is correct and reaches the same solution as ours.
    fun, z_star = _problem(jnp.complex128)
    z0 = jnp.zeros(5, jnp.complex128)
    for maxiter in (1, 7):
        ours = jl.GradientDescent(fun, maxiter=maxiter, acceleration=acceleration).run(z0).params
        real = jl.GradientDescent(_real_view(fun), maxiter=maxiter,
                                  acceleration=acceleration).run(jnp.zeros((5, 2))).params
        np.testing.assert_allclose(np.asarray(ours.real), np.asarray(real[:, 0]), atol=1e-12)
        np.testing.assert_allclose(np.asarray(ours.imag), np.asarray(real[:, 1]), atol=1e-12)
    ours = jl.GradientDescent(fun, tol=1e-9, maxiter=3000, acceleration=acceleration).run(z0)
    ref_real = jaxopt.GradientDescent(_real_view(fun), tol=1e-9, maxiter=3000,
                                      acceleration=acceleration).run(jnp.zeros((5, 2))).params
    theirs = jaxopt.GradientDescent(fun, tol=1e-9, maxiter=3000, acceleration=acceleration).run(z0).params
    np.testing.assert_allclose(np.asarray(ours.params), np.asarray(ref_real[:, 0] + 1j * ref_real[:, 1]),
                               atol=1e-8)
    err_ours = float(np.max(np.abs(np.asarray(ours.params) - z_star)))
    err_theirs = float(np.max(np.abs(np.asarray(theirs) - z_star)))
    assert err_ours <= 1e-9 and not err_theirs <= 1e-3, (err_ours, err_theirs)


@pytest.mark.parametrize("name", ["LBFGS", "BFGS", "NonlinearCG"])
def test_quasi_newton_complex_equals_its_real_view(name):
    # The complex solve is the real-view solve: same iterates, same status and counts.
    fun, _ = _problem(jnp.complex128)
    make = lambda f: _SOLVERS[name](f, 1e-9)
    ours = make(fun).run(jnp.zeros(5, jnp.complex128))
    real = make(_real_view(fun)).run(jnp.zeros((5, 2)))
    np.testing.assert_allclose(np.asarray(ours.params.real), np.asarray(real.params[:, 0]), atol=1e-12)
    np.testing.assert_allclose(np.asarray(ours.params.imag), np.asarray(real.params[:, 1]), atol=1e-12)
    assert int(ours.state.iter_num) == int(real.state.iter_num)
    assert int(ours.state.num_fun_eval) == int(real.state.num_fun_eval)


def test_mixed_real_and_complex_pytree():
    fun_c, z_star = _problem(jnp.complex128)

    def fun(p):
        return fun_c(p["z"]) + jnp.sum((p["w"] - 2.0) ** 2)

    p0 = {"z": jnp.zeros(5, jnp.complex128), "w": jnp.zeros(3)}
    for solver in (jl.LBFGS(fun, tol=1e-9), jl.BFGS(fun, tol=1e-9),
                   jl.NonlinearCG(fun, tol=1e-9, maxiter=500),
                   jl.GradientDescent(fun, tol=1e-9, maxiter=3000)):
        out = solver.run(p0)
        assert int(out.state.status) == jl.Status.CONVERGED, type(solver).__name__
        assert out.params["z"].dtype == jnp.complex128 and out.params["w"].dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(out.params["z"]), z_star, atol=1e-9)
        np.testing.assert_allclose(np.asarray(out.params["w"]), 2.0, atol=1e-9)


def test_value_and_grad_with_complex_params():
    # A user-supplied gradient in jax.grad's convention (conj of the steepest ascent).
    fun, z_star = _problem(jnp.complex128)
    vg = jax.value_and_grad(fun)
    for solver in (jl.LBFGS(vg, value_and_grad=True, tol=1e-9),
                   jl.GradientDescent(vg, value_and_grad=True, tol=1e-9, maxiter=3000)):
        out = solver.run(jnp.zeros(5, jnp.complex128))
        np.testing.assert_allclose(np.asarray(out.params), z_star, atol=1e-9)


def test_complex_vmap_per_lane():
    fun_b = lambda z, b: jnp.sum(jnp.abs(z - b) ** 2)
    bs = jnp.asarray([[1 + 2j, -1j], [3.0 + 0j, 0.5 - 0.5j]])
    out = jax.vmap(jl.LBFGS(fun_b, tol=1e-9).run, in_axes=(None, 0))(jnp.zeros(2, jnp.complex128), bs)
    np.testing.assert_allclose(np.asarray(out.params), np.asarray(bs), atol=1e-9)
    assert np.all(np.asarray(out.state.status) == jl.Status.CONVERGED)



@pytest.mark.parametrize("name", sorted(_SOLVERS))
def test_complex_valued_objective_is_rejected_naming_fun(name):
    A = jnp.asarray([[1.0 + 1j, 2.0], [0.5j, 1.0]])
    fun = lambda z: jnp.sum((A @ z) ** 2)  # complex-valued: not an objective
    with pytest.raises(TypeError, match="`fun`"):
        _SOLVERS[name](fun, 1e-6).run(jnp.ones(2, jnp.complex128))
    # The same with a user-supplied gradient (no jax.grad to complain).
    vg = lambda z: (jnp.sum((A @ z) ** 2), z)
    solver = {"GradientDescent": jl.GradientDescent, "LBFGS": jl.LBFGS, "BFGS": jl.BFGS,
              "NonlinearCG": jl.NonlinearCG}[name](vg, value_and_grad=True)
    with pytest.raises(TypeError, match="`fun`"):
        solver.run(jnp.ones(2, jnp.complex128))


def test_lbfgsb_rejects_complex_params_naming_init_params():
    fun, _ = _problem(jnp.complex128)
    with pytest.raises(TypeError, match="`init_params`"):
        jl.LBFGSB(fun).run(jnp.zeros(5, jnp.complex128), bounds=None)


@pytest.mark.parametrize("name", ["ZoomLineSearch", "HagerZhangLineSearch", "BacktrackingLineSearch"])
def test_line_search_classes_on_complex_params(name):
    # Default direction -conj(grad); the accepted step meets the Wolfe conditions written
    # with the real slope Re <conj(grad), d>; state.grad keeps jax.grad's convention.
    fun, _ = _problem(jnp.complex128)
    z0 = jnp.asarray(np.linspace(-1, 1, 5) + 0.5j, jnp.complex128)
    g0 = jax.grad(fun)(z0)
    d = -jnp.conj(g0)
    slope0 = float(jnp.real(jnp.vdot(jnp.conj(g0), d)))
    ours = getattr(jl, name)(fun, maxiter=30).run(1.0, z0)
    t = float(ours.stepsize)
    z1 = z0 + t * d
    assert not bool(ours.state.failed) and t > 0
    np.testing.assert_allclose(np.asarray(ours.state.params), np.asarray(z1), atol=1e-12)
    np.testing.assert_allclose(np.asarray(ours.state.grad), np.asarray(jax.grad(fun)(z1)), atol=1e-9)
    c1, c2 = float(getattr(jl, name)(fun).c1), float(getattr(jl, name)(fun).c2)
    assert float(fun(z1)) <= float(fun(z0)) + c1 * t * slope0
    slope1 = float(jnp.real(jnp.vdot(jnp.conj(jax.grad(fun)(z1)), d)))
    assert abs(slope1) <= c2 * abs(slope0)
    ref = getattr(jaxopt, name)(fun, maxiter=30).run(1.0, z0)
    if name == "BacktrackingLineSearch":  # the same trial steps as jaxopt
        np.testing.assert_allclose(t, float(ref.stepsize), rtol=1e-12)
    # At least jaxopt's decrease, up to a factor (the Wolfe steps may differ).
    assert float(fun(z0)) - float(fun(z1)) >= 0.5 * (float(fun(z0)) - float(ref.state.value))
