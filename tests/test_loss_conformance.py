"""The shared checks over every public loss of :mod:`jaxopt_lab.loss` (``LOSSES`` in
``tests/registry.py``): the value against an independent NumPy transcription of its
formula, ``jit`` and ``vmap`` against the plain call, float32 kept, and the derivative in
the prediction against central finite differences in float64."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from tests.registry import LOSSES

IDS = [e.name for e in LOSSES]
N_EXAMPLES = 4


def _examples(entry, seed=0):
    rng = np.random.default_rng(seed)
    return [entry.example(rng) for _ in range(N_EXAMPLES)]


def _as_jax(args, dtype=jnp.float64):
    return tuple(jnp.asarray(a) if isinstance(a, int) else jnp.asarray(a, dtype) for a in args)


def _public_losses():
    mod = jl.loss
    return sorted(n for n, obj in vars(mod).items()
                  if not n.startswith("_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__)


def test_every_public_loss_has_an_entry():
    covered = {c for e in LOSSES for c in (e.covers or (e.name,))}
    missing = sorted(set(_public_losses()) - covered)
    assert not missing, f"jaxopt_lab.loss exports {missing} with no LOSSES entry in tests/registry.py"
    assert covered <= set(_public_losses()), sorted(covered - set(_public_losses()))


@pytest.mark.parametrize("entry", LOSSES, ids=IDS)
def test_loss_matches_numpy_reference(entry):
    fn = entry.fn()
    for args in _examples(entry):
        np.testing.assert_allclose(fn(*_as_jax(args)), entry.reference(*args), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{entry.name}{args}")


@pytest.mark.parametrize("entry", LOSSES, ids=IDS)
def test_loss_jit_and_vmap_match_plain_call(entry):
    fn = entry.fn()
    examples = [_as_jax(a) for a in _examples(entry, seed=1)]
    plain = [fn(*a) for a in examples]
    for a, p in zip(examples, plain, strict=True):
        np.testing.assert_allclose(jax.jit(fn)(*a), p, rtol=1e-14, atol=1e-15)
    batch = tuple(jnp.stack(col) for col in zip(*examples, strict=True))
    np.testing.assert_allclose(jax.vmap(fn)(*batch), jnp.stack(plain), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("entry", LOSSES, ids=IDS)
def test_loss_keeps_float32_with_a_finite_gradient(entry):
    fn = entry.fn()
    for args in _examples(entry, seed=2):
        a = _as_jax(args, jnp.float32)
        out = fn(*a)
        assert out.dtype == jnp.float32, (entry.name, out.dtype)
        np.testing.assert_allclose(out, entry.reference(*args), rtol=2e-5, atol=2e-6)
        g = jax.grad(lambda z, a=a: jnp.sum(fn(*a[:-1], z)))(a[-1])
        assert g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))), entry.name


@pytest.mark.parametrize("entry", LOSSES, ids=IDS)
def test_loss_gradient_matches_finite_differences(entry):
    fn = entry.fn()
    h = 1e-6
    for args in _examples(entry, seed=3):
        a = _as_jax(args)
        total = lambda z, a=a: jnp.sum(fn(*a[:-1], z))  # noqa: E731
        g = np.asarray(jax.grad(total)(a[-1]))
        z = np.atleast_1d(np.asarray(args[-1], np.float64))
        fd = np.empty_like(z)
        for i in range(z.size):
            e = np.zeros_like(z)
            e[i] = h
            up, down = (np.sum(entry.reference(*args[:-1], (z + s * e).reshape(np.shape(args[-1]))))
                        for s in (1, -1))
            fd[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(g.reshape(-1), fd, rtol=1e-6, atol=1e-7, err_msg=f"{entry.name}{args}")
