"""optax conventions and argument errors of the transforms (issue 15, items 8 and 9).

- Every registry transform's public recipe works under ``optax.inject_hyperparams`` with
  only the learning rate (plus its required options, shape-setting ones in
  ``static_args``): init and jitted updates equal the plain recipe's to rounding.
- Integer options that may be traced (Sophia's interval ``k``) are traced; a
  shape-setting option given to ``inject_hyperparams`` raises a ``TypeError`` naming it
  and ``static_args``.
- A gradient pytree unlike the params is a ``ValueError`` naming ``grads``/``updates``
  and the differing path; a non-callable ``value_fn`` a ``TypeError`` naming it; an
  ``eps`` that rounds to 0 in float16 a ``TypeError`` naming ``eps`` (and bfloat16 works).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from tests.registry import TRANSFORMS, extra_args

_W = jnp.asarray(np.linspace(0.5, 3.0, 12).reshape(3, 4))


def _quad(p):
    """A separable quadratic over a pytree of (3, 4) leaves, minimum at 1."""
    return sum(jnp.sum(_W * (x.astype(jnp.float32) - 1.0) ** 2) for x in jax.tree_util.tree_leaves(p))


def _recipe(entry):
    recipe = entry.recipe or entry.make
    kwargs = entry.kwargs if entry.recipe_kwargs is None else entry.recipe_kwargs
    return recipe, kwargs


def _update(entry, opt, grads, state, params, k, fun=_quad):
    extra = extra_args(entry, fun, jax.random.PRNGKey(k), grads)
    if isinstance(opt, optax.GradientTransformationExtraArgs):
        return opt.update(grads, state, params, value=fun(params), **extra)
    return opt.update(grads, state, params)


def _run(entry, opt, params, steps=3):
    """init, then ``steps`` jitted updates; returns the list of updates."""
    state = opt.init(params)
    step = jax.jit(lambda g, s, p, k: _update(entry, opt, g, s, p, k))
    out = []
    for k in range(steps):
        grads = jax.grad(_quad)(params)
        updates, state = step(grads, state, params, k)
        out.append(updates)
        params = optax.apply_updates(params, updates)
    return out


@pytest.mark.parametrize("entry", TRANSFORMS, ids=lambda e: e.name)
def test_recipe_under_inject_hyperparams_with_only_learning_rate(entry):
    recipe, kwargs = _recipe(entry)
    lr = entry.learning_rate
    params = jnp.asarray(np.random.default_rng(0).standard_normal((3, 4)))
    injected = optax.inject_hyperparams(recipe, static_args=entry.recipe_static)(learning_rate=lr, **kwargs)
    plain = recipe(lr, **kwargs)
    got, want = _run(entry, injected, params), _run(entry, plain, params)
    for u, v in zip(got, want, strict=True):
        assert bool(jnp.all(jnp.isfinite(u)))
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-10)


def test_issue_example_sophia_adahessian_mfac_inject_learning_rate_only():
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)}
    entries = {e.name: e for e in TRANSFORMS}
    for name, recipe in (("sophia-h", jl.sophia), ("adahessian", jl.adahessian), ("mfac", jl.mfac)):
        opt = optax.inject_hyperparams(recipe)(learning_rate=3e-3)
        state = opt.init(params)
        assert set(state.hyperparams) >= {"learning_rate"}
        updates, _ = _update(entries[name], opt, jax.grad(_quad)(params), state, params, 0)
        assert bool(jnp.all(jnp.isfinite(updates["w"])))


def test_sophia_interval_is_traced_under_inject_hyperparams():
    """``update_interval`` injected (a traced int): same updates as the plain recipe with
    that interval, and changing it in the state changes when the curvature is refreshed."""
    entry = next(e for e in TRANSFORMS if e.name == "sophia-h")
    params = jnp.asarray(np.random.default_rng(1).standard_normal((3, 4)))
    injected = optax.inject_hyperparams(jl.sophia)(learning_rate=0.1, gamma=1.0, update_interval=3)
    plain = jl.sophia(0.1, gamma=1.0, update_interval=3)
    for u, v in zip(_run(entry, injected, params, 5), _run(entry, plain, params, 5), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-10)
    # The curvature EMA after 2 steps: refreshed at count 0 only (k=3) or at 0 and 1 (k=1).
    state = injected.init(params)
    g = jax.grad(_quad)(params)
    step = jax.jit(lambda s, k: _update(entry, injected, g, s, params, k)[1])
    hess = []
    for k_value in (3, 1):
        s = state._replace(hyperparams={**state.hyperparams, "update_interval": jnp.asarray(k_value)})
        s = step(step(s, 0), 1)
        hess.append(s.inner_state[0].hess)
    # Exact diagonal 2 * _W (a quadratic: Hutchinson is exact), b2 = 0.99.
    np.testing.assert_allclose(hess[0], 0.01 * 2 * _W, rtol=1e-6)
    np.testing.assert_allclose(hess[1], (0.99 * 0.01 + 0.01) * 2 * _W, rtol=1e-6)


_SHAPE_OPTIONS = [
    (jl.mfac, dict(num_grads=4), "num_grads"),
    (jl.sophia, dict(n_samples=2), "n_samples"),
    (jl.adahessian, dict(block_size=2), "block_size"),
    (jl.hard_threshold_topk, dict(k=3), "k"),
    (jl.lowrank_dct, dict(rank=2), "rank"),
    (jl.zo_sgd, dict(num_directions=4), "num_directions"),
    (jl.zeroth_order.deepzero_sgd, dict(density=0.5), "density"),
]


@pytest.mark.parametrize("recipe, options, name", _SHAPE_OPTIONS, ids=[o[2] for o in _SHAPE_OPTIONS])
def test_injected_shape_option_is_a_clear_type_error(recipe, options, name):
    params = jnp.ones((3, 4))
    with pytest.raises(TypeError, match=rf"`{name}`.*static_args"):
        optax.inject_hyperparams(recipe)(learning_rate=0.1, **options).init(params)
    # Listed in static_args it works.
    opt = optax.inject_hyperparams(recipe, static_args=tuple(options))(learning_rate=0.1, **options)
    opt.init(params)


_TREE_ENTRIES = [e for e in TRANSFORMS if e.checks_grads_tree]


@pytest.mark.parametrize("entry", _TREE_ENTRIES, ids=lambda e: e.name)
def test_mismatched_grads_tree_names_argument_and_path(entry):
    params = {"a": jnp.ones((3, 4)), "b": jnp.ones((3, 4))}
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(params)
    # A leaf missing / renamed: the error names the gradients' argument and the path.
    grads = {"a": jnp.ones((3, 4)), "c": jnp.ones((3, 4))}
    with pytest.raises(ValueError, match=r"`(grads|updates)`.*\['c'\]"):
        _update(entry, opt, grads, state, params, 0)
    # Same structure, a transposed leaf: named by its path.
    grads = {"a": jnp.ones((3, 4)), "b": jnp.ones((4, 3))}
    with pytest.raises(ValueError, match=r"`(grads|updates)` leaf \['b'\] has shape \(4, 3\)"):
        _update(entry, opt, grads, state, params, 0)


def test_grads_tree_checked_against_init_state_without_params():
    """Transforms that do not need ``params`` compare the gradients with the state built
    at ``init`` (the tree the params had)."""
    params = {"a": jnp.ones((3, 4)), "b": jnp.ones((3, 4))}
    for opt in (jl.diffgrad(0.1), jl.adamp(0.1), jl.sgdp(0.1), jl.econtrol(0.1),
                jl.layerwise_noise_adaptive(0.1), jl.root(0.1), jl.zeroth_order.scale_by_lazy_adam()):
        state = opt.init(params)
        with pytest.raises(ValueError, match=r"`(grads|updates)`.*params given to init: leaf \['c'\]"):
            opt.update({"a": jnp.ones((3, 4)), "c": jnp.ones((3, 4))}, state)


_VALUE_FN_ENTRIES = [e for e in TRANSFORMS if e.needs_value_fn]


@pytest.mark.parametrize("entry", _VALUE_FN_ENTRIES, ids=lambda e: e.name)
@pytest.mark.parametrize("bad", [3, "loss", jnp.ones(2)], ids=["int", "str", "array"])
def test_non_callable_value_fn_is_a_type_error_naming_it(entry, bad):
    params = jnp.ones((3, 4))
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(params)
    extra = extra_args(entry, _quad, jax.random.PRNGKey(0), params)
    extra["value_fn"] = bad
    with pytest.raises(TypeError, match="`value_fn` must be callable"):
        opt.update(params, state, params, value=jnp.asarray(1.0), **extra)


def test_sophia_gnb_non_callable_logits_fn_names_it():
    opt = jl.sophia(0.1, estimator="gnb")
    params = jnp.ones(3)
    with pytest.raises(TypeError, match="`logits_fn` must be callable"):
        opt.update(params, opt.init(params), params, key=jax.random.PRNGKey(0), logits_fn=1.0)


def _half_run(entry, dtype, zero_grads):
    """Three eager updates of float16/bfloat16 params; returns the updates."""
    params = {"w": jnp.asarray(np.random.default_rng(2).standard_normal((3, 4)), dtype)}
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(params)
    out = []
    for k in range(3):
        grads = jax.grad(lambda p: _quad(p).astype(dtype))(params)
        if zero_grads:
            grads = jax.tree_util.tree_map(jnp.zeros_like, grads)
        fun = (lambda p: 0.0 * _quad(p)) if zero_grads else _quad
        updates, state = _update(entry, opt, grads, state, params, k, fun)
        out.append(updates["w"])
        params = optax.apply_updates(params, updates)
    return out


@pytest.mark.parametrize("zero_grads", [True, False], ids=["zero-grads", "quadratic"])
@pytest.mark.parametrize("entry", TRANSFORMS, ids=lambda e: e.name)
def test_float16_is_supported_or_a_type_error_naming_eps(entry, zero_grads):
    """float16: finite float16 updates, or (where the default ``eps`` underflows to 0 in
    float16, which gave 0/0 = NaN for a zero gradient) a ``TypeError`` naming ``eps``."""
    try:
        updates = _half_run(entry, jnp.float16, zero_grads)
    except TypeError as err:
        assert "float16" in str(err) and "`eps`" in str(err), str(err)
        return
    for u in updates:
        assert u.dtype == jnp.float16
        assert bool(jnp.all(jnp.isfinite(u.astype(jnp.float32)))), (entry.name, u)


@pytest.mark.parametrize("recipe", [jl.diffgrad, jl.adamp, jl.zo_adam, jl.zeroth_order.deepzero_adam],
                         ids=lambda r: r.__name__)
def test_float16_with_representable_eps_runs(recipe):
    """The error says to raise ``eps``; doing so gives finite float16 updates."""
    extra = {}
    if recipe in (jl.zo_adam, jl.zeroth_order.deepzero_adam):
        extra = {"value_fn": lambda p: 0.0 * _quad(p), "key": jax.random.PRNGKey(0)}
    kwargs = {"density": 0.5} if recipe is jl.zeroth_order.deepzero_adam else {}
    params = {"w": jnp.ones((3, 4), jnp.float16)}
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    with pytest.raises(TypeError, match=r"`eps`=1e-08 rounds to 0"):
        opt = recipe(0.1, **kwargs)
        opt.update(zeros, opt.init(params), params, **extra)
    opt = recipe(0.1, eps=1e-4, **kwargs)
    updates, _ = opt.update(zeros, opt.init(params), params, **extra)
    assert updates["w"].dtype == jnp.float16
    assert bool(jnp.all(jnp.isfinite(updates["w"].astype(jnp.float32))))


@pytest.mark.parametrize("entry", TRANSFORMS, ids=lambda e: e.name)
def test_bfloat16_supported(entry):
    """bfloat16 keeps float32's exponent range: every transform runs, zero gradients too."""
    for zero_grads in (True, False):
        for u in _half_run(entry, jnp.bfloat16, zero_grads):
            assert u.dtype == jnp.bfloat16
            assert bool(jnp.all(jnp.isfinite(u.astype(jnp.float32)))), (entry.name, zero_grads)
