"""jaxopt drop-in: every public function of ``jaxopt.projection``, ``jaxopt.prox`` and
``jaxopt.loss`` gives jaxopt 0.8.5's value on the same inputs (float64, and float32 with
x64 off as a float32 jaxopt user runs it)."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest

import jaxopt_lab as jl

R = np.random.default_rng(0)
X = R.normal(size=6)
M = R.uniform(size=(4, 4))
A, B = R.normal(size=(2, 6)), R.normal(size=2)
G, H = R.normal(size=(3, 6)), np.abs(R.normal(size=3))
W = R.uniform(0.5, 1.5, size=6)
MARGINALS = (np.full(4, 0.25), np.array([0.1, 0.2, 0.3, 0.4]))
SCORES = R.normal(size=4)

# name -> list of (args, kwargs, rtol, atol); iterative ones get their solvers' accuracy.
EXACT = (1e-10, 1e-12)
ITER = (2e-3, 2e-4)
CASES = {
    "projection": {
        "projection_affine_set": [((X, (A, B)), {}, *EXACT)],
        "projection_box": [((X, (-0.5, 0.5)), {}, *EXACT), ((X, (-0.3 * W, W)), {}, *EXACT)],
        # jaxopt's bisection stops at ~1e-5 of the answer: see the accuracy test below.
        "projection_box_section": [((X, (np.zeros(6), np.ones(6), W, 1.5)), {}, 1e-4, 1e-5)],
        "projection_halfspace": [((X, (A[0], 0.1)), {}, *EXACT), ((X, (A[0], 100.0)), {}, *EXACT)],
        "projection_hypercube": [((X,), {}, *EXACT), ((X, 0.5), {}, *EXACT)],
        "projection_hyperplane": [((X, (A[0], 0.1)), {}, *EXACT)],
        "projection_l1_ball": [((X,), {}, *EXACT), ((X, 0.7), {}, *EXACT)],
        "projection_l1_sphere": [((X, 0.7), {}, *EXACT)],
        "projection_l2_ball": [((X,), {}, *EXACT), (({"a": X, "b": X[:2]}, 0.5), {}, *EXACT)],
        "projection_l2_sphere": [((X, 2.0), {}, *EXACT)],
        "projection_linf_ball": [((X, 0.4), {}, *EXACT)],
        "projection_non_negative": [((X,), {}, *EXACT)],
        # jaxopt's OSQP stops at ~5e-4 of the answer: see the accuracy test below.
        "projection_polyhedron": [((X, (A, B, G, H)), {}, 2e-2, 1e-3)],
        "projection_simplex": [((X,), {}, *EXACT), ((X, 2.0), {}, *EXACT)],
        "projection_sparse_simplex": [((X, 3), {}, *EXACT)],
        "projection_birkhoff": [((M,), {}, *ITER)],
        "projection_transport": [((M, MARGINALS), {}, *ITER)],
        "kl_projection_birkhoff": [((M,), {}, *ITER)],
        "kl_projection_transport": [((M, MARGINALS), {}, *ITER)],
    },
    "prox": {
        "prox_elastic_net": [((X, (0.5, 0.3), 0.7), {}, *EXACT)],
        "prox_group_lasso": [((X, 0.5, 0.7), {}, *EXACT), ((X, 100.0), {}, *EXACT)],
        "prox_lasso": [((X, 0.5, 0.7), {}, *EXACT), ((X, 0.3 * W), {}, *EXACT)],
        "prox_non_negative_lasso": [((X, 0.5, 0.7), {}, *EXACT)],
        "prox_non_negative_ridge": [((X, 0.5, 0.7), {}, *EXACT)],
        "prox_none": [((X,), {}, *EXACT), ((X, None, 3.0), {}, *EXACT)],
        "prox_ridge": [((X, 0.5, 0.7), {}, *EXACT), (({"a": X, "b": X[:2]}, 2.0), {}, *EXACT)],
    },
    "loss": {
        "binary_hinge_loss": [((1, 0.3), {}, *EXACT), ((0, 2.0), {}, *EXACT)],
        "binary_logistic_loss": [((1, 0.3), {}, *EXACT), ((0, -4.0), {}, *EXACT)],
        "binary_perceptron_loss": [((1, -0.3), {}, *EXACT), ((0, 0.5), {}, *EXACT)],
        "binary_sparsemax_loss": [((1, 0.3), {}, *EXACT), ((0, 2.0), {}, *EXACT)],
        "huber_loss": [((0.5, 2.0), {}, *EXACT), ((0.5, 0.7, 0.1), {}, *EXACT)],
        "multiclass_hinge_loss": [((2, SCORES), {}, *EXACT)],
        "multiclass_logistic_loss": [((2, SCORES), {}, *EXACT)],
        "multiclass_perceptron_loss": [((1, SCORES), {}, *EXACT)],
        "multiclass_sparsemax_loss": [((3, SCORES), {}, *EXACT)],
        "sparse_plus": [((X,), {}, *EXACT)],
        "sparse_sigmoid": [((X,), {}, *EXACT)],
    },
}
# Factories: called on a jaxopt function of the same module, then applied.
FACTORIES = {
    ("prox", "make_prox_from_projection"): lambda lib: lib.prox.make_prox_from_projection(
        lib.projection.projection_l2_ball)(X, 0.5),
    ("loss", "make_fenchel_young_loss"): lambda lib: jax.vmap(
        lib.loss.make_fenchel_young_loss(jax.scipy.special.logsumexp))(
        jnp.eye(4)[jnp.array([0, 2])], jnp.stack([jnp.asarray(SCORES), -jnp.asarray(SCORES)])),
}


def _public(module):
    mod = importlib.import_module(f"jaxopt.{module}")
    return sorted(n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n))
                  and getattr(getattr(mod, n), "__module__", "").startswith("jaxopt"))


def test_every_public_function_has_a_value_case():
    for module, cases in CASES.items():
        covered = set(cases) | {n for (m, n) in FACTORIES if m == module}
        assert set(_public(module)) == covered, module


def _cast(tree, dtype):
    def cast(x):
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            return jnp.asarray(x, dtype)
        if isinstance(x, float):
            return jnp.asarray(x, dtype)
        return x
    return jax.tree_util.tree_map(cast, tree, is_leaf=lambda x: x is None)


def _compare(a, b, rtol, atol, dtype):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape
        if dtype == jnp.float32:
            assert x.dtype == y.dtype, (x.dtype, y.dtype)
            rtol, atol = max(rtol, 2e-5), max(atol, 2e-6)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _params(module, name, dtype):
    marks = []
    if (module, name, dtype) == ("projection", "projection_polyhedron", jnp.float32):
        marks = [pytest.mark.xfail(strict=True, raises=ValueError, reason=(
            "known bug in ops: float32 projection_polyhedron reports a ~5e-6 constraint violation "
            "as an empty polyhedron (check_feasible threshold too tight for float32)"))]
    return pytest.param(module, name, dtype, marks=marks)


@pytest.mark.parametrize("module,name,dtype", [_params(m, n, d) for m, c in CASES.items() for n in c
                                               for d in (jnp.float64, jnp.float32)])
def test_same_value_as_jaxopt(module, name, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        ours_mod, ref_mod = getattr(jl, module), importlib.import_module(f"jaxopt.{module}")
        for args, kwargs, rtol, atol in CASES[module][name]:
            args = _cast(args, dtype)
            _compare(getattr(ours_mod, name)(*args, **kwargs), getattr(ref_mod, name)(*args, **kwargs),
                     rtol, atol, dtype)


@pytest.mark.parametrize("key", sorted(FACTORIES))
def test_factories_same_value_as_jaxopt(key):
    _compare(FACTORIES[key](jl), FACTORIES[key](jaxopt), *EXACT, jnp.float64)


def test_projection_box_accepts_scalar_bounds_on_a_pytree():
    # jaxopt raises (its bounds must match the pytree); ours broadcasts scalar bounds.
    tree = {"a": jnp.asarray(X), "b": jnp.asarray(X[:2])}
    out = jl.projection.projection_box(tree, (-0.2, 0.3))
    np.testing.assert_allclose(out["a"], np.clip(X, -0.2, 0.3))
    np.testing.assert_allclose(out["b"], np.clip(X[:2], -0.2, 0.3))
    with pytest.raises(ValueError):
        jaxopt.projection.projection_box(tree, (-0.2, 0.3))


def _slsqp_projection(constraints, bounds=None):
    import scipy.optimize
    r = scipy.optimize.minimize(lambda p: 0.5 * np.sum((p - X) ** 2), np.zeros(6), jac=lambda p: p - X,
                                bounds=bounds, constraints=constraints, method="SLSQP",
                                options={"ftol": 1e-15, "maxiter": 1000})
    return r.x


def test_box_section_and_polyhedron_at_least_as_accurate_as_jaxopt():
    """Intended improvement (docs/migration.md): exact answers where jaxopt stops early."""
    hp = (np.zeros(6), np.ones(6), W, 1.5)
    exact = _slsqp_projection([{"type": "eq", "fun": lambda p: W @ p - 1.5}], bounds=[(0, 1)] * 6)
    ours = np.asarray(jl.projection.projection_box_section(X, hp))
    ref = np.asarray(jaxopt.projection.projection_box_section(X, hp))
    assert np.abs(ours - exact).max() <= np.abs(ref - exact).max()
    assert np.abs(ours - exact).max() < 1e-8
    exact = _slsqp_projection([{"type": "eq", "fun": lambda p: A @ p - B},
                               {"type": "ineq", "fun": lambda p: H - G @ p}])
    ours = np.asarray(jl.projection.projection_polyhedron(X, (A, B, G, H)))
    ref = np.asarray(jaxopt.projection.projection_polyhedron(X, (A, B, G, H)))
    assert np.abs(ours - exact).max() <= np.abs(ref - exact).max()
    assert np.abs(ours - exact).max() < 1e-7
