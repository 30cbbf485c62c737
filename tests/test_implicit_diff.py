"""Implicit differentiation: forward, reverse and higher order against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab.linalg import implicit_diff as idf
from jaxopt_lab.linalg import linear_solve as ls
from tests import problems as P

A, B = P.ridge_data(n=30, d=5)


def _solver(tol=1e-11):
    return jl.LBFGS(P.ridge_fun, tol=tol, maxiter=500)


def test_hypergradient_forward_and_reverse_match_closed_form():
    lam = 0.7
    sol = lambda lam: _solver().run(jnp.zeros(5), lam, A, B).params
    expected = P.ridge_solution_derivative(lam, A, B)
    np.testing.assert_allclose(jax.jacfwd(sol)(lam), expected, rtol=1e-8)
    np.testing.assert_allclose(jax.jacrev(sol)(lam), expected, rtol=1e-8)


def test_hessian_of_hyper_objective_through_lbfgs_matches_closed_form():
    # Second derivatives need the implicit rule at both levels (forward over reverse).
    f = lambda lam: jnp.sum(_solver().run(jnp.zeros(5), lam, A, B).params ** 3)
    fc = lambda lam: jnp.sum(P.ridge_solution(lam, A, B) ** 3)
    expected = jax.hessian(fc)(1.3)
    np.testing.assert_allclose(jax.hessian(f)(1.3), expected, rtol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(jax.jacfwd(f))(1.3), expected, rtol=1e-7)
    np.testing.assert_allclose(jax.jacrev(jax.jacrev(f))(1.3), expected, rtol=1e-7)


@pytest.mark.parametrize("solve", [ls.solve_cg, ls.solve_normal_cg, ls.solve_gmres, ls.solve_lu,
                                   ls.solve_cholesky, ls.solve_bicgstab])
def test_custom_root_with_each_linear_solver(solve):
    F = jax.grad(P.ridge_fun)

    @idf.custom_root(F, solve=solve)
    def solver(x0, lam, A, b):
        return P.ridge_solution(lam, A, b)  # any black box returning the root

    g = jax.jacrev(lambda lam: solver(None, lam, A, B))(0.5)
    np.testing.assert_allclose(g, P.ridge_solution_derivative(0.5, A, B), rtol=1e-6)


def test_custom_fixed_point_matches_root():
    # x = T(x) = x - eta * grad f(x) has the ridge solution as fixed point.
    eta = 0.01
    T = lambda x, lam, A, b: x - eta * jax.grad(P.ridge_fun)(x, lam, A, b)

    @idf.custom_fixed_point(T, solve=ls.solve_gmres)
    def solver(x0, lam, A, b):
        return P.ridge_solution(lam, A, b)

    np.testing.assert_allclose(jax.jacfwd(lambda l: solver(None, l, A, B))(0.9),
                               P.ridge_solution_derivative(0.9, A, B), rtol=1e-6)


def test_root_vjp_and_root_jvp_agree():
    F = jax.grad(P.ridge_fun)
    lam = 0.4
    sol = P.ridge_solution(lam, A, B)
    args = (lam, A, B)
    tangents = (1.0, jnp.zeros_like(A), jnp.zeros_like(B))
    jvp = idf.root_jvp(F, sol, args, tangents, solve=ls.solve_cg)
    np.testing.assert_allclose(jvp, P.ridge_solution_derivative(lam, A, B), rtol=1e-8)
    ct = jnp.arange(5.0)
    vjp = idf.root_vjp(F, sol, args, ct, solve=ls.solve_cg)
    np.testing.assert_allclose(vjp[0], jnp.vdot(ct, jvp), rtol=1e-8)


def test_kwargs_are_differentiated():
    solver = _solver()
    f = lambda lam: jnp.sum(solver.run(jnp.zeros(5), lam=lam, A=A, b=B).params)
    expected = jnp.sum(P.ridge_solution_derivative(0.8, A, B))
    np.testing.assert_allclose(jax.grad(f)(0.8), expected, rtol=1e-7)
    np.testing.assert_allclose(jax.jvp(f, (0.8,), (1.0,))[1], expected, rtol=1e-7)


def test_unpenalized_leaf_gets_no_constant_rhs_error():
    # A pytree whose second leaf the hyperparameter does not reach (bias).
    def fun(p, lam):
        r = A @ p["w"] + p["b"] - B
        return 0.5 * jnp.sum(r**2) + 0.5 * lam * jnp.sum(p["w"] ** 2)

    solver = jl.LBFGS(fun, tol=1e-10)
    init = {"w": jnp.zeros(5), "b": jnp.zeros(())}
    g = jax.grad(lambda lam: solver.run(init, lam).params["w"].sum())(0.5)
    eps = 1e-5
    fd = (solver.run(init, 0.5 + eps).params["w"].sum()
          - solver.run(init, 0.5 - eps).params["w"].sum()) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(TypeError, match="optimality_fun"):
        idf.custom_root(3)
    with pytest.raises(TypeError, match="solve"):
        idf.custom_root(lambda x: x, solve="cg")
