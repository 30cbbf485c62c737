"""Static M-FAC (Frantar et al. 2021, arXiv:2107.03356): the precomputed inverse of the
damped empirical Fisher against its dense inverse, and as the adjoint preconditioner of
the bilevel hypergradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab.linalg.mfac_static import MFACStatic, mfac_coefficients, mfac_static
from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel


def _dense(G, lam):
    m, d = G.shape
    return np.linalg.inv(lam * np.eye(d) + G.T @ G / m)


@pytest.mark.parametrize("m,d", [(1, 5), (6, 20), (16, 40)])
def test_ihvp_diag_and_entries_match_the_dense_inverse(m, d):
    rng = np.random.default_rng(m)
    G = rng.standard_normal((m, d)) * rng.uniform(0.1, 3.0, (m, 1))
    lam = 0.05
    Finv = _dense(G, lam)
    mf = mfac_static(jnp.asarray(G), lam)
    x = rng.standard_normal(d)
    scale = np.abs(Finv).max()
    np.testing.assert_allclose(mf.ihvp(jnp.asarray(x)), Finv @ x, atol=1e-10 * scale * np.abs(x).sum())
    np.testing.assert_allclose(mf.diag(), np.diag(Finv), atol=1e-10 * scale)
    for k, l in [(0, 0), (1, d - 1), (d - 1, 2)]:  # noqa: E741
        np.testing.assert_allclose(mf.element(k, l), Finv[k, l], atol=1e-10 * scale)


def test_coefficients_follow_the_sherman_morrison_recursion():
    # v_i = F_{i-1}^{-1} g_i and d_i = m + g_i^T v_i, built here by dense inverses.
    rng = np.random.default_rng(1)
    m, d, lam = 5, 9, 0.2
    G = rng.standard_normal((m, d))
    B, dens = mfac_coefficients(jnp.asarray(G @ G.T), lam)
    F = lam * np.eye(d)
    for i in range(m):
        v = np.linalg.solve(F, G[i])
        np.testing.assert_allclose(np.asarray(B[i]) @ G, v, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dens[i], m + G[i] @ v, rtol=1e-12)
        F = F + np.outer(G[i], G[i]) / m
    assert np.allclose(np.triu(np.asarray(B), 1), 0.0)


def test_float32_and_pytree_gradients():
    rng = np.random.default_rng(2)
    m, lam = 8, 0.1
    tree = {"w": jnp.asarray(rng.standard_normal((m, 3, 4)), jnp.float32),
            "b": jnp.asarray(rng.standard_normal((m, 4)), jnp.float32)}
    G = np.concatenate([np.asarray(tree["b"]), np.asarray(tree["w"]).reshape(m, -1)], axis=1)
    Finv = _dense(G.astype(np.float64), lam)
    mf = mfac_static(tree, lam)
    x = {"w": jnp.ones((3, 4), jnp.float32), "b": jnp.arange(4.0, dtype=jnp.float32)}
    out = mf(x)
    assert out["w"].dtype == jnp.float32 and out["w"].shape == (3, 4)
    flat = np.concatenate([np.asarray(out["b"]), np.asarray(out["w"]).ravel()])
    xf = np.concatenate([np.arange(4.0), np.ones(12)])
    np.testing.assert_allclose(flat, Finv @ xf, rtol=2e-4, atol=2e-4)
    # Under jit (the inverse is a pytree argument).
    flat_jit = jax.jit(lambda mf, x: mf(x))(mf, x)
    np.testing.assert_allclose(flat_jit["w"], out["w"], rtol=1e-6)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="damping"):
        mfac_static(jnp.ones((2, 3)), 0.0)
    with pytest.raises(ValueError, match="grads"):
        mfac_static({"a": jnp.ones((2, 3)), "b": jnp.ones((3, 3))})
    with pytest.raises(ValueError, match="`x`"):
        mfac_static(jnp.ones((2, 3)))(jnp.ones(4))


def _fisher_form(inst):
    # The quadratic instance's inner Hessian A (eigenvalues in [1, cond]) written as
    # 1 * I + (1/m) sum_i g_i g_i^T, so the M-FAC inverse with damping 1 is A^{-1} exactly.
    A = np.asarray(inst.data["A"])
    s, Q = np.linalg.eigh(A - np.eye(A.shape[0]))
    m = A.shape[0]
    return jnp.asarray((np.sqrt(m * np.clip(s, 0, None)) * Q).T)


@pytest.mark.slow
def test_preconditions_the_hypergradient_adjoint():
    # With M = A^{-1} exactly, preconditioned CG solves the adjoint system in one iteration.
    inst = quadratic_bilevel(dim_x=4, dim_y=10, cond=50.0)
    mf = mfac_static(_fisher_form(inst), 1.0)
    x = jnp.linspace(-1.0, 1.0, 4)
    h, diag = jl.bilevel.hypergradient(inst.problem, x, inst.y0, inst.data, M=mf)
    np.testing.assert_allclose(h, inst.extra(x, inst.data), rtol=1e-7, atol=1e-9)
    assert int(diag.adjoint_iterations) == 1
    # Unpreconditioned CG on the same system needs many more (the mutation M=None breaks the above).
    y = diag.inner_solution
    rhs = jax.grad(inst.problem.outer_fun, argnums=1)(x, y, inst.data)
    _, info = jl.bilevel.adjoint_solve(inst.problem, x, y, inst.data, rhs)
    assert int(info.iterations) >= 5


@pytest.mark.slow
def test_preconditions_the_neumann_adjoint():
    inst = quadratic_bilevel(dim_x=4, dim_y=10, cond=50.0)
    mf = mfac_static(_fisher_form(inst), 1.0)
    x = jnp.linspace(-1.0, 1.0, 4)
    h, diag = jl.bilevel.hypergradient(inst.problem, x, inst.y0, inst.data, M=mf, adjoint_solver="neumann",
                                       neumann_steps=1, neumann_stepsize=1.0)
    np.testing.assert_allclose(h, inst.extra(x, inst.data), rtol=1e-7, atol=1e-9)
    assert float(diag.adjoint_residual) < 1e-8


@pytest.mark.slow
def test_solve_is_an_implicit_diff_solver():
    # Ridge regression: d x*/d lam through LBFGS whose implicit linear solve is M-FAC-preconditioned CG.
    rng = np.random.default_rng(3)
    n, d = 12, 6
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    mf = mfac_static(jnp.asarray(X), 1.0)  # I + X^T X / n: the ridge Hessian at lam = 1

    def fun(w, lam):
        return 0.5 * jnp.sum((X @ w - y) ** 2) / n + 0.5 * lam * jnp.sum(w * w)

    solver = jl.LBFGS(fun=fun, tol=1e-12, maxiter=500, implicit_diff_solve=mf.solve)
    g = jax.jacobian(lambda lam: solver.run(jnp.zeros(d), lam).params)(1.0)
    H = X.T @ X / n + np.eye(d)
    w = np.linalg.solve(H, X.T @ y / n)
    np.testing.assert_allclose(g, -np.linalg.solve(H, w), rtol=1e-7, atol=1e-10)
    assert isinstance(mf, MFACStatic)
