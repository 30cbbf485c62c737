"""Stochastic penalty method (Kwon, Kwon, Wright, Nowak 2023) against closed forms.

The penalty minimizer ``x_sigma`` of ``psi_sigma`` has a closed form on the quadratic problem
(``grad psi_sigma`` is linear in ``x``), so the iterates are checked against it, and ``x_sigma``
against the hyper-solution ``x*`` at distance ``O(sigma)``; with a sampler the noise is averaged
over keys and over the last iterates; with convex sets the result is compared with the
projected solution computed by SciPy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from jaxopt_lab import Status
from jaxopt_lab import bilevel as bl
from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel

Q = quadratic_bilevel()
D = {k: np.asarray(v, np.float64) for k, v in Q.data.items()}
A, B, b, e, mu = D["A"], D["B"], D["b"], D["e"], float(D["mu"])
X_STAR = np.asarray(Q.x_star, np.float64)


def x_sigma(sigma):
    """Minimizer of psi_sigma: solves mu x + e - B^T (y_sigma(x) - z(x)) / sigma = 0.

    Here y_sigma(x) = (sigma I + A)^-1 (sigma b + Bx) and z(x) = A^-1 Bx.
    """
    M = np.linalg.inv(sigma * np.eye(len(b)) + A)
    H = mu * np.eye(B.shape[1]) - B.T @ (M - np.linalg.inv(A)) @ B / sigma
    return np.linalg.solve(H, B.T @ M @ b - e)


@pytest.mark.parametrize("sigma", [1e-1, 1e-2])
def test_deterministic_single_loop_reaches_penalty_minimizer_within_order_sigma(sigma):
    solver = bl.StochasticPenaltyBilevel(Q.problem, sigma=sigma, sigma0=1.0, sigma_decay=1.0, stepsize=0.5,
                                         stepsize_decay=0.0, inner_stepsize_decay=0.0, maxiter=3000, tol=1e-9)
    out = jax.jit(solver.run)(Q.x0, Q.y0, Q.data)
    assert int(out.state.status) == Status.CONVERGED
    assert float(out.state.sigma) == pytest.approx(sigma)  # the schedule reached its floor
    xs = x_sigma(sigma)
    np.testing.assert_allclose(out.params.x, xs, atol=1e-6)
    # Kwon et al., Theorem 3.x: |x_sigma - x*| = O(sigma) (measured 0.36 sigma here).
    assert 0.2 * sigma < np.linalg.norm(xs - X_STAR) <= 0.5 * sigma


def _noisy(key, data):  # unbiased: F is linear in b and e
    k1, k2 = jax.random.split(key)
    return {**data, "b": data["b"] + 0.1 * jax.random.normal(k1, data["b"].shape),
            "e": data["e"] + 0.1 * jax.random.normal(k2, data["e"].shape)}


def _np_penalty_run(solver, x, y, steps, sigma, sigma0, p, alpha0, a, gamma0, c, inner_steps):
    """The documented iteration written out in NumPy, drawing the solver's samples with its keys.

    sigma_k = max(sigma, sigma0 (k+1)^-p), alpha_k = alpha0 (k+1)^-a, gamma_k = gamma0 (k+1)^-c;
    inner step i of iteration k uses sampler(fold_in(keys[0], i)), the x step sampler(keys[1]),
    with key, *keys = split(key, inner_steps + 2).
    """
    sample = jax.jit(lambda k: _noisy(k, Q.data))

    def draw(k):
        batch = sample(k)
        return np.asarray(batch["b"], np.float64), np.asarray(batch["e"], np.float64)

    key, z, y, x = solver.key, np.asarray(y, np.float64), np.asarray(y, np.float64), np.asarray(x, np.float64)
    out = []
    for k in range(steps):
        s_k = max(sigma, sigma0 * (k + 1.0) ** -p)
        alpha, gamma = alpha0 * (k + 1.0) ** -a, gamma0 * (k + 1.0) ** -c
        key, *keys = jax.random.split(key, inner_steps + 2)
        for i in range(inner_steps):
            bi, _ = draw(jax.random.fold_in(keys[0], i))
            z = z - gamma * (A @ z - B @ x)  # grad_y G
            y = y - gamma * (s_k * (y - bi) + A @ y - B @ x)  # grad_y (sigma F + G)
        bo, eo = draw(keys[1])
        # grad_x F(x, y) + (grad_x G(x, y) - grad_x G(x, z)) / sigma, grad_x G(x, y) = -B^T y
        h = mu * x + eo + (-B.T @ y + B.T @ z) / s_k
        x = x - alpha * h
        out.append((x.copy(), z.copy(), y.copy(), s_k))
    return out


@pytest.mark.parametrize("exponents", ["explicit", "default"])
def test_iterates_follow_the_documented_schedules_and_sampling(exponents):
    """Six iterations against the NumPy transcription of the docstring's rule: the three
    schedules with their exponents, gamma_k on both inner sequences, 1/sigma_k in the x step and
    one fresh sample per inner step plus one for the x step. A swapped exponent, a sigma_k that
    ignores its floor or schedule, or a reused sample fails it. ``"default"`` leaves the exponents
    to the solver: the documented a = 5/7, c = 4/7, p = a - c = 1/7 (Kwon et al.)."""
    decays = dict(p=0.5, a=0.6, c=0.4) if exponents == "explicit" else dict(p=1 / 7, a=5 / 7, c=4 / 7)
    opts = dict(sigma=0.3, sigma0=2.0, alpha0=0.2, gamma0=0.15, inner_steps=2, **decays)
    given = (dict(sigma_decay=opts["p"], stepsize_decay=opts["a"], inner_stepsize_decay=opts["c"])
             if exponents == "explicit" else {})
    solver = bl.StochasticPenaltyBilevel(
        Q.problem, sampler=_noisy, key=jax.random.PRNGKey(7), sigma=opts["sigma"], sigma0=opts["sigma0"],
        stepsize=opts["alpha0"], inner_stepsize=opts["gamma0"], inner_steps=opts["inner_steps"],
        maxiter=100, tol=0.0, **given)
    x0, y0 = Q.x0 + 0.5, Q.y0 - 0.3
    params = bl.BilevelParams(x0, y0)
    state = jax.jit(solver.init_state)(params, Q.data)
    update = jax.jit(solver.update)
    ref = _np_penalty_run(solver, x0, y0, 6, **opts)
    sigmas = []
    for x_r, z_r, y_r, s_r in ref:
        params, state = update(params, state, Q.data)
        np.testing.assert_allclose(params.x, x_r, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(params.y, z_r, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(state.y_penalty, y_r, rtol=2e-5, atol=2e-6)
        assert float(state.sigma) == pytest.approx(s_r, rel=1e-6)
        sigmas.append(s_r)
    # the schedule decreases above its floor (p = 0.5: 2, 1.41, 1.15, 1, 0.89, 0.82 > 0.3),
    # and the floor binds for a later start
    assert sigmas[0] == 2.0 and all(s1 < s0 for s0, s1 in zip(sigmas, sigmas[1:], strict=False))
    floored = bl.StochasticPenaltyBilevel(Q.problem, sigma=1.5, sigma0=2.0, sigma_decay=0.5)
    assert float(floored._sigma_at(10.0)) == 1.5  # 2 / sqrt(11) < 1.5


@pytest.mark.slow
def test_stochastic_single_loop_noise_averaged_approaches_hyper_solution():
    def averaged(key, sigma):
        solver = bl.StochasticPenaltyBilevel(Q.problem, sampler=_noisy, key=key, sigma=sigma, sigma0=1.0,
                                             sigma_decay=1.0, stepsize=0.5, stepsize_decay=0.4,
                                             inner_stepsize_decay=0.0, maxiter=2000, tol=0.0)
        out = solver.run(Q.x0, Q.y0, Q.data)

        def body(carry, _):
            o = solver.update(*carry, Q.data)
            return (o.params, o.state), o.params.x

        _, xs = jax.lax.scan(body, (out.params, out.state), None, length=1000)
        return xs.mean(0)  # tail average of one run

    run = jax.jit(jax.vmap(averaged, (0, None)))
    keys = jax.random.split(jax.random.PRNGKey(1), 8)
    errs = []
    for sigma in (1e-1, 1e-2):
        x_avg = np.asarray(run(keys, sigma)).mean(0)
        # Noise floor of the average: measured 0.008 (8 runs x 1000 iterates).
        assert np.linalg.norm(x_avg - x_sigma(sigma)) <= 0.02
        errs.append(np.linalg.norm(x_avg - X_STAR))
        assert errs[-1] <= 0.5 * sigma + 0.02
    assert errs[1] < errs[0] / 2  # measured 0.035 -> 0.008


# A constrained problem: G = |y - Bx|^2 / 2 on the affine set Y = {y : Cy = d}, so that
# y*(x) = P_Y(Bx) is affine in x and the hyper-objective is a convex quadratic; X is a box.
_rng = np.random.default_rng(3)
C, d = _rng.standard_normal((2, len(b))), _rng.standard_normal(2)
_CCt = np.linalg.inv(C @ C.T)
LO, HI = -0.3, 0.3


def _proj_y(y):
    return y - jnp.asarray(C.T @ _CCt) @ (jnp.asarray(C) @ y - jnp.asarray(d))


def _c_outer(x, y, data):
    return 0.5 * jnp.sum((y - data["b"]) ** 2) + 0.5 * data["mu"] * jnp.vdot(x, x) + jnp.vdot(data["e"], x)


def _c_inner(x, y, data):
    return 0.5 * jnp.sum((y - data["B"] @ x) ** 2)


def _c_phi(x):
    u = B @ x
    y = u - C.T @ _CCt @ (C @ u - d)
    return 0.5 * np.sum((y - b) ** 2) + 0.5 * mu * x @ x + e @ x


@pytest.mark.slow
def test_constrained_sets_match_projected_solution():
    box = [(LO, HI)] * B.shape[1]
    ref = scipy.optimize.minimize(_c_phi, np.zeros(B.shape[1]), method="L-BFGS-B", bounds=box,
                                  options=dict(ftol=1e-15, gtol=1e-12))
    free = scipy.optimize.minimize(_c_phi, np.zeros(B.shape[1]), method="BFGS", options=dict(gtol=1e-12))
    assert np.any(np.isclose(np.abs(ref.x), HI)) and np.linalg.norm(free.x - ref.x) > 0.1  # X binds
    problem = bl.BilevelProblem(_c_outer, _c_inner)
    errs = []
    for sigma in (1e-1, 1e-2):
        solver = bl.StochasticPenaltyBilevel(
            problem, sigma=sigma, sigma0=1.0, sigma_decay=1.0, stepsize=0.5, stepsize_decay=0.0,
            inner_stepsize=0.5, inner_stepsize_decay=0.0, maxiter=4000, tol=1e-9,
            projection_x=lambda x: jnp.clip(x, LO, HI), projection_y=_proj_y)
        out = jax.jit(solver.run)(Q.x0, _proj_y(Q.y0), Q.data)
        assert int(out.state.status) == Status.CONVERGED
        np.testing.assert_allclose(C @ np.asarray(out.params.y), d, atol=1e-8)  # z stays in Y
        assert float(jnp.max(jnp.abs(out.params.x))) <= HI
        errs.append(np.linalg.norm(np.asarray(out.params.x) - ref.x))
        assert errs[-1] <= 0.5 * sigma
    assert errs[1] < errs[0] / 5


def test_bad_arguments():
    with pytest.raises(TypeError, match="sampler"):
        bl.StochasticPenaltyBilevel(Q.problem, sampler=1.0)
    with pytest.raises(TypeError, match="projection_x"):
        bl.StochasticPenaltyBilevel(Q.problem, projection_x=None)
    with pytest.raises(ValueError, match="stepsize_decay"):
        bl.StochasticPenaltyBilevel(Q.problem, stepsize_decay=-1.0)
