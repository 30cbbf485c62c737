"""flax as a user: flax.linen and flax.nnx models trained with jaxopt_lab transforms (Sophia-H with
``value_fn``, Sophia-G with ``logits_fn``, diffgrad, a zeroth-order transform) and OptaxSolver."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxopt_lab as jl


def _data():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)) * 2
    y = np.repeat(np.arange(3), 32)
    X = centers[y] + rng.normal(size=(96, 5))
    return jnp.asarray(X, jnp.float32), jnp.asarray(y)


X, Y = _data()


def _ce(logits):
    return optax.softmax_cross_entropy_with_integer_labels(logits, Y).mean()


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.tanh(nn.Dense(16)(x)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(5, 16, rngs=rngs)
        self.out = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


# name -> (transform, extra args from (loss_of_params, logits_of_params, key))
CASES = {
    "sophia-h": (lambda: jl.sophia(0.05, update_interval=1),
                 lambda loss, logits, key: dict(value_fn=loss, key=key)),
    "sophia-g": (lambda: jl.sophia(0.05, update_interval=1, estimator="gnb"),
                 lambda loss, logits, key: dict(logits_fn=logits, key=key)),
    "diffgrad": (lambda: jl.diffgrad(0.05), lambda loss, logits, key: {}),
    "zo_adam": (lambda: jl.zo_adam(0.02, num_directions=20, smoothing=1e-3),
                lambda loss, logits, key: dict(value_fn=loss, key=key)),
}


def _train_linen(name, steps=150):
    make, extra = CASES[name]
    model, tx = LinenMLP(), make()
    params = model.init(jax.random.PRNGKey(0), X)
    logits = lambda p: model.apply(p, X)
    loss = lambda p: _ce(logits(p))

    def step(carry, key):
        p, s = carry
        u, s = tx.update(jax.grad(loss)(p), s, p, **extra(loss, logits, key))
        return (optax.apply_updates(p, u), s), None

    keys = jax.random.split(jax.random.PRNGKey(1), steps)
    (trained, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, keys))((params, tx.init(params)))
    return float(loss(params)), float(loss(trained))


def _train_nnx(name, steps=150):
    make, extra = CASES[name]
    model = NnxMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make(), wrt=nnx.Param)
    initial = float(_ce(model(X)))

    @nnx.jit
    def step(model, optimizer, key):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        logits = lambda p: nnx.merge(graphdef, p, rest)(X)
        loss = lambda p: _ce(logits(p))
        grads = nnx.grad(lambda m: _ce(m(X)))(model)
        optimizer.update(model, grads, **extra(loss, logits, key))

    for key in jax.random.split(jax.random.PRNGKey(1), steps):
        step(model, optimizer, key)
    return initial, float(_ce(model(X)))


@pytest.mark.parametrize("name", ["diffgrad", pytest.param("sophia-h", marks=pytest.mark.slow)])
def test_linen_model_trains(name):
    initial, final = _train_linen(name)
    assert final < 0.2 * initial, (initial, final)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sophia-g", "zo_adam"])
def test_linen_model_trains_slow(name):
    initial, final = _train_linen(name, steps=300 if name == "zo_adam" else 150)
    assert final < (0.5 if name == "zo_adam" else 0.2) * initial, (initial, final)


@pytest.mark.parametrize("name", ["sophia-g"])
def test_nnx_model_trains(name):
    initial, final = _train_nnx(name)
    assert final < 0.2 * initial, (initial, final)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sophia-h", "diffgrad", "zo_adam"])
def test_nnx_model_trains_slow(name):
    initial, final = _train_nnx(name, steps=300 if name == "zo_adam" else 150)
    assert final < (0.5 if name == "zo_adam" else 0.2) * initial, (initial, final)


@pytest.mark.slow
def test_optax_solver_on_linen_params_matches_a_plain_loop():
    model = LinenMLP()
    params = model.init(jax.random.PRNGKey(0), X)
    fun = lambda p, X, Y: optax.softmax_cross_entropy_with_integer_labels(model.apply(p, X), Y).mean()
    sol = jl.OptaxSolver(fun, jl.diffgrad(0.05), maxiter=100, tol=0.0).run(params, X, Y)
    # the same 100 diffgrad steps by hand
    tx = jl.diffgrad(0.05)

    def step(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(fun)(p, X, Y), s, p)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=100))((params, tx.init(params)))
    assert int(sol.state.iter_num) == 100
    for a, b in zip(jax.tree_util.tree_leaves(sol.params), jax.tree_util.tree_leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert float(fun(sol.params, X, Y)) < 0.2 * float(fun(params, X, Y))
