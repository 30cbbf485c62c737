"""The registry cannot fall behind the public API, and the entries with their own
contracts (QP solvers, line searches, scalar roots, estimators, curvature oracles,
bilevel algorithms and hypergradients) pass their shared checks."""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from tests import problems as P
from tests.registry import (
    BILEVEL,
    ESTIMATORS,
    HYPERGRADIENTS,
    LINE_SEARCHES,
    NOT_ALGORITHMS,
    ORACLES,
    QP_SOLVERS,
    SCALAR_ROOTS,
    covered_names,
)

ALGORITHM_PACKAGES = ["solvers", "transforms", "zeroth_order", "curvature", "bilevel"]


def _public(module_name):
    mod = importlib.import_module(f"jaxopt_lab.{module_name}")
    return {n: getattr(mod, n) for n in mod.__all__}


@pytest.mark.parametrize("package", ALGORITHM_PACKAGES)
def test_every_public_algorithm_has_a_registry_entry(package):
    covered = covered_names()
    missing = sorted(n for n in _public(package) if n not in covered and n not in NOT_ALGORITHMS)
    assert not missing, (
        f"jaxopt_lab.{package} exports {missing} with no entry in tests/registry.py. Add an entry "
        "(SOLVERS, TRANSFORMS, QP_SOLVERS, LINE_SEARCHES, SCALAR_ROOTS, ESTIMATORS, ORACLES, BILEVEL or "
        "HYPERGRADIENTS; set `covers=` when `make` is a lambda), or, if it is not an algorithm (a state, "
        "a type, a helper), a line in NOT_ALGORITHMS saying why.")


def test_top_level_names_are_reexports_or_documented():
    subpackage = {}
    for package in ("solvers", "transforms"):
        subpackage.update(_public(package))
    unexplained, different = [], []
    for n in jl.__all__:
        obj = getattr(jl, n)
        if n in subpackage:
            if obj is not subpackage[n]:
                different.append(n)
        elif n not in NOT_ALGORITHMS and n not in covered_names():
            unexplained.append(n)
        elif isinstance(obj, types.ModuleType):
            assert NOT_ALGORITHMS.get(n, "").startswith("a submodule"), n
    assert not different, f"jaxopt_lab.{different} differ from the solvers/transforms objects of that name"
    assert not unexplained, (
        f"jaxopt_lab exports {unexplained}: re-export them from jaxopt_lab.solvers / .transforms (then they "
        "need a registry entry) or add a line to NOT_ALGORITHMS in tests/registry.py saying why.")


def test_registry_covers_only_public_names_and_the_table_only_exported_ones():
    public = set(jl.__all__)
    for package in ALGORITHM_PACKAGES:
        public |= set(_public(package))
    stale_covers = sorted(set(covered_names()) - public)
    stale_table = sorted(set(NOT_ALGORITHMS) - public)
    assert not stale_covers, f"registry entries cover names that are not public: {stale_covers}"
    assert not stale_table, f"NOT_ALGORITHMS lists names that are not public: {stale_table}"
    assert not set(covered_names()) & set(NOT_ALGORITHMS), "a name is both covered and 'not an algorithm'"


def test_every_public_solver_is_covered_and_named_in_the_readme():
    # Each public solver / bilevel algorithm has a registry entry and a README feature-table mention,
    # so a new solver cannot land without both (no hard-coded count to edit).
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    covered = covered_names()
    for package in ("solvers", "bilevel"):
        names = [n for n in _public(package) if n not in NOT_ALGORITHMS]
        assert names, package
        assert not sorted(set(names) - set(covered)), f"{package}: no registry entry"
        unnamed = [n for n in names if f"`{n}`" not in readme and f"`{n}(" not in readme]
        assert not unnamed, f"{package}: not named in README.md's feature table: {unnamed}"


# ------------------------------------------------------------------------ QP solvers


