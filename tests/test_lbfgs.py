"""L-BFGS maths: the two-loop inverse-Hessian product (unrolled and rolled) and agreement with SciPy."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so

import jaxopt_lab as jl
from jaxopt_lab.solvers.quasi_newton import lbfgs as L
from jaxopt_lab.solvers.quasi_newton.lbfgs import inverse_hessian_product
from tests import problems as P


def _two_loop_reference(g, S, Y, rho, gamma, ptr):
    m = len(rho)
    order = [(ptr - 1 - j) % m for j in range(m)]  # newest first
    q, alpha = g.copy(), {}
    for i in order:
        alpha[i] = rho[i] * S[i] @ q
        q = q - alpha[i] * Y[i]
    r = gamma * q
    for i in reversed(order):
        r = r + (alpha[i] - rho[i] * Y[i] @ r) * S[i]
    return r


def _memory(seed, m, d, skipped):
    """Curvature pairs of a random SPD quadratic (``y = A s``), slot ``skipped`` empty; and a gradient."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    A = A @ A.T + np.eye(d)
    S = rng.standard_normal((m, d))
    Y = S @ A
    S[skipped] = Y[skipped] = 0.0  # a skipped pair
    rho = np.array([0.0 if i == skipped else 1.0 / (S[i] @ Y[i]) for i in range(m)])
    return S, Y, rho, rng.standard_normal(d)


def test_unrolled_product_matches_two_loop_with_empty_slot_and_wrapped_ring():
    m = 5
    S, Y, rho, g = _memory(0, m, 8, skipped=1)
    for ptr in range(m):
        out = inverse_hessian_product(jnp.asarray(g), jnp.asarray(S), jnp.asarray(Y),
                                      jnp.asarray(rho), 0.7, ptr)
        np.testing.assert_allclose(out, _two_loop_reference(g, S, Y, rho, 0.7, ptr), rtol=1e-10)
        # A traced ring position (the buffers are rotated first) gives the same product.
        traced = jax.jit(inverse_hessian_product)(jnp.asarray(g), jnp.asarray(S), jnp.asarray(Y),
                                                  jnp.asarray(rho), 0.7, ptr)
        np.testing.assert_allclose(traced, out, rtol=1e-10)


@pytest.mark.parametrize("d", [8, 400])
def test_both_recursions_match_two_loop_for_every_ring_position(d):
    # inverse_hessian_product runs one of them by platform and size (the rolled loops for a
    # small memory on CPU, the unrolled recursion otherwise): each is checked here directly.
    m = 5
    S, Y, rho, g = _memory(0, m, d, skipped=1)
    for ptr in range(m):
        ref = _two_loop_reference(g, S, Y, rho, 0.7, ptr)
        order = [(ptr + k) % m for k in range(m)]
        unrolled = L._two_loop_unrolled(jnp.asarray(g), jnp.asarray(S), jnp.asarray(Y), jnp.asarray(rho),
                                        0.7, order, jnp.float64)
        chrono = L._chronological(jnp.asarray(S), jnp.asarray(Y), jnp.asarray(rho), ptr)
        rolled = L._two_loop_rolled(jnp.asarray(g), *chrono, 0.7, jnp.float64)
        public = inverse_hessian_product(jnp.asarray(g), jnp.asarray(S), jnp.asarray(Y), jnp.asarray(rho),
                                         0.7, ptr)
        for out in (unrolled, rolled, public):
            np.testing.assert_allclose(out, ref, rtol=1e-10)


@pytest.mark.parametrize(("d", "cpu_loops"), [(5, True), (400, False)])
def test_recursion_is_rolled_on_cpu_for_small_memories_only(d, cpu_loops):
    # XLA:CPU compiles a loop over a small memory into one kernel (2-3x faster than the 4 m
    # operations of the unrolled recursion); a GPU program gets the unrolled recursion.
    args = (jnp.ones(d), jnp.ones((4, d)), jnp.ones((4, d)), jnp.ones(4), 1.0)
    traced = jax.jit(inverse_hessian_product).trace(*args)
    has_loop = lambda platform: "stablehlo.while" in traced.lower(lowering_platforms=(platform,)).as_text()
    assert has_loop("cpu") == cpu_loops
    assert not has_loop("cuda")


