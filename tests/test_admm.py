"""ADMM and consensus ADMM (issue 19 item 2): references from scikit-learn, SciPy and CVXPY,
finite differences for the implicit derivatives, residual balancing, bad input, devices."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import jaxopt_lab as jl
from jaxopt_lab.problems.convex_relu import convex_relu

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lasso_data(n=50, d=20, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((n, d))), jnp.asarray(rng.standard_normal(n))


def _least_squares(w, X, y):
    """``1/(2 n) ||X w - y||^2``: scikit-learn's Lasso loss."""
    r = X @ w - y
    return 0.5 * jnp.vdot(r, r) / X.shape[0]


def _sklearn_lasso(X, y, lam):
    sklearn = pytest.importorskip("sklearn.linear_model")
    model = sklearn.Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=200_000)
    return model.fit(np.asarray(X), np.asarray(y)).coef_


@pytest.mark.parametrize("quadratic", [True, False], ids=["cholesky", "lbfgs"])
def test_lasso_matches_sklearn(quadratic):
    X, y = _lasso_data()
    lam = 0.1
    ref = _sklearn_lasso(X, y, lam)
    solver = jl.ADMM(_least_squares, jl.prox.prox_lasso, quadratic=quadratic, alpha=1.6, tol=1e-10,
                     maxiter=5000)
    out = solver.run(jnp.zeros(X.shape[1]), lam, X, y)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, ref, atol=1e-5)
    # The splitting variable z = prox(...) carries the exact zeros of the solution; x -> z.
    np.testing.assert_array_equal(out.state.z == 0, ref == 0)
    assert int(jnp.sum(out.state.z == 0)) > 0
    np.testing.assert_allclose(out.state.z, ref, atol=1e-5)
    assert float(out.state.primal_residual) < 1e-8
    if not quadratic:
        assert int(out.state.inner_iter_num) > 0


def test_lasso_all_zero_solution_converges():
    """lam above ||X^T y||_inf / n: x* = 0, where a purely relative test never stops (||Ax|| -> 0)."""
    X, y = _lasso_data()
    lam = 1.1 * float(jnp.max(jnp.abs(X.T @ y))) / X.shape[0]
    out = jl.ADMM(_least_squares, jl.prox.prox_lasso, quadratic=True, tol=1e-8).run(jnp.ones(20), lam, X, y)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, 0.0, atol=1e-7)


def test_nonnegative_least_squares_matches_scipy_nnls():
    rng = np.random.default_rng(3)
    M, b = rng.standard_normal((30, 12)), rng.standard_normal(30)
    ref, _ = scipy.optimize.nnls(M, b)
    assert np.sum(ref == 0) > 0  # active constraints
    fun = lambda x, M, b: 0.5 * jnp.sum((M @ x - b) ** 2)
    prox = jl.prox.make_prox_from_projection(jl.projection.projection_non_negative)
    for quadratic in (True, False):
        out = jl.ADMM(fun, prox, quadratic=quadratic, tol=1e-10, maxiter=5000).run(
            jnp.zeros(12), None, jnp.asarray(M), jnp.asarray(b))
        assert int(out.state.status) == jl.Status.CONVERGED
        np.testing.assert_allclose(out.params, ref, atol=1e-6)
        assert float(jnp.min(out.state.z)) >= 0.0


# ------------------------------------------------------- convex two-layer ReLU network training
def _relu_problem(n=12, d=3, num_gates=4, beta=0.1, seed=0):
    """The convex two-layer ReLU program (:func:`jaxopt_lab.problems.convex_relu.convex_relu`)."""
    return convex_relu(n, d, num_gates, beta, seed)


def _squared_loss(u, F, y):
    r = F @ u - y
    return 0.5 * jnp.vdot(r, r)


def test_convex_relu_network_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    pb = _relu_problem()
    solver = jl.ADMM(_squared_loss, pb["prox"], A=jnp.asarray(pb["A"]), quadratic=True, tol=1e-9,
                     maxiter=20000)
    out = solver.run(jnp.zeros(pb["A"].shape[1]), pb["beta"], jnp.asarray(pb["F"]), jnp.asarray(pb["y"]))
    assert int(out.state.status) == jl.Status.CONVERGED
    u = np.asarray(out.params)

    U = cp.Variable(u.size)
    d = pb["d"]
    reg = sum(cp.norm(U[j * d:(j + 1) * d]) for j in range(pb["groups"]))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(pb["F"] @ U - pb["y"]) + pb["beta"] * reg),
                      [pb["K"] @ U >= 0])
    prob.solve(solver="CLARABEL")
    assert abs(pb["objective"](u) - prob.value) <= 1e-6 * abs(prob.value)
    assert float(np.min(pb["K"] @ u)) >= -1e-7  # the cone constraints hold
    np.testing.assert_allclose(u, U.value, atol=1e-4)
    # The convex solution is a ReLU network: sum_i relu(X v_i) - relu(X w_i) reproduces F u.
    groups = u.reshape(pb["groups"], d)
    P = pb["groups"] // 2
    net = sum(np.maximum(pb["X"] @ groups[i], 0) - np.maximum(pb["X"] @ groups[P + i], 0) for i in range(P))
    np.testing.assert_allclose(net, pb["F"] @ u, atol=1e-6)