def _qp_data(dtype=jnp.float64, d=6):
    fun, _, _ = P.quadratic(d, cond=10.0, dtype=dtype)
    Q = jax.hessian(fun)(jnp.zeros(d, dtype))
    c = jnp.asarray(np.random.default_rng(2).standard_normal(d), dtype)
    return Q, c


def _qp_reference(kind, Q, c):
    """Solution of the suite's QP and ``d x*/d c`` (dense, at its active set)."""
    Q, c = np.asarray(Q, np.float64), np.asarray(c, np.float64)
    d = c.shape[0]
    if kind in ("eq", "ineq"):  # a'x = 1 (a'x <= 1 active in the inequality case: multiplier > 0)
        a = np.ones(d)
        K = np.block([[Q, a[:, None]], [a[None, :], np.zeros((1, 1))]])
        sol = np.linalg.solve(K, np.concatenate([-c, [1.0]]))
        if kind == "ineq":
            assert sol[-1] > 1e-3, "test data: the constraint must be active"
        Kinv = np.linalg.inv(K)
        return sol[:d], -Kinv[:d, :d]
    x = np.linalg.solve(Q, -c)
    for _ in range(50):  # active set on the box [-0.2, 0.2]
        lo, hi = x <= -0.2 + 1e-12, x >= 0.2 - 1e-12
        free = ~(lo | hi)
        z = np.clip(x, -0.2, 0.2)
        z[free] = np.linalg.solve(Q[np.ix_(free, free)], -(c[free] + Q[np.ix_(free, ~free)] @ z[~free]))
        g = Q @ z + c
        new = np.clip(z - g, -0.2, 0.2)
        if np.allclose(new, z, atol=1e-13):
            break
        x = new
    jac = np.zeros((d, d))
    jac[np.ix_(free, free)] = -np.linalg.inv(Q[np.ix_(free, free)])
    return z, jac


def _qp_run(entry, Q, c, **options):
    d, dt = c.shape[0], c.dtype
    solver = entry.make(**{**entry.options, **options})
    if entry.constraint == "eq":
        out = solver.run(None, params_obj=(Q, c), params_eq=(jnp.ones((1, d), dt), jnp.ones(1, dt)))
    elif entry.constraint == "ineq":  # a'x <= 1
        out = solver.run(None, params_obj=(Q, c), params_ineq=(jnp.ones((1, d), dt), jnp.ones(1, dt)))
    elif isinstance(solver, jl.BoxCDQP):
        out = solver.run(jnp.zeros(d, dt), params_obj=(Q, c), params_ineq=(jnp.full(d, -0.2, dt),
                                                                            jnp.full(d, 0.2, dt)))
    else:
        out = solver.run(None, params_obj=(Q, c), params_eq=jnp.eye(d, dtype=dt),
                         params_ineq=(jnp.full(d, -0.2, dt), jnp.full(d, 0.2, dt)))
    x = out.params.primal if isinstance(out.params, jl.KKTSolution) else out.params
    if isinstance(x, tuple):  # BoxOSQP's primal is (x, z = A x)
        x = x[0]
    return x, out.state


