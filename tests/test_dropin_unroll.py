"""jaxopt drop-in: differentiation by unrolling (``implicit_diff=False``) in reverse and
forward mode for every registry solver whose ``run`` is traced (issue 17 item 8), against
finite differences of the same truncated solve. The loops inside a step (line searches, CG
and Newton inner solves, ADMM's inner L-BFGS) are then masked scans as well."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.loop import bounded_while_loop
from jaxopt_lab.solvers.linesearch.functions import strong_wolfe
from tests import problems as P
from tests.registry import SOLVERS

# Solvers jaxopt cannot unroll either, or whose unrolled map is not differentiable.
NOT_UNROLLED = {
    # Derivative-free particle method: no derivative through its random consensus step.
    "ConsensusBasedOptimization": "derivative-free, random",
}

ENTRIES = [e for e in SOLVERS if e.jittable and e.implicit_diff and e.name not in NOT_UNROLLED]


# The registry sweep compiles an unrolled run, its derivative and its finite differences
# per solver (5-60 s each on 2 cores): slow suite. The default suite keeps the loop, line
# search and early-stopping tests below (reverse mode through L-BFGS, GD and Newton-CG).
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_unrolled_derivative_matches_finite_differences(entry, mode):
    A, b = P.ridge_data(n=12, d=4)
    A = A / np.sqrt(A.shape[0])
    x0 = jnp.zeros(A.shape[1])
    opts = {**entry.options, "maxiter": 15, "tol": 0.0, "implicit_diff": False}
    opts.pop("implicit_diff_solve", None)
    solver = entry.make(P.ridge_fun, **opts)
    w = jnp.asarray(np.random.default_rng(1).standard_normal(x0.shape))

    def h(lam):
        return jnp.vdot(w, solver.run(x0, lam, A, b).params)

    lam, eps = 1.5, 1e-5
    if mode == "reverse":
        g = jax.grad(h)(lam)
    else:
        g = jax.jvp(h, (lam,), (1.0,))[1]
    fd = (h(lam + eps) - h(lam - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-6)


def _newton_sqrt(a, unroll, tol=1e-12, max_steps=40):
    """Newton's iteration for sqrt(a) from 1, stopped at |x^2 - a| <= tol."""
    cond = lambda c: (jnp.abs(c[0] ** 2 - a) > tol) & (c[1] < max_steps)
    body = lambda c: (0.5 * (c[0] + a / c[0]), c[1] + 1)
    return bounded_while_loop(cond, body, (jnp.ones_like(a), jnp.asarray(0)), max_steps, unroll=unroll)


def test_bounded_while_loop_matches_while_loop_and_differentiates_in_reverse_mode():
    a = jnp.asarray(7.0)
    x_while, k_while = _newton_sqrt(a, unroll=False)
    x_scan, k_scan = _newton_sqrt(a, unroll=True)
    assert int(k_scan) == int(k_while) < 40
    assert float(x_scan) == float(x_while)
    # A while_loop has no reverse mode; the masked scan does, and it is d sqrt(a) / da.
    with pytest.raises(ValueError, match="Reverse-mode"):
        jax.grad(lambda a: _newton_sqrt(a, unroll=False)[0])(a)
    g = jax.grad(lambda a: _newton_sqrt(a, unroll=True)[0])(a)
    np.testing.assert_allclose(g, 0.5 / np.sqrt(7.0), rtol=1e-10)
    # Truncated after 3 steps: the derivative of what the loop computed, not of sqrt.
    h = lambda a: _newton_sqrt(a, unroll=True, max_steps=3)[0]
    fd = (h(a + 1e-6) - h(a - 1e-6)) / 2e-6
    np.testing.assert_allclose(jax.grad(h)(a), fd, rtol=1e-6)


def test_bounded_while_loop_under_vmap_freezes_finished_lanes():
    # Lanes stop after different numbers of steps; each lane's value and derivative equal
    # its own unbatched loop's.
    a = jnp.asarray([2.0, 4.0, 50.0, 1e4])
    xs, ks = jax.vmap(lambda a: _newton_sqrt(a, unroll=True))(a)
    assert len(set(np.asarray(ks).tolist())) > 2
    for i in range(a.shape[0]):
        x_i, k_i = _newton_sqrt(a[i], unroll=False)
        assert float(xs[i]) == float(x_i) and int(ks[i]) == int(k_i)
    g = jax.vmap(jax.grad(lambda a: _newton_sqrt(a, unroll=True)[0]))(a)
    np.testing.assert_allclose(g, 0.5 / np.sqrt(np.asarray(a)), rtol=1e-8)


@pytest.mark.parametrize("init_stepsize", [1e-3, 1.0, 100.0])
def test_unrolled_zoom_line_search_has_finite_reverse_derivative(init_stepsize):
    # From a small first step the search extrapolates with no upper bracket yet; the
    # discarded interpolation must not turn the reverse derivative into NaN.
    A, b = P.ridge_data(n=12, d=4)
    A = A / np.sqrt(A.shape[0])
    x = jnp.asarray(np.random.default_rng(0).standard_normal(4))

    def h(lam):
        vg = jax.value_and_grad(lambda y: (P.ridge_fun(y, lam, A, b), None), has_aux=True)
        (f, _), g = vg(x)
        res = strong_wolfe(vg, x, f, g, tu.tree_negative(g), init_stepsize, unroll=True)
        assert not bool(res.failed)
        return jnp.sum(res.params)

    lam, eps = 1.5, 1e-6
    fd = (h(lam + eps) - h(lam - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(h)(lam), fd, rtol=1e-6)


@pytest.mark.parametrize("name", ["LBFGS", "GradientDescent", "NewtonCG"])
def test_unrolled_run_that_converges_before_maxiter(name):
    # With tol > 0 the scan's last steps are masked: derivatives stay finite and equal
    # finite differences of the early-stopped solve.
    entry = next(e for e in SOLVERS if e.name == name)
    A, b = P.ridge_data(n=12, d=4)
    A = A / np.sqrt(A.shape[0])
    x0 = jnp.zeros(A.shape[1])
    opts = {**entry.options, "maxiter": 60, "tol": 1e-6, "implicit_diff": False}
    solver = entry.make(P.ridge_fun, **opts)
    w = jnp.asarray(np.random.default_rng(1).standard_normal(x0.shape))
    assert int(solver.run(x0, 1.5, A, b).state.iter_num) < 60
    h = lambda lam: jnp.vdot(w, solver.run(x0, lam, A, b).params)
    lam, eps = 1.5, 1e-6
    fd = (h(lam + eps) - h(lam - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(h)(lam), fd, rtol=1e-4, atol=1e-6)
