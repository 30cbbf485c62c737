"""Numerical robustness: dtypes, line-search termination, zero gradients and curvature.

- Every registry transform keeps each leaf's dtype in a mixed-dtype pytree
  (bfloat16 / float32 / float64 leaves side by side; bfloat16 only for entries with
  ``keeps_bf16``) and its floating state follows the documented rule "state defaults to
  the params' dtype" for float32 and float64 params.
- Every registry solver's state (initial and after ``run``) is in the params' dtype
  (float32 params, x64 enabled: no silent promotion to float64); the SciPy wrappers,
  which work in float64 on the host, cast their results and state back.
- The line searches stop within ``maxls`` evaluations on flat and on non-finite
  functions, and report failure rather than a NaN step.
- Zero gradients (a start at the minimizer, a flat function) and zero curvature (a
  linear function) give finite results and no false CONVERGED in LBFGS, BFGS,
  NonlinearCG and GradientDescent (zoom and backtracking searches), within ``maxiter``;
  every transform returns finite updates for all-zero gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from jaxopt_lab.solvers.linesearch import functions as _linesearch
from tests import problems as P
from tests.registry import SOLVERS, TRANSFORMS, extra_args, tiered

transform_ids = [e.name for e in TRANSFORMS]
solver_ids = [e.name for e in SOLVERS]


def _steps(entry, params, fun, grads_fn=None, steps=2):
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(params)
    grads_fn = jax.grad(fun) if grads_fn is None else grads_fn
    updates = None
    for k in range(steps):
        grads = grads_fn(params)
        extra = extra_args(entry, fun, jax.random.PRNGKey(k), grads)
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            updates, state = opt.update(grads, state, params, value=fun(params), **extra)
        else:
            updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, updates, state


def _params(entry, dtypes):
    rng = np.random.default_rng(0)
    shape = (4, 3) if entry.matrix_only else (5,)
    return {f"p{i}": jnp.asarray(rng.standard_normal(shape), d) for i, d in enumerate(dtypes)}


def _loss(params):
    return sum(jnp.sum((x.astype(jnp.float32) - 1.0) ** 2) for x in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
def test_transform_keeps_each_leaf_dtype_in_mixed_tree(entry):
    dtypes = ([jnp.bfloat16] if entry.keeps_bf16 else []) + [jnp.float32, jnp.float64]
    params = _params(entry, dtypes)
    out, updates, _ = _steps(entry, params, _loss)
    for k, d in zip(params, dtypes, strict=True):
        assert updates[k].dtype == d, (k, updates[k].dtype, d)
        assert out[k].dtype == d
        assert bool(jnp.all(jnp.isfinite(out[k].astype(jnp.float32))))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
def test_transform_state_follows_params_dtype(entry, dtype):
    params = _params(entry, [dtype])
    _, _, state = _steps(entry, params, _loss, steps=1)
    param_shapes = {x.shape for x in jax.tree_util.tree_leaves(params)}
    for leaf in jax.tree_util.tree_leaves(state):
        leaf = jnp.asarray(leaf)
        # Buffers shaped like a parameter (moments, previous gradients) hold its dtype.
        if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.shape in param_shapes:
            assert leaf.dtype == dtype, (leaf.shape, leaf.dtype)


@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
def test_transform_zero_gradients_give_finite_updates(entry):
    params = _params(entry, [jnp.float64])
    zeros = lambda p: jax.tree_util.tree_map(jnp.zeros_like, p)
    _, updates, _ = _steps(entry, params, lambda p: 0.0 * _loss(p), grads_fn=zeros, steps=3)
    for u in jax.tree_util.tree_leaves(updates):
        assert bool(jnp.all(jnp.isfinite(u))), entry.name


@pytest.mark.parametrize("entry", tiered(SOLVERS))
def test_solver_state_in_params_dtype(entry):
    """The initial state (solvers with ``init_state``) and the state returned by ``run``
    (every solver, the SciPy wrappers included, which work in float64 on the host) hold
    their floating fields in the params' dtype, and ``run`` returns float32 params."""
    fun, x0, _ = P.quadratic(4, cond=3.0, dtype=jnp.float32)
    solver = entry.make(fun, **entry.options)
    out = solver.run(x0)
    assert out.params.dtype == jnp.float32, (entry.name, out.params.dtype)
    states = [out.state]
    if entry.stepwise:
        states.append(solver.init_state(x0))
    else:
        with pytest.raises(AttributeError, match="run"):
            solver.init_state(x0)
    for state in states:
        for leaf in jax.tree_util.tree_leaves(state):
            leaf = jnp.asarray(leaf)
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                assert leaf.dtype == jnp.float32, (entry.name, leaf.shape, leaf.dtype)


