"""Hypergradients against the closed form of the quadratic bilevel problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import bilevel as bl
from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel

INST = quadratic_bilevel()
X = jnp.linspace(-1.0, 1.0, 5)
REF = INST.extra(X, INST.data)


def hg(method="implicit", x=X, **options):
    return bl.hypergradient(INST.problem, x, INST.y0, INST.data, method=method, **options)


OPTIONS = [{}, {"adjoint_solver": "gmres"}, {"inner_solver": "gd", "inner_maxiter": 5000}]


@pytest.mark.parametrize("options", OPTIONS)
def test_implicit_matches_closed_form(options):
    h, d = hg(**options)
    np.testing.assert_allclose(h, REF, atol=1e-8, rtol=0)
    assert not bool(d.warning)
    assert float(d.inner_residual) < 1e-9 and float(d.adjoint_residual) < 1e-9
    # The adjoint is the solution of A v = y* - b.
    v_ref = np.linalg.solve(INST.data["A"], np.asarray(d.inner_solution) - np.asarray(INST.data["b"]))
    np.testing.assert_allclose(d.adjoint, v_ref, atol=1e-9)


def test_neumann_error_bounded_by_its_residual():
    h, d = hg(adjoint_solver="neumann", neumann_steps=200)
    # ||h - ref|| = ||B' (v - v*)|| <= ||B|| ||A^{-1}|| ||residual|| (smallest eigenvalue of A is 1).
    bound = np.linalg.norm(INST.data["B"], 2) * float(d.adjoint_residual) + 1e-10
    assert float(jnp.linalg.norm(h - REF)) <= bound
    assert float(jnp.linalg.norm(h - REF)) < 1e-7
    assert int(d.adjoint_iterations) == 200


def test_warm_started_adjoint_needs_no_iterations():
    _, d = hg()
    _, d2 = hg(adjoint_init=d.adjoint)
    assert int(d2.adjoint_iterations) == 0 < int(d.adjoint_iterations)


def test_forward_and_reverse_modes_agree():
    h_fwd, _ = hg(mode="forward")
    h_rev, _ = hg()
    np.testing.assert_allclose(h_fwd, h_rev, atol=1e-9)
    phi = lambda x: bl.hyperobjective(INST.problem, x, INST.y0, INST.data)
    np.testing.assert_allclose(jax.grad(phi)(X), REF, atol=1e-8)
    np.testing.assert_allclose(jax.jacfwd(phi)(X), REF, atol=1e-8)


def _unrolled_reference(k_total, k_back, eta):
    A, B, b = (np.asarray(INST.data[n]) for n in ("A", "B", "b"))
    J = np.linalg.solve(A, B)
    M = np.eye(len(b)) - eta * A
    y_k = (np.eye(len(b)) - np.linalg.matrix_power(M, k_total)) @ J @ np.asarray(X)
    dy = (np.eye(len(b)) - np.linalg.matrix_power(M, k_back)) @ J
    return float(INST.data["mu"]) * np.asarray(X) + np.asarray(INST.data["e"]) + dy.T @ (y_k - b)


@pytest.mark.parametrize("method,k_back", [("unrolled", 30), ("truncated", 5)])
def test_unrolled_and_truncated_match_their_closed_forms(method, k_back):
    eta = 0.05
    h, d = hg(method, steps=30, truncate=k_back, inner_stepsize=eta)
    np.testing.assert_allclose(h, _unrolled_reference(30, k_back, eta), atol=1e-10)
    assert bool(d.warning)  # 30 steps do not solve the inner problem: visible in the diagnostics


@pytest.mark.slow
def test_unrolled_bias_shrinks_with_steps():
    errs = [float(jnp.linalg.norm(hg("unrolled", steps=k, inner_stepsize=0.09)[0] - REF))
            for k in (10, 40, 160)]
    # Bias <= C (1 - eta * lambda_min)^k with lambda_min = 1.
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 10 * 0.91**160


def test_penalty_error_is_order_sigma():
    errs = [float(jnp.linalg.norm(hg("penalty", sigma=s)[0] - REF)) for s in (1e-1, 1e-2, 1e-3)]
    assert errs[0] > errs[1] > errs[2]
    for s, e in zip((1e-1, 1e-2, 1e-3), errs, strict=True):
        assert e <= 1.5 * s  # measured constant ~1.0
    assert 5 < errs[1] / errs[2] < 20


def test_pytree_outer_variables():
    from jaxopt_lab.bilevel import BilevelProblem

    prob = BilevelProblem(
        lambda x, y, d: INST.problem.outer_fun(jnp.concatenate([x["a"], x["b"]]), y, d),
        lambda x, y, d: INST.problem.inner_fun(jnp.concatenate([x["a"], x["b"]]), y, d),
    )
    h, _ = bl.hypergradient(prob, {"a": X[:2], "b": X[2:]}, INST.y0, INST.data)
    np.testing.assert_allclose(jnp.concatenate([h["a"], h["b"]]), REF, atol=1e-8)


def test_nonconverged_inner_solve_is_flagged():
    _, d = hg(inner_solver="gd", inner_maxiter=2)
    assert bool(d.warning) and int(d.inner_status) == 2 and float(d.inner_residual) > 1e-3


def test_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        hg("penalty", sigma=0.0)
    with pytest.raises(ValueError, match="method"):
        hg("bogus")
    with pytest.raises(TypeError, match="option"):
        hg(bogus=1)
    with pytest.raises(ValueError, match="`x`"):
        hg(x=jnp.zeros(3))
    with pytest.raises(ValueError, match="scalar"):
        bad = bl.BilevelProblem(lambda x, y, d: x * 1.0, INST.problem.inner_fun)
        bl.hypergradient(bad, X, INST.y0, INST.data)
    with pytest.raises(TypeError, match="outer_fun"):
        bl.BilevelProblem(1.0, INST.problem.inner_fun)
