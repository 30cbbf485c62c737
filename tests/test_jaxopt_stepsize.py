"""jaxopt's step-size convention side by side with jaxopt 0.8.5: ``stepsize <= 0`` (zero or
negative) selects the line search in every solver where jaxopt documents it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from tests import problems as P

jaxopt = pytest.importorskip("jaxopt")

LAM = 0.1


@pytest.fixture(scope="module")
def logreg():
    X, y = P.logistic_data(dtype=jnp.float64)
    return X, y, jnp.zeros(X.shape[1], jnp.float64)


@pytest.mark.parametrize("stepsize", [0.0, -1.0])
@pytest.mark.parametrize("acceleration", [True, False])
def test_gradient_descent_line_search_sentinel_matches_jaxopt(logreg, stepsize, acceleration):
    X, y, w0 = logreg
    ours = jl.GradientDescent(P.logistic_fun, stepsize=stepsize, acceleration=acceleration, tol=1e-10,
                              maxiter=2000).run(w0, LAM, X, y)
    ref = jaxopt.GradientDescent(P.logistic_fun, stepsize=stepsize, acceleration=acceleration, tol=1e-10,
                                 maxiter=2000).run(w0, LAM, X, y)
    assert int(ours.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(ours.params, ref.params, atol=1e-8)
    # Same first iterate: both searches start from t = 1 and halve on the same condition.
    one = jl.GradientDescent(P.logistic_fun, stepsize=stepsize, acceleration=acceleration, maxiter=1)
    one_ref = jaxopt.GradientDescent(P.logistic_fun, stepsize=stepsize, acceleration=acceleration, maxiter=1)
    np.testing.assert_allclose(one.run(w0, LAM, X, y).params, one_ref.run(w0, LAM, X, y).params,
                               rtol=1e-12, atol=1e-14)


def test_gradient_descent_fixed_step_iterates_match_jaxopt(logreg):
    X, y, w0 = logreg
    for k in (1, 5, 40):
        ours = jl.GradientDescent(P.logistic_fun, stepsize=0.5, maxiter=k, tol=1e-14).run(w0, LAM, X, y)
        ref = jaxopt.GradientDescent(P.logistic_fun, stepsize=0.5, maxiter=k, tol=1e-14).run(w0, LAM, X, y)
        np.testing.assert_allclose(ours.params, ref.params, rtol=1e-12, atol=1e-14)


def _solves(X, y, w0, stepsize):
    """The solvers whose jaxopt docs say ``stepsize <= 0`` means a line search, run once each."""
    f = P.logistic_fun
    return {
        "GradientDescent": jl.GradientDescent(f, stepsize=stepsize, maxiter=50).run(w0, LAM, X, y),
        "ProximalGradient": jl.ProximalGradient(f, jl.prox.prox_lasso, stepsize=stepsize, maxiter=50).run(
            w0, 0.01, LAM, X, y),
        "ProjectedGradient": jl.ProjectedGradient(f, jl.projection.projection_box, stepsize=stepsize,
                                                  maxiter=50).run(w0, (-0.2, 0.2), LAM, X, y),
        "BlockCoordinateDescent": jl.BlockCoordinateDescent(f, jl.prox.prox_lasso, stepsize=stepsize,
                                                            maxiter=20).run(w0, 0.01, LAM, X, y),
        "LBFGS": jl.LBFGS(f, stepsize=stepsize, maxiter=20).run(w0, LAM, X, y),
        "BFGS": jl.BFGS(f, stepsize=stepsize, maxiter=20).run(w0, LAM, X, y),
        "Broyden": jl.Broyden(jax.grad(f), stepsize=stepsize, maxiter=20).run(w0, LAM, X, y),
    }


def test_negative_stepsize_is_the_zero_sentinel_everywhere(logreg):
    X, y, w0 = logreg
    zero, negative = _solves(X, y, w0, 0.0), _solves(X, y, w0, -1.0)
    for name in zero:
        np.testing.assert_array_equal(negative[name].params, zero[name].params, err_msg=name)
        assert int(negative[name].state.iter_num) == int(zero[name].state.iter_num), name


@pytest.mark.parametrize("stepsize", [0.0, -0.5])
def test_composite_solvers_with_sentinel_reach_jaxopt_solution(logreg, stepsize):
    X, y, w0 = logreg
    f = P.logistic_fun
    pg = jl.ProximalGradient(f, jl.prox.prox_lasso, stepsize=stepsize, tol=1e-10, maxiter=3000).run(
        w0, 0.01, LAM, X, y)
    pg_ref = jaxopt.ProximalGradient(f, jaxopt.prox.prox_lasso, stepsize=stepsize, tol=1e-10,
                                     maxiter=3000).run(w0, 0.01, LAM, X, y)
    np.testing.assert_allclose(pg.params, pg_ref.params, atol=1e-8)
    pj = jl.ProjectedGradient(f, jl.projection.projection_box, stepsize=stepsize, tol=1e-10,
                              maxiter=3000).run(w0, (-0.2, 0.2), LAM, X, y)
    pj_ref = jaxopt.ProjectedGradient(f, jaxopt.projection.projection_box, stepsize=stepsize, tol=1e-10,
                                      maxiter=3000).run(w0, (-0.2, 0.2), LAM, X, y)
    np.testing.assert_allclose(pj.params, pj_ref.params, atol=1e-8)


def test_sentinel_stays_static_under_jit_and_positive_steps_stay_traced(logreg):
    X, y, w0 = logreg
    run = jax.jit(lambda solver: solver.run(w0, LAM, X, y))
    eager = jl.GradientDescent(P.logistic_fun, stepsize=-1.0, maxiter=30).run(w0, LAM, X, y)
    jitted = run(jl.GradientDescent(P.logistic_fun, stepsize=-1.0, maxiter=30))
    np.testing.assert_allclose(jitted.params, eager.params, rtol=1e-12)
    # The backtracking search ran: evaluations beyond one value-and-gradient per iteration.
    assert int(jitted.state.num_fun_eval) > int(jitted.state.iter_num) + 1
    assert jax.tree_util.tree_leaves(jl.GradientDescent(P.logistic_fun, stepsize=-1.0)).count(-1.0) == 0
    assert 0.3 in jax.tree_util.tree_leaves(jl.GradientDescent(P.logistic_fun, stepsize=0.3))


def test_uses_line_search_rule():
    from jaxopt_lab.core.checks import uses_line_search

    assert uses_line_search(0.0) and uses_line_search(-2) and uses_line_search(np.float32(-1.0))
    assert not uses_line_search(0.1)
    assert not uses_line_search(lambda k: 0.1)  # a schedule fixes the step
    assert not uses_line_search(jnp.zeros(3))  # only a scalar is a sentinel
    seen = []
    jax.jit(lambda s: seen.append(uses_line_search(s)) or s)(-1.0)
    assert seen == [False]  # a traced step size is never the sentinel
    with pytest.raises(ValueError, match="stepsize"):
        jl.GradientDescent(P.logistic_fun, stepsize=float("nan"))
