"""DFP (Davidon-Fletcher-Powell) on the dense quasi-Newton skeleton.

The inverse Hessian after an update equals the DFP formula computed densely in NumPy;
with exact line searches on a strictly convex quadratic DFP (like BFGS) ends at the
minimizer in at most ``n`` iterations with ``H = A^{-1}`` (Nocedal and Wright, Thm. 6.4
for the Broyden class); on Rosenbrock it reaches SciPy's BFGS solution; float32 converges
with the default ``tol``; complex params are iterated on in their real view.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import jaxopt_lab as jl


def _quadratic(n=6, cond=50.0, seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q @ np.diag(np.geomspace(1.0, cond, n)) @ Q.T
    b = rng.standard_normal(n)
    A_j, b_j = jnp.asarray(A, dtype), jnp.asarray(b, dtype)
    return (lambda x: 0.5 * x @ A_j @ x - b_j @ x), A, b


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _dfp(H, s, y):
    """The DFP inverse-Hessian update, densely: H + s s^T / s^T y - H y y^T H / y^T H y."""
    Hy = H @ y
    return H + np.outer(s, s) / (s @ y) - np.outer(Hy, Hy) / (y @ Hy)


def test_inverse_hessian_updates_match_dense_dfp_formula():
    fun, A, b = _quadratic(n=5)
    solver = jl.DFP(fun, tol=1e-12)
    x = jnp.zeros(5)
    state = solver.init_state(x)
    np.testing.assert_array_equal(np.asarray(state.H), np.eye(5))
    H = None
    for k in range(3):
        new_x, new_state = solver.update(x, state)
        s = np.asarray(new_x - x)
        y = np.asarray(new_state.grad - state.grad)
        np.testing.assert_allclose(y, A @ s, rtol=1e-10, atol=1e-12)  # a true curvature pair
        # Before the first update H is the scaled identity <s, y> / <y, y> I (N&W eq. 6.20).
        H = (s @ y) / (y @ y) * np.eye(5) if k == 0 else H
        H = _dfp(H, s, y)
        np.testing.assert_allclose(np.asarray(new_state.H), H, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(new_state.H) @ y, s, rtol=1e-9, atol=1e-12)  # secant
        x, state = new_x, new_state
    # DFP is not BFGS: after the same first step the two updates differ.
    bfgs = jl.BFGS(fun, tol=1e-12)
    x1, st1 = bfgs.update(jnp.zeros(5), bfgs.init_state(jnp.zeros(5)))
    x1_d, st1_d = solver.update(jnp.zeros(5), solver.init_state(jnp.zeros(5)))
    np.testing.assert_allclose(np.asarray(x1), np.asarray(x1_d), rtol=1e-12)  # same first step
    assert np.max(np.abs(np.asarray(st1.H) - np.asarray(st1_d.H))) > 1e-3


@pytest.mark.parametrize("solver_cls", [jl.DFP, jl.BFGS], ids=["DFP", "BFGS"])
def test_exact_line_search_ends_at_quadratic_minimizer_in_n_iterations(solver_cls):
    n = 6
    fun, A, b = _quadratic(n=n, cond=100.0, seed=1)
    x_star = np.linalg.solve(A, b)
    # c2 -> 0: the strong-Wolfe search must find the minimizer along the line (to ~1e-12
    # here: its cubic interpolation is exact on a quadratic); c1 < c2 as Wolfe requires.
    solver = solver_cls(fun, tol=1e-12, c1=1e-10, c2=1e-9, maxiter=n)
    out = solver.run(jnp.zeros(n))
    assert int(out.state.iter_num) == n
    # n conjugate steps: the minimizer (up to the line searches' rounding, amplified by the
    # conditioning) and H = A^{-1}; one step fewer is still far from it.
    np.testing.assert_allclose(np.asarray(out.params), x_star, rtol=1e-6, atol=1e-7)
    assert float(out.state.error) <= 1e-7 * float(np.linalg.norm(b))
    np.testing.assert_allclose(np.asarray(out.state.H), np.linalg.inv(A), rtol=1e-5, atol=1e-6)
    early = solver_cls(fun, tol=1e-12, c1=1e-10, c2=1e-9, maxiter=n - 1).run(jnp.zeros(n))
    assert float(early.state.error) > 1e-3 * float(np.linalg.norm(b))


def test_rosenbrock_matches_scipy_bfgs_float64():
    x0 = np.array([-1.2, 1.0, -1.2, 1.0])
    ref = scipy.optimize.minimize(lambda x: float(_rosenbrock(jnp.asarray(x))), x0, method="BFGS",
                                  jac=lambda x: np.asarray(jax.grad(_rosenbrock)(jnp.asarray(x))),
                                  options=dict(gtol=1e-10, maxiter=1000))
    assert ref.success
    out = jl.DFP(_rosenbrock, tol=1e-10, maxiter=500).run(jnp.asarray(x0))
    assert int(out.state.status) == jl.Status.CONVERGED
    assert out.params.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(out.params), ref.x, atol=1e-6)


@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_float32_converges_with_default_tol(problem):
    if problem == "quadratic":
        fun, A, b = _quadratic(n=6, cond=100.0, dtype=jnp.float32)
        x0, x_star = jnp.zeros(6, jnp.float32), np.linalg.solve(A, b)
    else:
        fun, x0, x_star = _rosenbrock, jnp.asarray([-1.2, 1.0, -1.2, 1.0], jnp.float32), np.ones(4)
    out = jl.DFP(fun).run(x0)
    assert out.params.dtype == jnp.float32 and out.state.H.dtype == jnp.float32
    assert int(out.state.status) == jl.Status.CONVERGED
    assert float(out.state.error) <= 1e-3
    np.testing.assert_allclose(np.asarray(out.params), x_star, atol=1e-2)


def test_complex_least_squares_matches_lstsq():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((10, 4)) + 1j * rng.standard_normal((10, 4))
    z = rng.standard_normal(10) + 1j * rng.standard_normal(10)
    z_star = np.linalg.lstsq(A, z, rcond=None)[0]
    A_j, z_j = jnp.asarray(A), jnp.asarray(z)
    out = jl.DFP(lambda w: jnp.sum(jnp.abs(A_j @ w - z_j) ** 2), tol=1e-9).run(jnp.zeros(4, jnp.complex128))
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(np.asarray(out.params), z_star, atol=1e-8)


def test_bad_line_search_constants_raise_naming_them():
    with pytest.raises(ValueError, match="c2"):
        jl.DFP(_rosenbrock, c1=0.5, c2=0.1)
