"""Shared engineering checks, run over every entry of ``tests/registry.py``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from tests import problems as P
from tests.registry import SOLVERS, TRANSFORMS, extra_args, tiered

solver_ids = [e.name for e in SOLVERS]
transform_ids = [e.name for e in TRANSFORMS]


# ----------------------------------------------------------------------------- solvers


def _quad_with_arg(d=6, cond=10.0):
    fun, x0, _ = P.quadratic(d, cond)
    Q = jax.hessian(fun)(x0)
    f = lambda x, c: 0.5 * x @ (Q @ x) - c @ x
    return f, x0, Q


@pytest.mark.parametrize("entry", SOLVERS, ids=solver_ids)
def test_solver_converges_on_quadratic_in_jit(entry):
    fun, x0, x_star = P.quadratic(8, cond=20.0)
    solver = entry.make(fun, **entry.options)
    out = (jax.jit(solver.run) if entry.jittable else solver.run)(x0)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, x_star, atol=entry.accuracy)


@pytest.mark.parametrize("entry", tiered([e for e in SOLVERS if e.rosenbrock]))
def test_solver_converges_on_rosenbrock(entry):
    fun, x0, x_star = P.rosenbrock(4)
    solver = entry.make(fun, **{**entry.options, "maxiter": 2000})
    out = solver.run(x0)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, x_star, atol=1e-4)


@pytest.mark.parametrize("entry", tiered(SOLVERS))
def test_solver_jit_and_python_loop_agree(entry):
    fun, x0, _ = P.quadratic(5, cond=5.0)
    opts = {**entry.options, "maxiter": 30}
    a = entry.make(fun, **opts, jit=True).run(x0)
    b = entry.make(fun, **opts, jit=False).run(x0)
    if not entry.exact_replay:
        np.testing.assert_allclose(a.params, b.params, atol=entry.accuracy)
        return
    np.testing.assert_allclose(a.params, b.params, rtol=1e-9, atol=1e-12)
    assert int(a.state.iter_num) == int(b.state.iter_num)
    assert int(a.state.status) == int(b.state.status)


@pytest.mark.parametrize("entry", tiered([e for e in SOLVERS if e.jittable]))
def test_solver_vmap_over_problems_matches_loop(entry):
    f, x0, Q = _quad_with_arg()
    cs = jnp.asarray(np.random.default_rng(1).standard_normal((4, 6)))
    solver = entry.make(f, **entry.options)
    batched = jax.vmap(lambda c: solver.run(x0, c))(cs)
    for i in range(cs.shape[0]):
        single = solver.run(x0, cs[i])
        if not entry.exact_replay:
            np.testing.assert_allclose(batched.params[i], single.params, atol=entry.accuracy)
            assert int(batched.state.status[i]) == int(single.state.status)
            continue
        np.testing.assert_allclose(batched.params[i], single.params, rtol=1e-7, atol=1e-9)
        assert int(batched.state.iter_num[i]) == int(single.state.iter_num)
        assert int(batched.state.status[i]) == int(single.state.status)


@pytest.mark.parametrize("entry", [e for e in SOLVERS if e.jittable], ids=lambda e: e.name)
def test_solver_status_is_per_instance_under_vmap(entry):
    f, x0, Q = _quad_with_arg()
    c = jnp.ones(6)
    cs = jnp.stack([c, c.at[0].set(jnp.nan)])
    out = jax.vmap(lambda c: entry.make(f, **entry.options).run(x0, c))(cs)
    assert int(out.state.status[0]) == jl.Status.CONVERGED
    assert int(out.state.status[1]) == jl.Status.NONFINITE
    np.testing.assert_allclose(out.params[0], jnp.linalg.solve(Q, c), atol=entry.accuracy)
    assert bool(jnp.all(jnp.isfinite(out.params[1]))), "last finite iterate is returned"


@pytest.mark.parametrize("entry", tiered([e for e in SOLVERS if e.jittable]))
def test_solver_vmap_over_numeric_hyperparameter(entry):
    fun, x0, _ = P.quadratic(6, cond=10.0)
    values = jnp.asarray(entry.numeric_values)

    def solve(v):
        return entry.make(fun, **{**entry.options, entry.numeric_option: v}).run(x0)

    batched = jax.vmap(solve)(values)
    for i, v in enumerate(entry.numeric_values):
        single = entry.make(fun, **{**entry.options, entry.numeric_option: v}).run(x0)
        np.testing.assert_allclose(batched.params[i], single.params, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("entry", tiered(SOLVERS))
def test_solver_no_retrace_when_numeric_option_changes(entry):
    fun, x0, _ = P.quadratic(6)
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


@pytest.mark.parametrize("entry", tiered([e for e in SOLVERS if e.pytree_params]))
def test_solver_pytree_and_flat_agree(entry):
    fun, x0, x_star = P.quadratic(8, cond=10.0)
    flat = entry.make(fun, **entry.options).run(x0)
    tree = entry.make(P.tree_version(fun), **entry.options).run(P.to_tree(x0))
    np.testing.assert_allclose(P.from_tree(tree.params), flat.params, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("entry", tiered(SOLVERS))
def test_solver_keeps_float32(entry):
    fun, x0, x_star = P.quadratic(6, cond=5.0, dtype=jnp.float32)
    opts = {**entry.options, "tol": 1e-4}
    out = entry.make(fun, **opts).run(x0)
    assert out.params.dtype == jnp.float32
    np.testing.assert_allclose(out.params, x_star, atol=max(1e-2, entry.accuracy))


@pytest.mark.parametrize("entry", tiered([e for e in SOLVERS if e.implicit_diff]))
def test_solver_implicit_derivatives_match_closed_form_and_fd(entry):
    A, b = P.ridge_data()
    A = A / np.sqrt(A.shape[0])  # keeps the Lipschitz constant near 1 for fixed steps
    x0 = jnp.zeros(A.shape[1])
    tight = max(1e-10, entry.tol_floor)  # SciPy's line searches stop above 1e-10 (see the registry)
    solver = entry.make(P.ridge_fun, **{**entry.options, "tol": tight, "maxiter": 20000})
    sol = lambda lam: solver.run(x0, lam, A, b).params
    lam, eps = 1.5, 1e-4
    expected = P.ridge_solution_derivative(lam, A, b)
    fd = (P.ridge_solution(lam + eps, A, b) - P.ridge_solution(lam - eps, A, b)) / (2 * eps)
    jvp = jax.jvp(sol, (lam,), (1.0,))[1]
    jac_rev = jax.jacrev(sol)(lam)
    assert int(solver.run(x0, lam, A, b).state.status) == jl.Status.CONVERGED
    tol = 10 * entry.accuracy
    np.testing.assert_allclose(jvp, expected, atol=tol)
    np.testing.assert_allclose(jac_rev, expected, atol=tol)
    np.testing.assert_allclose(fd, expected, atol=1e-7)
    # Derivatives with respect to the data (a matrix argument), reverse vs forward.
    loss = lambda b_: jnp.sum(solver.run(x0, lam, A, b_).params ** 2)
    g = jax.grad(loss)(b)
    v = jnp.asarray(np.random.default_rng(0).standard_normal(b.shape))
    np.testing.assert_allclose(jnp.vdot(g, v), jax.jvp(loss, (b,), (v,))[1], rtol=1e-5)


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


@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
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


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32, jnp.float64])
@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
def test_transform_keeps_dtype(entry, dtype):
    if dtype == jnp.bfloat16 and not entry.keeps_bf16:
        pytest.skip("documented: this transform computes in float32 for bfloat16 inputs")
    fun, x0, _ = _target(entry, dtype)
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    p, _ = _train(opt, entry, lambda x: fun(x).astype(dtype), x0 + jnp.asarray(0.5, dtype), 3)
    assert p.dtype == dtype
    assert bool(jnp.all(jnp.isfinite(p.astype(jnp.float32))))


@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
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


@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
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


@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
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
