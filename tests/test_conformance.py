"""Shared engineering checks, run over every entry of ``tests/registry.py``.

Every solver and transform entry goes through the cheap checks in the default suite, on
small problems: one compiled program serves several checks (a ``vmap`` over problems and
a numeric option with a non-finite lane gives the per-lane status, the agreement with
single runs and the no-retrace check together). The expensive variants (Rosenbrock, the
pytree form, bfloat16/float64 transform runs, ``optax.chain``/``inject_hyperparams``
interop, the SciPy wrappers' derivative checks) run with ``-m slow``.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from tests import problems as P
from tests.registry import SOLVERS, TRANSFORMS, extra_args

solver_ids = [e.name for e in SOLVERS]
transform_ids = [e.name for e in TRANSFORMS]
slow = pytest.mark.slow


def _params(entries, slow_if=lambda e: False):
    return [pytest.param(e, id=e.name, marks=slow if slow_if(e) else ()) for e in entries]


# ----------------------------------------------------------------------------- solvers


def _quad_with_arg(d=6, cond=10.0):
    fun, x0, _ = P.quadratic(d, cond)
    Q = jax.hessian(fun)(x0)
    f = lambda x, c: 0.5 * x @ (Q @ x) - c @ x
    return f, x0, Q


def _close_runs(entry, a, b, params_b=None, rtol=1e-7, atol=1e-9, what=""):
    """``a`` and ``b`` agree: to rounding with the same iteration count and status, or (line-search
    decisions amplifying rounding: ``exact_replay=False``) at the solution accuracy."""
    pb = b.params if params_b is None else params_b
    if not entry.exact_replay:
        np.testing.assert_allclose(a.params, pb, atol=entry.accuracy, err_msg=what)
        return
    np.testing.assert_allclose(a.params, pb, rtol=rtol, atol=atol, err_msg=what)
    assert int(a.state.iter_num) == int(b.state.iter_num), what
    assert int(a.state.status) == int(b.state.status), what


def _lane(out, i):
    """Lane ``i`` of a batched ``OptStep`` (params and the state fields the checks read)."""
    state = types.SimpleNamespace(iter_num=out.state.iter_num[i], status=out.state.status[i])
    return types.SimpleNamespace(params=out.params[i], state=state)


@pytest.mark.parametrize("entry", [e for e in SOLVERS if e.jittable], ids=lambda e: e.name)
def test_solver_vmap_status_per_lane_and_no_retrace(entry):
    """One ``vmap`` over (problem data, numeric option) with a NaN lane, against single runs
    through the solver's own ``jit``: the second value of the numeric option must not retrace,
    each lane equals its single run, the NaN lane alone reports NONFINITE (with a finite
    iterate), and the other lanes converge to ``Q^{-1} c``."""
    f, x0, Q = _quad_with_arg()
    traces = []

    def counted(x, c):
        traces.append(1)
        return f(x, c)

    v1, v2 = entry.numeric_values
    c1, c2 = jnp.asarray(np.random.default_rng(1).standard_normal((2, 6)))
    make = lambda fun, v: entry.make(fun, **{**entry.options, entry.numeric_option: v})
    single1 = make(counted, v1).run(x0, c1)
    n = len(traces)
    single2 = make(counted, v2).run(x0, c2)
    assert len(traces) == n, "changing a numeric option recompiled the solve"
    for single, c in ((single1, c1), (single2, c2)):
        assert int(single.state.status) == jl.Status.CONVERGED, jl.status_name(int(single.state.status))
        np.testing.assert_allclose(single.params, jnp.linalg.solve(Q, c), atol=entry.accuracy)

    cs = jnp.stack([c1, c2, c1.at[0].set(jnp.nan)])
    vs = jnp.asarray([v1, v2, v1])
    batched = jax.vmap(lambda c, v: make(f, v).run(x0, c))(cs, vs)
    _close_runs(entry, _lane(batched, 0), single1, what="lane 0 vs its single run")
    _close_runs(entry, _lane(batched, 1), single2, what="lane 1 (other numeric value) vs its single run")
    assert int(batched.state.status[2]) == jl.Status.NONFINITE
    assert bool(jnp.all(jnp.isfinite(batched.params[2]))), "last finite iterate is returned"


@pytest.mark.parametrize("maxiter", [2, pytest.param(30, marks=slow)])
@pytest.mark.parametrize("entry", SOLVERS, ids=solver_ids)
def test_solver_jit_and_python_loop_agree(entry, maxiter):
    fun, x0, _ = P.quadratic(5, cond=5.0)
    opts = {**entry.options, "maxiter": maxiter}
    a = entry.make(fun, **opts, jit=True).run(x0)
    b = entry.make(fun, **opts, jit=False).run(x0)
    if not entry.exact_replay:
        np.testing.assert_allclose(a.params, b.params, atol=entry.accuracy)
        return
    np.testing.assert_allclose(a.params, b.params, rtol=1e-9, atol=1e-12)
    assert int(a.state.iter_num) == int(b.state.iter_num)
    assert int(a.state.status) == int(b.state.status)


@pytest.mark.parametrize("entry", [e for e in SOLVERS if not e.jittable], ids=lambda e: e.name)
def test_host_solver_no_retrace_when_numeric_option_changes(entry):
    fun, x0, x_star = P.quadratic(6)
    traces = []

    def counted(x):
        traces.append(1)
        return fun(x)

    v1, v2 = entry.numeric_values
    entry.make(counted, **{**entry.options, entry.numeric_option: v1}).run(x0)
    n = len(traces)
    out = entry.make(counted, **{**entry.options, entry.numeric_option: v2}).run(x0)
    assert len(traces) == n, "changing a numeric option recompiled the solve"
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, x_star, atol=entry.accuracy)


@pytest.mark.parametrize("entry", SOLVERS, ids=solver_ids)
def test_solver_keeps_float32(entry):
    """float32 params (x64 on): float32 result and state, no silent promotion, near the solution."""
    fun, x0, x_star = P.quadratic(6, cond=5.0, dtype=jnp.float32)
    opts = {**entry.options, "tol": 1e-4}
    out = entry.make(fun, **opts).run(x0)
    assert out.params.dtype == jnp.float32
    np.testing.assert_allclose(out.params, x_star, atol=max(1e-2, entry.accuracy))
    for leaf in jax.tree_util.tree_leaves(out.state):
        leaf = jnp.asarray(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32, (leaf.shape, leaf.dtype)


@pytest.mark.parametrize("entry", _params([e for e in SOLVERS if e.implicit_diff],
                                          slow_if=lambda e: not e.jittable))
def test_solver_implicit_derivatives_match_closed_form_and_fd(entry):
    """Ridge regression: ``dx*/dlam`` in forward and reverse mode against the closed form, and
    derivatives in the data ``b`` (a matrix argument) in reverse mode against forward mode."""
    A, b = P.ridge_data(n=12, d=4)
    A = A / np.sqrt(A.shape[0])  # keeps the Lipschitz constant near 1 for fixed steps
    x0 = jnp.zeros(A.shape[1])
    tight = max(1e-10, entry.tol_floor)  # SciPy's line searches stop above 1e-10 (see the registry)
    solver = entry.make(P.ridge_fun, **{**entry.options, "tol": tight, "maxiter": 20000})
    lam, eps = 1.5, 1e-4
    expected = P.ridge_solution_derivative(lam, A, b)
    fd = (P.ridge_solution(lam + eps, A, b) - P.ridge_solution(lam - eps, A, b)) / (2 * eps)
    np.testing.assert_allclose(fd, expected, atol=1e-7)
    v = jnp.asarray(np.random.default_rng(0).standard_normal(b.shape))
    w = jnp.asarray(np.random.default_rng(1).standard_normal(x0.shape))

    def sol(lam, b_):
        out = solver.run(x0, lam, A, b_)
        return out.params, out.state.status

    def derivatives(lam, b, v, w):
        # Forward mode in lam and in b from one linearization; reverse mode from one vjp.
        x, jvp_fun, status = jax.linearize(sol, lam, b, has_aux=True)
        vjp_fun = jax.vjp(sol, lam, b, has_aux=True)[1]
        return x, status, jvp_fun(1.0, jnp.zeros_like(b)), jvp_fun(0.0, v), vjp_fun(w)

    # One compiled program for every derivative (SciPy wrappers run on the host: eagerly).
    run = jax.jit(derivatives) if entry.jittable else derivatives
    x, status, jvp_lam, jvp_b, (g_lam, g_b) = run(lam, b, v, w)
    assert int(status) == jl.Status.CONVERGED
    tol = 10 * entry.accuracy
    np.testing.assert_allclose(x, P.ridge_solution(lam, A, b), atol=tol)
    np.testing.assert_allclose(jvp_lam, expected, atol=tol)
    np.testing.assert_allclose(g_lam, jnp.vdot(w, expected), atol=tol * float(jnp.sum(jnp.abs(w))))
    np.testing.assert_allclose(jnp.vdot(g_b, v), jnp.vdot(w, jvp_b), rtol=1e-5)


# Expensive variants: a harder problem, Rosenbrock, the pytree form.


@pytest.mark.slow
@pytest.mark.parametrize("entry", SOLVERS, ids=solver_ids)
def test_solver_converges_on_quadratic_in_jit(entry):
    fun, x0, x_star = P.quadratic(8, cond=20.0)
    solver = entry.make(fun, **(entry.cond20_options or entry.options))
    out = (jax.jit(solver.run) if entry.jittable else solver.run)(x0)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, x_star, atol=entry.accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [e for e in SOLVERS if e.rosenbrock], ids=lambda e: e.name)
def test_solver_converges_on_rosenbrock(entry):
    fun, x0, x_star = P.rosenbrock(4)
    solver = entry.make(fun, **{**entry.options, "maxiter": 2000})
    out = solver.run(x0)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, x_star, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [e for e in SOLVERS if e.pytree_params], ids=lambda e: e.name)
def test_solver_pytree_and_flat_agree(entry):
    fun, x0, x_star = P.quadratic(8, cond=10.0)
    flat = entry.make(fun, **entry.options).run(x0)
    tree = entry.make(P.tree_version(fun), **entry.options).run(P.to_tree(x0))
    np.testing.assert_allclose(P.from_tree(tree.params), flat.params, rtol=1e-6, atol=1e-8)


# -------------------------------------------------------------------------- transforms




def _train(opt, entry, fun, params, steps, key=None):
    key = jax.random.PRNGKey(0) if key is None else key
    state = opt.init(params)

    def step(carry, k):
        p, s = carry
        value, g = jax.value_and_grad(fun)(p)
        extra = extra_args(entry, fun, k, g)
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            extra.setdefault("value", value)
            u, s = opt.update(g, s, p, **extra)
        else:
            u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), value

    (p, _), values = jax.lax.scan(step, (params, state), jax.random.split(key, steps))
    return p, values


def _target(entry, dtype=jnp.float64):
    if entry.matrix_only:
        rng = np.random.default_rng(0)
        target = jnp.asarray(rng.standard_normal((6, 4)), dtype)
        fun = lambda w: 0.5 * jnp.sum((w - target) ** 2)
        return fun, jnp.zeros((6, 4), dtype), target
    fun, x0, x_star = P.quadratic(8, cond=5.0, dtype=dtype)
    return fun, x0, x_star


@pytest.mark.parametrize("entry", TRANSFORMS, ids=transform_ids)
def test_transform_converges_in_jitted_loop(entry):
    fun, x0, x_star = _target(entry)
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    p, values = jax.jit(lambda x: _train(opt, entry, fun, x, entry.steps))(x0)
    assert bool(jnp.all(jnp.isfinite(values)))
    if not entry.reaches_minimum:
        assert float(fun(p)) < float(values[0]) - 1e-3 * abs(float(values[0])), (fun(p), values[0])
        return
    rel = float(jnp.linalg.norm(p - x_star) / jnp.linalg.norm(x_star))
    assert rel < entry.accuracy, rel


@pytest.mark.parametrize("entry", TRANSFORMS, ids=transform_ids)
def test_transform_jit_matches_eager(entry):
    fun, x0, _ = _target(entry)
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(x0)
    g = jax.grad(fun)(x0)
    extra = extra_args(entry, fun, jax.random.PRNGKey(3), g)
    if isinstance(opt, optax.GradientTransformationExtraArgs):
        extra["value"] = fun(x0)
        upd = lambda g, s, p: opt.update(g, s, p, **extra)
    else:
        upd = opt.update
    u1, _ = upd(g, state, x0)
    u2, _ = jax.jit(upd)(g, state, x0)
    np.testing.assert_allclose(u1, u2, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("dtype", [pytest.param(jnp.bfloat16, marks=slow), jnp.float32,
                                   pytest.param(jnp.float64, marks=slow)],
                         ids=["bfloat16", "float32", "float64"])
@pytest.mark.parametrize("entry", TRANSFORMS, ids=transform_ids)
def test_transform_keeps_dtype(entry, dtype):
    if dtype == jnp.bfloat16 and not entry.keeps_bf16:
        pytest.skip("documented: this transform computes in float32 for bfloat16 inputs")
    fun, x0, _ = _target(entry, dtype)
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    p, _ = _train(opt, entry, lambda x: fun(x).astype(dtype), x0 + jnp.asarray(0.5, dtype), 3)
    assert p.dtype == dtype
    assert bool(jnp.all(jnp.isfinite(p.astype(jnp.float32))))


@pytest.mark.slow
@pytest.mark.parametrize("entry", TRANSFORMS, ids=transform_ids)
def test_transform_pytree_matches_flat(entry):
    if entry.matrix_only:
        fun, x0, _ = _target(entry)
        tree_fun = lambda t: fun(jnp.concatenate([t["a"], t["b"]["c"]]))
        to_tree = lambda x: {"a": x[:3], "b": {"c": x[3:]}}
        from_tree = lambda t: jnp.concatenate([t["a"], t["b"]["c"]])
    else:
        fun, x0, _ = _target(entry)
        tree_fun, to_tree, from_tree = P.tree_version(fun), P.to_tree, P.from_tree
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    flat, _ = _train(opt, entry, fun, x0, 10)
    tree, _ = _train(opt, entry, tree_fun, to_tree(x0), 10)
    if entry.matrix_only or entry.leafwise:
        # Per-leaf transforms: splitting changes the maths, so only check shapes and finiteness.
        assert from_tree(tree).shape == flat.shape
        assert bool(jnp.all(jnp.isfinite(from_tree(tree))))
    else:
        np.testing.assert_allclose(from_tree(tree), flat, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("entry", TRANSFORMS, ids=transform_ids)
def test_transform_inside_chain_and_inject_hyperparams(entry):
    fun, x0, x_star = _target(entry)
    chained = optax.chain(optax.clip_by_global_norm(1e6), entry.make(entry.learning_rate,
                                                                     **entry.kwargs))
    p_chain, _ = _train(chained, entry, fun, x0, 20)
    p_plain, _ = _train(entry.make(entry.learning_rate, **entry.kwargs), entry, fun, x0, 20)
    np.testing.assert_allclose(p_chain, p_plain, rtol=1e-6, atol=1e-9)
    injected = optax.inject_hyperparams(entry.make)(learning_rate=entry.learning_rate,
                                                    **entry.kwargs)
    p_inj, _ = _train(injected, entry, fun, x0, 20)
    np.testing.assert_allclose(p_inj, p_plain, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("entry", TRANSFORMS, ids=transform_ids)
def test_transform_vmap_over_learning_rate_and_no_retrace(entry):
    fun, x0, _ = _target(entry)
    traces = []

    def run(lr):
        traces.append(1)
        opt = entry.make(lr, **entry.kwargs)
        return _train(opt, entry, fun, x0, 10)[0]

    jitted = jax.jit(run)
    lrs = jnp.asarray([entry.learning_rate, 0.5 * entry.learning_rate])
    a = jitted(lrs[0])
    jitted(lrs[1])
    assert len(traces) == 1, "changing the learning rate retraced"
    batched = jax.vmap(run)(lrs)
    np.testing.assert_allclose(batched[0], a, rtol=1e-6, atol=1e-9)