# ------------------------------------------------------------------- line searches


def _vg(f):
    vg = jax.value_and_grad(f)
    return lambda x: (lambda r: ((r[0], None), r[1]))(vg(x))


FLAT = lambda x: jnp.asarray(3.0, x.dtype) + 0.0 * jnp.sum(x)
NAN_AWAY = lambda x: jnp.where(jnp.sum(jnp.abs(x)) > 0, jnp.nan, 0.0) + jnp.sum(x)
INF_AWAY = lambda x: jnp.where(jnp.sum(jnp.abs(x)) > 0, jnp.inf, 0.0) + jnp.sum(x)


@pytest.mark.parametrize("search", ["strong_wolfe", "backtracking"])
@pytest.mark.parametrize("case", ["flat", "nan", "inf"])
def test_line_search_terminates_on_flat_and_nonfinite(search, case):
    f = {"flat": FLAT, "nan": NAN_AWAY, "inf": INF_AWAY}[case]
    x = jnp.zeros(3)
    (value, _), grad = _vg(f)(x)
    direction = -jnp.ones(3)  # a descent direction for the non-finite cases (grad = 1)
    kw = dict(c1=1e-4, maxls=12)
    run = getattr(_linesearch, search)
    if search == "strong_wolfe":
        kw["c2"] = 0.9
    res = jax.jit(lambda x: run(_vg(f), x, value, grad, direction, 1.0, None, **kw))(x)
    assert int(res.num_evals) <= 12
    assert bool(jnp.all(jnp.isfinite(res.params)))
    assert bool(jnp.isfinite(res.value))
    if case != "flat":
        assert bool(res.failed), "no finite trial point: the search must report failure"


@pytest.mark.parametrize("entry", tiered(SOLVERS))
def test_solver_zero_gradient_start_converges_immediately(entry):
    fun, _, x_star = P.quadratic(4, cond=3.0)
    out = entry.make(fun, **entry.options).run(x_star)
    assert bool(jnp.all(jnp.isfinite(out.params)))
    np.testing.assert_allclose(out.params, x_star, atol=10 * entry.accuracy)
    assert int(out.state.status) == jl.Status.CONVERGED


@pytest.mark.parametrize("make", [
    lambda f: jl.LBFGS(f, maxiter=30, tol=1e-8),
    lambda f: jl.LBFGS(f, maxiter=30, tol=1e-8, linesearch="backtracking"),
    lambda f: jl.GradientDescent(f, maxiter=30, tol=1e-8),
    lambda f: jl.BFGS(f, maxiter=30, tol=1e-8),
    pytest.param(lambda f: jl.BFGS(f, maxiter=30, tol=1e-8, linesearch="backtracking"),
                 marks=pytest.mark.slow),
    lambda f: jl.NonlinearCG(f, maxiter=30, tol=1e-8),
    pytest.param(lambda f: jl.NonlinearCG(f, maxiter=30, tol=1e-8, linesearch="backtracking"),
                 marks=pytest.mark.slow),
], ids=["LBFGS", "LBFGS-backtracking", "GradientDescent", "BFGS", "BFGS-backtracking", "NonlinearCG",
        "NonlinearCG-backtracking"])
@pytest.mark.parametrize("case", ["linear", "nan_away", "flat"])
def test_line_search_solvers_on_degenerate_functions(make, case):
    """Zero curvature (linear), NaN off the start, and zero gradient everywhere."""
    f = {"linear": lambda x: jnp.sum(x), "nan_away": NAN_AWAY, "flat": FLAT}[case]
    out = make(f).run(jnp.zeros(3))
    status = int(out.state.status)
    assert bool(jnp.all(jnp.isfinite(out.params)))
    assert int(out.state.iter_num) <= 30
    if case == "flat":
        assert status == jl.Status.CONVERGED
    else:
        assert status != jl.Status.CONVERGED, jl.status_name(status)