# ------------------------------------------------------------------------- consensus ADMM
@pytest.mark.parametrize("quadratic", [True, False], ids=["cholesky", "lbfgs"])
def test_consensus_equals_plain_admm_on_concatenated_data(quadratic):
    X, y = _lasso_data(n=60)
    lam = 0.05
    loss = lambda w, X, y: 0.5 * jnp.sum((X @ w - y) ** 2)
    plain = jl.ADMM(loss, jl.prox.prox_lasso, quadratic=True, tol=1e-11, maxiter=5000).run(
        jnp.zeros(20), lam, X, y)
    blocks = jl.ConsensusADMM(loss, jl.prox.prox_lasso, quadratic=quadratic, tol=1e-10, maxiter=5000)
    out = blocks.run(jnp.zeros(20), lam, X.reshape(4, 15, 20), y.reshape(4, 15))
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, plain.params, atol=1e-7)
    assert out.state.x_blocks.shape == (4, 20)
    np.testing.assert_allclose(out.state.x_blocks, jnp.broadcast_to(out.params, (4, 20)), atol=1e-6)
    # Multipliers: y_i = -grad f_i(z) at the solution (stationarity of each block).
    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(out.params, X.reshape(4, 15, 20), y.reshape(4, 15))
    np.testing.assert_allclose(out.state.dual, -grads, atol=1e-5)


def test_consensus_shared_argument_and_pytree():
    """``in_axes=(0, None)``: per-block targets, a shared scale; a dict-valued ``x``."""
    rng = np.random.default_rng(5)
    targets = jnp.asarray(rng.standard_normal((3, 4)))
    fun = lambda p, t, s: s * (jnp.sum((p["a"] - t) ** 2) + jnp.sum(p["b"] ** 2))
    out = jl.ConsensusADMM(fun, jl.prox.prox_none, in_axes=(0, None), tol=1e-10).run(
        {"a": jnp.zeros(4), "b": jnp.ones(2)}, None, targets, 2.0)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params["a"], jnp.mean(targets, axis=0), atol=1e-7)
    np.testing.assert_allclose(out.params["b"], 0.0, atol=1e-7)


# ---------------------------------------------------------------- rho, over-relaxation, vmap
def test_residual_balancing_changes_rho_and_converges():
    X, y = _lasso_data()
    ref = _sklearn_lasso(X, y, 0.1)
    for rho0 in (1e-3, 1e3):
        make = lambda balancing, rho0=rho0: jl.ADMM(_least_squares, jl.prox.prox_lasso, rho=rho0,
                                                    quadratic=True, residual_balancing=balancing, tol=1e-8,
                                                    maxiter=1000)
        out = make(True).run(jnp.zeros(20), 0.1, X, y)
        assert int(out.state.status) == jl.Status.CONVERGED
        assert 1e-2 < float(out.state.rho) < 1e2  # moved far from rho0 by factors of tau
        np.testing.assert_allclose(out.params, ref, atol=1e-5)
        # The factor was refactored for the final rho: x-updates used the right matrix.
        assert float(out.state.factor_rho) == float(out.state.rho) or int(out.state.iter_num) > 0
        fixed = make(False).run(jnp.zeros(20), 0.1, X, y)
        assert int(fixed.state.status) == jl.Status.MAX_ITER  # rho0 that bad stalls without balancing
        assert float(fixed.state.rho) == rho0


def test_over_relaxation_same_solution_fewer_iterations():
    X, y = _lasso_data()
    runs = {a: jl.ADMM(_least_squares, jl.prox.prox_lasso, alpha=a, quadratic=True, tol=1e-8).run(
        jnp.zeros(20), 0.1, X, y) for a in (1.0, 1.7)}
    np.testing.assert_allclose(runs[1.7].params, runs[1.0].params, atol=1e-6)
    assert int(runs[1.7].state.iter_num) < int(runs[1.0].state.iter_num)


