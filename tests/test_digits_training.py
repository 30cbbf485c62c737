"""Training check: a flax MLP on scikit-learn's digits reaches >= 95% test accuracy with
diffGrad, AdamP and ROOT, used through the optax API only."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(128)(x))
        return nn.Dense(10)(x)


def _data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


OPTIMIZERS = {
    "diffgrad": lambda: jl.diffgrad(3e-3),
    "adamp": lambda: jl.adamp(3e-3, weight_decay=1e-4),
    "root": lambda: jl.root(0.02, fallback=optax.adam(3e-3)),  # biases go to Adam
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_flax_mlp_on_digits(name):
    Xtr, Xte, ytr, yte = _data()
    model = MLP()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))["params"]
    opt = OPTIMIZERS[name]()
    batch, epochs = 64, 30
    n = (Xtr.shape[0] // batch) * batch

    def loss_fn(p, xb, yb):
        logits = model.apply({"params": p}, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def train(params, key):
        state = opt.init(params)

        def epoch(carry, k):
            perm = jax.random.permutation(k, Xtr.shape[0])[:n].reshape(-1, batch)

            def step(c, idx):
                p, s = c
                g = jax.grad(loss_fn)(p, jnp.asarray(Xtr)[idx], jnp.asarray(ytr)[idx])
                u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            return jax.lax.scan(step, carry, perm)[0], None

        return jax.lax.scan(epoch, (params, state), jax.random.split(key, epochs))[0][0]

    params = train(params, jax.random.PRNGKey(1))
    pred = jnp.argmax(model.apply({"params": params}, jnp.asarray(Xte)), -1)
    acc = float(jnp.mean(pred == jnp.asarray(yte)))
    print(name, "test accuracy", acc)
    assert acc >= 0.95, (name, acc)
