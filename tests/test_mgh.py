"""Moré-Garbow-Hillstrom problems: definitions, and jaxopt_lab's solvers against SciPy.

Fast part (default suite): problem definitions against published values, the bounded
variants, and LBFGS / the least-squares solvers on a small subset against SciPy.
Slow part (``-m slow``): every smooth solver present in ``jaxopt_lab`` on all 18
problems from ``x0``, ``10 x0`` and ``100 x0`` against SciPy's corresponding method with
the same tolerance; LBFGS must solve at least as many as SciPy's L-BFGS-B, and no solver
may report CONVERGED on a problem it did not solve.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import bench_mgh as B
from jaxopt_lab.problems import mgh

# Published values of f at the standard start, computed by hand from the definitions.
F_AT_X0 = {
    "helical_valley": 2500.0,
    "extended_rosenbrock": 5 * 24.2,
    "extended_powell_singular": 3 * 215.0,
    "beale": 14.203125,
    "wood": 19192.0,
    "brown_badly_scaled": (1 - 1e6) ** 2 + (1 - 2e-6) ** 2 + 1.0,
    "box_3d": 1031.1538,  # MGH report f(x0) = 1031.15 for m = 10
}


def test_eighteen_problems_with_paper_numbers_and_shapes():
    assert len(mgh.PROBLEMS) == 18
    assert len({p.number for p in mgh.PROBLEMS}) == 18
    for p in mgh.PROBLEMS:
        x0 = jnp.asarray(p.x0)
        assert x0.shape == (p.n,)
        assert p.residual(x0).shape == (p.m,), p.name
        assert np.isfinite(float(p.fun(x0))), p.name
        np.testing.assert_allclose(p.start(10.0), 10 * p.x0)


@pytest.mark.parametrize("name", sorted(F_AT_X0))
def test_value_at_standard_start(name):
    p = mgh.get(name)
    np.testing.assert_allclose(float(p.fun(jnp.asarray(p.x0))), F_AT_X0[name], rtol=1e-6)


@pytest.mark.parametrize("p", [p for p in mgh.PROBLEMS if p.x_star is not None], ids=lambda p: p.name)
def test_published_minimizer_gives_published_value(p):
    f = float(p.fun(jnp.asarray(p.x_star)))
    # Powell's badly scaled minimizer is published to 7 digits only.
    assert f - p.f_star <= (1e-12 if p.name == "powell_badly_scaled" else 1e-20), (p.name, f)
    assert mgh.is_solved(p, p.x_star)


def test_starts_are_not_solved_and_get_rejects_unknown_names():
    assert not any(mgh.is_solved(p, p.x0) for p in mgh.PROBLEMS if p.name != "gaussian")
    with pytest.raises(ValueError, match="name"):
        mgh.get("rosenbrok")
    with pytest.raises(ValueError, match="problem"):
        mgh.bounded(mgh.get("watson"))


def test_bounded_variants_contain_start_and_exclude_minimizer():
    assert len(mgh.BOUNDED) == sum(p.x_star is not None for p in mgh.PROBLEMS)
    for b in mgh.BOUNDED:
        p = mgh.get(b.name.removesuffix("_bounded"))
        assert np.all(b.lower <= p.x0) and np.all(p.x0 <= b.upper), b.name
        inside = np.all(b.lower <= p.x_star) and np.all(p.x_star <= b.upper)
        assert not inside, b.name


@functools.cache
def _records(name, problems, scales):
    return tuple(B.run_all([name], [mgh.get(n) if not n.endswith("_bounded")
                                    else mgh.bounded(mgh.get(n.removesuffix("_bounded")))
                                    for n in problems], scales))


def _summary(records, solver):
    rs = [r for r in records if r.solver == solver]
    return sum(r.solved for r in rs), len(rs)


FAST_SUBSET = ("beale", "brown_badly_scaled")


def test_lbfgs_fast_subset_matches_scipy_lbfgsb():
    recs = _records("LBFGS", FAST_SUBSET, (1.0,))
    lab, n = _summary(recs, "LBFGS")
    ref, _ = _summary(recs, "scipy:L-BFGS-B")
    print(f"\nMGH fast subset: LBFGS solved {lab}/{n}, SciPy L-BFGS-B {ref}/{n}")
    assert lab >= ref
    assert lab == n
    assert B.false_convergence(recs) == []


@pytest.mark.parametrize("name", [n for n in ("GaussNewton", "LevenbergMarquardt") if n in B.available()[0]])
def test_least_squares_solvers_fast_subset(name):
    recs = _records(name, ("beale",), (1.0,))
    lab, n = _summary(recs, name)
    print(f"\nMGH fast subset: {name} solved {lab}/{n}; absent solvers: {B.available()[1]}")
    assert B.false_convergence(recs) == []
    assert lab == n


# ------------------------------------------------------------------------------ slow


ALL = tuple(p.name for p in mgh.PROBLEMS)
ALL_BOUNDED = tuple(p.name for p in mgh.BOUNDED)


@pytest.mark.slow
@pytest.mark.parametrize("p", [p for p in mgh.PROBLEMS if p.f_star], ids=lambda p: p.name)
def test_published_nonzero_optima_reproduced_by_scipy(p):
    import scipy.optimize as so

    fun, grad = jax.jit(p.fun), jax.jit(jax.grad(p.fun))
    r = so.minimize(lambda x: float(fun(x)), p.x0, jac=lambda x: np.asarray(grad(x)), method="BFGS",
                    options=dict(gtol=1e-10, maxiter=20000))
    np.testing.assert_allclose(r.fun, p.f_star, rtol=1e-5)


@pytest.mark.slow
def test_lbfgs_solves_at_least_as_many_mgh_problems_as_scipy():
    recs = _records("LBFGS", ALL, mgh.SCALES)
    lab, n = _summary(recs, "LBFGS")
    ref, _ = _summary(recs, "scipy:L-BFGS-B")
    print(f"\nMGH (18 problems x 3 starts): LBFGS solved {lab}/{n}, SciPy L-BFGS-B {ref}/{n}")
    assert lab >= ref
    assert B.false_convergence(recs) == []


def test_available_solvers_reported():
    present, absent = B.available()
    print(f"\nMGH solvers present: {present}; absent from jaxopt_lab: {absent}")
    assert {"LBFGS", "GradientDescent"} <= set(present)
    assert set(present) | set(absent) == set(B.SOLVERS)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in B.available()[0] if n != "LBFGS"])
def test_every_smooth_solver_against_scipy_never_claims_false_convergence(name):
    problems = ALL_BOUNDED if B.SOLVERS[name][0] == "bounds" else ALL
    recs = _records(name, problems, mgh.SCALES)
    lab, n = _summary(recs, name)
    method = B.SOLVERS[name][1]
    ref = _summary(recs, f"scipy:{method}")[0] if method else None
    print(f"\nMGH: {name} solved {lab}/{n}, SciPy {method}: {ref}/{n}")
    assert B.false_convergence(recs) == [], B.false_convergence(recs)
    assert lab >= 1