def test_vmap_over_hyperparams_and_rho_status_per_lane():
    X, y = _lasso_data()
    lams = jnp.asarray([0.05, 0.1, jnp.nan])
    rhos = jnp.asarray([1.0, 0.5, 1.0])

    def solve(lam, rho):
        return jl.ADMM(_least_squares, jl.prox.prox_lasso, rho=rho, quadratic=True, tol=1e-8).run(
            jnp.zeros(20), lam, X, y)

    out = jax.jit(jax.vmap(solve))(lams, rhos)
    expected = [jl.Status.CONVERGED, jl.Status.CONVERGED, jl.Status.NONFINITE]
    assert [int(s) for s in out.state.status] == expected
    assert bool(jnp.all(jnp.isfinite(out.params[2])))
    for i in range(2):
        single = solve(lams[i], rhos[i])
        np.testing.assert_allclose(out.params[i], single.params, rtol=1e-9, atol=1e-12)
        assert int(out.state.iter_num[i]) == int(single.state.iter_num)


# ------------------------------------------------------------------- implicit derivatives
def _fd(fn, theta, eps):
    return (fn(theta + eps) - fn(theta - eps)) / (2 * eps)


@pytest.mark.parametrize("with_A", [False, True], ids=["prox_gradient_fixed_point", "kkt"])
def test_implicit_derivatives_match_finite_differences(with_A):
    X, y = _lasso_data(n=40, d=10, seed=1)
    lam = 0.05
    if with_A:  # generalized lasso: g(Ax) = lam ||A x||_1 with a square invertible A
        A = jnp.eye(10) + 0.3 * jnp.asarray(np.random.default_rng(2).standard_normal((10, 10))) / np.sqrt(10)
        solver = jl.ADMM(_least_squares, jl.prox.prox_lasso, A=A, quadratic=True, tol=1e-12, maxiter=20000)
    else:
        solver = jl.ADMM(_least_squares, jl.prox.prox_lasso, tol=1e-12, maxiter=20000)
    x0 = jnp.zeros(10)
    sol = lambda lam_, y_: solver.run(x0, lam_, X, y_).params
    z = solver.run(x0, lam, X, y).state.z
    assert 0 < int(jnp.sum(z == 0)) < 10  # an active set: the derivative's interesting case
    dy = jnp.asarray(np.random.default_rng(4).standard_normal(y.shape))
    fd_lam = _fd(lambda t: sol(t, y), lam, 1e-6)
    fd_y = _fd(lambda t: sol(lam, y + t * dy), 0.0, 1e-6)
    _, jvp_lam = jax.jvp(lambda t: sol(t, y), (lam,), (1.0,))
    _, jvp_y = jax.jvp(lambda v: sol(lam, v), (y,), (dy,))
    np.testing.assert_allclose(jvp_lam, fd_lam, atol=1e-6)
    np.testing.assert_allclose(jvp_y, fd_y, atol=1e-6)
    w = jnp.asarray(np.random.default_rng(6).standard_normal(10))
    g_lam, g_y = jax.grad(lambda t, v: jnp.vdot(w, sol(t, v)), argnums=(0, 1))(lam, y)
    np.testing.assert_allclose(g_lam, jnp.vdot(w, fd_lam), atol=1e-6)
    np.testing.assert_allclose(jnp.vdot(g_y, dy), jnp.vdot(w, fd_y), atol=1e-6)


def test_consensus_implicit_derivative_matches_plain():
    X, y = _lasso_data(n=40, d=10, seed=1)
    loss = lambda w, X, y: 0.5 * jnp.sum((X @ w - y) ** 2)
    plain = jl.ADMM(loss, jl.prox.prox_lasso, quadratic=True, tol=1e-12, maxiter=20000)
    blocks = jl.ConsensusADMM(loss, jl.prox.prox_lasso, quadratic=True, tol=1e-12, maxiter=20000)
    g_plain = jax.grad(lambda t: jnp.sum(plain.run(jnp.zeros(10), t, X, y).params ** 2))(2.0)
    g_blocks = jax.grad(lambda t: jnp.sum(blocks.run(jnp.zeros(10), t, X.reshape(2, 20, 10),
                                                     y.reshape(2, 20)).params ** 2))(2.0)
    np.testing.assert_allclose(g_blocks, g_plain, rtol=1e-6)


