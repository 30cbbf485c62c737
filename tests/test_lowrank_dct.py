"""lowrank_dct: column selection only on refresh steps, the projection in between, default rank."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.fft import dct

import jaxopt_lab as jl

rng = np.random.default_rng(0)


def _reference(grads, rank, update_interval, b1=0.9, b2=0.999, eps=1e-8):
    """Dense NumPy Adam-on-DCT-columns (tall leaves): columns re-selected by
    ``||D[:, j]^T G||`` when ``t % update_interval == 0``, reused otherwise."""
    m, n = grads[0].shape
    D = dct(np.eye(m), norm="ortho", axis=0).T  # columns: the orthonormal DCT-II basis
    mu = nu = np.zeros((rank, n))
    outs, chosen = [], []
    for t, G in enumerate(grads):
        if t % update_interval == 0:
            S = np.argsort(-np.sum((D.T @ G) ** 2, axis=1))[:rank]
        Q = D[:, S]
        R = Q.T @ G
        mu = b1 * mu + (1 - b1) * R
        nu = b2 * nu + (1 - b2) * R * R
        step = (mu / (1 - b1 ** (t + 1))) / (np.sqrt(nu / (1 - b2 ** (t + 1))) + eps)
        outs.append(Q @ step)
        chosen.append(sorted(S.tolist()))
    return outs, chosen


def _grads_in_span(m, n, columns_per_step):
    """Gradients ``D[:, S_t] C_t`` whose best columns ``S_t`` change from step to step."""
    D = dct(np.eye(m), norm="ortho", axis=0).T
    return [D[:, S] @ (rng.standard_normal((len(S), n)) * np.arange(len(S), 0, -1)[:, None]) +
            1e-3 * rng.standard_normal((m, n)) for S in columns_per_step]


@pytest.mark.parametrize("wide", [False, True], ids=["tall", "wide"])
def test_selects_on_refresh_steps_only(wide):
    """Steps 0 and 3 re-select (interval 3); steps 1, 2, 4 reuse the stored columns although
    their gradients live on other columns. A rule that re-selects every step fails at step 1,
    one that never re-selects fails at step 3."""
    S = [[1, 4, 9], [0, 2, 5], [3, 7, 11], [6, 8, 10], [12, 13, 14]]
    grads = _grads_in_span(16, 5, S)
    ref, chosen = _reference(grads, rank=3, update_interval=3)
    assert chosen == [S[0], S[0], S[0], S[3], S[3]]
    opt = jl.scale_by_lowrank_dct(rank=3, update_interval=3)
    tr = (lambda x: x.T) if wide else (lambda x: x)
    state = opt.init(jnp.zeros(tr(grads[0]).shape))
    step = jax.jit(opt.update)
    for t, G in enumerate(grads):
        u, state = step(jnp.asarray(tr(G), jnp.float32), state)
        assert sorted(np.asarray(state.index).tolist()) == chosen[t], t
        np.testing.assert_allclose(np.asarray(u), tr(ref[t]), atol=2e-4, rtol=2e-4)
        D = dct(np.eye(16), norm="ortho", axis=0).T
        np.testing.assert_allclose(np.asarray(state.basis), D[:, np.asarray(state.index)], atol=1e-6)


def test_refresh_step_matches_previous_dense_selection():
    """On a refresh step the FFT scoring picks the columns the dense ``D^T G`` scoring picked."""
    G = rng.standard_normal((64, 12))
    old_scores = np.sum((np.asarray(jl.dct_basis(64, jnp.float32)).T @ G) ** 2, axis=1)
    opt = jl.scale_by_lowrank_dct(rank=5, update_interval=7)
    _, state = opt.update(jnp.asarray(G, jnp.float32), opt.init(jnp.zeros((64, 12))))
    assert sorted(np.asarray(state.index).tolist()) == sorted(np.argsort(-old_scores)[:5].tolist())


def test_default_rank_and_rank_per_leaf():
    params = {"big": jnp.zeros((1024, 256)), "small": jnp.zeros((6, 3)), "huge": jnp.zeros((600, 2000))}
    opt = jl.lowrank_dct(0.1)
    state = opt.init(params)[0]
    assert {k: v.shape[0] for k, v in state.index.items()} == {"big": 64, "small": 1, "huge": 128}
    assert state.mu["big"].shape == (64, 256) and state.mu["huge"].shape == (600, 128)
    u, _ = opt.update(jax.tree_util.tree_map(jnp.ones_like, params), opt.init(params), params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(u))


def test_default_rank_converges_on_least_squares():
    A = jnp.asarray(rng.standard_normal((32, 16)), jnp.float32)
    B = jnp.asarray(rng.standard_normal((32, 8)), jnp.float32)
    loss = lambda W: 0.5 * jnp.sum((A @ W - B) ** 2)
    opt = jl.lowrank_dct(0.05, update_interval=5)

    @jax.jit
    def run(W):
        def body(c, _):
            W, s = c
            u, s = opt.update(jax.grad(loss)(W), s, W)
            return (optax.apply_updates(W, u), s), None
        return jax.lax.scan(body, (W, opt.init(W)), None, 300)[0][0]

    W0 = jnp.zeros((16, 8))
    best = float(loss(jnp.linalg.lstsq(A, B)[0]))
    assert float(loss(run(W0))) - best < 0.2 * (float(loss(W0)) - best)
