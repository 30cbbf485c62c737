"""jaxopt drop-in: ``run_iterator`` of OptaxSolver, ArmijoSGD and PolyakSGD against jaxopt 0.8.5.

Both libraries get the same mini-batches (a generator over a fixed dataset) and the same
options; their iterates agree step by step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import jaxopt.base
import numpy as np
import optax
import pytest

import jaxopt_lab as jl


def _data(dtype, n=96, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (X @ w + 0.1 * rng.normal(size=n) > 0).astype(float)
    return X.astype(dtype), y.astype(dtype)


def _batches(X, y, size, epochs=100):
    n = X.shape[0]
    rng = np.random.default_rng(1)
    for _ in range(epochs):
        perm = rng.permutation(n)
        for i in range(0, n - size + 1, size):
            idx = perm[i:i + size]
            yield X[idx], y[idx]


def logistic(w, l2reg, data):
    X, y = data
    logits = X @ w["w"] + w["b"]
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))
    return loss + 0.5 * l2reg * jnp.sum(w["w"] ** 2)


def squares(w, data):
    X, y = data
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def _solvers(lib, fun, maxiter):
    kw = dict(fun=fun, maxiter=maxiter, tol=0.0)
    return {
        "OptaxSolver": lambda: lib.OptaxSolver(opt=optax.adam(0.05), **kw),
        "OptaxSolver-sgd-momentum": lambda: lib.OptaxSolver(opt=optax.sgd(0.1, momentum=0.9), **kw),
        "ArmijoSGD": lambda: lib.ArmijoSGD(**kw),
        "ArmijoSGD-momentum": lambda: lib.ArmijoSGD(momentum=0.5, reset_option="conservative", **kw),
        "PolyakSGD": lambda: lib.PolyakSGD(max_stepsize=2.0, **kw),
        "PolyakSGD-momentum": lambda: lib.PolyakSGD(momentum=0.3, delta=1e-3, **kw),
    }


NAMES = list(_solvers(jl, logistic, 1))


@pytest.mark.parametrize("name", NAMES)
def test_run_iterator_matches_jaxopt_float64(name):
    X, y = _data(np.float64)
    w0 = {"w": jnp.zeros(X.shape[1]), "b": jnp.asarray(0.0)}
    ours = _solvers(jl, logistic, 40)[name]()
    ref = _solvers(jaxopt, logistic, 40)[name]()
    out = ours.run_iterator(w0, _batches(X, y, 16), 1e-2)
    expected = ref.run_iterator(w0, _batches(X, y, 16), 1e-2)
    # 40 steps on shuffled batches: iterates that differed at any step would not agree to 1e-9.
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12),
                           out.params, expected.params)
    assert int(out.state.iter_num) == 40
    assert int(out.state.status) == jl.Status.MAX_ITER


@pytest.mark.parametrize("name", ["OptaxSolver", "ArmijoSGD", "PolyakSGD"])
def test_run_iterator_matches_jaxopt_float32(name):
    X, y = _data(np.float32)
    w0 = jnp.zeros(X.shape[1], jnp.float32)
    ours = _solvers(jl, squares, 30)[name]().run_iterator(w0, _batches(X, y, 16))
    ref = _solvers(jaxopt, squares, 30)[name]().run_iterator(w0, _batches(X, y, 16))
    assert ours.params.dtype == jnp.float32
    np.testing.assert_allclose(ours.params, ref.params, rtol=2e-4, atol=2e-5)


def test_run_iterator_stops_at_tol_and_uses_first_batch_for_init():
    X, y = _data(np.float64)
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    # Every batch holds the whole dataset: the gradient at w_star is ~0 on each of them.
    full = iter([(X, y)] * 1000)
    solver = jl.PolyakSGD(fun=lambda w, data: squares(w, data) - squares(w_star, data),
                          maxiter=500, tol=1e-6, max_stepsize=10.0)
    out = solver.run_iterator(jnp.zeros(X.shape[1]), full)
    assert int(out.state.status) == jl.Status.CONVERGED
    assert int(out.state.iter_num) < 500
    # The iterator was not drained past the stop (1 init batch + iter_num + 1 updates).
    assert len(list(full)) >= 1000 - 1 - int(out.state.iter_num) - 1
    np.testing.assert_allclose(out.params, w_star, atol=1e-5)


def test_run_iterator_nonfinite_batch_returns_last_finite_iterate():
    X, y = _data(np.float64)
    batches = [(X[:16], y[:16])] * 4 + [(X[:16] * np.nan, y[:16])] + [(X[:16], y[:16])] * 5
    solver = jl.OptaxSolver(opt=optax.sgd(0.1), fun=squares, maxiter=20, tol=0.0)
    out = solver.run_iterator(jnp.zeros(X.shape[1]), iter(batches))
    assert int(out.state.status) == jl.Status.NONFINITE
    assert np.all(np.isfinite(out.params))
    # 3 clean updates happened before the NaN batch (the 1st batch is for init_state).
    ref = solver.replace(maxiter=2).run_iterator(jnp.zeros(X.shape[1]), iter(batches))
    np.testing.assert_allclose(out.params, ref.params)


def test_run_iterator_bad_arguments():
    solver = jl.ArmijoSGD(fun=squares)
    w0 = jnp.zeros(3)
    with pytest.raises(ValueError, match="iterator"):
        solver.run_iterator(w0, iter([]))
    with pytest.raises(TypeError, match="iterator"):
        solver.run_iterator(w0, 3)
    with pytest.raises(ValueError, match="data"):
        solver.run_iterator(w0, iter([(np.ones((2, 3)), np.ones(2))]), data=None)


def test_stochastic_solver_is_the_jaxopt_base_class():
    for cls in (jl.OptaxSolver, jl.ArmijoSGD, jl.PolyakSGD):
        assert issubclass(cls, jl.base.StochasticSolver)
        assert issubclass(getattr(jaxopt, cls.__name__), jaxopt.base.StochasticSolver)
