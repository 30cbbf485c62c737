"""Smoke test of the character-level LM benchmark (benchmarks/_char_lm.py).

Slow: a few compiled training programs. Each optimizer trains a tiny model for a
few steps (two learning rates x one seed, vmapped, as in the benchmark) and the
validation loss must fall well below the uniform-prediction loss ``log(VOCAB)``
and below its first evaluation; ``steps_to_target`` is checked on a hand-made curve.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import _char_lm as C


def test_tokens_and_steps_to_target():
    train, val = C.load_tokens(modules=("textwrap", "string"))
    assert train.min() >= 0 and train.max() < C.VOCAB and len(val) > 0
    assert len(val) == pytest.approx(0.1 * (len(train) + len(val)), abs=1)
    # Every character of textwrap's source is printable ASCII or a newline.
    assert not np.any(train == C.VOCAB - 1)
    # float32 model even with float64 enabled (the tests run with jax_enable_x64).
    import jax

    cfg = C.Config(n_layer=1, d_model=16, n_head=2, context=8, batch=2, n_val=2)
    params = C.init_params(jax.random.PRNGKey(0), cfg)
    assert {x.dtype for x in jax.tree_util.tree_leaves(params)} == {np.dtype(np.float32)}
    x = jax.numpy.asarray(train[None, :8])
    assert C.forward(params, x, cfg).dtype == np.float32
    curve = np.array([[3.0, 2.5, 2.0, 1.5], [3.0, 2.9, 2.8, 2.7]])
    np.testing.assert_array_equal(C.steps_to_target(curve, 2.0, 10), [30.0, np.inf])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(C.OPTIMIZERS))
def test_training_loop_decreases_loss(name):
    import jax.numpy as jnp

    cfg = C.Config(n_layer=1, d_model=32, n_head=2, context=32, batch=8, n_val=16)
    train, val = C.load_tokens(modules=("textwrap", "string", "heapq"))
    fn = C.make_train(name, train, val, cfg, steps=40, eval_every=10, warmup=4)
    val_curve, train_curve = fn(jnp.asarray([3e-3, 1e-2], jnp.float32), jnp.zeros(2, jnp.int32))
    val_curve, train_curve = np.asarray(val_curve), np.asarray(train_curve)
    assert val_curve.shape == train_curve.shape == (2, 4)
    assert np.all(np.isfinite(val_curve))
    uniform = np.log(C.VOCAB)
    # Both members learn: the last evaluation beats the first and the uniform model.
    assert np.all(val_curve[:, -1] < val_curve[:, 0] - 0.1)
    assert np.all(val_curve[:, -1] < uniform - 0.8)
    assert np.all(train_curve[:, -1] < train_curve[:, 0])
    # Members are independent: different learning rates give different curves.
    assert not np.allclose(val_curve[0], val_curve[1])
