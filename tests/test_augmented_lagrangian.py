"""AugmentedLagrangian: closed forms, active sets, per-lane status, infeasibility, derivatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab import KKTSolution, Status


# ------------------------------------------------------------------ problems
def _eq_qp(n=5, p=2, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    Q = M @ M.T + np.eye(n)
    A = rng.standard_normal((p, n))
    return Q, rng.standard_normal(n), A, rng.standard_normal(p)


def _qp_fun(x, Q, c, A, b):
    return 0.5 * x @ Q @ x + c @ x


def _qp_eq(x, Q, c, A, b):
    return A @ x - b


def _kkt_reference(Q, c, A, b):
    n, p = len(c), len(b)
    K = np.block([[Q, A.T], [A, np.zeros((p, p))]])
    sol = np.linalg.solve(K, np.concatenate([-c, b]))
    return sol[:n], sol[n:], np.linalg.inv(K)


# min |x - t|^2  s.t.  x1 + x2 <= r  (active for t = (2, 1), r = 1),  -x1 - 5 <= 0 (inactive).
def _proj_fun(x, t, r):
    return jnp.sum((x - t) ** 2)


def _proj_ineq(x, t, r):
    return jnp.stack([x[0] + x[1] - r, -x[0] - 5.0])


def _proj_reference(t, r):
    # Projection onto the half-plane: x = t - s (1, 1), s = (t1 + t2 - r) / 2, multiplier 2 s.
    s = (t[0] + t[1] - r) / 2
    return np.asarray(t) - s, np.array([2 * s, 0.0])


# ------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("method", ["phr", "newton_kkt"])
def test_equality_qp_closed_form_primal_and_dual(method):
    Q, c, A, b = _eq_qp()
    solver = jl.AugmentedLagrangian(_qp_fun, _qp_eq, method=method, tol=1e-9)
    out = solver.run(jnp.zeros(5), Q, c, A, b)
    x_ref, y_ref, _ = _kkt_reference(Q, c, A, b)
    assert isinstance(out.params, KKTSolution) and out.params.dual_ineq is None
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, x_ref, atol=1e-8)
    np.testing.assert_allclose(out.params.dual_eq, y_ref, atol=1e-7)
    assert float(out.state.error) <= 1e-9


def test_newton_kkt_with_small_sketches_and_nonlinear_constraint():
    # min x1 + x2 on the circle x1^2 + x2^2 = 2: x* = (-1, -1), y* = 1/2.
    solver = jl.AugmentedLagrangian(lambda x: x[0] + x[1], lambda x: jnp.atleast_1d(x @ x - 2.0),
                                    method="newton_kkt", sketch_size=1, sketch_maxiter=2000,
                                    tol=1e-9, maxiter=200)
    out = solver.run(jnp.array([-1.5, -0.5]))
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, [-1.0, -1.0], atol=1e-7)
    np.testing.assert_allclose(out.params.dual_eq, [0.5], atol=1e-7)


def test_inequality_with_known_active_set():
    t, r = jnp.array([2.0, 1.0]), 1.0
    solver = jl.AugmentedLagrangian(_proj_fun, ineq_fun=_proj_ineq, tol=1e-9)
    out = solver.run(jnp.zeros(2), t, r)
    x_ref, z_ref = _proj_reference(np.asarray(t), r)
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, x_ref, atol=1e-8)
    np.testing.assert_allclose(out.params.dual_ineq, z_ref, atol=1e-7)
    assert float(out.params.dual_ineq[1]) == 0.0  # inactive: multiplier exactly zero
    # The reported KKT residual is the norm of optimality_fun.
    res = solver.optimality_fun(out.params, t, r)
    assert float(out.state.error) == pytest.approx(float(jl.tree_util.tree_l2_norm(res)), rel=1e-6)


@pytest.mark.parametrize("method", ["phr", "newton_kkt"])
def test_inequality_with_known_active_set_both_methods(method):
    # Newton-KKT used to reject inequalities; now a semismooth Newton step on min(z, -g).
    t, r = jnp.array([2.0, 1.0]), 1.0
    out = jl.AugmentedLagrangian(_proj_fun, ineq_fun=_proj_ineq, method=method, tol=1e-9).run(
        jnp.zeros(2), t, r)
    x_ref, z_ref = _proj_reference(np.asarray(t), r)
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, x_ref, atol=1e-8)
    np.testing.assert_allclose(out.params.dual_ineq, z_ref, atol=1e-7)


def _hs_against_slsqp(number):
    scipy_opt = pytest.importorskip("scipy.optimize")
    from jaxopt_lab.problems import hock_schittkowski as hs

    p = next(q for q in hs.PROBLEMS if q.number == number)
    g = hs.ineq_with_bounds(p)
    cons = [{"type": "ineq", "fun": lambda x: -np.asarray(g(x))}]
    if p.eq is not None:
        cons.append({"type": "eq", "fun": lambda x: np.asarray(p.eq(x))})
    ref = scipy_opt.minimize(lambda x: float(p.fun(x)), p.x0, jac=lambda x: np.asarray(jax.grad(p.fun)(x)),
                             method="SLSQP", constraints=cons, options={"ftol": 1e-14, "maxiter": 500})
    # (SLSQP may end with "positive directional derivative" at this ftol, at the optimum.)
    assert abs(ref.fun - p.f_star) <= 1e-6 * max(1.0, abs(p.f_star)) and hs.violation(p, ref.x) <= 1e-8
    return p, g, ref


@pytest.mark.slow
@pytest.mark.parametrize("number", [43, 71])
def test_newton_kkt_with_inequalities_matches_slsqp_on_hock_schittkowski(number):
    # HS43: three nonlinear inequalities; HS71: an equality, a nonlinear inequality and bounds.
    p, g, ref = _hs_against_slsqp(number)
    solver = jl.AugmentedLagrangian(p.fun, p.eq, g, method="newton_kkt", tol=1e-8, maxiter=200)
    out = solver.run(jnp.asarray(p.x0))
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, ref.x, atol=1e-5)
    assert float(p.fun(out.params.primal)) == pytest.approx(p.f_star, abs=1e-5 * max(1, abs(p.f_star)))
    z, gx = np.asarray(out.params.dual_ineq), np.asarray(g(out.params.primal))
    assert np.all(z >= -1e-10) and np.all(gx <= 1e-8) and np.max(np.abs(z * gx)) <= 1e-8
    # The same point and multipliers as the PHR method.
    phr = jl.AugmentedLagrangian(p.fun, p.eq, g, tol=1e-8).run(jnp.asarray(p.x0))
    np.testing.assert_allclose(out.params.primal, phr.params.primal, atol=1e-6)
    np.testing.assert_allclose(out.params.dual_ineq, phr.params.dual_ineq, atol=1e-5)


def test_mixed_constraints_match_scipy_slsqp():
    scipy_opt = pytest.importorskip("scipy.optimize")
    # HS71: x1 x4 (x1 + x2 + x3) + x3, x1 x2 x3 x4 >= 25, |x|^2 = 40, 1 <= x <= 5.
    f = lambda x: x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]
    h = lambda x: jnp.atleast_1d(x @ x - 40.0)
    g = lambda x: jnp.concatenate([jnp.atleast_1d(25.0 - jnp.prod(x)), 1.0 - x, x - 5.0])
    x0 = jnp.array([1.0, 5.0, 5.0, 1.0])
    out = jl.AugmentedLagrangian(f, h, g, tol=1e-8).run(x0)
    ref = scipy_opt.minimize(lambda x: float(f(x)), np.asarray(x0), method="SLSQP",
                             constraints=[{"type": "eq", "fun": lambda x: float(h(x)[0])},
                                          {"type": "ineq", "fun": lambda x: -np.asarray(g(x))}],
                             options={"ftol": 1e-14, "maxiter": 500})
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, ref.x, atol=1e-5)
    assert float(f(out.params.primal)) == pytest.approx(17.0140173, abs=1e-6)


# ------------------------------------------------------------------ status codes
def _box_ineq(x, lo, hi):
    return jnp.stack([x[0] - hi, lo - x[0]])  # lo <= x <= hi


def test_infeasible_problem_reports_infeasible_never_converged():
    # x <= -1 and x >= 1.
    solver = jl.AugmentedLagrangian(lambda x, lo, hi: jnp.sum(x ** 2), ineq_fun=_box_ineq, maxiter=50)
    out = solver.run(jnp.zeros(1), 1.0, -1.0)
    assert int(out.state.status) == Status.INFEASIBLE
    assert float(out.state.penalty) == solver.max_penalty
    assert float(out.state.primal_residual) >= 1.0 - 1e-6


def test_vmap_over_traced_penalty_and_rhs_gives_per_lane_status():
    def solve(penalty, lo, hi):
        solver = jl.AugmentedLagrangian(lambda x, lo, hi: jnp.sum((x - 3.0) ** 2), ineq_fun=_box_ineq,
                                        penalty=penalty, tol=1e-8, maxiter=60)
        return solver.run(jnp.zeros(1), lo, hi)

    penalties = jnp.array([1.0, 10.0, 100.0])
    los, his = jnp.array([-1.0, 1.0, 0.0]), jnp.array([1.0, -1.0, 2.0])  # middle lane infeasible
    batched = jax.jit(jax.vmap(solve))(penalties, los, his)
    statuses = [int(s) for s in batched.state.status]
    assert statuses == [Status.CONVERGED, Status.INFEASIBLE, Status.CONVERGED]
    for i in range(3):
        single = solve(float(penalties[i]), float(los[i]), float(his[i]))
        assert int(single.state.status) == statuses[i]
        np.testing.assert_allclose(batched.params.primal[i], single.params.primal, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batched.params.primal[0], [1.0], atol=1e-8)
    np.testing.assert_allclose(batched.params.primal[2], [2.0], atol=1e-8)


def test_float32_with_default_tol():
    t = jnp.array([2.0, 1.0], jnp.float32)
    out = jl.AugmentedLagrangian(_proj_fun, ineq_fun=_proj_ineq).run(jnp.zeros(2, jnp.float32), t, 1.0)
    assert out.params.primal.dtype == jnp.float32 and out.params.dual_ineq.dtype == jnp.float32
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, [1.0, 0.0], atol=1e-5)
    Q, c, A, b = (jnp.asarray(v, jnp.float32) for v in _eq_qp())
    out = jl.AugmentedLagrangian(_qp_fun, _qp_eq).run(jnp.zeros(5, jnp.float32), Q, c, A, b)
    assert int(out.state.status) == Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, _kkt_reference(*map(np.asarray, (Q, c, A, b)))[0],
                               atol=1e-4)


def test_nonfinite_objective_reports_nonfinite():
    out = jl.AugmentedLagrangian(lambda x: jnp.sum(jnp.log(x)), ineq_fun=lambda x: x - 1.0).run(
        -jnp.ones(2))
    assert int(out.state.status) == Status.NONFINITE


# ------------------------------------------------------------------ warm starts, inner solvers
def test_dual_warm_start_and_other_inner_solvers():
    t, r = jnp.array([2.0, 1.0]), 1.0
    x_ref, z_ref = _proj_reference(np.asarray(t), r)
    # Started at the KKT point (primal and duals): converged before any iteration.
    warm_init = KKTSolution(jnp.asarray(x_ref), None, jnp.asarray(z_ref))
    warm = jl.AugmentedLagrangian(_proj_fun, ineq_fun=_proj_ineq, tol=1e-9).run(warm_init, t, r)
    assert int(warm.state.status) == Status.CONVERGED and int(warm.state.iter_num) == 0
    cold = jl.AugmentedLagrangian(_proj_fun, ineq_fun=_proj_ineq, tol=1e-9).run(jnp.asarray(x_ref), t, r)
    assert int(cold.state.iter_num) > 0  # the primal alone is not a KKT point (zero multipliers)
    for inner in (jl.BFGS(_proj_fun, maxiter=200), lambda al: jl.NonlinearCG(al, maxiter=500, tol=1e-10)):
        out = jl.AugmentedLagrangian(_proj_fun, ineq_fun=_proj_ineq, inner_solver=inner, tol=1e-8).run(
            jnp.zeros(2), t, r)
        assert int(out.state.status) == Status.CONVERGED
        np.testing.assert_allclose(out.params.primal, x_ref, atol=1e-7)


# ------------------------------------------------------------------ implicit derivatives
def test_derivative_of_kkt_solution_wrt_linear_term_closed_form():
    Q, c, A, b = _eq_qp()
    _, _, Kinv = _kkt_reference(Q, c, A, b)
    solver = jl.AugmentedLagrangian(_qp_fun, _qp_eq, tol=1e-10)
    sol = lambda c, b: solver.run(jnp.zeros(5), Q, c, A, b).params
    # d(x, y)/dc = -K^{-1}[:, :n], d(x, y)/db = K^{-1}[:, n:].
    jac_c = jax.jacrev(lambda c: sol(c, b))(jnp.asarray(c))
    np.testing.assert_allclose(jac_c.primal, -Kinv[:5, :5], atol=1e-7)
    np.testing.assert_allclose(jac_c.dual_eq, -Kinv[5:, :5], atol=1e-7)
    jac_b = jax.jacfwd(lambda b: sol(c, b))(jnp.asarray(b))
    np.testing.assert_allclose(jac_b.primal, Kinv[:5, 5:], atol=1e-7)
    np.testing.assert_allclose(jac_b.dual_eq, Kinv[5:, 5:], atol=1e-7)


def test_forward_and_reverse_derivatives_match_finite_differences_with_active_inequality():
    solver = jl.AugmentedLagrangian(_proj_fun, ineq_fun=_proj_ineq, tol=1e-11)

    @jax.jit
    def outer(theta):  # a scalar of primal and dual, through the active constraint
        t, r = theta[:2], theta[2]
        p = solver.run(jnp.zeros(2), t, r).params
        return jnp.sum(jnp.sin(p.primal)) + 0.3 * p.dual_ineq[0] ** 2

    theta = jnp.array([2.0, 1.0, 1.0])
    eps = 1e-5
    fd = np.array([(outer(theta + eps * e) - outer(theta - eps * e)) / (2 * eps) for e in jnp.eye(3)])
    np.testing.assert_allclose(jax.grad(outer)(theta), fd, atol=1e-6)
    v = jnp.array([0.3, -0.2, 0.5])
    _, jvp = jax.jvp(outer, (theta,), (v,))
    np.testing.assert_allclose(float(jvp), fd @ np.asarray(v), atol=1e-6)
    # Closed form: x = t - s (1, 1), z = 2 s, s = (t1 + t2 - r) / 2.
    x_ref, z_ref = _proj_reference(np.asarray(theta[:2]), float(theta[2]))
    ds = np.array([0.5, 0.5, -0.5])
    exact = np.cos(x_ref) @ (np.eye(3)[:2] - np.outer(np.ones(2), ds)) + 0.6 * z_ref[0] * 2 * ds
    np.testing.assert_allclose(jax.grad(outer)(theta), exact, atol=1e-6)


# ------------------------------------------------------------------ bad input
def test_bad_input_is_named():
    f = lambda x: jnp.sum(x ** 2)
    with pytest.raises(TypeError, match="eq_fun"):
        jl.AugmentedLagrangian(f, eq_fun=3.0)
    with pytest.raises(TypeError, match="ineq_fun"):
        jl.AugmentedLagrangian(f, ineq_fun="x <= 1")
    with pytest.raises(ValueError, match="penalty"):
        jl.AugmentedLagrangian(f, lambda x: x, penalty=0.0)
    with pytest.raises(ValueError, match="penalty"):
        jl.AugmentedLagrangian(f, lambda x: x, penalty=-1.0)
    with pytest.raises(ValueError, match="method"):
        jl.AugmentedLagrangian(f, method="sqp")
    with pytest.raises(ValueError, match="eq_fun.*1-D"):
        jl.AugmentedLagrangian(f, eq_fun=lambda x: jnp.sum(x)).run(jnp.zeros(2))
    with pytest.raises(ValueError, match="ineq_fun.*1-D"):
        jl.AugmentedLagrangian(f, ineq_fun=lambda x: jnp.outer(x, x)).run(jnp.zeros(2))
    with pytest.raises(ValueError, match="dual_eq"):
        jl.AugmentedLagrangian(f, eq_fun=lambda x: x).run(KKTSolution(jnp.zeros(2), jnp.zeros(3)))


def _hs47():
    from jaxopt_lab.problems import hock_schittkowski as hs

    return hs, next(q for q in hs.PROBLEMS if q.number == 47)


def test_hs47_published_point_is_a_kkt_point_but_not_a_local_minimum():
    # HS47's published solution (1, 1, 1, 1, 1), f* = 0, has grad f = 0 (a KKT point with zero
    # multipliers), but d = (-1, -1, 1, 3, 1) is tangent to the constraints there with
    # x0 - x1 = 0 and x1 - x2 = -2t along 1 + t d: the cubic term (x1 - x2)^3 makes f = -8 t^3 + O(t^4)
    # on the constraint curve, so feasible points arbitrarily close have f < 0.
    _, p = _hs47()
    one = jnp.ones(5)
    jac = jax.jacfwd(p.eq)
    np.testing.assert_allclose(jax.grad(p.fun)(one), 0.0, atol=1e-15)
    np.testing.assert_allclose(p.eq(one), 0.0, atol=1e-15)
    d = jnp.array([-1.0, -1.0, 1.0, 3.0, 1.0])
    np.testing.assert_allclose(jac(one) @ d, 0.0, atol=1e-15)
    for t in (1e-2, 1e-3):
        x = one + t * d
        for _ in range(20):  # Gauss-Newton back onto eq(x) = 0 (minimum-norm corrections)
            J = jac(x)
            x = x - J.T @ jnp.linalg.solve(J @ J.T, p.eq(x))
        assert float(jnp.max(jnp.abs(p.eq(x)))) <= 1e-14
        assert float(jnp.max(jnp.abs(x - one))) <= 4 * t
        f = float(p.fun(x))
        assert f < 0.0
        assert abs(f / (-8 * t**3) - 1) < 10 * t


@pytest.mark.slow
def test_hs47_converges_to_a_kkt_point_and_to_the_lower_local_minimum_from_its_descent_side():
    # From the published start the PHR iterates reach the published KKT point (1, 1, 1, 1, 1) (not a
    # local minimum, see the test above) and rounding decides whether the last inner solves roll off
    # it: XLA's threading flags or a 1e-12 relative change of x0 flip the result between that point
    # and the lower local minimum f = -0.0267141827. Either is a KKT point; CONVERGED on anything
    # else would be false. From the descent side of the published point, 1 + 0.1 (-1, -1, 1, 3, 1),
    # the solve ends at the lower minimum, a strict constrained local minimum (second-order
    # sufficient conditions; SLSQP started there stays).
    scipy_opt = pytest.importorskip("scipy.optimize")
    hs, p = _hs47()
    f_low = -0.0267141827
    out = jl.AugmentedLagrangian(p.fun, p.eq, tol=1e-8, maxiter=200).run(jnp.asarray(p.x0))
    x = np.asarray(out.params.primal)
    assert int(out.state.status) == Status.CONVERGED and hs.violation(p, x) <= 1e-8
    f = float(p.fun(x))
    assert abs(f) <= 1e-10 and np.max(np.abs(x - 1)) <= 1e-3 or abs(f - f_low) <= 1e-8

    start = jnp.ones(5) + 0.1 * jnp.array([-1.0, -1.0, 1.0, 3.0, 1.0])
    out = jl.AugmentedLagrangian(p.fun, p.eq, tol=1e-8, maxiter=200).run(start)
    x = np.asarray(out.params.primal)
    assert int(out.state.status) == Status.CONVERGED and hs.violation(p, x) <= 1e-8
    assert float(p.fun(x)) == pytest.approx(f_low, abs=1e-8)
    eq = [{"type": "eq", "fun": lambda v: np.asarray(p.eq(v))}]
    polish = scipy_opt.minimize(lambda v: float(p.fun(v)), x, jac=lambda v: np.asarray(jax.grad(p.fun)(v)),
                                method="SLSQP", constraints=eq, options={"ftol": 1e-15, "maxiter": 500})
    np.testing.assert_allclose(polish.x, x, atol=1e-6)
    assert polish.fun == pytest.approx(float(p.fun(x)), abs=1e-8)
    # Second order: the Lagrangian's Hessian on the constraints' null space is positive definite.
    y = out.params.dual_eq
    lagrangian = lambda v: p.fun(v) + jnp.dot(y, p.eq(v))
    np.testing.assert_allclose(jax.grad(lagrangian)(out.params.primal), 0.0, atol=1e-7)
    null = np.linalg.svd(np.asarray(jax.jacfwd(p.eq)(out.params.primal)))[2][3:].T
    reduced = null.T @ np.asarray(jax.hessian(lagrangian)(out.params.primal)) @ null
    assert np.linalg.eigvalsh(reduced).min() > 0.1  # 0.229 and 2.50
