"""Quadratic programs: jaxopt/SciPy parity, infeasibility, implicit derivatives vs finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest
import scipy.optimize

import jaxopt_lab as jl


def _qp(n=6, p=2, m=4, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    Q = jnp.asarray(M @ M.T + np.eye(n))
    c = jnp.asarray(rng.standard_normal(n))
    A, b = jnp.asarray(rng.standard_normal((p, n))), jnp.asarray(rng.standard_normal(p))
    G, h = jnp.asarray(rng.standard_normal((m, n))), jnp.asarray(rng.random(m) * 0.1)
    return Q, c, A, b, G, h


def test_equality_qp_matches_kkt_and_jaxopt_and_derivatives():
    Q, c, A, b, _, _ = _qp()
    out = jl.EqualityConstrainedQP(tol=1e-9).run(params_obj=(Q, c), params_eq=(A, b))
    K = jnp.block([[Q, A.T], [A, jnp.zeros((2, 2))]])
    z = jnp.linalg.solve(K, jnp.concatenate([-c, b]))
    np.testing.assert_allclose(out.params.primal, z[:6], atol=1e-10)
    np.testing.assert_allclose(out.params.dual_eq, z[6:], atol=1e-10)
    ref = jaxopt.EqualityConstrainedQP(tol=1e-9).run(params_obj=(Q, c), params_eq=(A, b))
    np.testing.assert_allclose(out.params.primal, ref.params.primal, atol=1e-9)
    assert int(out.state.status) == jl.Status.CONVERGED
    f = lambda b: jnp.sum(jl.EqualityConstrainedQP(tol=1e-10).run(
        params_obj=(Q, c), params_eq=(A, b)).params.primal ** 2)
    f_dense = lambda b: jnp.sum(jnp.linalg.solve(K, jnp.concatenate([-c, b]))[:6] ** 2)
    np.testing.assert_allclose(jax.grad(f)(b), jax.grad(f_dense)(b), rtol=1e-7)
    np.testing.assert_allclose(jax.jvp(f, (b,), (jnp.ones(2),))[1],
                               jax.jvp(f_dense, (b,), (jnp.ones(2),))[1], rtol=1e-7)


def test_equality_qp_infeasible_and_bad_shapes():
    Q, c, A, _, _, _ = _qp()
    A2, b2 = jnp.stack([A[0], A[0]]), jnp.array([1.0, 2.0])  # x.a = 1 and x.a = 2
    out = jl.EqualityConstrainedQP().run(params_obj=(Q, c), params_eq=(A2, b2))
    assert int(out.state.status) == jl.Status.INFEASIBLE
    with pytest.raises(ValueError, match="params_eq"):
        jl.EqualityConstrainedQP().run(params_obj=(Q, c), params_eq=(A[:, :3], b2))
    with pytest.raises(ValueError, match="params_obj"):
        jl.EqualityConstrainedQP().run(params_obj=(Q[:3], c), params_eq=(A, b2))


def _svm_dual(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = np.sign(X @ rng.standard_normal(4) + 0.3 * rng.standard_normal(n))
    K = (X * y[:, None]) @ (X * y[:, None]).T + 1e-3 * np.eye(n)
    return jnp.asarray(K), -jnp.ones(n), jnp.zeros(n), jnp.full(n, 1.0)


def test_box_cdqp_svm_dual_matches_jaxopt_and_scipy():
    Q, c, lo, hi = _svm_dual()
    x0 = jnp.zeros(Q.shape[0])
    out = jl.BoxCDQP(tol=1e-9, maxiter=2000).run(x0, params_obj=(Q, c), params_ineq=(lo, hi))
    ref = jaxopt.BoxCDQP(tol=1e-9, maxiter=2000).run(x0, params_obj=(Q, c), params_ineq=(lo, hi))
    sp = scipy.optimize.minimize(lambda x: 0.5 * x @ np.asarray(Q) @ x + np.asarray(c) @ x, np.zeros(30),
                                 jac=lambda x: np.asarray(Q) @ x + np.asarray(c), method="L-BFGS-B",
                                 bounds=[(0, 1)] * 30, options=dict(ftol=1e-15, gtol=1e-12, maxiter=5000))
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, ref.params, atol=1e-7)
    np.testing.assert_allclose(out.params, sp.x, atol=1e-4)
    obj = lambda x: 0.5 * x @ Q @ x + c @ x
    assert float(obj(out.params)) <= float(obj(jnp.asarray(sp.x))) + 1e-10


def test_box_cdqp_implicit_derivatives_vs_finite_differences():
    Q, c, A, b, _, _ = _qp()
    lo, hi = -0.2 * jnp.ones(6), 0.3 * jnp.ones(6)
    solver = jl.BoxCDQP(tol=1e-13, maxiter=3000)
    f = lambda c, hi: jnp.sum(solver.run(jnp.zeros(6), params_obj=(Q, c), params_ineq=(lo, hi)).params ** 2)
    eps = 1e-6
    v = jnp.asarray(np.random.default_rng(2).standard_normal(6))
    fd_c = (f(c + eps * v, hi) - f(c - eps * v, hi)) / (2 * eps)
    fd_h = (f(c, hi + eps * v) - f(c, hi - eps * v)) / (2 * eps)
    gc, gh = jax.grad(f, argnums=(0, 1))(c, hi)
    np.testing.assert_allclose(jnp.vdot(gc, v), fd_c, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jnp.vdot(gh, v), fd_h, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jax.jvp(lambda c: f(c, hi), (c,), (v,))[1], fd_c, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="lower > upper"):
        solver.run(jnp.zeros(6), params_obj=(Q, c), params_ineq=(hi, lo))


def test_osqp_small_problem_matches_jaxopt_and_scipy():
    Q, c, A, b, G, h = _qp()
    out = jl.OSQP(tol=1e-9, maxiter=10000).run(params_obj=(Q, c), params_eq=(A, b), params_ineq=(G, h))
    ref = jaxopt.OSQP(tol=1e-9, maxiter=10000).run(params_obj=(Q, c), params_eq=(A, b),
                                                     params_ineq=(G, h))
    cons = [dict(type="eq", fun=lambda x: np.asarray(A) @ x - np.asarray(b)),
            dict(type="ineq", fun=lambda x: np.asarray(h) - np.asarray(G) @ x)]
    sp = scipy.optimize.minimize(lambda x: 0.5 * x @ np.asarray(Q) @ x + np.asarray(c) @ x, np.zeros(6),
                                 constraints=cons, method="SLSQP", options=dict(ftol=1e-14, maxiter=500))
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, ref.params.primal, atol=1e-7)
    np.testing.assert_allclose(out.params.primal, sp.x, atol=1e-6)
    np.testing.assert_allclose(out.params.dual_ineq, ref.params.dual_ineq, atol=1e-6)
    assert bool(jnp.all(out.params.dual_ineq >= -1e-9))


def test_osqp_implicit_derivatives_vs_finite_differences():
    Q, c, A, b, G, h = _qp()
    solver = jl.OSQP(tol=1e-11, maxiter=20000)
    f = lambda b, h: jnp.sum(solver.run(params_obj=(Q, c), params_eq=(A, b),
                                        params_ineq=(G, h)).params.primal ** 2)
    eps = 1e-5
    gb, gh = jax.grad(f, argnums=(0, 1))(b, h)
    for i in range(h.shape[0]):
        e = jnp.zeros_like(h).at[i].set(eps)
        np.testing.assert_allclose(gh[i], (f(b, h + e) - f(b, h - e)) / (2 * eps), atol=1e-6)
    v = jnp.asarray([1.0, -0.5])
    fd = (f(b + eps * v, h) - f(b - eps * v, h)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(gb, v), fd, rtol=1e-5)
    np.testing.assert_allclose(jax.jvp(lambda b: f(b, h), (b,), (v,))[1], fd, rtol=1e-5)


def test_osqp_detects_primal_infeasibility_per_instance_under_vmap():
    Q, c = jnp.eye(2), jnp.ones(2)
    A, G = jnp.array([[1.0, 1.0]]), jnp.eye(2)
    solver = jl.OSQP(tol=1e-6)
    # x1 + x2 = b with x <= 0: feasible for b = -0.5, infeasible for b = 0.5.
    run = lambda b: solver.run(params_obj=(Q, c), params_eq=(A, b[None]), params_ineq=(G, jnp.zeros(2)))
    out = jax.vmap(run)(jnp.array([-0.5, 0.5]))
    assert int(out.state.status[0]) == jl.Status.CONVERGED
    assert int(out.state.status[1]) == jl.Status.INFEASIBLE
    assert bool(out.state.primal_infeasible[1])
    np.testing.assert_allclose(out.params.primal[0], [-0.25, -0.25], atol=1e-5)


def test_box_osqp_dual_infeasible_and_bad_box():
    # min -x1 with 0 <= x2 <= 1 only: unbounded below (dual infeasible).
    Q, c = jnp.zeros((2, 2)), jnp.array([-1.0, 0.0])
    A = jnp.array([[0.0, 1.0]])
    out = jl.BoxOSQP(tol=1e-6).run(params_obj=(Q, c), params_eq=A,
                                   params_ineq=(jnp.zeros(1), jnp.ones(1)))
    assert int(out.state.status) == jl.Status.INFEASIBLE
    assert bool(out.state.dual_infeasible)
    with pytest.raises(ValueError, match="l > u"):
        jl.BoxOSQP().run(params_obj=(Q, c), params_eq=A, params_ineq=(jnp.ones(1), jnp.zeros(1)))


def test_box_osqp_cholesky_and_cg_agree_with_jaxopt():
    Q, c, _, _, G, h = _qp()
    l, u = -jnp.ones(4), h
    ref = jaxopt.BoxOSQP(tol=1e-9, maxiter=10000).run(params_obj=(Q, c), params_eq=G, params_ineq=(l, u))
    for eq in ("cg", "cholesky"):
        out = jl.BoxOSQP(tol=1e-9, maxiter=10000, eq_qp_solve=eq).run(params_obj=(Q, c), params_eq=G,
                                                                       params_ineq=(l, u))
        np.testing.assert_allclose(out.params.primal[0], ref.params.primal[0], atol=1e-7)
        np.testing.assert_allclose(out.params.dual_eq, ref.params.dual_eq, atol=1e-6)


def test_box_osqp_concrete_bounds_closed_over_by_an_outer_jit():
    # Regression: the empty-box check ran bool(jnp.any(l > u)); an outer jit stages jnp ops
    # even on closed-over concrete bounds, so it raised TracerBoolConversionError.
    Q, c, _, _, G, h = _qp()
    l, u = -jnp.ones(4), h
    solver = jl.BoxOSQP(tol=1e-9, maxiter=10000)
    solve = lambda: solver.run(params_obj=(Q, c), params_eq=G, params_ineq=(l, u))
    eager, jitted = solve(), jax.jit(solve)()
    assert int(jitted.state.status) == int(eager.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(jitted.params.primal[0], eager.params.primal[0], atol=1e-10)
    np.testing.assert_allclose(jitted.params.dual_eq, eager.params.dual_eq, atol=1e-10)
    # A concrete empty box still raises at trace time; a traced one is INFEASIBLE at init.
    below = u - 1.0
    with pytest.raises(ValueError, match="l > u"):
        jax.jit(lambda: solver.run(params_obj=(Q, c), params_eq=G, params_ineq=(u, below)))()
    bad = jax.jit(lambda u: solver.run(params_obj=(Q, c), params_eq=G, params_ineq=(u, below)))(u)
    assert int(bad.state.status) == jl.Status.INFEASIBLE
    assert int(bad.state.iter_num) == 0


@pytest.mark.parametrize("blocks", ["ineq", "eq", "both"])
def test_osqp_float32_data_under_x64_keeps_float32(blocks):
    # Regression: with one block absent, its placeholder bound was jnp.zeros((0,)) (float64
    # under x64), which promoted l, u, z and y and broke linear_transpose (cotangent dtype).
    Q, c, A, b, G, h = _qp()
    eq, ineq = (A, b) if blocks != "ineq" else None, (G, h) if blocks != "eq" else None
    f32 = lambda t: None if t is None else tuple(v.astype(jnp.float32) for v in t)
    solver = jl.OSQP(tol=1e-5, maxiter=20000)

    def x_star(c, Q, eq, ineq):
        return solver.run(params_obj=(Q, c), params_eq=eq, params_ineq=ineq).params.primal

    out = solver.run(params_obj=f32((Q, c)), params_eq=f32(eq), params_ineq=f32(ineq))
    ref = solver.run(params_obj=(Q, c), params_eq=eq, params_ineq=ineq)
    assert int(out.state.status) == int(ref.state.status) == jl.Status.CONVERGED
    assert out.params.primal.dtype == jnp.float32
    np.testing.assert_allclose(out.params.primal, ref.params.primal, atol=1e-4)
    jac32 = jax.jacrev(x_star)(c.astype(jnp.float32), *f32((Q,)), f32(eq), f32(ineq))
    jac64 = jax.jacrev(x_star)(c, Q, eq, ineq)
    assert jac32.dtype == jnp.float32
    np.testing.assert_allclose(jac32, jac64, atol=1e-3)


def test_box_osqp_float32_data_with_float64_bounds_keeps_float32():
    # Wider bounds must not promote z and y past the data's dtype.
    Q, c, _, _, G, h = _qp()
    l, u = -jnp.ones(4), h
    f32 = lambda *vs: tuple(v.astype(jnp.float32) for v in vs)
    solver = jl.BoxOSQP(tol=1e-5, maxiter=20000)
    out = solver.run(params_obj=f32(Q, c), params_eq=G.astype(jnp.float32), params_ineq=(l, u))
    ref = solver.run(params_obj=(Q, c), params_eq=G, params_ineq=(l, u))
    assert int(out.state.status) == jl.Status.CONVERGED
    assert out.params.primal[0].dtype == out.params.dual_eq.dtype == jnp.float32
    np.testing.assert_allclose(out.params.primal[0], ref.params.primal[0], atol=1e-4)
    g = jax.grad(lambda u: jnp.sum(solver.run(params_obj=f32(Q, c), params_eq=G.astype(jnp.float32),
                                              params_ineq=(l, u)).params.primal[0] ** 2))(u)
    g_ref = jax.grad(lambda u: jnp.sum(solver.run(params_obj=(Q, c), params_eq=G,
                                                  params_ineq=(l, u)).params.primal[0] ** 2))(u)
    assert g.dtype == jnp.float64
    np.testing.assert_allclose(g, g_ref, atol=1e-3)


@pytest.mark.parametrize("make,name", [
    (lambda: jl.EqualityConstrainedQP(3), "matvec_Q"),
    (lambda: jl.EqualityConstrainedQP(matvec_A="A"), "matvec_A"),
    (lambda: jl.BoxOSQP(matvec_Q=[1, 2]), "matvec_Q"),
    (lambda: jl.OSQP(matvec_G=3), "matvec_G"),
])
def test_non_callable_matvec_raises_naming_it(make, name):
    with pytest.raises(TypeError, match=name):
        make()
