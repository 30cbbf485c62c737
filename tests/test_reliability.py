"""Reliability fixes checked directly (fast): option checks shared by every solver, the
SciPy wrappers' state dtype and their non-finite-data status.

The property tests (``tests/test_properties.py``) sample these cases; here each is pinned.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as sopt

import jaxopt_lab as jl
from jaxopt_lab import base

_f = lambda x: jnp.sum((x - 1.0) ** 2)


@pytest.mark.parametrize("cls,name,value", [
    (jl.BFGS, "decrease_factor", -1.0), (jl.NonlinearCG, "max_stepsize", -1.0),
    (jl.LBFGSB, "c1", -1.0), (jl.LBFGSB, "c2", float("nan")), (jl.LBFGSB, "stepsize", float("nan")),
    (jl.GradientDescent, "stepsize", float("nan")), (jl.LBFGS, "stepsize", float("nan")),
    (jl.LBFGS, "tol", float("nan")),
])
def test_standard_options_rejected_naming_them(cls, name, value):
    with pytest.raises(ValueError, match=f"`{name}`"):
        cls(_f, **{name: value})


def test_standard_options_accept_sentinels_and_traced_values():
    jl.LBFGSB(_f, stepsize=0.0)  # 0 selects the line search
    jl.GradientDescent(_f, stepsize=0.0)
    # Traced options are not inspected (a sweep over step sizes builds solvers under vmap).
    values = jax.vmap(lambda s: jl.GradientDescent(_f, stepsize=s, maxiter=50).run(jnp.zeros(2)).params)(
        jnp.asarray([0.1, 0.2]))
    np.testing.assert_allclose(values, 1.0, atol=1e-3)


def test_check_standard_options_direct():
    @dataclasses.dataclass
    class S:
        stepsize: float = 0.0
        c1: float = 1e-4
        other: float = 2.0

    base.check_standard_options(S())
    with pytest.raises(ValueError, match="`other`"):
        base.check_standard_options(S(other=float("nan")))
    with pytest.raises(ValueError, match="`c1`"):
        base.check_standard_options(S(c1=0.0))


def _ls_problem():
    A = jnp.asarray([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]])
    return lambda x, b: A @ x - b, A


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_least_squares_nonfinite_data_gives_nonfinite_status(bounded, bad):
    res, _ = _ls_problem()
    b = jnp.asarray([1.0, bad, 2.0])
    x0 = jnp.asarray([0.5, -0.5])
    if bounded:
        out = jl.ScipyBoundedLeastSquares(fun=res).run(x0, (-10.0, 10.0), b)
    else:
        out = jl.ScipyLeastSquares(fun=res).run(x0, b)
    assert int(out.state.status) == jl.Status.NONFINITE
    assert not bool(out.state.success)
    np.testing.assert_array_equal(out.params, x0)  # the start is returned, no NaN params


def test_least_squares_finite_data_still_matches_lstsq():
    res, A = _ls_problem()
    b = jnp.asarray([1.0, -1.0, 2.0])
    out = jl.ScipyLeastSquares(fun=res).run(jnp.zeros(2), b)
    np.testing.assert_allclose(out.params, np.linalg.lstsq(np.asarray(A), np.asarray(b), rcond=None)[0],
                               rtol=1e-6)
    assert int(out.state.status) == jl.Status.CONVERGED


def test_scipy_minimize_state_in_float32_matches_scipy():
    Q = np.asarray([[3.0, 1.0], [1.0, 2.0]])
    f = lambda x: 0.5 * x @ (jnp.asarray(Q, x.dtype) @ x) - jnp.sum(x)
    x0 = jnp.zeros(2, jnp.float32)
    out = jl.ScipyMinimize(fun=f, method="BFGS", tol=1e-8).run(x0)
    ref = sopt.minimize(lambda x: 0.5 * x @ Q @ x - x.sum(), np.zeros(2), jac=lambda x: Q @ x - 1.0,
                        method="BFGS", tol=1e-8)
    assert out.params.dtype == jnp.float32
    for name in ("value", "fun_val", "error", "hess_inv"):
        assert getattr(out.state, name).dtype == jnp.float32, name
    np.testing.assert_allclose(out.params, ref.x, rtol=1e-5)
    np.testing.assert_allclose(float(out.state.value), ref.fun, rtol=1e-5)
    np.testing.assert_allclose(out.state.hess_inv, np.linalg.inv(Q), atol=0.05)


def test_scipy_wrappers_have_no_stepwise_api():
    solver = jl.ScipyMinimize(fun=_f)
    assert not hasattr(solver, "init_state") and not hasattr(solver, "update")
    with pytest.raises(AttributeError, match="run"):
        solver.init_state(jnp.zeros(2))
    with pytest.raises(AttributeError, match="run"):
        solver.update(jnp.zeros(2), None)
