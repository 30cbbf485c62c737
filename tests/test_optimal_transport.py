"""Entropic optimal transport: log-domain Sinkhorn and Sinkhorn-Newton-Sparse (Tang et al. 2024,
arXiv:2401.12253) against the marginal constraints, each other, a linear program
(SciPy) as epsilon -> 0, finite differences of the implicit derivatives, and the
dense dual Hessian."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import jaxopt_lab as jl
from jaxopt_lab.solvers.optimal_transport.sinkhorn import dual_objective, gauge_penalty
from jaxopt_lab.solvers.optimal_transport.sinkhorn_newton_sparse import sparse_hessian_matvec
from tests.registry import OT_SOLVERS


def _problem(n=12, m=9, seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 2)), rng.random((m, 2))
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    a, b = rng.random(n) + 0.5, rng.random(m) + 0.5
    a, b = a / a.sum(), b / b.sum()
    return tuple(jnp.asarray(v, dtype) for v in (C, a, b))


def _zeros(C):
    return jnp.zeros(C.shape[0], C.dtype), jnp.zeros(C.shape[1], C.dtype)


@pytest.mark.parametrize("entry", OT_SOLVERS, ids=lambda e: e.name)
def test_marginals_and_agreement_with_sinkhorn(entry):
    C, a, b = _problem()
    eps = 0.05
    solver = entry.make(epsilon=eps, tol=1e-10, **entry.options)
    out = solver.run(_zeros(C), C, a, b)
    assert int(out.state.status) == jl.Status.CONVERGED
    P = solver.transport_plan(out.params, C)
    np.testing.assert_allclose(P.sum(1), a, atol=1e-9)
    np.testing.assert_allclose(P.sum(0), b, atol=1e-9)
    ref = jl.Sinkhorn(epsilon=eps, tol=1e-12, maxiter=5000).run(_zeros(C), C, a, b)
    np.testing.assert_allclose(P, jl.Sinkhorn(epsilon=eps).transport_plan(ref.params, C), atol=1e-9)


@pytest.mark.slow
def test_small_epsilon_approaches_the_linear_program():
    C, a, b = _problem(n=8, m=7, seed=1)
    n, m = C.shape
    Aeq = np.vstack([np.kron(np.eye(n), np.ones(m)), np.kron(np.ones(n), np.eye(m))])
    lp = scipy.optimize.linprog(np.asarray(C).ravel(), A_eq=Aeq, b_eq=np.concatenate([a, b]),
                                bounds=(0, None), method="highs")
    P_lp = lp.x.reshape(n, m)
    gaps = []
    for eps in (1e-2, 1e-3):
        solver = jl.SinkhornNewtonSparse(epsilon=eps, tol=1e-10, density=0.5, maxiter=400)
        out = solver.run(_zeros(C), C, a, b)
        assert int(out.state.status) == jl.Status.CONVERGED
        P = solver.transport_plan(out.params, C)
        cost = float(jnp.sum(C * P))
        # 0 <= <C, P_eps> - OT <= eps log(n m) (entropy of a plan is at most log(n m)).
        assert -1e-9 <= cost - lp.fun <= eps * np.log(n * m)
        gaps.append(np.abs(np.asarray(P) - P_lp).sum())
    assert gaps[1] < 0.2 * gaps[0] and gaps[1] < 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("entry", OT_SOLVERS, ids=lambda e: e.name)
def test_implicit_derivatives_match_finite_differences(entry):
    C, a, b = _problem(n=6, m=5, seed=2)
    W = jnp.asarray(np.random.default_rng(3).standard_normal(C.shape))
    eps = 0.1
    solver = entry.make(epsilon=eps, tol=1e-12, **entry.options)

    def loss(C, a, b):
        params = solver.run(_zeros(C), C, a, b).params
        return jnp.sum(W * solver.transport_plan(params, C))

    gC, ga = jax.grad(loss, argnums=(0, 1))(C, a, b)
    rng = np.random.default_rng(4)
    dC = jnp.asarray(rng.standard_normal(C.shape))
    da = rng.standard_normal(a.shape)
    da = jnp.asarray(da - da.mean())  # keeps sum(a) = sum(b)
    h = 1e-5
    for (dx, g, i) in ((dC, gC, 0), (da, ga, 1)):
        plus = [C, a, b]
        minus = [C, a, b]
        plus[i], minus[i] = plus[i] + h * dx, minus[i] - h * dx
        fd = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(g, dx), fd, rtol=1e-6, atol=1e-9)
    # Forward mode through the same implicit rule.
    _, jvp = jax.jvp(lambda C: loss(C, a, b), (C,), (dC,))
    np.testing.assert_allclose(jvp, jnp.vdot(gC, dC), rtol=1e-8)


_HEAVY = [pytest.mark.slow]  # the Newton variants compile a larger program


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name, marks=_HEAVY if e.name != "Sinkhorn" else [])
                                   for e in OT_SOLVERS])
def test_vmap_over_costs_keeps_per_problem_status(entry):
    C, a, b = _problem()
    Cs = jnp.stack([C, 2.0 * C, 0.5 * C])
    solver = entry.make(epsilon=0.05, tol=1e-9, **entry.options)
    batched = jax.vmap(lambda C: solver.run(_zeros(C), C, a, b))(Cs)
    for k in range(3):
        single = solver.run(_zeros(C), Cs[k], a, b)
        np.testing.assert_allclose(batched.params[0][k], single.params[0], atol=1e-10)
        assert int(batched.state.iter_num[k]) == int(single.state.iter_num)
    assert len(set(np.asarray(batched.state.iter_num).tolist())) > 1  # lanes stop on their own


def test_sparse_hessian_is_the_thresholded_dual_hessian():
    C, a, b = _problem(n=7, m=6, seed=5)
    eps = 0.1
    n, m = C.shape
    rng = np.random.default_rng(6)
    params = (jnp.asarray(rng.standard_normal(n) * 0.1), jnp.asarray(rng.standard_normal(m) * 0.1))
    P = jnp.exp((params[0][:, None] + params[1][None, :] - C) / eps)
    rho = gauge_penalty(a, eps, n, m)
    flat = lambda v: jnp.concatenate(v)
    split = lambda v: (v[:n], v[n:])
    # All entries kept: the exact Hessian of the dual objective.
    mv, _ = sparse_hessian_matvec(P, P.sum(1), P.sum(0), n * m, eps, rho)
    H = jax.hessian(lambda z: dual_objective(split(z), C, a, b, eps))(flat(params))
    dense = jax.vmap(lambda e: flat(mv(split(e))))(jnp.eye(n + m))
    np.testing.assert_allclose(dense, H, rtol=1e-10, atol=1e-12)


def test_sparse_hessian_keeps_the_k_largest_entries_and_the_gauge_term():
    # k entries kept: the off-diagonal blocks are P with all but its k largest entries zeroed; the
    # diagonal keeps the exact row and column sums; the gauge penalty adds rho u u^T, u = (1, -1).
    rng = np.random.default_rng(6)
    n, m, k, eps, rho = 7, 6, 10, 0.1, 0.3
    P = jnp.asarray(rng.random((n, m)) + 0.01, jnp.float64)

    @jax.jit
    def dense(P):
        mv, diag = sparse_hessian_matvec(P, P.sum(1), P.sum(0), k, eps, rho)
        cols = jax.vmap(lambda e: jnp.concatenate(mv((e[:n], e[n:]))))(jnp.eye(n + m, dtype=P.dtype))
        return cols, jnp.concatenate(diag)

    got, diag = dense(P)
    Pn = np.asarray(P)
    S = np.where(Pn >= np.sort(Pn.ravel())[-k], Pn, 0.0)
    assert np.count_nonzero(S) == k
    u = np.concatenate([np.ones(n), -np.ones(m)])
    want = np.block([[np.diag(Pn.sum(1)), S], [S.T, np.diag(Pn.sum(0))]]) / eps + rho * np.outer(u, u)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(diag, np.diag(want), rtol=1e-12)


@pytest.mark.slow
def test_newton_stage_converges_quadratically():
    # With the full Hessian (density 1) a few Newton steps after the warm-up reach rounding,
    # where plain Sinkhorn needs hundreds of iterations at this epsilon.
    C, a, b = _problem(n=30, m=25, seed=7)
    eps = 0.01
    sns = jl.SinkhornNewtonSparse(epsilon=eps, tol=1e-10, density=1.0, sinkhorn_steps=20)
    sns = sns.run(_zeros(C), C, a, b)
    plain = jl.Sinkhorn(epsilon=eps, tol=1e-10, maxiter=20000).run(_zeros(C), C, a, b)
    assert int(sns.state.status) == jl.Status.CONVERGED == int(plain.state.status)
    assert int(sns.state.iter_num) - 20 <= 8
    assert int(plain.state.iter_num) > 5 * int(sns.state.iter_num)


@pytest.mark.slow
def test_float32():
    C, a, b = _problem(dtype=jnp.float32)
    for solver in (jl.Sinkhorn(epsilon=0.05, tol=1e-5), jl.SinkhornNewtonSparse(epsilon=0.05, tol=1e-5)):
        out = solver.run(_zeros(C), C, a, b)
        assert out.params[0].dtype == jnp.float32
        assert int(out.state.status) == jl.Status.CONVERGED


def test_bad_input_names_the_argument():
    C, a, b = _problem()
    with pytest.raises(ValueError, match="epsilon"):
        jl.Sinkhorn(epsilon=0.0)
    with pytest.raises(ValueError, match="density"):
        jl.SinkhornNewtonSparse(density=1.5)
    with pytest.raises(ValueError, match="equal sums"):
        jl.Sinkhorn().run(_zeros(C), C, a, 2 * b)
    with pytest.raises(ValueError, match="positive"):
        jl.Sinkhorn().run(_zeros(C), C, a.at[0].set(0.0).at[1].add(a[0]), b)
    with pytest.raises(ValueError, match="init_params"):
        jl.Sinkhorn().run(jnp.zeros(3), C, a, b)
