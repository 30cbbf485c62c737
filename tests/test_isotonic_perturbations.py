"""isotonic, perturbations, tree_util additions, CompositeLinearFunction, IterativeRefinement, CvxpyQP."""

from __future__ import annotations

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

import jaxopt_lab as jl
from jaxopt_lab.ops.isotonic import isotonic_l2_pav
from jaxopt_lab.ops.perturbations import (
    Gumbel,
    Normal,
    make_perturbed_argmax,
    make_perturbed_fun,
    make_perturbed_max,
)

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- isotonic
@pytest.mark.parametrize("increasing", [True, False])
def test_isotonic_matches_sklearn(increasing):
    y = RNG.standard_normal(40) + np.linspace(0, 2, 40) * (1 if increasing else -1)
    ref = IsotonicRegression(increasing=increasing).fit_transform(np.arange(40), y)
    iso = jax.jit(isotonic_l2_pav, static_argnames="increasing")
    np.testing.assert_allclose(iso(y, increasing=increasing), ref, atol=1e-12)
    clipped = IsotonicRegression(increasing=increasing, y_min=-0.3, y_max=0.8)
    ref_clip = clipped.fit_transform(np.arange(40), y)
    np.testing.assert_allclose(isotonic_l2_pav(y, y_min=-0.3, y_max=0.8, increasing=increasing), ref_clip,
                               atol=1e-12)


def test_isotonic_batched_and_derivatives_vs_fd():
    Y = RNG.standard_normal((3, 15))
    out = isotonic_l2_pav(Y)
    for i in range(3):
        ref = IsotonicRegression().fit_transform(np.arange(15), Y[i])
        np.testing.assert_allclose(out[i], ref, atol=1e-12)
    y = jnp.asarray(Y[0])
    f = jax.jit(lambda v: isotonic_l2_pav(v, y_min=-0.5, y_max=0.5))
    eps = 1e-6
    E = jnp.eye(15)
    fd = ((jax.vmap(f)(y + eps * E) - jax.vmap(f)(y - eps * E)) / (2 * eps)).T
    np.testing.assert_allclose(jax.jacrev(f)(y), fd, atol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(f)(y), fd, atol=1e-6)
    # Rows of the unclipped Jacobian are block averages: each row sums to one.
    np.testing.assert_allclose(jax.jacfwd(isotonic_l2_pav)(y).sum(axis=1), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="y"):
        isotonic_l2_pav(jnp.asarray(1.0))


# ------------------------------------------------------------------------ perturbations
def _one_hot_argmax(x):
    return jax.nn.one_hot(jnp.argmax(x), x.shape[-1])


def test_perturbed_argmax_gumbel_is_softmax():
    # Gumbel-max trick: E[one_hot(argmax(theta + sigma G))] = softmax(theta / sigma).
    theta = jnp.asarray([0.3, -0.2, 0.5, 0.1])
    sigma, n = 0.5, 20000
    pert = make_perturbed_argmax(_one_hot_argmax, num_samples=n, sigma=sigma, noise=Gumbel())
    y = pert(theta, jax.random.PRNGKey(0))
    p = jax.nn.softmax(theta / sigma)
    np.testing.assert_allclose(y, p, atol=5 * np.sqrt(0.25 / n))  # 5 standard errors
    np.testing.assert_allclose(jnp.sum(y), 1.0, atol=1e-12)
    # Jacobian vs the softmax Jacobian (diag(p) - p p^T) / sigma; control variate reduces noise.
    jac = jax.jacfwd(lambda t: make_perturbed_argmax(_one_hot_argmax, n, sigma, Gumbel(), True)(
        t, jax.random.PRNGKey(1)))(theta)
    np.testing.assert_allclose(jac, (jnp.diag(p) - jnp.outer(p, p)) / sigma, atol=0.06)
    jac_rev = jax.jacrev(lambda t: make_perturbed_argmax(_one_hot_argmax, n, sigma, Gumbel(), True)(
        t, jax.random.PRNGKey(1)))(theta)
    np.testing.assert_allclose(jac_rev, jac, atol=1e-10)


def test_perturbed_max_gumbel_is_logsumexp():
    # E[max(theta + sigma G)] = sigma logsumexp(theta / sigma) + sigma * euler_gamma.
    theta = jnp.asarray([0.3, -0.2, 0.5, 0.1])
    sigma, n = 0.5, 20000
    pmax = make_perturbed_max(_one_hot_argmax, num_samples=n, sigma=sigma)
    value = pmax(theta, jax.random.PRNGKey(2))
    expected = sigma * jax.scipy.special.logsumexp(theta / sigma) + sigma * np.euler_gamma
    np.testing.assert_allclose(value, expected, atol=5 * sigma * np.pi / np.sqrt(6 * n))
    grad = jax.grad(pmax)(theta, jax.random.PRNGKey(2))
    np.testing.assert_allclose(grad, jax.nn.softmax(theta / sigma), atol=5 * np.sqrt(0.25 / n))


def test_perturbed_fun_normal_closed_form():
    # f(x) = ||x||^2: E f(theta + sigma Z) = ||theta||^2 + d sigma^2, gradient 2 theta.
    theta = jnp.asarray([0.5, -1.0, 2.0])
    sigma, n = 0.3, 20000
    pf = make_perturbed_fun(lambda x: jnp.sum(x ** 2), n, sigma, Normal(), control_variate=True)
    value = pf(theta, jax.random.PRNGKey(3))
    np.testing.assert_allclose(value, jnp.sum(theta ** 2) + 3 * sigma ** 2, rtol=2e-2)
    np.testing.assert_allclose(jax.grad(pf)(theta, jax.random.PRNGKey(3)), 2 * theta, atol=0.1)
    # Jittable, and a piecewise-constant function gets a useful gradient: E[1{theta+sZ>0}] = Phi(theta/s).
    step = make_perturbed_fun(lambda x: jnp.sum(x > 0.0).astype(x.dtype), n, 1.0, Normal())
    g = jax.jit(jax.grad(step))(jnp.asarray([0.2]), jax.random.PRNGKey(4))
    np.testing.assert_allclose(g, jax.scipy.stats.norm.pdf(0.2), atol=0.03)
    with pytest.raises(ValueError, match="sigma"):
        make_perturbed_fun(jnp.sum, sigma=-1.0)
    with pytest.raises(ValueError, match="num_samples"):
        make_perturbed_argmax(_one_hot_argmax, num_samples=0)


