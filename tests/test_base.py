"""The solver base: bad input, status codes, traced options, unrolling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from tests import problems as P

fun, X0, XSTAR = P.quadratic(5)


@pytest.mark.parametrize("cls", [jl.LBFGS, jl.GradientDescent])
def test_bad_input_is_named(cls):
    with pytest.raises(TypeError, match="fun"):
        cls(3.0)
    with pytest.raises(ValueError, match="maxiter"):
        cls(fun, maxiter=0)
    with pytest.raises(ValueError, match="tol"):
        cls(fun, tol=-1.0)
    with pytest.raises(ValueError, match="stepsize"):
        cls(fun, stepsize=float("nan"))
    cls(fun, stepsize=-0.1)  # jaxopt's convention: stepsize <= 0 selects the line search
    with pytest.raises(ValueError, match="init_params"):
        cls(fun).run(X0.at[0].set(jnp.nan))
    with pytest.raises(TypeError, match="init_params"):
        cls(fun).run({"a": "text"})


def test_optax_solver_rejects_non_transform():
    with pytest.raises(TypeError, match="opt"):
        jl.OptaxSolver(opt="adam", fun=fun)


def test_nonfinite_solve_stops_with_status_and_finite_params():
    # The objective overflows to inf away from the origin.
    f = lambda x: jnp.where(jnp.linalg.norm(x) > 3.0, jnp.inf, -jnp.sum(x))
    out = jl.GradientDescent(f, stepsize=1.0, acceleration=False, maxiter=50).run(jnp.zeros(2))
    assert int(out.state.status) == jl.Status.NONFINITE
    assert bool(jnp.all(jnp.isfinite(out.params)))


def test_max_iter_status():
    out = jl.LBFGS(P.rosenbrock()[0], maxiter=3, tol=1e-12).run(P.rosenbrock()[1])
    assert int(out.state.status) == jl.Status.MAX_ITER
    assert int(out.state.iter_num) == 3
    assert jl.status_name(out.state.status) == "MAX_ITER"


def test_traced_tolerance_sweep_compiles_once_and_orders_iterations():
    tols = jnp.asarray([1e-2, 1e-5, 1e-9])
    out = jax.jit(jax.vmap(lambda t: jl.LBFGS(fun, tol=t).run(X0)))(tols)
    iters = np.asarray(out.state.iter_num)
    assert iters[0] <= iters[1] <= iters[2]
    assert np.all(np.asarray(out.state.error) <= np.asarray(tols))


def test_unrolled_differentiation_matches_implicit():
    A, b = P.ridge_data(n=20, d=4)
    A = A / np.sqrt(20.0)
    x0 = jnp.zeros(4)
    unrolled = jl.GradientDescent(P.ridge_fun, stepsize=0.5, acceleration=False, maxiter=300,
                                  tol=1e-12, implicit_diff=False)
    g = jax.grad(lambda lam: unrolled.run(x0, lam, A, b).params.sum())(0.3)
    np.testing.assert_allclose(g, P.ridge_solution_derivative(0.3, A, b).sum(), rtol=1e-6)


def test_manual_update_loop_sets_status():
    solver = jl.LBFGS(fun, tol=1e-8)
    params, state = X0, solver.init_state(X0)
    while int(state.status) == jl.Status.RUNNING:
        params, state = solver.update(params, state)
    assert int(state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(params, XSTAR, atol=1e-6)


def test_has_aux_and_value_and_grad():
    def f_aux(x):
        return fun(x), {"norm": jnp.linalg.norm(x)}

    out = jl.LBFGS(f_aux, has_aux=True, tol=1e-8).run(X0)
    np.testing.assert_allclose(out.state.aux["norm"], jnp.linalg.norm(XSTAR), rtol=1e-6)
    vg = jax.value_and_grad(fun)
    out2 = jl.LBFGS(vg, value_and_grad=True, tol=1e-8).run(X0)
    np.testing.assert_allclose(out2.params, XSTAR, atol=1e-6)


def test_verbose_prints(capfd):
    jl.LBFGS(fun, maxiter=2, verbose=True).run(X0)
    jax.effects_barrier()
    assert "LBFGS iter" in capfd.readouterr().out


def test_tree_unzip_splits_tuple_leaves():
    like = {"a": jnp.zeros(2), "b": (jnp.zeros(3),)}
    out = jax.tree_util.tree_map(lambda x: (x + 1.0, 2 * x - 1.0, x.shape[0]), like)
    first, second, third = jl.tree_util.tree_unzip(like, out, 3)
    np.testing.assert_array_equal(first["a"], np.ones(2))
    np.testing.assert_array_equal(second["b"][0], -np.ones(3))
    assert third == {"a": 2, "b": (3,)}
    assert jax.tree_util.tree_structure(first) == jax.tree_util.tree_structure(like)
