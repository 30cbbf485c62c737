"""Determinism: the same inputs and key give the same results.

Guarantees tested, for every registry solver and transform:
- two runs with the same inputs (and key) are bitwise identical;
- a jitted and an eager (``jit=False`` / un-jitted ``update``) run agree to 1e-10
  relative in float64. They are *not* promised bitwise: XLA fuses and reassociates
  floating-point reductions differently inside a compiled loop than op by op, so the
  last bits may differ. The test prints which entries happen to be bitwise equal;
- stochastic transforms give different updates for different keys (so the
  same-key check is not vacuous).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests import problems as P
from tests.registry import SOLVERS, TRANSFORMS, extra_args, tiered


def _bitwise_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b):
        return False
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) and
               np.asarray(x).dtype == np.asarray(y).dtype for x, y in zip(la, lb, strict=True))


def _close(a, b, rtol=1e-10, atol=1e-12):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.inexact):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("entry", tiered(SOLVERS))
def test_solver_repeat_runs_bitwise_identical_and_jit_matches_eager(entry):
    fun, x0, _ = P.quadratic(5, cond=5.0)
    opts = {**entry.options, "maxiter": 8}
    a = entry.make(fun, **opts).run(x0)
    b = entry.make(fun, **opts).run(x0)
    assert _bitwise_equal(a.params, b.params) and _bitwise_equal(a.state, b.state)
    eager = entry.make(fun, **opts, jit=False).run(x0)
    _close(a.params, eager.params)
    assert int(a.state.iter_num) == int(eager.state.iter_num)
    print(f"\n{entry.name}: jit vs eager bitwise equal: {_bitwise_equal(a.params, eager.params)}")


def _update(entry, opt, key, jit):
    # Not separable: a Hutchinson-type estimate of a diagonal Hessian would not depend on the key.
    fun = lambda p: 0.5 * jnp.sum((p - 1.0) ** 2) + 0.1 * jnp.sum(p**4) + 0.3 * jnp.sum(p) ** 2
    params = jnp.linspace(-1.0, 2.0, 12).reshape(3, 4)
    state = opt.init(params)

    def step(params, state, extra_key):
        value, grads = jax.value_and_grad(fun)(params)
        kw = extra_args(entry, fun, extra_key, grads)
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            return opt.update(grads, state, params, value=value, **kw)
        return opt.update(grads, state, params)

    step = jax.jit(step) if jit else step
    keys = jax.random.split(key, 3)
    for k in keys:  # three steps, each with its own key
        updates, state = step(params, state, k)
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("entry", tiered(TRANSFORMS))
def test_transform_same_key_bitwise_identical_and_jit_matches_eager(entry):
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    key = jax.random.PRNGKey(7)
    a = _update(entry, opt, key, jit=True)
    b = _update(entry, opt, key, jit=True)
    assert _bitwise_equal(a, b)
    eager = _update(entry, opt, key, jit=False)
    _close(a[0], eager[0], rtol=1e-10, atol=1e-12)
    print(f"\n{entry.name}: jit vs eager bitwise equal: {_bitwise_equal(a[0], eager[0])}")
    if entry.stochastic:
        c = _update(entry, opt, jax.random.PRNGKey(8), jit=True)
        assert not _bitwise_equal(a[0], c[0]), "a different key should change a stochastic update"
