"""BSVRB's Hessian-matrix-tracking variant (Hu et al. 2023) on multi-block problems.

With exact oracles (every block, every sample, no noise) the MSVR trackers of the lower-level
Hessians and cross Jacobians must equal the true matrices at every iterate of a problem whose
Hessian moves with ``(x, y)``, and the outer estimator must equal the implicit hypergradient
``1/m sum_i grad_x f_i - J_i^T H_i^{-1} grad_y f_i``; on the quadratic multi-block problem the
iterates reach the closed-form solution.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import bilevel as bl
from jaxopt_lab.problems.bilevel_problems import MULTIBLOCK_PROBLEM, multiblock_quadratic


def _curved_inner(x, y, batch):  # quadratic + a log-cosh term: H_i and J_i depend on (x, y)
    shift = y - batch["B"].mean(0) @ x
    return MULTIBLOCK_PROBLEM.inner_fun(x, y, batch) + 0.5 * jnp.sum(jnp.log(jnp.cosh(shift)))


CURVED = bl.BilevelProblem(MULTIBLOCK_PROBLEM.outer_fun, _curved_inner)


def _trace(problem, inst, steps, **kw):
    solver = bl.BSVRB(problem, num_blocks_sampled=4, batch_size=8, key=jax.random.PRNGKey(0),
                      hessian_tracking=True, **kw)
    params = bl.BilevelParams(inst.x0, inst.y0 + 0.3)
    state = jax.jit(solver.init_state)(params, inst.data)

    def body(carry, _):
        out = solver.update(*carry, inst.data)
        p, st = carry
        return (out.params, out.state), (p, out.state)

    return jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))((params, state))


def _true_matrices(problem, x, y, data):
    def one(yi, block):
        g = lambda xx, yy: problem.inner_grad(xx, yy, block)
        h, j = jax.jacfwd(g, argnums=(1, 0))(x, yi)
        _, gxf, gyf = problem.outer_grads(x, yi, block)
        return h, j, gxf - j.T @ jnp.linalg.solve(h, gyf)

    return jax.vmap(one)(y, data)


def test_tracked_matrices_equal_true_ones_without_noise():
    inst = multiblock_quadratic(num_blocks=4, num_samples=8, noise=0.0)
    _, (before, states) = _trace(CURVED, inst, 15)
    truth = jax.jit(jax.vmap(lambda x, y: _true_matrices(CURVED, x, y, inst.data)))(before.x, before.y)
    np.testing.assert_allclose(states.hessian, truth[0], atol=1e-10)
    np.testing.assert_allclose(states.cross_jacobian, truth[1], atol=1e-10)
    # The outer (STORM) estimator is the implicit hypergradient at the current iterate.
    np.testing.assert_allclose(states.outer, truth[2].mean(1), atol=1e-10)
    # The Hessian does move along the path (the check above is not about constants).
    assert float(jnp.max(jnp.abs(truth[0][-1] - truth[0][0]))) > 1e-3


@pytest.mark.slow
def test_hypergradient_matches_implicit_and_iterates_reach_solution():
    inst = multiblock_quadratic(num_blocks=4, num_samples=8)  # noisy samples, but B = n: exact oracles
    (final, _), (before, states) = _trace(MULTIBLOCK_PROBLEM, inst, 300)
    hyper = jax.vmap(lambda x, y: _true_matrices(MULTIBLOCK_PROBLEM, x, y, inst.data)[2])
    truth = jax.jit(hyper)(before.x, before.y)
    np.testing.assert_allclose(states.outer, truth.mean(1), atol=1e-10)
    np.testing.assert_allclose(final.x, inst.x_star, atol=1e-8)
    np.testing.assert_allclose(final.y, inst.y_star, atol=1e-8)


def test_tracking_needs_vector_variables():
    inst = multiblock_quadratic(num_blocks=4, num_samples=8)
    solver = bl.BSVRB(inst.problem, num_blocks_sampled=2, batch_size=2, hessian_tracking=True)
    with pytest.raises(ValueError, match="hessian_tracking"):
        solver.run({"a": inst.x0, "b": inst.x0}, inst.y0, inst.data)
    with pytest.raises(ValueError, match="hessian_floor"):
        bl.BSVRB(inst.problem, hessian_floor=-1.0)
