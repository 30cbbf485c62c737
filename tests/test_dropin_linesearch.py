"""jaxopt drop-in: line-search classes and ``linesearch=<instance>`` against jaxopt 0.8.5
(issue 17 item 4)."""

from __future__ import annotations

import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest

import jaxopt_lab as jl


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _quartic(x):
    return jnp.sum((x - 1.0) ** 2) + jnp.sum(x ** 4)


def _logreg(w, X, y):
    return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w))) + 0.05 * jnp.sum(w ** 2)


_RNG = np.random.default_rng(0)
_X = jnp.asarray(_RNG.normal(size=(20, 5)), jnp.float32)
_Y = jnp.asarray(np.sign(_RNG.normal(size=20)), jnp.float32)

PROBLEMS = {
    "rosenbrock": (_rosenbrock, jnp.asarray([-1.2, 1.0, -0.5]), ()),
    "quartic": (_quartic, jnp.zeros(4), ()),
    "logreg": (_logreg, jnp.zeros(5), (_X, _Y)),
}


@pytest.mark.parametrize("condition", ["armijo", "goldstein", "wolfe", "strong-wolfe"])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("init_stepsize", [1.0, 0.05])
def test_backtracking_stepsize_matches_jaxopt(condition, problem, init_stepsize):
    fun, x0, args = PROBLEMS[problem]
    kw = dict(condition=condition, maxiter=30)
    ours = jl.BacktrackingLineSearch(fun=fun, **kw).run(init_stepsize, x0, fun_args=list(args))
    theirs = jaxopt.BacktrackingLineSearch(fun=fun, **kw).run(init_stepsize, x0, fun_args=list(args))
    np.testing.assert_allclose(ours.stepsize, theirs.stepsize, rtol=1e-5)
    np.testing.assert_allclose(ours.state.params, theirs.state.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.state.value, theirs.state.value, rtol=1e-5)
    assert bool(ours.state.failed) == bool(theirs.state.failed)


def test_goldstein_rejects_too_small_steps():
    # On the quartic from 0, f(x - t g) - f(x) = -16 t + 16 t^2 + O(t^4): with c1 = 0.45
    # Goldstein's lower bound needs t >= c1 roughly, so t = 1e-3 and smaller fail while
    # Armijo accepts t = 1e-3.
    fun, x0, _ = PROBLEMS["quartic"]
    armijo = jl.BacktrackingLineSearch(fun=fun, condition="armijo", c1=0.45).run(1e-3, x0)
    gold = jl.BacktrackingLineSearch(fun=fun, condition="goldstein", c1=0.45, maxiter=5).run(1e-3, x0)
    ref = jaxopt.BacktrackingLineSearch(fun=fun, condition="goldstein", c1=0.45, maxiter=5).run(1e-3, x0)
    assert not bool(armijo.state.failed)
    assert bool(gold.state.failed) and bool(ref.state.failed)
    with pytest.raises(ValueError, match="condition"):
        jl.BacktrackingLineSearch(fun=fun, condition="bogus")


@pytest.mark.parametrize("cls", ["ZoomLineSearch", "HagerZhangLineSearch"])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_wolfe_searches_accept_a_wolfe_step(cls, problem):
    # Zoom / Hager-Zhang interpolate: our step may differ from jaxopt's (documented in
    # docs/migration.md); like jaxopt's it must succeed and meet sufficient decrease.
    fun, x0, args = PROBLEMS[problem]
    search = getattr(jl, cls)(fun=fun)
    ours = search.run(1.0, x0, fun_args=list(args))
    theirs = getattr(jaxopt, cls)(fun=fun).run(1.0, x0, fun_args=list(args))
    f0 = float(fun(x0, *args))
    g0 = jl.LBFGS(fun=fun).optimality_fun(x0, *args)
    slope = -float(jnp.vdot(g0, g0))
    assert not bool(ours.state.failed) and not bool(theirs.state.failed)
    assert float(ours.state.value) <= f0 + search.c1 * float(ours.stepsize) * slope + 1e-6


def test_init_state_update_signatures_and_values():
    fun, x0, _ = PROBLEMS["rosenbrock"]
    ls = jl.BacktrackingLineSearch(fun=fun, condition="armijo")
    state = ls.init_state(init_stepsize=1.0, params=x0)
    assert int(state.iter_num) == 0
    out = ls.update(stepsize=1.0, state=state, params=x0)
    ref = jaxopt.BacktrackingLineSearch(fun=fun, condition="armijo").run(1.0, x0)
    np.testing.assert_allclose(out.stepsize, ref.stepsize, rtol=1e-5)
    assert out.params is out.stepsize  # OptStep-style access kept


@pytest.mark.parametrize("solver", ["LBFGS", "BFGS", "NonlinearCG"])
@pytest.mark.parametrize("ls", ["BacktrackingLineSearch", "ZoomLineSearch", "HagerZhangLineSearch"])
def test_linesearch_instance_in_solvers(solver, ls):
    fun, x0, args = PROBLEMS["logreg"]
    kw = {"condition": "armijo"} if ls == "BacktrackingLineSearch" else {}
    ours = getattr(jl, solver)(fun=fun, linesearch=getattr(jl, ls)(fun=fun, **kw), tol=1e-5,
                               maxiter=200).run(x0, *args)
    theirs = getattr(jaxopt, solver)(fun=fun, linesearch=getattr(jaxopt, ls)(fun=fun, **kw), tol=1e-5,
                                     maxiter=200).run(x0, *args)
    np.testing.assert_allclose(ours.params, theirs.params, atol=2e-3)
    assert float(jnp.linalg.norm(jl.LBFGS(fun=fun).optimality_fun(ours.params, *args))) <= 1e-4
