"""Greedy block rules of Nutini, Laradji, Schmidt (arXiv:1712.08859) in BlockCoordinateDescent:
GSL and GSQ scores against their definitions, fewer sweeps than cyclic on a lasso with unequal
column scales (their setting), and the active-set Newton phase."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import jaxopt_lab as jl
from jaxopt_lab import BlockCoordinateDescent

L1 = lambda x, lam: lam * jnp.sum(jnp.abs(x))


def _problem(seed=0, m=80, n=40, spread=2):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, n)) * np.logspace(0, spread, n)[rng.permutation(n)]  # column scales 1 .. 100
    x_true = np.zeros(n)
    x_true[:5] = 3 * rng.normal(size=5)
    b = A @ x_true + 0.01 * rng.normal(size=m)
    return jnp.asarray(A), jnp.asarray(b)


def _lsq(x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2)


def _np_scores(A, b, x, lam):
    """Definitions: L_j = ||A_j||^2, g = A^T (A x - b), d_j = soft(x_j - g_j / L_j, lam / L_j) - x_j."""
    A, b, x = map(np.asarray, (A, b, x))
    L = np.sum(A * A, axis=0)
    g = A.T @ (A @ x - b)
    z = x - g / L
    d = np.sign(z) * np.maximum(np.abs(z) - lam / L, 0) - x
    gs = d**2
    gsl = L * d**2
    gsq = -(g * d + L * d**2 / 2 + lam * np.abs(x + d) - lam * np.abs(x))
    return gs, gsl, gsq, g, L


@pytest.mark.parametrize("lam", [0.0, 30.0])
def test_scores_match_the_rules_definitions(lam):
    A, b = _problem(m=20, n=8)
    x = jnp.asarray(np.random.default_rng(1).normal(size=8))
    gs, gsl, gsq, g, L = _np_scores(A, b, x, lam)
    scores = {s: BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection=s, block_fun=L1)
              .block_scores(x, lam, A, b) for s in ("greedy", "gsl", "gsq")}
    np.testing.assert_allclose(scores["greedy"], gs, rtol=1e-8)
    np.testing.assert_allclose(scores["gsl"], gsl, rtol=1e-8)
    np.testing.assert_allclose(scores["gsq"], gsq, rtol=1e-8, atol=1e-8 * np.max(gsq))
    if lam == 0.0:  # smooth: GSL is ||grad_j||^2 / L_j and GSQ half of it
        np.testing.assert_allclose(scores["gsl"], g**2 / L, rtol=1e-8)
        np.testing.assert_allclose(scores["gsq"], g**2 / (2 * L), rtol=1e-8)
    # the column scales make the rules disagree: GS favours small-L blocks (large steps)
    assert np.argmax(gs) != np.argmax(gsl)


@pytest.mark.slow
def test_gsl_and_gsq_need_fewer_sweeps_than_cyclic_on_lasso():
    A, b = _problem()
    lam = 1.0
    runs = {}
    for sel in ("cyclic", "greedy", "gsl", "gsq"):
        sol = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection=sel, block_fun=L1, tol=1e-8,
                                     maxiter=3000).run(jnp.zeros(A.shape[1]), lam, A, b)
        assert int(sol.state.status) == int(jl.Status.CONVERGED), sel
        runs[sel] = (int(sol.state.iter_num), np.asarray(sol.params))
    for sel in ("greedy", "gsl", "gsq"):
        np.testing.assert_allclose(runs[sel][1], runs["cyclic"][1], atol=1e-8)
    # measured: cyclic 42 sweeps, Gauss-Southwell 45, GSL 9, GSQ 14
    assert runs["gsl"][0] * 3 <= runs["cyclic"][0]
    assert runs["gsq"][0] * 2 <= runs["cyclic"][0]
    assert runs["gsl"][0] * 3 <= runs["greedy"][0]


@pytest.mark.slow
def test_active_set_phase_converges_in_few_sweeps_lasso_and_bounds():
    A, b = _problem()
    plain = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection="gsl", tol=1e-10, maxiter=3000)
    fast = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection="gsl", active_set=True, tol=1e-10,
                                  maxiter=3000)
    x0 = jnp.zeros(A.shape[1])
    p, f = plain.run(x0, 1.0, A, b), fast.run(x0, 1.0, A, b)
    assert int(f.state.status) == int(jl.Status.CONVERGED)
    np.testing.assert_allclose(f.params, p.params, atol=1e-9)
    # measured: 5 sweeps with the Newton phase, 11 without (quadratic f: exact once identified)
    assert int(f.state.iter_num) <= 6 < int(p.state.iter_num)
    # bound constraints (NNLS), against SciPy
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 10))
    y = X @ np.where(np.arange(10) < 4, -1.0, 1.0) + 0.1 * rng.normal(size=30)
    ref, _ = scipy.optimize.nnls(X, y)
    sol = BlockCoordinateDescent(_lsq, jl.prox.prox_non_negative_lasso, selection="gsq",
                                 block_fun=lambda x, lam: lam * jnp.sum(x), active_set=True, tol=1e-10,
                                 maxiter=500).run(jnp.ones(10), 0.0, jnp.asarray(X), jnp.asarray(y))
    assert np.any(ref == 0) and int(sol.state.iter_num) <= 6
    np.testing.assert_allclose(sol.params, ref, atol=1e-8)
    # rows as blocks (group lasso): the prox Jacobian is a full block there; against FISTA
    W0 = jnp.zeros((6, 3))
    Xg, Yg = jnp.asarray(rng.normal(size=(25, 6))), jnp.asarray(rng.normal(size=(25, 3)))
    fun = lambda W, X, Y: 0.5 * jnp.mean((X @ W - Y) ** 2)
    cd = BlockCoordinateDescent(fun, jl.prox.prox_group_lasso, selection="gsl", active_set=True, tol=1e-10,
                                maxiter=500).run(W0, 0.3, Xg, Yg)
    row_prox = lambda W, lam, s: jax.vmap(jl.prox.prox_group_lasso, (0, None, None))(W, lam, s)
    pg = jl.ProximalGradient(fun, prox=row_prox, tol=1e-12, maxiter=20000).run(W0, 0.3, Xg, Yg)
    assert int(cd.state.status) == int(jl.Status.CONVERGED)
    np.testing.assert_allclose(cd.params, pg.params, atol=1e-7)


def test_float32_and_bad_options():
    # float32, a better-scaled problem (column scales 1 .. 10); measured: GSQ with the active-set
    # phase 3 sweeps, GSQ 7, GSL 7, cyclic 19
    A, b = _problem(m=20, n=8, spread=1)
    sol = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection="gsq", block_fun=L1, active_set=True,
                                 tol=1e-3, maxiter=200).run(jnp.zeros(8, jnp.float32), 1.0,
                                                            A.astype(jnp.float32), b.astype(jnp.float32))
    assert sol.params.dtype == jnp.float32 and int(sol.state.status) == int(jl.Status.CONVERGED)
    assert int(sol.state.iter_num) <= 5
    with pytest.raises(ValueError, match="block_fun"):
        BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection="gsq")
    with pytest.raises(ValueError, match="selection"):
        BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection="gs-r")