@pytest.mark.parametrize("ptr", [0, 7, "traced"])
def test_large_memory_product_runs_rolled_and_matches_two_loop(ptr):
    # m > 16 runs the recursion as fori_loops (compile time independent of m).
    m = 20
    S, Y, rho, g = _memory(1, m, 6, skipped=3)
    p = 5 if ptr == "traced" else ptr
    fn = jax.jit(inverse_hessian_product) if ptr == "traced" else inverse_hessian_product
    out = fn(jnp.asarray(g), jnp.asarray(S), jnp.asarray(Y), jnp.asarray(rho), 0.7, p)
    np.testing.assert_allclose(out, _two_loop_reference(g, S, Y, rho, 0.7, p), rtol=1e-10)


def test_large_memory_trace_size_does_not_grow_with_m():
    # An unrolled recursion would trace 2 m inner products (history_size=100 took a minute
    # to compile); the rolled one traces the same program for every m above the threshold.
    def n_eqns(m):
        z = jnp.zeros((m, 5))
        return len(jax.make_jaxpr(inverse_hessian_product)(jnp.ones(5), z, z, jnp.zeros(m), 1.0).eqns)

    assert n_eqns(32) == n_eqns(128)


def test_iterations_and_solution_match_scipy_lbfgsb():
    X, y = P.logistic_data(n=200, d=10)
    fun = lambda w: P.logistic_fun(w, 1e-2, X, y)
    ours = jl.LBFGS(fun, tol=1e-8, maxiter=500).run(jnp.zeros(10))
    vg = jax.jit(jax.value_and_grad(fun))
    ref = so.minimize(lambda w: tuple(map(np.asarray, vg(jnp.asarray(w)))), np.zeros(10), jac=True,
                      method="L-BFGS-B", options=dict(gtol=1e-10, ftol=0, maxcor=10))
    np.testing.assert_allclose(ours.params, ref.x, atol=1e-7)
    # Same memory and a Wolfe line search: iteration counts within a few of SciPy's.
    assert int(ours.state.iter_num) <= ref.nit + 5
    assert int(ours.state.num_fun_eval) <= ref.nfev + 5


# The line-search keywords live once in _linesearch.LineSearchOptions; each solver keeps its defaults.
_LS_DEFAULTS = {
    "LBFGS": dict(stepsize=0.0, linesearch="zoom", maxls=30, c1=1e-4, c2=0.9, decrease_factor=0.5,
                  increase_factor=1.5, max_stepsize=1e10, min_stepsize=1e-6),
    "BFGS": dict(stepsize=0.0, linesearch="zoom", maxls=30, c1=1e-4, c2=0.9, decrease_factor=0.5,
                 increase_factor=1.5, max_stepsize=1e10, min_stepsize=1e-6),
    "NonlinearCG": dict(linesearch="zoom", maxls=30, c1=1e-4, c2=0.4, decrease_factor=0.8,
                        increase_factor=1.2, max_stepsize=1e10),
    "LBFGSB": dict(stepsize=0.0, linesearch="zoom", maxls=20, c1=1e-3, c2=0.9, decrease_factor=None,
                   max_stepsize=1.0, stop_if_linesearch_fails=False),
}


@pytest.mark.parametrize("name", sorted(_LS_DEFAULTS))
def test_line_search_options_shared_with_defaults_and_checks(name):
    from jaxopt_lab.solvers.linesearch.functions import LineSearchOptions

    cls = getattr(jl, name)
    assert issubclass(cls, LineSearchOptions)
    fun = lambda x: jnp.sum(x**2)
    solver = cls(fun)
    for key, value in _LS_DEFAULTS[name].items():
        assert getattr(solver, key) == value, (name, key)
    assert not cls(fun, stepsize=-1.0)._fixed_step()  # jaxopt's convention: <= 0 means line search
    for bad, match in [(dict(c1=0.95), "c1"), (dict(c2=1.5), "c2"), (dict(maxls=0), "maxls"),
                       (dict(linesearch="wolfe-ish"), "linesearch"),
                       (dict(stepsize=float("nan")), "stepsize"),
                       (dict(decrease_factor=1.5), "decrease_factor"),
                       (dict(max_stepsize=0.0), "max_stepsize")]:
        with pytest.raises(ValueError, match=match):
            cls(fun, **bad)