# ---------------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument():
    f = _least_squares
    with pytest.raises(ValueError, match="`rho`"):
        jl.ADMM(f, jl.prox.prox_lasso, rho=0.0)
    with pytest.raises(ValueError, match="`rho`"):
        jl.ConsensusADMM(f, jl.prox.prox_lasso, rho=-1.0)
    with pytest.raises(TypeError, match="`prox`"):
        jl.ADMM(f, "soft-threshold")
    with pytest.raises(TypeError, match="`fun`"):
        jl.ADMM(None, jl.prox.prox_lasso)
    with pytest.raises(ValueError, match="`alpha`"):
        jl.ADMM(f, jl.prox.prox_lasso, alpha=2.0)
    with pytest.raises(ValueError, match="`tau`"):
        jl.ADMM(f, jl.prox.prox_lasso, tau=1.0)
    with pytest.raises(ValueError, match="`A`"):
        jl.ADMM(f, jl.prox.prox_lasso, A=jnp.ones(3))
    with pytest.raises(TypeError, match="`A`"):
        jl.ADMM(f, jl.prox.prox_lasso, A=lambda x: x)
    X, y = _lasso_data(n=10, d=4)
    with pytest.raises(ValueError, match="`A`"):  # 5 columns for a 4-vector
        jl.ADMM(f, jl.prox.prox_lasso, A=jnp.ones((3, 5))).run(jnp.zeros(4), 0.1, X, y)
    with pytest.raises(ValueError, match="`quadratic=True`"):
        jl.ADMM(f, jl.prox.prox_lasso, quadratic=True).run({"w": jnp.zeros(4)}, 0.1, X, y)
    with pytest.raises(ValueError, match="block"):  # blocks of different sizes
        jl.ConsensusADMM(f, jl.prox.prox_lasso).run(jnp.zeros(4), 0.1, X.reshape(2, 5, 4), y.reshape(5, 2))
    with pytest.raises(TypeError, match="`mesh`"):
        jl.ConsensusADMM(f, jl.prox.prox_lasso, mesh="cpu")


# ------------------------------------------------------- float32 default, devices (subprocess)
_SUBPROCESS = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh
    import jaxopt_lab as jl
    assert not jax.config.jax_enable_x64 and len(jax.devices()) == 4
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((64, 10)), jnp.float32)
    y = jnp.asarray(rng.standard_normal(64), jnp.float32)
    loss = lambda w, X, y: 0.5 * jnp.sum((X @ w - y) ** 2)
    # float32 default: plain ADMM, both x-updates.
    ref = jl.ADMM(loss, jl.prox.prox_lasso, quadratic=True, tol=1e-5).run(jnp.zeros(10), 1.0, X, y)
    lb = jl.ADMM(loss, jl.prox.prox_lasso, tol=1e-5).run(jnp.zeros(10), 1.0, X, y)
    for out in (ref, lb):
        assert out.params.dtype == jnp.float32 and out.state.rho.dtype == jnp.float32
        assert int(out.state.status) == jl.Status.CONVERGED, int(out.state.status)
    np.testing.assert_allclose(lb.params, ref.params, atol=1e-3)
    # Consensus over 8 blocks, sharded over 4 devices, equals the unsharded run.
    Xb, yb = X.reshape(8, 8, 10), y.reshape(8, 8)
    mesh = Mesh(np.array(jax.devices()), ("blocks",))
    solo = jl.ConsensusADMM(loss, jl.prox.prox_lasso, tol=1e-5, maxiter=3000).run(jnp.zeros(10), 1.0, Xb, yb)
    shard = jl.ConsensusADMM(loss, jl.prox.prox_lasso, tol=1e-5, maxiter=3000, mesh=mesh).run(
        jnp.zeros(10), 1.0, Xb, yb)
    assert int(shard.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(shard.params, solo.params, atol=1e-5)
    np.testing.assert_allclose(shard.params, ref.params, atol=2e-3)
    assert len(shard.state.x_blocks.sharding.device_set) == 4, shard.state.x_blocks.sharding
    try:
        jl.ConsensusADMM(loss, jl.prox.prox_lasso, mesh=mesh).run(jnp.zeros(10), 1.0, X.reshape(2, 32, 10),
                                                                 y.reshape(2, 32))
        raise AssertionError("2 blocks on 4 devices accepted")
    except ValueError as e:
        assert "`mesh`" in str(e)
    print("OK")
""")


@pytest.mark.slow
def test_float32_default_and_consensus_sharded_over_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu", "JAX_ENABLE_X64": "0", "PYTHONPATH": _REPO}
    res = subprocess.run([sys.executable, "-c", _SUBPROCESS], env=env, capture_output=True, text=True,
                         timeout=600, cwd=_REPO)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]
