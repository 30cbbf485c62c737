"""solve_sketch (randomized sketch-and-project) against a dense solve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab.linalg.linear_solve import solve_sketch


def _system(n=20, seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) + 6 * np.eye(n)  # non-symmetric, well conditioned
    b = rng.standard_normal(n)
    return jnp.asarray(A, dtype), jnp.asarray(b, dtype)


@pytest.mark.parametrize("sketch", ["gaussian", "rows"])
def test_matches_dense_solve_on_a_nonsymmetric_system(sketch):
    A, b = _system()
    x, info = solve_sketch(lambda v: A @ v, b, jax.random.PRNGKey(0), sketch_size=5, maxiter=5000,
                           sketch=sketch, return_info=True)
    ref = jnp.linalg.solve(A, b)
    np.testing.assert_allclose(x, ref, atol=1e-9)
    assert float(info.residual_norm) <= 1e-9 * float(jnp.linalg.norm(b))
    assert 0 < int(info.iterations) < 5000


def test_full_sketch_is_one_exact_projection():
    A, b = _system(n=6)
    x, info = solve_sketch(lambda v: A @ v, b, jax.random.PRNGKey(1), sketch_size=6, maxiter=3,
                           return_info=True)
    np.testing.assert_allclose(x, jnp.linalg.solve(A, b), atol=1e-10)
    assert int(info.iterations) == 1


def test_pytree_ridge_and_warm_start():
    A, b = _system(n=8, seed=3)
    split = lambda v: {"a": v[:3], "b": v[3:]}
    join = lambda t: jnp.concatenate([t["a"], t["b"]])
    mv = lambda t: split(A @ join(t))
    ridge = 0.5
    x = solve_sketch(mv, split(b), jax.random.PRNGKey(2), sketch_size=3, maxiter=5000, ridge=ridge,
                     init=split(jnp.ones(8)))
    ref = jnp.linalg.solve(A + ridge * jnp.eye(8), b)
    np.testing.assert_allclose(join(x), ref, atol=1e-9)


def test_vmap_over_rhs_and_float32():
    A, _ = _system(n=10, seed=4, dtype=jnp.float32)
    bs = jnp.asarray(np.random.default_rng(5).standard_normal((3, 10)), jnp.float32)
    xs = jax.vmap(lambda b: solve_sketch(lambda v: A @ v, b, jax.random.PRNGKey(0), sketch_size=4,
                                         maxiter=3000))(bs)
    assert xs.dtype == jnp.float32
    ref = jnp.linalg.solve(A, bs.T).T
    np.testing.assert_allclose(xs, ref, atol=1e-4)


def test_bad_arguments_are_named():
    A, b = _system(n=4)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="sketch_size"):
        solve_sketch(lambda v: A @ v, b, key, sketch_size=0)
    with pytest.raises(ValueError, match="sketch"):
        solve_sketch(lambda v: A @ v, b, key, sketch="cauchy")
    with pytest.raises(TypeError, match="matvec"):
        solve_sketch(A, b, key)
