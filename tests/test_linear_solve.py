"""Linear solvers against dense solves, on arrays and pytrees."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab.linalg import linear_solve as ls

rng = np.random.default_rng(0)
M = rng.standard_normal((7, 7))
SPD = jnp.asarray(M @ M.T + 7 * np.eye(7))
GEN = jnp.asarray(M + 7 * np.eye(7))
b = jnp.asarray(rng.standard_normal(7))


@pytest.mark.parametrize("solve", [ls.solve_cg, ls.solve_cholesky, ls.solve_gmres, ls.solve_bicgstab,
                                   ls.solve_lu, ls.solve_inv, ls.solve_qr, ls.solve_normal_cg])
def test_spd_solve_matches_dense(solve):
    x = solve(lambda v: SPD @ v, b)
    np.testing.assert_allclose(x, jnp.linalg.solve(SPD, b), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("solve", [ls.solve_gmres, ls.solve_bicgstab, ls.solve_lu, ls.solve_qr,
                                   ls.solve_normal_cg])
def test_general_solve_matches_dense(solve):
    x = solve(lambda v: GEN @ v, b)
    np.testing.assert_allclose(x, jnp.linalg.solve(GEN, b), rtol=1e-7, atol=1e-9)


def test_ridge_and_pytree_and_info():
    ridge = 0.3
    tree_b = {"u": b[:3], "v": b[3:]}
    mv = lambda t: (lambda y: {"u": y[:3], "v": y[3:]})(SPD @ jnp.concatenate([t["u"], t["v"]]))
    x, info = ls.solve_cg(mv, tree_b, ridge=ridge, return_info=True)
    expected = jnp.linalg.solve(SPD + ridge * jnp.eye(7), b)
    np.testing.assert_allclose(jnp.concatenate([x["u"], x["v"]]), expected, rtol=1e-9)
    assert float(info.residual_norm) <= 1e-10 * float(jnp.linalg.norm(b)) * 10
    assert 1 <= int(info.iterations) <= 7 + 1  # CG: at most n steps in exact arithmetic


def test_cg_warm_start_and_preconditioner_reduce_iterations():
    exact = jnp.linalg.solve(SPD, b)
    _, cold = ls.solve_cg(lambda v: SPD @ v, b, return_info=True)
    _, warm = ls.solve_cg(lambda v: SPD @ v, b, init=exact + 1e-9, return_info=True)
    assert int(warm.iterations) < int(cold.iterations)
    diag = jnp.diag(SPD)
    x, pre = ls.solve_cg(lambda v: SPD @ v, b, M=lambda r: r / diag, return_info=True)
    np.testing.assert_allclose(x, exact, rtol=1e-8)


def test_bad_matvec():
    with pytest.raises(TypeError, match="matvec"):
        ls.solve_cg(SPD, b)