@pytest.mark.parametrize("entry", QP_SOLVERS, ids=lambda e: e.name)
def test_qp_solver_converges_in_jit_and_has_implicit_derivatives(entry):
    Q, c = _qp_data()
    x_ref, jac_ref = _qp_reference(entry.constraint, Q, c)
    if entry.constraint == "box":
        assert 0 < int(np.sum(np.abs(x_ref) >= 0.2 - 1e-12)) < c.shape[0], "test data: some bounds active"
    x, state = jax.jit(lambda Q, c: _qp_run(entry, Q, c))(Q, c)
    assert int(state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(x, x_ref, atol=entry.accuracy)
    jac = jax.jacrev(lambda c: _qp_run(entry, Q, c)[0])(c)
    np.testing.assert_allclose(jac, jac_ref, atol=10 * entry.accuracy)


@pytest.mark.parametrize("entry", QP_SOLVERS, ids=lambda e: e.name)
def test_qp_solver_vmap_over_data_and_tol_matches_loop(entry):
    Q, c = _qp_data()
    cs = jnp.stack([c, -c, 0.5 * c])
    tols = jnp.asarray([entry.options["tol"], 10 * entry.options["tol"], entry.options["tol"]])
    batched, bstate = jax.vmap(lambda c, t: _qp_run(entry, Q, c, tol=t))(cs, tols)
    for i in range(cs.shape[0]):
        single, state = _qp_run(entry, Q, cs[i], tol=float(tols[i]))
        np.testing.assert_allclose(batched[i], single, rtol=1e-7, atol=1e-9)
        assert int(bstate.status[i]) == int(state.status) == jl.Status.CONVERGED


@pytest.mark.parametrize("entry", QP_SOLVERS, ids=lambda e: e.name)
def test_qp_solver_keeps_float32(entry):
    Q, c = _qp_data(jnp.float32)
    x, state = _qp_run(entry, Q, c, tol=1e-5)
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(x, _qp_reference(entry.constraint, Q, c)[0], atol=1e-3)


def test_boxosqp_concrete_bounds_inside_an_outer_jit():
    # Bounds captured as constants by a jitted caller are staged by jit (omnistaging): the
    # empty-box check must not call bool() on their comparison.
    Q, c = _qp_data()
    d = c.shape[0]
    lo, hi = jnp.full(d, -0.2), jnp.full(d, 0.2)
    solve = lambda: jl.BoxOSQP(tol=1e-9, maxiter=20000).run(None, params_obj=(Q, c), params_eq=jnp.eye(d),
                                                            params_ineq=(lo, hi))
    out = jax.jit(solve)()
    np.testing.assert_allclose(out.params.primal[0], _qp_reference("box", Q, c)[0], atol=1e-5)


# ---------------------------------------------------------------------- line searches


@pytest.mark.parametrize("entry", LINE_SEARCHES, ids=lambda e: e.name)
def test_line_search_accepts_a_wolfe_step_in_jit_and_vmap(entry):
    fun, x0, _ = P.quadratic(6, cond=10.0)
    x0 = x0 + 1.0
    Q = jax.hessian(fun)(x0)
    g = jax.grad(fun)(x0)
    exact = float(g @ g / (g @ Q @ g))  # minimizer of t -> f(x0 - t g)

    def search(c1):
        ls = entry.make(fun, **{**entry.options, "c1": c1, "maxiter": 30})
        return ls.run(1.0, x0, descent_direction=-g)

    for c1 in (1e-4, 1e-2):
        out = jax.jit(search)(c1)
        t = float(out.params)
        assert int(out.state.status) == jl.Status.CONVERGED and t > 0
        slope = -float(g @ g)
        assert float(fun(x0 - t * g)) <= float(fun(x0)) + c1 * t * slope + 1e-12
        if entry.wolfe:
            assert abs(float(jax.grad(fun)(x0 - t * g) @ -g)) <= 0.9 * abs(slope) + 1e-12
        np.testing.assert_allclose(out.state.params, x0 - t * g, rtol=1e-12, atol=1e-12)
        eager = search(c1)
        np.testing.assert_allclose(float(eager.params), t, rtol=1e-12)
    batched = jax.vmap(search)(jnp.asarray([1e-4, 1e-2]))
    np.testing.assert_allclose(batched.params, [float(search(c).params) for c in (1e-4, 1e-2)], rtol=1e-12)
    assert 0 < exact  # the exact step is positive on a convex quadratic (sanity of the data)


# ------------------------------------------------------------------------ scalar roots


@pytest.mark.parametrize("entry", SCALAR_ROOTS, ids=lambda e: e.name)
def test_scalar_root_closed_form_jit_vmap_and_derivative(entry):
    F = lambda x, a: x**3 + x - a  # one real root; dx/da = 1 / (3x^2 + 1)
    solver = entry.make(F, **entry.options)
    a = 1.5
    x = float(jax.jit(lambda a: solver.run(None, a).params)(a))
    np.testing.assert_allclose(x**3 + x, a, atol=1e-10)
    dx_da = jax.grad(lambda a: solver.run(None, a).params)(a)
    np.testing.assert_allclose(dx_da, 1 / (3 * x**2 + 1), rtol=1e-8)
    as_ = jnp.asarray([-2.0, 0.5, 1.5])
    np.testing.assert_allclose(jax.vmap(lambda a: solver.run(None, a).params)(as_),
                               [float(solver.run(None, float(v)).params) for v in as_],
                               rtol=1e-12, atol=1e-14)


# -------------------------------------------------------------------------- estimators


def _estimator_problem():
    fun, _, _ = P.quadratic(6, cond=4.0)
    x = jnp.linspace(-1.0, 1.0, 6)
    return fun, x, jax.grad(fun)(x)


@pytest.mark.parametrize("entry", ESTIMATORS, ids=lambda e: e.name)
def test_estimator_matches_gradient(entry):
    fun, x, grad = _estimator_problem()
    key = jax.random.PRNGKey(0)
    est = jax.jit(lambda x, k: entry.estimate(fun, x, k))
    np.testing.assert_allclose(est(x, key), entry.estimate(fun, x, key), rtol=1e-6, atol=1e-9)
    if not entry.random:
        np.testing.assert_allclose(est(x, key), grad, atol=entry.atol)
        return
    n = 4000
    samples = jax.vmap(lambda k: entry.estimate(fun, x, k))(jax.random.split(key, n))
    mean, std = samples.mean(0), samples.std(0)
    # Unbiased up to the smoothing bias (zero on a quadratic for symmetric directions):
    # 5 standard errors per coordinate.
    assert bool(jnp.all(jnp.abs(mean - grad) <= 5 * std / np.sqrt(n) + 1e-3)), (mean, grad, std)
    assert float(jnp.max(std)) > 0, "a random estimator that does not depend on the key"


# ---------------------------------------------------------------------- curvature oracles


def _curvature_problem():
    rng = np.random.default_rng(3)
    W = jnp.asarray(rng.standard_normal((5, 3)))
    fun = lambda x: 0.25 * jnp.sum(x**4) + 0.5 * jnp.sum((W @ x[:3]) ** 2) + x[3] * x[4]
    x = jnp.asarray([0.3, -0.5, 0.8, 1.0, -0.2])
    return fun, x, jax.hessian(fun)(x)


def _logits_problem():
    rng = np.random.default_rng(4)
    X = jnp.asarray(rng.standard_normal((7, 3)))
    logits = lambda w: X @ w.reshape(3, 4)
    w = jnp.asarray(rng.standard_normal(12)) * 0.5
    return logits, w


def _dense_gn_diag(logits_fn, w):
    J = jax.jacobian(lambda w: logits_fn(w))(w)  # (B, C, P)
    p = jax.nn.softmax(logits_fn(w))
    H = jax.vmap(lambda p: jnp.diag(p) - jnp.outer(p, p))(p)  # (B, C, C)
    return jnp.einsum("bcp,bcd,bdp->p", J, H, J) / p.shape[0]


@pytest.mark.parametrize("entry", ORACLES, ids=lambda e: e.name)
def test_curvature_oracle_matches_dense_reference(entry):
    C = jl.curvature
    fun, x, H = _curvature_problem()
    key = jax.random.PRNGKey(0)
    n = 4000
    v = jnp.linspace(1.0, -1.0, 5)
    if entry.kind == "hvp":
        np.testing.assert_allclose(jax.jit(lambda v: C.hvp(fun, x, v))(v), H @ v, rtol=1e-10)
    elif entry.kind == "gnvp":
        logits_fn, w = _logits_problem()
        y = jnp.asarray([0, 1, 2, 3, 0, 1, 2])
        loss = lambda z: jnp.mean(jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, y[:, None], -1)[:, 0])
        J = jax.jacobian(logits_fn)(w).reshape(-1, 12)
        HL = jax.hessian(lambda z: loss(z.reshape(7, 4)))(logits_fn(w).reshape(-1))
        u = jnp.linspace(-1.0, 1.0, 12)
        np.testing.assert_allclose(jax.jit(lambda u: C.gnvp(logits_fn, loss, w, u))(u), J.T @ HL @ J @ u,
                                   rtol=1e-9, atol=1e-12)
    elif entry.kind == "diag":
        est = jax.jit(lambda k: C.hutchinson_diag(fun, x, k, n_samples=n))(key)
        off = jnp.sum(H**2, 1) - jnp.diag(H) ** 2  # variance of one Rademacher sample
        assert bool(jnp.all(jnp.abs(est - jnp.diag(H)) <= 5 * jnp.sqrt(off / n) + 1e-12)), (est, jnp.diag(H))
    elif entry.kind == "trace":
        est = float(jax.jit(lambda k: C.hutchinson_trace(fun, x, k, n_samples=n))(key))
        var = 2 * (float(jnp.sum(H**2)) - float(jnp.sum(jnp.diag(H) ** 2)))
        assert abs(est - float(jnp.trace(H))) <= 5 * np.sqrt(var / n), (est, jnp.trace(H))
    elif entry.kind == "gnb":
        logits_fn, w = _logits_problem()
        dense = _dense_gn_diag(logits_fn, w)
        draws = jax.vmap(lambda k: C.gnb_diag(logits_fn, w, k))(jax.random.split(key, n))
        err = jnp.abs(draws.mean(0) - dense)
        assert bool(jnp.all(err <= 5 * draws.std(0) / np.sqrt(n) + 1e-9)), (draws.mean(0), dense)
    elif entry.kind == "fisher":
        logits_fn, w = _logits_problem()
        y = jnp.asarray([0, 1, 2, 3, 0, 1, 2])
        per_example = lambda w: jax.nn.logsumexp(logits_fn(w), -1) - jnp.take_along_axis(
            logits_fn(w), y[:, None], -1)[:, 0]
        G = jax.jacobian(per_example)(w)
        np.testing.assert_allclose(jax.jit(lambda w: C.fisher_diag(per_example, w))(w), jnp.mean(G**2, 0),
                                   rtol=1e-10)
    elif entry.kind == "eigen":
        res = jax.jit(lambda k: C.lanczos(lambda u: H @ u, x, k, 5))(key)
        np.testing.assert_allclose(jnp.sort(res.eigenvalues), jnp.linalg.eigvalsh(H), rtol=1e-8, atol=1e-8)
    elif entry.kind == "density":
        res = jax.jit(lambda k: C.slq_density(lambda u: H @ u, x, k, 5))(key)
        eig = np.linalg.eigvalsh(np.asarray(H))
        nodes = np.asarray(res.nodes).reshape(-1)
        assert np.all(np.min(np.abs(nodes[:, None] - eig[None, :]), 1) <= 1e-6 * np.max(np.abs(eig)))
        np.testing.assert_allclose(np.sum(res.weights), 1.0, rtol=1e-8)
        np.testing.assert_allclose(np.trapezoid(res.density, res.grid), 1.0, atol=2e-2)
    else:
        raise AssertionError(f"unknown oracle kind {entry.kind}")


