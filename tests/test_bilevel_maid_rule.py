"""MAID's accuracy and step-size rule (Salehi et al. 2024, Algorithm 3.1) on a traced run.

Every iteration's accuracies, step sizes and acceptance are recorded and the rule is
recomputed in NumPy from the problem's closed forms: the inexact-line-search test with its
error-bound terms, the accuracy update ``nu_bar`` / ``nu``, the step update ``rho_bar``,
and the certified decrease of the exact hyper-objective for accepted steps.
"""

import jax
import numpy as np
import pytest

from jaxopt_lab import bilevel as bl
from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel

Q = quadratic_bilevel()
D = {k: np.asarray(v, np.float64) for k, v in Q.data.items()}
J = np.linalg.solve(D["A"], D["B"])
NU_BAR, NU, RHO, RHO_BAR, C = 1.05, 0.5, 0.5, 1.25, 1e-4


def outer(x, y):
    return 0.5 * np.sum((y - D["b"]) ** 2) + 0.5 * D["mu"] * x @ x + D["e"] @ x


def phi(x):  # exact hyper-objective F(x, y*(x))
    return outer(x, J @ x)


def trace(steps=40, **kw):
    solver = bl.MAID(Q.problem, stepsize=8.0, inner_tol0=0.5, adjoint_tol0=0.5, accuracy_increase=NU_BAR,
                     accuracy_decrease=NU, shrink=RHO, step_increase=RHO_BAR, armijo=C, maxls=2,
                     strong_convexity=1.0, outer_smoothness=1.0, **kw)
    params = bl.BilevelParams(Q.x0, Q.y0)
    state = jax.jit(solver.init_state)(params, Q.data)
    update = jax.jit(solver.update)
    rows = []
    for _ in range(steps):
        new, new_state = update(params, state, Q.data)
        rows.append((params, state, new, new_state))
        params, state = new, new_state
    return rows


ROWS = trace()  # one compile, 40 steps: about 2 s on an idle core


def test_trace_has_successes_and_failures():
    accepted = [bool(r[3].accepted) for r in ROWS]
    assert 5 <= sum(accepted) <= len(accepted) - 3, accepted


def test_accuracy_and_step_rule():
    for params, st, new, nst in ROWS:
        eps, delta, alpha = float(st.inner_tol), float(st.adjoint_tol), float(st.stepsize)
        ok = bool(nst.accepted)
        factor = NU_BAR if ok else NU
        np.testing.assert_allclose(float(nst.inner_tol), factor * eps, rtol=1e-12)
        np.testing.assert_allclose(float(nst.adjoint_tol), factor * delta, rtol=1e-12)
        assert int(nst.backtrack_budget) == (2 if ok else int(st.backtrack_budget) + 1)
        if ok:
            # The accepted step is alpha_k rho^i for some i < budget, and the next one rho_bar times it.
            step = np.linalg.norm(np.asarray(new.x) - np.asarray(params.x)) / float(nst.error)
            i = np.log(step / alpha) / np.log(RHO)
            assert abs(i - round(i)) < 1e-6 and 0 <= round(i) < int(st.backtrack_budget)
            np.testing.assert_allclose(float(nst.stepsize), RHO_BAR * step, rtol=1e-9)
        else:
            np.testing.assert_array_equal(np.asarray(new.x), np.asarray(params.x))
            assert float(nst.stepsize) == alpha


def test_line_search_test_and_certified_decrease():
    for params, st, new, nst in ROWS:
        if not bool(nst.accepted):
            continue
        eps = float(st.inner_tol)
        x1, y1 = np.asarray(new.x, np.float64), np.asarray(new.y, np.float64)
        # The trial's inner solution is eps-accurate (certified by mu = 1) ...
        assert np.linalg.norm(y1 - J @ x1) <= eps * (1 + 1e-9)
        # ... and the acceptance test, with its error-bound terms, holds (L_F = 1).
        upper = outer(x1, y1) + np.linalg.norm(y1 - D["b"]) * eps + 0.5 * eps**2
        alpha = np.linalg.norm(x1 - np.asarray(params.x)) / float(nst.error)
        h2 = float(nst.error) ** 2
        assert upper - float(nst.lower_value) + C * alpha * h2 <= 1e-10
        # lower_value brackets the exact hyper-objective from below: the decrease is certified.
        x0 = np.asarray(params.x, np.float64)
        assert float(nst.lower_value) <= phi(x0) + 1e-10
        assert phi(x1) <= phi(x0) - C * alpha * h2 + 1e-10


@pytest.mark.parametrize("bad", [dict(accuracy_decrease=1.5), dict(accuracy_increase=0.9),
                                 dict(shrink=1.0), dict(step_increase=0.5)])
def test_rule_constants_are_checked(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        bl.MAID(Q.problem, **bad)
