"""CvxpyQP: solutions vs EqualityConstrainedQP / OSQP / jaxopt, KKT state, implicit derivatives vs FD."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from tests.test_parity_qp import _qp  # a strictly convex QP, inequalities partly active

cvxpy = pytest.importorskip("cvxpy")  # in the `test` extra; the skip covers a bare install only


@pytest.mark.parametrize("backend", ["OSQP", "CLARABEL"])
def test_inequality_qp_matches_osqp_and_jaxopt(backend):
    jaxopt = pytest.importorskip("jaxopt")
    Q, c, A, b, G, h = _qp()
    out = jl.CvxpyQP(solver=backend).run(None, (Q, c), (A, b), (G, h))
    ref = jl.OSQP(tol=1e-10, maxiter=20000).run(params_obj=(Q, c), params_eq=(A, b), params_ineq=(G, h))
    assert int(ref.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params.primal, ref.params.primal, atol=1e-8)
    np.testing.assert_allclose(out.params.dual_eq, ref.params.dual_eq, atol=1e-7)
    np.testing.assert_allclose(out.params.dual_ineq, ref.params.dual_ineq, atol=1e-7)
    active = G @ out.params.primal - h > -1e-6
    assert 0 < int(jnp.sum(active)) < G.shape[0], "the test QP should have active and inactive rows"
    jx = jaxopt.CvxpyQP(solver=backend).run(None, (Q, c), (A, b), (G, h))
    np.testing.assert_allclose(out.params.primal, jx.params.primal, atol=1e-10)
    np.testing.assert_allclose(out.params.dual_ineq, jx.params.dual_ineq, atol=1e-10)
    # The state: CONVERGED, with the KKT residual as error.
    assert int(out.state.status) == jl.Status.CONVERGED
    assert float(out.state.error) < 1e-6
    assert out.params.primal.dtype == jnp.float64


def test_equality_qp_matches_equality_constrained_qp_and_kkt():
    Q, c, A, b, _, _ = _qp()
    out = jl.CvxpyQP(solver="CLARABEL").run(None, (Q, c), (A, b))
    ref = jl.EqualityConstrainedQP(tol=1e-12).run(params_obj=(Q, c), params_eq=(A, b))
    K = jnp.block([[Q, A.T], [A, jnp.zeros((2, 2))]])
    z = jnp.linalg.solve(K, jnp.concatenate([-c, b]))
    np.testing.assert_allclose(out.params.primal, z[:6], atol=1e-7)
    np.testing.assert_allclose(out.params.primal, ref.params.primal, atol=1e-7)
    np.testing.assert_allclose(out.params.dual_eq, ref.params.dual_eq, atol=1e-6)
    assert out.params.dual_ineq is None


def _central_differences(f, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    out = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = eps
        out[i] = (f(jnp.asarray(x + e)) - f(jnp.asarray(x - e))) / (2 * eps)
    return out


def test_implicit_derivatives_match_central_differences_forward_and_reverse():
    Q, c, A, b, G, h = _qp()
    solver = jl.CvxpyQP(solver="CLARABEL")
    w = jnp.asarray(np.random.default_rng(1).standard_normal(6))

    def loss(c_, b_, h_, Q_):
        sol = solver.run(None, (Q_, c_), (A, b_), (G, h_)).params
        return jnp.vdot(w, sol.primal) + 0.1 * jnp.sum(sol.dual_ineq ** 2)

    grads = jax.grad(loss, argnums=(0, 1, 2, 3))(c, b, h, Q)
    fds = [
        _central_differences(lambda c_: loss(c_, b, h, Q), c),
        _central_differences(lambda b_: loss(c, b_, h, Q), b),
        _central_differences(lambda h_: loss(c, b, h_, Q), h),
    ]
    for g, fd in zip(grads[:3], fds, strict=True):
        np.testing.assert_allclose(g, fd, atol=2e-5)
    # Q: a symmetric perturbation direction (the solver reads Q as a quadratic form).
    V = jnp.asarray(np.random.default_rng(2).standard_normal((6, 6)))
    V = 0.5 * (V + V.T)
    eps = 1e-6
    fd_q = (loss(c, b, h, Q + eps * V) - loss(c, b, h, Q - eps * V)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(grads[3], V), fd_q, atol=2e-5)
    # Forward mode agrees with the same differences.
    v = jnp.asarray(np.random.default_rng(3).standard_normal(4))
    jvp = jax.jvp(lambda h_: loss(c, b, h_, Q), (h,), (v,))[1]
    np.testing.assert_allclose(jvp, jnp.vdot(jnp.asarray(fds[2]), v), atol=2e-5)


def test_primal_derivative_matches_active_set_closed_form():
    # With the active rows fixed, the solution is an equality QP: dx/dc from its KKT matrix.
    Q, c, A, b, G, h = _qp()
    out = jl.CvxpyQP(solver="CLARABEL").run(None, (Q, c), (A, b), (G, h))
    act = np.asarray(G @ out.params.primal - h > -1e-6)
    C = jnp.concatenate([A, G[act]])
    k = C.shape[0]
    K = jnp.block([[Q, C.T], [C, jnp.zeros((k, k))]])
    expected = -jnp.linalg.inv(K)[:6, :6]
    jac = jax.jacrev(lambda c_: jl.CvxpyQP(solver="CLARABEL").run(None, (Q, c_), (A, b), (G, h))
                     .params.primal)(c)
    np.testing.assert_allclose(jac, expected, atol=1e-6)


def test_bad_input_and_infeasibility_raise_clear_errors():
    Q, c, A, b, G, h = _qp()
    solver = jl.CvxpyQP()
    with pytest.raises(ValueError, match="params_obj"):
        solver.run(None, (Q[:3], c))
    with pytest.raises(ValueError, match="params_eq"):
        solver.run(None, (Q, c), (A[:, :3], b))
    with pytest.raises(ValueError, match="params_ineq"):
        solver.run(None, (Q, c), None, (G, h[:2]))
    with pytest.raises(TypeError, match="params_obj"):
        solver.run(None, Q)
    # x1 + x2 = 1 with x <= 0 has no solution.
    with pytest.raises(ValueError, match="infeasible"):
        jl.CvxpyQP(solver="CLARABEL").run(None, (jnp.eye(2), jnp.ones(2)), (jnp.ones((1, 2)), jnp.ones(1)),
                                          (jnp.eye(2), jnp.zeros(2)))
    # Under a transformation, infeasibility is a status (per instance under vmap).
    run = jax.vmap(lambda b_: jl.CvxpyQP(solver="CLARABEL").run(
        None, (jnp.eye(2), jnp.ones(2)), (jnp.ones((1, 2)), b_), (jnp.eye(2), jnp.zeros(2))))
    out = run(jnp.asarray([[-1.0], [1.0]]))  # feasible for b = -1, infeasible for b = 1
    assert [int(s) for s in out.state.status] == [jl.Status.CONVERGED, jl.Status.INFEASIBLE]
    np.testing.assert_allclose(out.params.primal[0], [-0.5, -0.5], atol=1e-7)
    assert bool(jnp.all(jnp.isfinite(out.params.primal[1])))


def test_jit_and_vmap_match_eager_and_compile_once():
    Q, c, A, b, G, h = _qp()
    solver = jl.CvxpyQP(solver="CLARABEL")
    eager = solver.run(None, (Q, c), (A, b), (G, h))
    cs = jnp.stack([c, 2 * c, -c])
    traces = []

    def primal(c_):
        traces.append(1)
        return solver.run(None, (Q, c_), (A, b), (G, h)).params.primal

    jitted = jax.jit(primal)
    np.testing.assert_allclose(jitted(c), eager.params.primal, atol=1e-10)
    jitted(2 * c)
    assert len(traces) == 1
    batched = jax.vmap(primal)(cs)
    for i in range(3):
        ref = solver.run(None, (Q, cs[i]), (A, b), (G, h)).params.primal
        np.testing.assert_allclose(batched[i], ref, atol=1e-10)
    # float32 data give float32 results.
    out32 = solver.run(None, (Q.astype(jnp.float32), c.astype(jnp.float32)))
    assert out32.params.primal.dtype == jnp.float32
    np.testing.assert_allclose(out32.params.primal, jnp.linalg.solve(Q, -c), atol=1e-4)
