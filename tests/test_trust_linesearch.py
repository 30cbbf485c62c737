"""Line searches, NonlinearCG and stopped lanes (issue 15, items 2a, 5 and 7's line-search half).

- NonlinearCG (every beta rule) solves quadratics of several condition numbers and a set
  of MGH problems in at most 1.2x the iterations of SciPy's ``minimize(method="CG")`` at
  the same gradient tolerance.
- Under ``vmap`` a lane that has stopped makes no line-search evaluation: a pair whose
  first lane fails at iteration 1 costs about as many evaluations as the long lane alone,
  and the stopped lane's result equals its solo run.
- A tolerance below float32's reach ends ``STALLED``; a genuine failure (an ascent
  direction) stays ``LINESEARCH_FAILED``; a NaN gradient where ``f`` is finite is
  ``NONFINITE`` and returns the last finite point.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so

import jaxopt_lab as jl
from jaxopt_lab.problems import mgh

METHODS = ["polak-ribiere", "fletcher-reeves", "hestenes-stiefel", "dai-yuan"]
TOL = 1e-6


def _quadratic(n, cond, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = jnp.asarray(Q @ np.diag(np.logspace(0, np.log10(cond), n)) @ Q.T)
    b = jnp.asarray(rng.standard_normal(n))
    return lambda x: 0.5 * x @ (A @ x) - b @ x


def _scipy_cg_iters(fun, x0):
    """SciPy CG's iterations to the tolerance; None where it stops short of it.

    SciPy's CG stops on the inf-norm of the gradient by default; ours on the 2-norm, so
    the reference gets the same norm (norm=2) to stop at the same tolerance. On
    brown_badly_scaled (f about 1e-9 at x = (1e6, 2e-6)) it can end in "precision loss"
    with ||g|| near 1e-4, depending on the last bits of f (the CPU's floating-point
    contraction): that run is no reference.
    """
    f, g = jax.jit(fun), jax.jit(jax.grad(fun))
    r = so.minimize(lambda x: float(f(x)), np.asarray(x0), jac=lambda x: np.asarray(g(x)), method="CG",
                    options=dict(gtol=TOL, maxiter=2000, norm=2))
    return int(r.nit) if np.linalg.norm(r.jac) <= TOL else None


_PROBLEMS = [("quad8_cond20", _quadratic(8, 20.0), np.zeros(8)),
             ("quad8_cond1e3", _quadratic(8, 1e3), np.zeros(8)),
             ("quad20_cond100", _quadratic(20, 100.0, seed=1), np.zeros(20))]
_PROBLEMS += [(name, (lambda p: lambda x: p.fun(x))(mgh.get(name)), mgh.get(name).start(1.0))
              for name in ("helical_valley", "box_3d", "brown_badly_scaled", "wood")]


# Polak-Ribiere (the default) in the default suite, the other formulas with the slow tests.
@pytest.mark.parametrize("method", [m if m == "polak-ribiere" else pytest.param(m, marks=pytest.mark.slow)
                                    for m in METHODS])
def test_nonlinear_cg_within_1p2x_scipy_cg_iterations(method):
    ratios = {}
    for name, fun, x0 in _PROBLEMS:
        out = jl.NonlinearCG(fun, tol=TOL, maxiter=2000, method=method).run(jnp.asarray(x0))
        assert int(out.state.status) == jl.Status.CONVERGED, (name, jl.status_name(out.state.status))
        assert float(jnp.linalg.norm(jax.grad(fun)(out.params))) <= TOL
        reference = _scipy_cg_iters(fun, x0)
        if reference is not None:
            ratios[name] = int(out.state.iter_num) / reference
    # Over the set, and no problem far off (SciPy's own count varies by a few per problem).
    assert len(ratios) >= len(_PROBLEMS) - 1, ratios
    assert np.exp(np.mean(np.log(list(ratios.values())))) <= 1.2, ratios
    assert max(ratios.values()) <= 1.5, ratios


def test_nonlinear_cg_condition_20_quadratic_no_linesearch_failure():
    # The fresh-clone failure: Polak-Ribiere ended LINESEARCH_FAILED after 48 iterations.
    fun = _quadratic(8, 20.0)
    out = jl.NonlinearCG(fun, tol=1e-10, maxiter=500).run(jnp.zeros(8))
    assert int(out.state.status) == jl.Status.CONVERGED
    assert int(out.state.iter_num) <= 40


def test_strong_wolfe_near_optimum_with_tiny_first_step():
    # f changes by about its rounding error at the first trial: the search must still
    # extrapolate to the exact line minimizer (secant on the slopes) instead of failing.
    from jaxopt_lab.solvers.linesearch import functions as _linesearch

    fun = _quadratic(8, 1e3)
    xs = jnp.linalg.solve(jax.hessian(fun)(jnp.zeros(8)), -jax.grad(fun)(jnp.zeros(8)))
    x = xs + 1e-8 * jnp.linspace(-1.0, 1.0, 8)
    g = jax.grad(fun)(x)
    vg = lambda z: (lambda r: ((r[0], None), r[1]))(jax.value_and_grad(fun)(z))
    res = _linesearch.strong_wolfe(vg, x, fun(x), g, -g, 1e-4, c2=0.9)
    assert not bool(res.failed)
    H = jax.hessian(fun)(x)
    t_exact = float(g @ g / (g @ H @ g))
    assert abs(float(res.stepsize) - t_exact) <= 0.4 * t_exact


# ---------------------------------------------------------------- stopped lanes

def _counting_fun(counter):
    """Rosenbrock in 4 variables whose gradient is multiplied by ``sign`` (-1: ascent)."""
    def fun(x, sign):
        jax.debug.callback(lambda: counter.__setitem__(0, counter[0] + 1))
        a, b = x[:-1], x[1:]
        value = jnp.sum(100.0 * (b - a**2) ** 2 + (1 - a) ** 2)
        return value, sign * jax.grad(lambda z: jnp.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2
                                                         + (1 - z[:-1]) ** 2))(x)
    return fun


_MAKERS = {
    "LBFGS": lambda f: jl.LBFGS(f, value_and_grad=True, maxiter=200, tol=1e-6, maxls=60),
    "BFGS": lambda f: jl.BFGS(f, value_and_grad=True, maxiter=200, tol=1e-6, maxls=60),
    "NonlinearCG": lambda f: jl.NonlinearCG(f, value_and_grad=True, maxiter=400, tol=1e-6, maxls=60),
}


@pytest.mark.parametrize("name", sorted(_MAKERS))
def test_stopped_lane_costs_no_linesearch_evaluations(name):
    counter = [0]
    solver = _MAKERS[name](_counting_fun(counter))
    x0 = jnp.array([-1.2, 1.0, -1.2, 1.0])
    run = jax.jit(solver.run)
    solo_long = jax.block_until_ready(run(x0, 1.0))
    solo_fail = jax.block_until_ready(run(x0, -1.0))
    counter[0] = 0
    jax.block_until_ready(run(x0, 1.0))
    n_solo = counter[0]
    pair = jax.jit(jax.vmap(solver.run, in_axes=(None, 0)))
    jax.block_until_ready(pair(x0, jnp.array([-1.0, 1.0])))
    counter[0] = 0
    out = jax.block_until_ready(pair(x0, jnp.array([-1.0, 1.0])))
    n_pair = counter[0]
    assert int(solo_long.state.status) == jl.Status.CONVERGED
    assert int(solo_fail.state.status) == jl.Status.LINESEARCH_FAILED
    assert int(solo_fail.state.iter_num) == 1
    # Each batched evaluation calls back once per lane: the pair costs two lanes times the
    # long lane's evaluations plus the failing lane's one search (60 trials), not 60 trials
    # per later iteration.
    assert n_pair <= 2 * (n_solo + 60 + 2), (n_pair, n_solo)
    # The stopped lane's result and counters are its solo run's, exactly.
    for field in ("status", "iter_num", "num_fun_eval", "value", "error"):
        assert np.array_equal(np.asarray(getattr(out.state, field)[0]),
                              np.asarray(getattr(solo_fail.state, field))), field
    np.testing.assert_array_equal(out.params[0], solo_fail.params)
    assert int(out.state.status[1]) == jl.Status.CONVERGED
    assert int(out.state.iter_num[1]) == int(solo_long.state.iter_num)
    np.testing.assert_allclose(out.params[1], solo_long.params, rtol=1e-10)


def test_update_on_stopped_state_is_identity():
    fun = _quadratic(5, 10.0)
    solver = jl.LBFGS(fun, tol=1e-8)
    out = solver.run(jnp.zeros(5))
    assert int(out.state.status) == jl.Status.CONVERGED
    again = solver.update(out.params, out.state)
    np.testing.assert_array_equal(again.params, out.params)
    assert int(again.state.iter_num) == int(out.state.iter_num)
    assert int(again.state.num_fun_eval) == int(out.state.num_fun_eval)


# ---------------------------------------------------------------- float32 outcomes

_F32_SOLVERS = {
    "LBFGS": lambda f: jl.LBFGS(f, tol=1e-10, maxiter=2000),
    "BFGS": lambda f: jl.BFGS(f, tol=1e-10, maxiter=2000),
    "NonlinearCG": lambda f: jl.NonlinearCG(f, tol=1e-10, maxiter=2000),
}


def _rosenbrock(x):
    # Minimum at (0.7, 0.49), not representable in float32: the gradient cannot reach 1e-10.
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (0.7 - x[:-1]) ** 2)


@pytest.mark.parametrize("name", sorted(_F32_SOLVERS))
@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_float32_tolerance_below_precision_ends_stalled(name, problem):
    # On the quadratic, f's rounding regime lets the search keep accepting steps of an ulp
    # (or none): the no-progress rule must end the solve STALLED, not at maxiter.
    if problem == "quadratic":
        f64 = _quadratic(6, 10.0, seed=2)
        A = jax.hessian(f64)(jnp.zeros(6))
        b = -jax.grad(f64)(jnp.zeros(6))
        fun = lambda x: 0.5 * x @ (A.astype(jnp.float32) @ x) - b.astype(jnp.float32) @ x
        x0, x_star = jnp.zeros(6, jnp.float32), jnp.linalg.solve(A, b)
    else:
        fun, x0, x_star = _rosenbrock, jnp.array([-1.2, 1.0], jnp.float32), jnp.array([0.7, 0.49])
    out = _F32_SOLVERS[name](fun).run(x0)
    assert out.params.dtype == jnp.float32
    assert int(out.state.status) == jl.Status.STALLED, jl.status_name(out.state.status)
    # Stalled at the solution, as far as float32 resolves it.
    np.testing.assert_allclose(np.asarray(out.params, np.float64), x_star, atol=2e-3)
    assert int(out.state.iter_num) < 2000


def test_float32_no_progress_stall_is_per_lane_under_vmap():
    # Lane 0 stalls at float32's rounding (gradient ~3e-7 > tol); lane 1, the same problem
    # scaled by 1e-4, reaches tol. Each lane keeps its own counter and status, as solo.
    f64 = _quadratic(6, 10.0, seed=2)
    A = jax.hessian(f64)(jnp.zeros(6)).astype(jnp.float32)
    b = (-jax.grad(f64)(jnp.zeros(6))).astype(jnp.float32)
    solver = jl.LBFGS(lambda x, s: s * (0.5 * x @ (A @ x) - b @ x), tol=1e-10, maxiter=2000)
    x0, scales = jnp.zeros(6, jnp.float32), jnp.asarray([1.0, 1e-4], jnp.float32)
    run = jax.vmap(solver.run, in_axes=(None, 0))
    out = run(x0, scales)
    assert [int(v) for v in out.state.status] == [jl.Status.STALLED, jl.Status.CONVERGED]
    # A lane's run does not depend on the other lane: in the same batch program with the
    # other member replaced by a copy of itself, or with the lanes swapped, each lane gets
    # the same iterates, counter and status bit for bit.
    swapped = run(x0, scales[::-1])
    for lane in range(2):
        copies = run(x0, jnp.stack([scales[lane], scales[lane]]))
        for alt, alt_lane in ((copies, 0), (copies, 1), (swapped, 1 - lane)):
            np.testing.assert_array_equal(alt.params[alt_lane], out.params[lane])
            assert int(alt.state.iter_num[alt_lane]) == int(out.state.iter_num[lane])
            assert int(alt.state.status[alt_lane]) == int(out.state.status[lane])
    # Against the unbatched solve: same status, both at the solution as far as float32
    # resolves it. The unbatched program rounds differently; where a lane stalls at rounding
    # the step that ends it differs with it (16 vs 19 iterations here), so only the
    # converging lane's count must match exactly.
    x_star = np.linalg.solve(np.asarray(A, np.float64), np.asarray(b, np.float64))
    for lane in range(2):
        solo = solver.run(x0, scales[lane])
        assert int(solo.state.status) == int(out.state.status[lane])
        assert int(out.state.iter_num[lane]) < 100 and int(solo.state.iter_num) < 100
        for params in (out.params[lane], solo.params):
            np.testing.assert_allclose(params, x_star, atol=1e-6 * np.abs(x_star).max())
        if lane == 1:  # the converging lane
            assert int(out.state.iter_num[lane]) == int(solo.state.iter_num)


@pytest.mark.parametrize("name", sorted(_F32_SOLVERS))
def test_ascent_direction_far_from_optimum_stays_linesearch_failed(name):
    # A gradient of the wrong sign: every direction is an ascent one, far from the optimum.
    fun = lambda x: (jnp.sum((x - 3.0) ** 2), -2.0 * (x - 3.0))
    solver = {"LBFGS": jl.LBFGS, "BFGS": jl.BFGS, "NonlinearCG": jl.NonlinearCG}[name]
    out = solver(fun, value_and_grad=True, tol=1e-10).run(jnp.zeros(3, jnp.float32))
    assert int(out.state.status) == jl.Status.LINESEARCH_FAILED


@pytest.mark.parametrize("name", sorted(_F32_SOLVERS))
def test_nan_gradient_with_finite_value_is_nonfinite(name):
    x0 = jnp.full(3, 3.0)

    def fun(x):
        g = jnp.where(jnp.all(x == x0), 2.0 * x, jnp.nan)  # NaN everywhere but at x0
        return jnp.sum(x**2), g

    solver = {"LBFGS": jl.LBFGS, "BFGS": jl.BFGS, "NonlinearCG": jl.NonlinearCG}[name]
    out = solver(fun, value_and_grad=True, tol=1e-6).run(x0)
    assert int(out.state.status) == jl.Status.NONFINITE, jl.status_name(out.state.status)
    np.testing.assert_array_equal(out.params, x0)  # the last point where f and g are finite
    assert np.isfinite(float(out.state.value))


def test_lbfgsb_stopped_lane_costs_no_linesearch_evaluations():
    counter = [0]
    solver = jl.LBFGSB(_counting_fun(counter), value_and_grad=True, maxiter=200, tol=1e-6, maxls=60)
    x0, bounds = jnp.array([-1.2, 1.0, -1.2, 1.0]), (-5.0, 5.0)
    run = jax.jit(lambda s: solver.run(x0, bounds, s))
    solo_fail = run(-1.0)
    solo_long = jax.block_until_ready(run(1.0))
    counter[0] = 0
    jax.block_until_ready(run(1.0))
    n_solo = counter[0]
    pair = jax.jit(jax.vmap(lambda s: solver.run(x0, bounds, s)))
    jax.block_until_ready(pair(jnp.array([-1.0, 1.0])))
    counter[0] = 0
    out = jax.block_until_ready(pair(jnp.array([-1.0, 1.0])))
    assert int(solo_fail.state.status) == jl.Status.LINESEARCH_FAILED
    assert int(solo_long.state.status) == jl.Status.CONVERGED
    assert counter[0] <= 2 * (n_solo + 60 + 2), (counter[0], n_solo)
    for field in ("status", "iter_num", "num_fun_eval", "value", "error"):
        assert np.array_equal(np.asarray(getattr(out.state, field)[0]),
                              np.asarray(getattr(solo_fail.state, field))), field
    np.testing.assert_array_equal(out.params[0], solo_fail.params)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_search_carry_packs_scalars_exactly(dtype):
    # The line-search loops carry their scalar fields as one vector: every value comes back
    # bit for bit (inf, NaN, the smallest normal included), with its own dtype.
    from jaxopt_lab.solvers.linesearch.functions import _ScalarPack, _ZoomCarry

    vec = jnp.arange(3, dtype=dtype)
    tiny = jnp.finfo(dtype).tiny
    carry = _ZoomCarry(t=jnp.asarray(0.1, dtype), lo_t=jnp.asarray(tiny, dtype),
                       lo_f=jnp.asarray(-jnp.inf, dtype), lo_d=jnp.asarray(jnp.nan, dtype),
                       best_x=vec, best_g=2 * vec, best_aux=None,
                       hi_t=jnp.asarray(jnp.inf, dtype), hi_f=jnp.asarray(3e38, dtype),
                       hi_d=jnp.asarray(-1.5, dtype), lo_ok=jnp.asarray(True), spread=jnp.asarray(7.0, dtype),
                       nan_grad=jnp.asarray(False), done=jnp.asarray(True), k=jnp.asarray(29, jnp.int32))
    pack = _ScalarPack(carry)
    packed = jax.jit(pack.pack)(carry)
    assert packed[0].shape == (12,) and packed[0].dtype == dtype  # the 12 scalar fields, one vector
    back = jax.jit(pack.unpack)(packed)
    for name, value in carry._asdict().items():
        if value is None:
            assert getattr(back, name) is None
            continue
        got = getattr(back, name)
        assert got.dtype == value.dtype, name
        np.testing.assert_array_equal(np.asarray(got), np.asarray(value), err_msg=name)


def test_strong_wolfe_loop_carries_one_scalar_vector():
    # The jaxpr of the search: its while loop carries the point, gradient and one vector of
    # scalars (the search's state), not a dozen separate scalars.
    from jaxopt_lab.solvers.linesearch import functions as F

    f = lambda x: jnp.sum((x - 1.0) ** 2)
    vg = lambda x: ((f(x), None), jax.grad(f)(x))
    x = jnp.zeros(3)
    search = lambda x: F.strong_wolfe(vg, x, f(x), jax.grad(f)(x), -jax.grad(f)(x), 1.0)
    loops = [e for e in jax.make_jaxpr(search)(x).eqns if e.primitive.name == "while"]
    assert len(loops) == 1
    shapes = sorted(v.aval.shape for v in loops[0].outvars)
    assert shapes == [(3,), (3,), (12,)]
    out = search(x)
    # The unit step overshoots to f(2, 2, 2) = f(0); the cubic through both ends is exact on
    # this quadratic: t = 0.5, the minimizer (1, 1, 1), in two evaluations.
    assert not bool(out.failed) and int(out.num_evals) == 2
    np.testing.assert_allclose(out.stepsize, 0.5, rtol=1e-12)
    np.testing.assert_allclose(out.params, jnp.ones(3), rtol=1e-12)
