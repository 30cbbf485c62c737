"""econtrol: the EControl recursion (eta), defaults tied to the compressor's delta, n workers."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from jaxopt_lab.transforms.econtrol import top_fraction_compressor

sys.path.insert(0, str(Path(__file__).parent))
import problems as P  # noqa: E402

rng = np.random.default_rng(0)


def _np_topk(x, k):
    out = np.zeros_like(x)
    idx = np.argsort(-np.abs(x), kind="stable")[:k]
    out[idx] = x[idx]
    return out


def _hand_econtrol(grads, eta, k):
    """Algorithm 1 of Gao, Islamov, Stich (2023), one worker, written out in NumPy."""
    e = h = np.zeros_like(grads[0])
    outs = []
    for g in grads:
        delta = _np_topk(eta * e + g - h, k)
        h_next = h + delta
        e = e + g - h_next
        h = h_next
        outs.append(h)
    return outs


def _run(opt, fun, x0, steps):
    @jax.jit
    def run(x):
        def body(c, _):
            x, s = c
            u, s = opt.update(jax.grad(fun)(x), s, x)
            return (optax.apply_updates(x, u), s), None
        return jax.lax.scan(body, (x, opt.init(x)), None, steps)[0][0]
    return run(x0)


@pytest.mark.parametrize("eta", [0.3, 0.05])
def test_matches_hand_written_recursion_and_uses_eta(eta):
    """Three steps against the written-out recursion; the error enters only from step 2 on, so
    a rule that ignored eta (or fixed it) differs there."""
    grads = [rng.standard_normal(9) for _ in range(3)]
    opt = jl.scale_by_econtrol(jl.top_k_compressor(2), eta=eta)
    state = opt.init(jnp.zeros(9))
    ref = _hand_econtrol(grads, eta, 2)
    ref_other = _hand_econtrol(grads, 0.0, 2)
    for t, g in enumerate(grads):
        u, state = opt.update(jnp.asarray(g), state)
        np.testing.assert_allclose(np.asarray(u), ref[t], rtol=1e-6, atol=1e-6)
    assert np.abs(ref[0] - ref_other[0]).max() == 0.0  # e = 0 on the first step
    assert max(np.abs(r - o).max() for r, o in zip(ref[1:], ref_other[1:], strict=True)) > 1e-2


def test_default_converges_where_the_old_default_blew_up():
    """``econtrol(0.05)`` as a new user calls it, on a 20-d and a 100-d quadratic (L = 10):
    the old defaults (top-1 per leaf, eta = 0.1) multiplied the loss gap by >1e4."""
    for d in (20, 100):
        fun, x0, xs = P.quadratic(d, cond=10.0, dtype=jnp.float32)
        x0 = x0 + 1.0
        gap = lambda x, fun=fun, xs=xs: float(fun(x) - fun(xs))
        assert gap(_run(jl.econtrol(0.05), fun, x0, 300)) < 1e-3 * gap(x0)
        old = jl.econtrol(0.05, jl.top_k_compressor(1), eta=0.1)
        assert gap(_run(old, fun, x0, 300)) > 1e2 * gap(x0)


def test_default_eta_is_a_quarter_of_delta():
    g = [jnp.asarray(rng.standard_normal(8)) for _ in range(3)]
    for comp, delta in ((jl.top_k_compressor(2), 2 / 8), (top_fraction_compressor(0.3), 3 / 8)):
        a, b = jl.scale_by_econtrol(comp), jl.scale_by_econtrol(comp, eta=delta / 4)
        sa, sb = a.init(g[0]), b.init(g[0])
        for x in g:
            ua, sa = a.update(x, sa)
            ub, sb = b.update(x, sb)
            np.testing.assert_allclose(ua, ub, rtol=1e-12)
    with pytest.raises(ValueError, match="eta"):
        jl.econtrol(0.1, compressor=lambda x, key: x).init(jnp.zeros(3))
    jl.econtrol(0.1, compressor=lambda x, key: x, eta=0.1).init(jnp.zeros(3))  # eta given: fine
    with pytest.raises(ValueError, match="fraction"):
        top_fraction_compressor(0.0)


def test_workers_each_keep_their_own_state_and_the_server_averages():
    n, params = 3, {"a": jnp.zeros(7), "b": jnp.zeros((2, 3))}
    comp = jl.top_k_compressor(2)
    multi = jl.scale_by_econtrol(comp, eta=0.2, num_workers=n)
    singles = [jl.scale_by_econtrol(comp, eta=0.2) for _ in range(n)]
    sm = multi.init(params)
    ss = [o.init(params) for o in singles]
    assert sm.error["b"].shape == (3, 2, 3)
    step = jax.jit(multi.update)
    for _ in range(4):
        g = jax.tree_util.tree_map(lambda p: jnp.asarray(rng.standard_normal((n, *p.shape))), params)
        u, sm = step(g, sm)
        outs = []
        for i in range(n):
            ui, ss[i] = singles[i].update(jax.tree_util.tree_map(lambda x, i=i: x[i], g), ss[i])
            outs.append(ui)
        for name in params:
            np.testing.assert_allclose(u[name], np.mean([o[name] for o in outs], axis=0), atol=1e-12)
            np.testing.assert_allclose(sm.error[name], np.stack([s.error[name] for s in ss]), atol=1e-12)
    with pytest.raises(ValueError, match="grads"):
        multi.update(params, sm)  # missing the worker axis


def test_workers_with_different_data_reach_the_average_minimizer():
    """Heterogeneous workers: f_i(x) = 0.5 x'Qx - c_i'x; their mean is minimized at Q^{-1} mean c."""
    n, d = 4, 30
    fun, x0, _ = P.quadratic(d, cond=10.0, dtype=jnp.float32)
    Q = jax.hessian(fun)(x0)
    C = jnp.asarray(rng.standard_normal((n, d)), jnp.float32)
    x_star = np.linalg.solve(np.asarray(Q, np.float64), np.asarray(C, np.float64).mean(0))
    opt = jl.econtrol(0.05, num_workers=n)

    @jax.jit
    def run(x):
        def body(c, _):
            x, s = c
            g = x @ Q - C  # one gradient row per worker
            u, s = opt.update(g, s, x)
            return (optax.apply_updates(x, u), s), None
        return jax.lax.scan(body, (x, opt.init(x)), None, 400)[0][0]

    x = run(x0)
    assert np.linalg.norm(np.asarray(x) - x_star) < 1e-3 * np.linalg.norm(x_star)