# --------------------------------------------------------------------- bilevel algorithms


def _bilevel_params():
    return [pytest.param(e, id=e.name, marks=pytest.mark.xfail(strict=True, reason=e.known_bug) if e.known_bug
                         else ()) for e in BILEVEL]


@pytest.mark.parametrize("entry", _bilevel_params())
def test_bilevel_algorithm_converges_in_jit_to_closed_form(entry):
    inst = entry.instance()
    solver = entry.make(inst, **entry.options)
    out = jax.jit(lambda x0, y0, data: solver.run(x0, y0, data))(inst.x0, inst.y0, inst.data)
    if entry.converges:
        assert int(out.state.status) == jl.Status.CONVERGED
    assert float(jnp.linalg.norm(out.params.x - inst.x_star)) <= entry.accuracy
    np.testing.assert_allclose(out.params.y, inst.y_star, atol=max(10 * entry.accuracy, 1e-5))


def _bilevel_params():
    return [pytest.param(e, id=e.name, marks=pytest.mark.xfail(strict=True, reason=e.known_bug) if e.known_bug
                         else ()) for e in BILEVEL]


@pytest.mark.parametrize("entry", _bilevel_params())
def test_bilevel_vmap_over_hyperparameter_matches_loop_without_retrace(entry):
    inst = entry.instance()
    traces = []
    outer = inst.problem.outer_fun

    def run(v):
        traces.append(1)
        opts = {**entry.options, entry.numeric_option: v, "maxiter": 30, "tol": 0.0}
        return entry.make(inst, **opts).run(inst.x0, inst.y0, inst.data).params.x

    values = jnp.asarray(entry.numeric_values)
    batched = jax.vmap(run)(values)
    jitted = jax.jit(run)
    singles = [jitted(v) for v in values]
    assert len(traces) == 2, "changing a numeric hyperparameter retraced"
    for i in range(len(values)):
        np.testing.assert_allclose(batched[i], singles[i], rtol=1e-8, atol=1e-10)
    assert not np.allclose(singles[0], singles[1]), f"{entry.numeric_option} has no effect"
    assert callable(outer)


