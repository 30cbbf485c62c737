"""jaxopt drop-in: constructor and ``run`` / ``init_state`` / ``update`` signatures against
jaxopt 0.8.5 (issue 17 items 1 and 2), checked programmatically over every shared class, and
jaxopt's keyword idioms run side by side."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import jaxopt
import numpy as np
import optax
import pytest

import jaxopt_lab as jl

SHARED = sorted(n for n in dir(jaxopt) if inspect.isclass(getattr(jaxopt, n)) and hasattr(jl, n)
                and n != "OptStep")

# Intended differences in the constructor, with their reason.
CONSTRUCTOR_DIFFERENCES = {
    # jaxopt's OSQP takes keywords only (**kwargs); ours also takes jaxopt's documented
    # order (matvec_Q, matvec_A, matvec_G, fun) positionally.
    "OSQP": "positional accepted where jaxopt takes keywords only",
}


def _positional(sig):
    return [p for p, v in sig.parameters.items() if v.kind == v.POSITIONAL_OR_KEYWORD]


def test_every_jaxopt_class_is_here():
    missing = [n for n in dir(jaxopt) if inspect.isclass(getattr(jaxopt, n)) and not hasattr(jl, n)]
    assert missing == []
    assert len(SHARED) >= 33


@pytest.mark.parametrize("name", SHARED)
def test_constructor_positional_order_is_jaxopts(name):
    theirs = inspect.signature(getattr(jaxopt, name))
    ours = inspect.signature(getattr(jl, name))
    if name in CONSTRUCTOR_DIFFERENCES:
        assert [p for p in theirs.parameters if p != "kwargs"] == _positional(ours)
        return
    assert _positional(ours) == _positional(theirs)
    # Every jaxopt keyword is accepted.
    assert set(theirs.parameters) <= set(ours.parameters)


def _quad(x, a=1.0):
    return jnp.sum((x - a) ** 2)


def test_positional_construction_matches_keywords():
    s = jl.OptaxSolver(_quad, optax.sgd(0.1), False, None, 50)
    assert s.fun is _quad and s.maxiter == 50 and s.value_and_grad is False
    np.testing.assert_allclose(s.run(jnp.zeros(2)).params,
                               jl.OptaxSolver(fun=_quad, opt=optax.sgd(0.1), maxiter=50).run(jnp.zeros(2))
                               .params)
    gd = jl.GradientDescent(_quad, None, False, False, 0.1, 20)
    assert gd.stepsize == 0.1 and gd.maxiter == 20
    lb = jl.LBFGS(_quad, False, False, 30, 1e-5)
    assert (lb.maxiter, lb.tol) == (30, 1e-5)
    ls = jl.BacktrackingLineSearch(_quad, False, False, 20, 0.0, "armijo")
    assert ls.condition == "armijo" and ls.maxiter == 20
    sm = jl.ScipyMinimize("L-BFGS-B", None, True, None, False, _quad)
    assert sm.method == "L-BFGS-B" and sm.fun is _quad


def test_positional_errors_are_clear():
    with pytest.raises(TypeError, match="multiple values for argument 'fun'"):
        jl.OptaxSolver(_quad, optax.sgd(0.1), fun=_quad)
    with pytest.raises(TypeError, match="at most 11 positional"):
        jl.Bisection(*range(12))
    with pytest.raises(TypeError, match="no option 'prox'"):
        jl.GradientDescent(_quad, lambda x, h, s=1.0: x)
    # jaxopt's GradientDescent(fun, prox=None): accepted, as jaxopt's default.
    assert jl.GradientDescent(_quad, prox=None).fun is _quad


def test_keyword_use_unchanged():
    s = jl.OptaxSolver(opt=optax.sgd(0.1), fun=_quad, maxiter=7)
    assert s.maxiter == 7
    assert jl.LBFGS(fun=_quad, history_size=3).history_size == 3


# ----------------------------------------------------------------------------- run / init_state / update

# Intended differences in run / init_state / update, with their reason.
METHOD_DIFFERENCES = {
    # The line-search classes expose run only; their step is one fused batched search.
    ("BacktrackingLineSearch", "init_state"), ("BacktrackingLineSearch", "update"),
    ("ZoomLineSearch", "init_state"), ("ZoomLineSearch", "update"),
    ("HagerZhangLineSearch", "init_state"), ("HagerZhangLineSearch", "update"),
    # jaxopt's EqualityConstrainedQP / OSQP have no init_state / update (one-shot or
    # wrapper); ours have them with run's arguments.
    ("EqualityConstrainedQP", "init_state"), ("EqualityConstrainedQP", "update"),
    ("OSQP", "init_state"), ("OSQP", "update"),
}


def _names(fn):
    out = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        out.append({p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name)
    return out


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("method", ["run", "init_state", "update"])
def test_method_signature_is_jaxopts(name, method):
    theirs = getattr(getattr(jaxopt, name), method, None)
    ours = getattr(getattr(jl, name), method, None)
    if (name, method) in METHOD_DIFFERENCES:
        return
    if theirs is None:
        assert ours is None or name in ("BoxOSQP",)
        return
    assert ours is not None, f"{name}.{method} missing"
    t, o = _names(theirs), _names(ours)
    # Same leading named parameters in the same order; *args / **kwargs where jaxopt has them.
    lead_t = [p for p in t if not p.startswith("*")]
    assert o[:len(lead_t)] == lead_t, (t, o)
    for var in ("*args", "**kwargs"):
        if var in t:
            assert any(p.startswith(var[:2] if var.startswith("**") else "*") for p in o), (t, o)


# ----------------------------------------------------------------------------- keyword idioms side by side

def _lasso_data():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(30, 8)), jnp.float32)
    y = jnp.asarray(X @ rng.normal(size=8) + 0.1 * rng.normal(size=30), jnp.float32)
    return X, y


def _ls(w, data):
    X, y = data
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def _both(name, ctor_kwargs, *run_args, **run_kwargs):
    outs = []
    for lib in (jaxopt, jl):
        solver = getattr(lib, name)(**ctor_kwargs(lib))
        outs.append(solver.run(*run_args, **run_kwargs).params)
    return outs


def test_run_keywords_proximal_gradient():
    data = _lasso_data()
    theirs, ours = _both("ProximalGradient", lambda lib: dict(fun=_ls, prox=lib.prox.prox_lasso, tol=1e-6,
                                                              maxiter=2000),
                         init_params=jnp.zeros(8), hyperparams_prox=0.05, data=data)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_run_keywords_projected_gradient_and_mirror_descent():
    data = _lasso_data()
    theirs, ours = _both("ProjectedGradient",
                         lambda lib: dict(fun=_ls, projection=lib.projection.projection_non_negative,
                                          tol=1e-6, maxiter=2000),
                         init_params=jnp.zeros(8), hyperparams_proj=None, data=data)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    theirs, ours = _both("ProjectedGradient",
                         lambda lib: dict(fun=_ls, projection=lib.projection.projection_simplex, tol=1e-6,
                                          maxiter=2000),
                         init_params=jnp.ones(8) / 8, hyperparams_proj=1.0, data=data)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_run_keywords_block_cd():
    data = _lasso_data()
    theirs, ours = _both("BlockCoordinateDescent",
                         lambda lib: dict(fun=lib.objective.least_squares, block_prox=lib.prox.prox_lasso,
                                          tol=1e-6, maxiter=500),
                         init_params=jnp.zeros(8), hyperparams_prox=0.05, data=data)
    # Reference: jaxopt's ProximalGradient run to a tight tolerance. jaxopt's
    # BlockCoordinateDescent stops at maxiter here about 1e-2 away; ours converges.
    ref = jaxopt.ProximalGradient(fun=jaxopt.objective.least_squares, prox=jaxopt.prox.prox_lasso,
                                  tol=1e-10, maxiter=5000).run(jnp.zeros(8), 0.05, data=data).params
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert np.max(np.abs(ours - ref)) <= np.max(np.abs(theirs - ref))


def test_run_keywords_smooth_solvers_init_params():
    data = _lasso_data()
    for name in ("GradientDescent", "LBFGS", "BFGS", "NonlinearCG"):
        theirs, ours = _both(name, lambda lib: dict(fun=_ls, tol=1e-6, maxiter=500),
                             init_params=jnp.zeros(8), data=data)
        np.testing.assert_allclose(ours, theirs, atol=1e-3, err_msg=name)
        state = jl.__dict__[name](fun=_ls).init_state(init_params=jnp.zeros(8), data=data)
        assert int(state.iter_num) == 0


def test_run_keywords_lbfgsb_bounds_none_is_unbounded():
    data = _lasso_data()
    theirs, ours = _both("LBFGSB", lambda lib: dict(fun=_ls, tol=1e-6, maxiter=500),
                         init_params=jnp.zeros(8), bounds=None, data=data)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    X, y = data
    w_ls = np.linalg.lstsq(np.asarray(X), np.asarray(y), rcond=None)[0]
    np.testing.assert_allclose(ours, w_ls, atol=1e-3)
    # positional None too
    out = jl.LBFGSB(fun=_ls, tol=1e-6).run(jnp.zeros(8), None, data)
    np.testing.assert_allclose(out.params, w_ls, atol=1e-3)


def test_run_keywords_qp():
    Q = 2 * jnp.array([[2.0, 0.5], [0.5, 1.0]])
    c = jnp.array([1.0, 1.0])
    A = jnp.array([[1.0, 1.0]])
    b = jnp.array([1.0])
    G = jnp.array([[-1.0, 0.0], [0.0, -1.0]])
    h = jnp.array([0.0, 0.0])
    ours = jl.OSQP(tol=1e-6).run(init_params=None, params_obj=(Q, c), params_eq=(A, b),
                                 params_ineq=(G, h)).params
    theirs = jaxopt.OSQP(tol=1e-6).run(init_params=None, params_obj=(Q, c), params_eq=(A, b),
                                      params_ineq=(G, h)).params
    np.testing.assert_allclose(ours.primal, theirs.primal, atol=1e-3)
    np.testing.assert_allclose(ours.primal, [0.25, 0.75], atol=1e-3)
    ours = jl.EqualityConstrainedQP().run(params_obj=(Q, c), params_eq=(A, b)).params
    theirs = jaxopt.EqualityConstrainedQP().run(params_obj=(Q, c), params_eq=(A, b)).params
    np.testing.assert_allclose(ours.primal, theirs.primal, atol=1e-4)
    l, u = jnp.zeros(2), jnp.ones(2) * 0.2
    ours = jl.BoxCDQP(tol=1e-6).run(init_params=jnp.zeros(2), params_obj=(Q, -c), params_ineq=(l, u)).params
    theirs = jaxopt.BoxCDQP(tol=1e-6).run(init_params=jnp.zeros(2), params_obj=(Q, -c),
                                         params_ineq=(l, u)).params
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_run_keywords_scipy_bounded():
    data = _lasso_data()
    bounds = (jnp.zeros(8), jnp.ones(8))
    theirs, ours = _both("ScipyBoundedMinimize", lambda lib: dict(fun=_ls, method="L-BFGS-B", tol=1e-8),
                         init_params=jnp.zeros(8), bounds=bounds, data=data)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
