"""Convergence of the bilevel algorithms on problems with known solutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import Status
from jaxopt_lab import bilevel as bl
from jaxopt_lab.problems.bilevel_problems import constrained_toy, multiblock_quadratic, quadratic_bilevel

Q = quadratic_bilevel()


def dist(out, inst=Q):
    return float(jnp.linalg.norm(out.params.x - inst.x_star))


def test_implicit_bilevel_converges():
    out = bl.ImplicitBilevel(Q.problem, stepsize=0.5, maxiter=2000, tol=1e-8).run(Q.x0, Q.y0, Q.data)
    assert int(out.state.status) == 1 and dist(out) < 1e-6
    np.testing.assert_allclose(out.params.y, Q.y_star, atol=1e-6)


def test_implicit_bilevel_vmap_over_stepsize():
    run = lambda lr: bl.ImplicitBilevel(Q.problem, stepsize=lr, maxiter=50, tol=0.0).run(Q.x0, Q.y0, Q.data)
    lrs = jnp.asarray([0.2, 0.5])
    batched = jax.vmap(run)(lrs)
    for i, lr in enumerate(lrs):
        np.testing.assert_allclose(batched.params.x[i], run(float(lr)).params.x, atol=1e-10)


@pytest.mark.parametrize("variant", ["double", "single"])
def test_penalty_bilevel_within_order_sigma(variant):
    errs = []
    for sigma in (1e-1, 1e-2):
        solver = bl.PenaltyBilevel(Q.problem, sigma=sigma, stepsize=0.5, maxiter=3000, tol=1e-8,
                                   variant=variant)
        out = solver.run(Q.x0, Q.y0, Q.data)
        assert int(out.state.status) == 1
        errs.append(dist(out))
        assert errs[-1] <= 0.5 * sigma  # measured 0.37 sigma
    assert errs[1] < errs[0] / 5


def test_maid_converges_and_adapts_accuracy():
    # tol 1e-7: below ||h|| ~ 1e-8 the certified decrease is under the round-off of F.
    out = bl.MAID(Q.problem, maxiter=500, tol=1e-7).run(Q.x0, Q.y0, Q.data)
    assert int(out.state.status) == 1 and dist(out) < 1e-5
    assert float(out.state.inner_tol) < 1e-6  # the accuracy was tightened from 1e-2


def test_borep_reaches_stepsize_neighbourhood():
    out = bl.BOREP(Q.problem, stepsize=1e-3, maxiter=3000, tol=0.0).run(Q.x0, Q.y0, Q.data)
    assert dist(out) < 2e-2  # normalized steps of size 1e-3: measured 1e-2


def test_borep_with_sampler_runs_stochastically():
    def sampler(key, data):  # perturbs b: an unbiased noisy outer objective
        return {**data, "b": data["b"] + 0.01 * jax.random.normal(key, data["b"].shape)}

    out = bl.BOREP(Q.problem, stepsize=1e-3, maxiter=3000, tol=0.0, sampler=sampler).run(Q.x0, Q.y0, Q.data)
    assert dist(out) < 5e-2


def _first_hits(inst, I, B, eps, T=200):
    def one(key):
        s = bl.BSVRB(inst.problem, num_blocks_sampled=I, batch_size=B, key=key, maxiter=T, tol=0.0)
        p = bl.BilevelParams(inst.x0, inst.y0)
        st = s.init_state(p, inst.data)

        def body(c, _):
            p, st = s.update(*c, inst.data)
            return (p, st), jnp.linalg.norm(p.x - inst.x_star)

        return jax.lax.scan(body, (p, st), None, length=T)[1]

    d = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), 8))
    return np.asarray(jnp.where((d <= eps).any(1), jnp.argmax(d <= eps, axis=1), T)), np.asarray(d[:, -1])


def test_bsvrb_speedup_in_blocks():
    inst = multiblock_quadratic()
    few, _ = _first_hits(inst, 1, 4, 0.1)
    many, last = _first_hits(inst, 8, 4, 0.1)
    assert np.median(many) < np.median(few) / 3  # measured ~16 vs ~150 iterations
    assert last.max() < 0.1


@pytest.mark.slow
def test_bsvrb_speedup_in_batch():
    inst = multiblock_quadratic(noise=2.0)
    small, _ = _first_hits(inst, 8, 1, 0.05)
    large, last = _first_hits(inst, 8, 32, 0.05)
    assert np.median(large) < np.median(small) / 3  # measured 18 vs ~140
    assert last.max() < 1e-4  # B = n: no sampling noise left


def test_bsvrb_run_stops_only_at_the_solution():
    # Issue 15: the error was the norm of the outer estimator alone, which is exactly 0 at
    # the first step (zero adjoints, grad_x f(x0) = 0 here), so run stopped at x0, CONVERGED.
    inst = multiblock_quadratic(num_blocks=4, num_samples=8)  # I = m, B = n: exact oracles
    make = lambda **kw: bl.BSVRB(inst.problem, num_blocks_sampled=4, batch_size=8,
                                 key=jax.random.PRNGKey(0), maxiter=400, **kw)
    out = make(tol=1e-8).run(inst.x0, inst.y0, inst.data)
    assert int(out.state.status) == Status.CONVERGED
    assert 1 < int(out.state.iter_num) < 400 and float(out.state.error) <= 1e-8
    assert dist(out, inst) < 1e-7
    np.testing.assert_allclose(out.params.y, inst.y_star, atol=1e-7)
    out0 = make(tol=0.0).run(inst.x0, inst.y0, inst.data)
    assert int(out0.state.status) == Status.MAX_ITER and int(out0.state.iter_num) == 400
    assert dist(out0, inst) < 1e-10


def test_lvhba_solves_constrained_toy():
    toy = constrained_toy()
    out = bl.LVHBA(toy.problem, projection=toy.extra, maxiter=10000, tol=1e-7).run(toy.x0, toy.y0, toy.data)
    np.testing.assert_allclose(out.params.x, toy.x_star, atol=1e-5)
    np.testing.assert_allclose(out.params.y, toy.y_star, atol=1e-5)
    assert float(toy.problem.inner_constraints(out.params.x, out.params.y, toy.data)[0]) <= 1e-12


def test_bad_input():
    inst = multiblock_quadratic(num_blocks=4, num_samples=8)
    with pytest.raises(ValueError, match="num_blocks_sampled"):
        bl.BSVRB(inst.problem, num_blocks_sampled=5).run(inst.x0, inst.y0, inst.data)
    with pytest.raises(ValueError, match="batch_size"):
        bl.BSVRB(inst.problem, batch_size=9).run(inst.x0, inst.y0, inst.data)
    with pytest.raises(ValueError, match="sigma"):
        bl.PenaltyBilevel(Q.problem, sigma=-1.0)
    with pytest.raises(ValueError, match="inner_constraints"):
        bl.LVHBA(Q.problem)
    with pytest.raises(ValueError, match="x0"):
        bl.ImplicitBilevel(Q.problem).run(jnp.zeros(2), Q.y0, Q.data)
    with pytest.raises(TypeError, match="problem"):
        bl.MAID(lambda x: x)
