"""GPU readiness: a solver ``run`` makes no host transfer once its inputs are on the device.

Under ``jax.transfer_guard("disallow")`` every implicit host<->device transfer raises:
a Python number or NumPy array sent to the device at a call, or a device value read
back on the host (``float(x)``, ``np.asarray(x)``, a ``bool`` on an array to decide
whether to continue). A ``run`` whose loop is one compiled ``while_loop`` and whose
pre-call checks only look at static information passes. Everything is placed on the
device first (the solver too: its numeric options are pytree leaves) and the program
is compiled once before the guarded call.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab.problems.logreg import logistic_data, logreg_loss

X, Y = logistic_data(50, 5, seed=2)


def _guarded(solver, *args):
    solver, args = jax.device_put((solver, args))
    jax.block_until_ready(solver.run(*args))  # compile (and any first-call constants) outside
    with jax.transfer_guard("disallow"):
        out = solver.run(*args)
        jax.block_until_ready(out)
    return out


@pytest.mark.parametrize("make", [
    lambda: jl.LBFGS(logreg_loss, tol=1e-8, maxiter=100),
    lambda: jl.GradientDescent(logreg_loss, tol=1e-6, maxiter=500),
])
def test_smooth_solvers_run_without_host_transfers(make):
    out = _guarded(make(), jnp.zeros(5), jnp.asarray(0.1), X, Y)
    assert int(out.state.status) == jl.Status.CONVERGED
    ref = make().run(jnp.zeros(5), 0.1, X, Y)
    np.testing.assert_allclose(out.params, ref.params, rtol=1e-12, atol=1e-12)


def test_osqp_runs_without_host_transfers():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((4, 4))
    Q, c = jnp.asarray(M @ M.T + np.eye(4)), jnp.asarray(rng.standard_normal(4))
    G, h = jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.uniform(0.1, 1.0, 3))
    solver, args = jax.device_put((jl.OSQP(tol=1e-8, maxiter=4000), (None, (Q, c), None, (G, h))))
    # OSQP.run turns (G, h) into a box QP eagerly, before its jitted loop: that sends small
    # constants (the -inf lower bounds, an empty equality block) to the device, which the
    # full guard would flag; it reads nothing back, so device-to-host stays disallowed.
    jax.block_until_ready(solver.run(*args))
    with jax.transfer_guard_device_to_host("disallow"):
        out = jax.block_until_ready(solver.run(*args))
    # The whole run under jit (conversion included): no transfer of any kind.
    run = jax.jit(solver.run)
    jax.block_until_ready(run(*args))
    with jax.transfer_guard("disallow"):
        jitted = jax.block_until_ready(run(*args))
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(jitted.params.primal, out.params.primal, rtol=1e-12, atol=1e-12)
    x = np.asarray(out.params.primal)
    assert np.all(np.asarray(G) @ x <= np.asarray(h) + 1e-6)


def test_guard_catches_a_host_sync():
    # The guard does see a loop that reads a device value on the host each iteration.
    x = jax.device_put(jnp.asarray(4.0))
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="[Dd]isallowed"):
        while float(x) > 1.0:
            x = x / 2.0