@pytest.mark.parametrize("name", ["LBFGS", "BFGS", "NonlinearCG"])
def test_fixed_stepsize_first_step_is_a_gradient_step(name):
    fun, x0, _ = P.quadratic(5, cond=4.0)
    solver = getattr(jl, name)(fun, stepsize=0.1, maxiter=3)
    state = solver.init_state(x0)
    step = solver.update(x0, state)
    np.testing.assert_allclose(step.params, x0 - 0.1 * jax.grad(fun)(x0), rtol=1e-12)
    assert int(step.state.num_fun_eval) == 2


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _update_loop(solver, x, *args):
    """Iterate the public ``update`` (which keeps a stopped state itself) until the status stops."""
    state, update = solver.init_state(x, *args), jax.jit(solver.update)
    while int(state.status) == int(jl.Status.RUNNING):
        x, state = update(x, state, *args)
    return x, state


def _history_selects(fn, *args, shape):
    """Number of ``select_n`` equations with output ``shape`` in the jaxpr of ``fn`` (nested ones too)."""
    def count(jaxpr):
        n = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "select_n" and eqn.outvars[0].aval.shape == shape:
                n += 1
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                n += count(sub)
        return n
    return count(jax.make_jaxpr(fn)(*args).jaxpr)


@pytest.mark.parametrize("make", [
    lambda: jl.LBFGS(fun=_rosenbrock, tol=1e-8, history_size=5),
    lambda: jl.BFGS(fun=_rosenbrock, tol=1e-8),
    lambda: jl.NonlinearCG(fun=_rosenbrock, tol=1e-8, maxiter=2000),
    lambda: jl.LBFGSB(fun=_rosenbrock, tol=1e-8, history_size=5),
], ids=["LBFGS", "BFGS", "NonlinearCG", "LBFGSB"])
def test_run_loop_step_equals_the_update_loop(make):
    # Inside run the loop itself keeps stopped states, so the quasi-Newton step skips its own
    # select of the whole state: the iterates, counts and status must not change by it.
    solver = make()
    x0 = jnp.array([-1.2, 1.0, -0.5, 0.8], jnp.float64)
    args = ((jnp.full(4, -2.0), jnp.full(4, 0.9)),) if isinstance(solver, jl.LBFGSB) else ()
    out = solver.run(x0, *args)
    x, state = _update_loop(solver, x0, *args)
    assert int(out.state.status) == int(state.status) == int(jl.Status.CONVERGED)
    assert int(out.state.iter_num) == int(state.iter_num)
    assert int(out.state.num_fun_eval) == int(state.num_fun_eval)
    np.testing.assert_allclose(out.params, x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.state.value, state.value, rtol=1e-12, atol=1e-15)


def test_run_loop_step_drops_the_stopped_state_select_of_the_memory():
    solver = jl.LBFGS(fun=_rosenbrock, history_size=6)
    x0 = jnp.array([-1.2, 1.0, -0.5, 0.8, 0.3])
    state = solver.init_state(x0)
    per_update = _history_selects(solver.update, x0, state, shape=(6, 5))
    per_loop_step = _history_selects(lambda p, s: solver._loop_step(p, s, (), {}), x0, state, shape=(6, 5))
    # update selects each of the two buffers to keep a stopped state; the loop step does not.
    assert per_update - per_loop_step == 2


def test_run_iterates_a_subclass_update():
    # A subclass's own update (here: clip to a box after each step) is what run iterates.
    class Clipped(jl.LBFGS):
        def update(self, params, state, *args, **kwargs):
            out = super().update(params, state, *args, **kwargs)
            return jl.OptStep(jnp.clip(out.params, -0.5, 0.5), out.state)

    solver = Clipped(fun=_rosenbrock, tol=1e-8, maxiter=40)
    x0 = jnp.array([-1.2, 1.0, -0.5, 0.8], jnp.float64)
    out = solver.run(x0)
    x, state = _update_loop(solver, x0)
    assert float(jnp.max(jnp.abs(out.params))) <= 0.5
    assert int(out.state.iter_num) == int(state.iter_num)
    np.testing.assert_allclose(out.params, x, rtol=0, atol=1e-12)
