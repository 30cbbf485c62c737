"""AdaptiveRegularizedNewton (Semenov, Jaggi, Doikov 2025, arXiv:2506.13710): the adaptive
search on the gradient-normalized smoothness replaces the Lipschitz constant of
RegularizedNewton, and its acceptance test is what makes it converge."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab.solvers.newton import adaptive_regularized_newton as arn


def _logistic(scale=5.0, n=200, d=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * scale
    y = np.sign(rng.standard_normal(n))

    def fun(w):
        return jnp.mean(jnp.logaddexp(0.0, -y * (X @ w))) + 1e-3 * jnp.sum(w**2)

    # |phi'''| <= 1 / (6 sqrt(3)) for phi(t) = log(1 + exp(-t)): a valid Hessian-Lipschitz constant.
    lipschitz = float(np.mean(np.linalg.norm(X, axis=1) ** 3)) / (6 * np.sqrt(3))
    return fun, lipschitz, d


def test_fewer_iterations_than_fixed_L_with_a_valid_constant():
    fun, L, d = _logistic()
    fixed = jl.RegularizedNewton(fun, hessian_lipschitz=L, tol=1e-8, maxiter=500).run(jnp.zeros(d))
    adaptive = jl.AdaptiveRegularizedNewton(fun, tol=1e-8, maxiter=500).run(jnp.zeros(d))
    assert int(adaptive.state.status) == jl.Status.CONVERGED == int(fixed.state.status)
    np.testing.assert_allclose(adaptive.params, fixed.params, atol=1e-7)
    # Measured: 4 iterations (5 trial points) against 23 for the fixed, valid L.
    assert 2 * int(adaptive.state.iter_num) <= int(fixed.state.iter_num)
    assert int(adaptive.state.num_fun_eval) <= 2 * int(adaptive.state.iter_num) + 1


def _huber(x):
    return jnp.sum(jnp.sqrt(1.0 + x**2))


def test_search_rescues_an_almost_pure_newton_start():
    # Pure Newton on sqrt(1 + x^2) maps x to -x^3 and diverges from |x| > 1; gamma_init = 1e6
    # starts with almost no regularization, and the acceptance test must shrink gamma.
    out = jl.AdaptiveRegularizedNewton(_huber, gamma_init=1e6, tol=1e-10, maxiter=100).run(jnp.full(3, 3.0))
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, 0.0, atol=1e-9)
    # RegularizedNewton with a too small L stalls (its step is never checked).
    fixed = jl.RegularizedNewton(_huber, hessian_lipschitz=0.01, tol=1e-10, maxiter=100).run(jnp.full(3, 3.0))
    assert int(fixed.state.status) != jl.Status.CONVERGED


def test_mutated_acceptance_test_breaks_it(monkeypatch):
    # Accept every trial (no search): the same start diverges.
    monkeypatch.setattr(arn, "accept_step", lambda value, new_value, sq, lam: jnp.asarray(True))
    fun = lambda x: jnp.sum(jnp.sqrt(1.0 + x**2))  # a new function object: a fresh trace
    out = jl.AdaptiveRegularizedNewton(fun, gamma_init=1e6, tol=1e-10, maxiter=100).run(jnp.full(3, 3.0))
    assert int(out.state.status) != jl.Status.CONVERGED


def test_acceptance_rule_and_gamma_schedule_on_closed_forms():
    # accept_step: f(x) - f(x+) >= ||grad f(x+)||^2 / (8 lam). With ||grad f(x+)||^2 = 4 and
    # lam = 0.5 the boundary is a decrease of 1 (the rounding slack, 4 eps |f|, is far below 1e-3).
    assert bool(arn.accept_step(1.0, -1e-3, 4.0, 0.5))
    assert not bool(arn.accept_step(1.0, 1e-3, 4.0, 0.5))
    # f = ||x||^2 / 2 (H = I), ||x0|| = 1, gamma_init = 0.5: lam = ||g|| / gamma = 2 and the step
    # (H + lam I)^{-1} g gives x+ = x0 lam / (1 + lam); the trial passes, so gamma doubles.
    x0 = jnp.array([0.6, -0.8])
    solver = jl.AdaptiveRegularizedNewton(lambda x: 0.5 * jnp.sum(x**2), gamma_init=0.5, tol=0.0, maxiter=3)
    new, state = solver.update(x0, solver.init_state(x0))
    np.testing.assert_allclose(new, x0 * 2.0 / 3.0, rtol=1e-6)
    assert float(state.regularization) == pytest.approx(2.0, rel=1e-6)
    assert float(state.gamma) == pytest.approx(1.0, rel=1e-6)
    # sqrt(1 + x^2) from 3 with gamma_init = 1e6: the first trials fail, each halves gamma; the
    # accepted one doubles it: gamma+ = 2 * 1e6 / 2^(trials - 1).
    solver = jl.AdaptiveRegularizedNewton(_huber, gamma_init=1e6, tol=0.0, maxiter=3)
    x0 = jnp.full(3, 3.0)
    init = solver.init_state(x0)
    _, state = solver.update(x0, init)
    trials = int(state.num_fun_eval) - int(init.num_fun_eval)
    assert trials > 1
    assert float(state.gamma) == pytest.approx(2.0 * 1e6 / 2.0 ** (trials - 1), rel=1e-6)


def test_every_accepted_step_satisfies_the_test_and_gamma_doubles():
    fun, _, d = _logistic(scale=3.0, n=60, d=5, seed=1)
    solver = jl.AdaptiveRegularizedNewton(fun, tol=0.0, maxiter=6, gamma_init=0.01)
    params, state = jnp.zeros(d), solver.init_state(jnp.zeros(d))
    update = jax.jit(solver.update)
    for _ in range(5):
        new, new_state = update(params, state)
        lam = float(new_state.regularization)
        assert lam == pytest.approx(float(state.error) / (0.5 * float(new_state.gamma)), rel=1e-12)
        gsq = float(jnp.sum(new_state.grad**2))
        assert float(state.value) - float(new_state.value) >= gsq / (8 * lam) - 1e-15
        params, state = new, new_state


def test_float32_and_gauss_newton():
    rng = np.random.default_rng(2)
    A = jnp.asarray(rng.standard_normal((30, 4)), jnp.float32)
    b = jnp.asarray(rng.standard_normal(30), jnp.float32)
    res = lambda w: jnp.tanh(A @ w) - 0.5 * b
    fun = lambda w: 0.5 * jnp.sum(res(w) ** 2)
    out = jl.AdaptiveRegularizedNewton(fun, hessian="gauss_newton", residual_fun=res, tol=1e-4,
                                       maxiter=100).run(jnp.zeros(4, jnp.float32))
    assert out.params.dtype == jnp.float32
    assert int(out.state.status) == jl.Status.CONVERGED


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="gamma_init"):
        jl.AdaptiveRegularizedNewton(_huber, gamma_init=0.0)
    with pytest.raises(ValueError, match="max_search"):
        jl.AdaptiveRegularizedNewton(_huber, max_search=0)