# --------------------------------------------------------------- tree_util / objective
def test_tree_vdot_real_and_broadcast_pytrees():
    x = {"a": jnp.asarray([1 + 2j, 3 - 1j]), "b": jnp.asarray(2.0 + 0j)}
    y = {"a": jnp.asarray([2 - 1j, 1j]), "b": jnp.asarray(1.0 - 3j)}
    flat = lambda t: jnp.concatenate([t["a"], t["b"][None]])
    np.testing.assert_allclose(jl.tree_util.tree_vdot_real(x, y), jnp.real(jnp.vdot(flat(x), flat(y))))
    a, b = jl.tree_util.broadcast_pytrees(1.5, {"u": jnp.ones(2), "v": jnp.zeros(3)})
    assert a == {"u": 1.5, "v": 1.5} and set(b) == {"u", "v"}
    with pytest.raises(ValueError, match="structures"):
        jl.tree_util.broadcast_pytrees({"u": 1.0}, (1.0, 2.0))


class _LeastSquares(jl.objective.CompositeLinearFunction):
    def subfun(self, predictions, X, y):
        return 0.5 * jnp.sum((predictions - y) ** 2)

    def make_linop(self, X, y=None):
        return jl.base.LinearOperator(X)

    def b(self, X, y):
        return 0.1 * jnp.ones(X.shape[1])


def test_composite_linear_function():
    X = jnp.asarray(RNG.standard_normal((10, 4)))
    y = jnp.asarray(RNG.standard_normal(10))
    w = jnp.asarray(RNG.standard_normal(4))
    f = _LeastSquares()
    np.testing.assert_allclose(f(w, X, y), 0.5 * jnp.sum((X @ w - y) ** 2) + 0.1 * jnp.sum(w))
    L = f.lipschitz_const((X,))
    np.testing.assert_allclose(L, np.linalg.eigvalsh(np.asarray(X.T @ X)).max(), rtol=1e-10)
    with pytest.raises(TypeError):
        jl.objective.CompositeLinearFunction()


# ------------------------------------------------------------------ IterativeRefinement
def test_iterative_refinement_solution_and_derivatives():
    A = jnp.asarray(RNG.standard_normal((4, 4))) + 4 * jnp.eye(4)
    b = jnp.asarray(RNG.standard_normal(4))
    # A crude A_bar still converges when ||I - A_bar^{-1} A|| < 1.
    A_bar = A + jnp.asarray(RNG.standard_normal((4, 4))) * 0.3
    # A ridge-regularized inner LU solve: inexact, corrected by the refinement.
    inner = functools.partial(jl.linear_solve.solve_lu, ridge=1e-2)
    solver = jl.IterativeRefinement(solve=inner, maxiter=100, tol=1e-12,
                                    implicit_diff_solve=jl.linear_solve.solve_lu)
    out = solver.run(None, A, b)
    np.testing.assert_allclose(out.params, np.linalg.solve(A, b), atol=1e-12)
    assert int(out.state.status) == jl.Status.CONVERGED
    out_bar = solver.run(None, A, b, A_bar)
    np.testing.assert_allclose(out_bar.params, np.linalg.solve(A, b), atol=1e-11)
    assert int(out_bar.state.iter_num) > int(out.state.iter_num)
    ref = lambda A_, b_: jnp.linalg.solve(A_, b_)
    g = jax.grad(lambda b_: jnp.sum(solver.run(None, A, b_).params ** 2))(b)
    np.testing.assert_allclose(g, jax.grad(lambda b_: jnp.sum(ref(A, b_) ** 2))(b), atol=1e-9)
    jA = jax.jacfwd(lambda A_: solver.run(None, A_, b).params)(A)
    np.testing.assert_allclose(jA, jax.jacfwd(lambda A_: ref(A_, b))(A), atol=1e-9)
    with pytest.raises(TypeError, match="solve"):
        jl.IterativeRefinement(solve=3)


@pytest.mark.skipif(importlib.util.find_spec("cvxpy") is not None, reason="cvxpy is installed")
def test_cvxpy_qp_without_cvxpy_names_the_extra():
    with pytest.raises(ImportError, match=r"jaxopt_lab\[cvxpy\]"):
        jl.CvxpyQP()


@pytest.mark.skipif(importlib.util.find_spec("cvxpy") is None, reason="needs the optional cvxpy extra")
def test_cvxpy_qp_matches_box_qp():
    Q = jnp.asarray([[2.0, 0.5], [0.5, 1.0]])
    c = jnp.asarray([1.0, -1.0])
    G = jnp.concatenate([jnp.eye(2), -jnp.eye(2)])
    h = jnp.asarray([0.5, 0.5, 0.5, 0.5])
    out = jl.CvxpyQP().run(None, (Q, c), None, (G, h))
    box = (-0.5 * jnp.ones(2), 0.5 * jnp.ones(2))
    ref = jl.BoxCDQP(tol=1e-12, maxiter=1000).run(jnp.zeros(2), (Q, c), box)
    np.testing.assert_allclose(out.params.primal, ref.params, atol=1e-5)