@pytest.mark.parametrize("entry", HYPERGRADIENTS, ids=lambda e: e.name)
def test_hypergradient_matches_closed_form(entry):
    from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel, quadratic_hypergradient

    inst = quadratic_bilevel()
    x = jnp.linspace(-1.0, 1.0, inst.x0.shape[0])
    np.testing.assert_allclose(entry.hypergrad(inst, x), quadratic_hypergradient(x, inst.data),
                               atol=entry.accuracy)


def _float32(tree):
    cast = lambda a: jnp.asarray(a, jnp.float32) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a
    return jax.tree_util.tree_map(cast, tree)


@pytest.mark.parametrize("entry", _bilevel_params())
def test_bilevel_keeps_float32(entry):
    inst = entry.instance()
    x0, y0, data = _float32((inst.x0, inst.y0, inst.data))
    out = entry.make(inst, **{**entry.options, "maxiter": 20, "tol": 0.0}).run(x0, y0, data)
    for leaf in jax.tree_util.tree_leaves(out.params):
        assert leaf.dtype == jnp.float32, leaf.dtype
        assert bool(jnp.all(jnp.isfinite(leaf)))


@pytest.mark.parametrize("entry", _bilevel_params())
def test_bilevel_status_is_per_lane_under_vmap(entry):
    """A NaN in one lane's ``x0`` stops that lane with NONFINITE; the other lane equals its single run."""
    inst = entry.instance()
    solver = entry.make(inst, **{**entry.options, "maxiter": 20})
    run = lambda x0: solver.run(x0, inst.y0, inst.data)
    x0s = jnp.stack([inst.x0, inst.x0.at[0].set(jnp.nan)])
    batched = jax.vmap(run)(x0s)
    single = run(inst.x0)
    assert int(batched.state.status[1]) == jl.Status.NONFINITE, jl.status_name(int(batched.state.status[1]))
    assert int(batched.state.status[0]) == int(single.state.status)
    np.testing.assert_allclose(batched.params.x[0], single.params.x, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("entry", _bilevel_params())
def test_bilevel_bad_input_names_the_argument(entry):
    inst = entry.instance()
    with pytest.raises(TypeError, match="`problem`"):
        entry.make(inst._replace(problem=lambda x, y, d: 0.0), **entry.options)
    solver = entry.make(inst, **entry.options)
    with pytest.raises(ValueError, match=r"`x0`/`y0(\[block\])?` do not match"):  # a pytree unlike y
        solver.run(inst.x0, {"y": inst.y0}, inst.data)
