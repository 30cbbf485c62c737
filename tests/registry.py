"""Every public solver, transform and estimator, with capability flags.

The conformance suite (``test_conformance.py``) runs over these lists; a new
algorithm gets its engineering tests by adding one entry here. Flags describe what
an algorithm can do (``stochastic``, ``needs_value_fn`` ...), never which tests to skip.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import optax

import jaxopt_lab as jl


@dataclasses.dataclass(frozen=True)
class SolverEntry:
    """A solver for the conformance suite.

    Attributes:
      name: id in test names.
      make: ``make(fun, **options) -> solver``.
      options: options giving a tight solve on the test problems.
      numeric_option: a traced hyperparameter (changing it must not recompile).
      numeric_values: two values of it for the retrace and sweep tests.
      accuracy: distance to the solution expected on the quadratic.
      rosenbrock: whether the solver should reach Rosenbrock's minimum.
      implicit_diff: whether ``run`` has implicit derivatives to check.
      exact_replay: iterates agree to rounding across jit / eager / vmap; False where
        line-search decisions amplify rounding differences (nonlinear CG), then runs are
        compared at the solution accuracy and iteration counts may differ.
      jittable: ``run`` can be traced (``jax.jit`` / ``jax.vmap``); False for the SciPy
        wrappers, which run SciPy on the host (their derivatives are still checked).
      stepwise: the solver exposes ``init_state``/``update``; False for the SciPy
        wrappers, which only have ``run`` (their ``init_state`` raises a ``TypeError``).
      pytree_params: ``init_params`` may be any pytree; False for BlockCoordinateDescent,
        whose blocks are the entries or rows of one 1-D or 2-D array (a pytree gets a
        ``ValueError`` naming ``init_params``, checked in test_block_cd_mirror.py).
    """

    name: str
    make: Callable[..., Any]
    options: dict = dataclasses.field(default_factory=dict)
    numeric_option: str = "tol"
    numeric_values: tuple = (1e-7, 1e-8)
    accuracy: float = 1e-5
    rosenbrock: bool = True
    implicit_diff: bool = True
    exact_replay: bool = True
    core: bool = False
    jittable: bool = True
    stepwise: bool = True
    pytree_params: bool = True


@dataclasses.dataclass(frozen=True)
class TransformEntry:
    """An optax transform for the conformance suite.

    Attributes:
      name: id in test names.
      make: ``make(learning_rate, **kwargs) -> GradientTransformation``.
      learning_rate: a step that converges on the test quadratic.
      kwargs: other options.
      steps: steps to reach ``accuracy`` on the quadratic.
      accuracy: relative distance to the solution expected after ``steps``.
      needs_value_fn: ``update`` requires ``value_fn=`` (params -> loss).
      needs_key: ``update`` requires ``key=``.
      needs_per_example_grads: ``update`` requires ``per_example_grads=`` (a pytree like the
        gradients with a leading batch axis; the suite passes two examples whose mean is the
        gradient).
      stochastic: updates are random (compared across runs with the same key).
      injectable: hyperparameters that ``optax.inject_hyperparams`` can change.
      matrix_only: only matrix-shaped leaves are supported.
      keeps_bf16: updates stay in bfloat16 for bfloat16 gradients.
      leafwise: the rule acts per leaf (per-layer norms, per-leaf top-k ...), so splitting a
        vector into several leaves changes the maths.
      reaches_minimum: the rule converges to the unconstrained minimizer of the test problem
        (False for rules that by design do not, e.g. a perpendicular-gradient step keeps
        the weight norm); then only a decrease of the objective is checked.
      checks_grads_tree: ``update`` rejects a gradient pytree unlike ``params`` (False where
        the update is optax's stateless rule over the gradients alone, e.g. a jaxopt_lab
        schedule inside ``optax.sgd`` or a batch-size test passing the updates through:
        there is nothing to compare the gradients with).
      recipe: the public factory behind ``make`` (``None``: ``make`` is the public factory),
        for the ``optax.inject_hyperparams(recipe)(learning_rate=...)`` check.
      recipe_kwargs: what ``recipe`` needs besides the learning rate (``None``: ``kwargs``).
      recipe_static: names among ``recipe_kwargs`` that set shapes or are functions: the
        ``static_args`` of ``optax.inject_hyperparams`` (numbers left out of it are traced).
    """

    name: str
    make: Callable[..., Any]
    learning_rate: float = 0.1
    kwargs: dict = dataclasses.field(default_factory=dict)
    steps: int = 300
    accuracy: float = 1e-2
    needs_value_fn: bool = False
    needs_key: bool = False
    needs_per_example_grads: bool = False
    stochastic: bool = False
    injectable: tuple = ("learning_rate",)
    matrix_only: bool = False
    core: bool = False
    keeps_bf16: bool = True
    leafwise: bool = False
    reaches_minimum: bool = True
    checks_grads_tree: bool = True
    recipe: Callable[..., Any] | None = None
    recipe_kwargs: dict | None = None
    recipe_static: tuple = ()


# Cached so that the same ``fun`` gives the same wrapped function (a static argument):
# a fresh wrapper on every ``make`` would recompile and fail the retrace check.
@functools.cache
def _grad_step_map(fun, eta=0.05):
    """The gradient-step map ``x - eta grad f(x)``: a contraction whose fixed point is argmin f."""
    return lambda x, *a, **k: jax.tree_util.tree_map(lambda p, g: p - eta * g, x,
                                                     jax.grad(fun)(x, *a, **k))


@functools.cache
def _grad_of(fun):
    """``grad f`` as a residual / root function (its root is the minimizer of f)."""
    return jax.grad(fun)



@functools.cache
def _fixed_gd(fun):
    return jl.GradientDescent(fun, stepsize=0.05, acceleration=False)


_ADAM = optax.adam(0.05)  # one instance: a new optax object is a new static argument

SOLVERS: list[SolverEntry] = [
    SolverEntry("LBFGS", jl.LBFGS, dict(tol=1e-9, maxiter=500), core=True),
    SolverEntry("LBFGS-backtracking", jl.LBFGS,
                dict(tol=1e-9, maxiter=1000, linesearch="backtracking")),
    SolverEntry("GradientDescent", jl.GradientDescent, dict(tol=1e-8, maxiter=5000), core=True,
                accuracy=1e-5, rosenbrock=False),
    SolverEntry("GradientDescent-fixed", jl.GradientDescent,
                dict(tol=1e-8, maxiter=5000, stepsize=0.05, acceleration=False),
                numeric_option="stepsize", numeric_values=(0.05, 0.04), rosenbrock=False),
    SolverEntry("OptaxSolver-adam",
                lambda fun, **kw: jl.OptaxSolver(_ADAM, fun, **kw),
                dict(tol=1e-7, maxiter=20000, implicit_diff=True),
                accuracy=1e-4, rosenbrock=False, core=True),
    SolverEntry("GaussNewton", lambda fun, **kw: jl.GaussNewton(_grad_of(fun), **kw),
                dict(tol=1e-9, maxiter=100), rosenbrock=False),
    SolverEntry("LevenbergMarquardt", lambda fun, **kw: jl.LevenbergMarquardt(_grad_of(fun), **kw),
                dict(tol=1e-9, maxiter=200), rosenbrock=False),
    SolverEntry("LevenbergMarquardt-cholesky",
                lambda fun, **kw: jl.LevenbergMarquardt(_grad_of(fun), solver="cholesky", **kw),
                dict(tol=1e-9, maxiter=200), numeric_option="damping_parameter",
                numeric_values=(1e-6, 1e-3), rosenbrock=False),
    SolverEntry("FixedPointIteration",
                lambda fun, **kw: jl.FixedPointIteration(_grad_step_map(fun), **kw),
                dict(tol=1e-11, maxiter=3000), rosenbrock=False),
    SolverEntry("AndersonAcceleration",
                lambda fun, **kw: jl.AndersonAcceleration(_grad_step_map(fun), **kw),
                dict(tol=1e-11, maxiter=3000), numeric_option="beta", numeric_values=(1.0, 0.9),
                rosenbrock=False),
    SolverEntry("AndersonWrapper-GD",
                lambda fun, **kw: jl.AndersonWrapper(_fixed_gd(fun), **kw),
                dict(tol=1e-9, maxiter=3000), rosenbrock=False),
    SolverEntry("Broyden", lambda fun, **kw: jl.Broyden(_grad_of(fun), **kw),
                dict(tol=1e-10, maxiter=500), rosenbrock=False),
    # Derivative-free particle method: consensus accuracy is limited by the particle collapse.
    SolverEntry("ConsensusBasedOptimization", jl.ConsensusBasedOptimization,
                dict(tol=1e-8, maxiter=5000, alpha=1e5, noise=1.3, dt=0.05, num_particles=300,
                     init_std=2.0), numeric_option="noise", numeric_values=(1.3, 1.2), accuracy=0.25,
                rosenbrock=False, implicit_diff=False),
]

# Second-order solvers (issue 4).
SOLVERS += [
    SolverEntry("NewtonCG", jl.NewtonCG, dict(tol=1e-9, maxiter=200)),
    SolverEntry("RegularizedNewton", jl.RegularizedNewton, dict(tol=1e-9, maxiter=300),
                numeric_option="hessian_lipschitz", numeric_values=(1.0, 2.0), rosenbrock=False),
]


# jaxopt parity, smooth / bound-constrained / composite solvers (issue 8). Solvers whose
# ``run`` takes a leading hyperparameter (prox, projection, bounds) get it bound here.
class _FirstArg:
    """``run(x0, *args)`` -> ``solver.run(x0, first, *args)``."""

    def __init__(self, solver, first):
        self.solver, self.first = solver, first

    def run(self, init_params, *args, **kwargs):
        return self.solver.run(init_params, self.first, *args, **kwargs)

    def init_state(self, init_params, *args, **kwargs):
        return self.solver.init_state(init_params, self.first, *args, **kwargs)

    def update(self, params, state, *args, **kwargs):
        return self.solver.update(params, state, self.first, *args, **kwargs)


_WIDE = (-1e3, 1e3)


def _euclidean_mirror_step(x, g, stepsize, hyperparams_proj):
    del hyperparams_proj
    return jax.tree_util.tree_map(lambda a, b: a - stepsize * b, x, g)

SOLVERS += [
    SolverEntry("BFGS", jl.BFGS, dict(tol=1e-9, maxiter=500)),
    # Below a ~1e-8 gradient, f is flat to rounding and CG's line searches may fail.
    SolverEntry("NonlinearCG", jl.NonlinearCG, dict(tol=1e-7, maxiter=2000), numeric_values=(1e-6, 1e-7),
                exact_replay=False),
    SolverEntry("LBFGSB", lambda fun, **kw: _FirstArg(jl.LBFGSB(fun, **kw), _WIDE),
                dict(tol=1e-9, maxiter=500)),
    SolverEntry("ProximalGradient", lambda fun, **kw: _FirstArg(jl.ProximalGradient(fun, **kw), None),
                dict(tol=1e-8, maxiter=5000), rosenbrock=False),
    SolverEntry("ProximalGradient-norestart",
                lambda fun, **kw: _FirstArg(jl.ProximalGradient(fun, **kw), None),
                dict(tol=1e-8, maxiter=5000, restart="none"), rosenbrock=False),
    SolverEntry("ProximalGradient-function",
                lambda fun, **kw: _FirstArg(jl.ProximalGradient(fun, **kw), None),
                dict(tol=1e-8, maxiter=5000, restart="function"), rosenbrock=False),
    SolverEntry("ProjectedGradient",
                lambda fun, **kw: _FirstArg(jl.ProjectedGradient(fun, jl.projection.projection_box, **kw),
                                            _WIDE),
                dict(tol=1e-8, maxiter=5000), rosenbrock=False),
    SolverEntry("BlockCoordinateDescent",
                lambda fun, **kw: _FirstArg(jl.BlockCoordinateDescent(fun, jl.prox.prox_none, **kw), None),
                dict(tol=1e-9, maxiter=2000), rosenbrock=False, pytree_params=False),
    SolverEntry("BlockCoordinateDescent-greedy",
                lambda fun, **kw: _FirstArg(jl.BlockCoordinateDescent(fun, jl.prox.prox_none, **kw), None),
                dict(tol=1e-9, maxiter=20000, selection="greedy"), rosenbrock=False, pytree_params=False),
    # Euclidean mirror map: mirror descent is then gradient descent with a fixed step.
    SolverEntry("MirrorDescent",
                lambda fun, **kw: _FirstArg(jl.MirrorDescent(fun, _euclidean_mirror_step, **kw), None),
                dict(stepsize=0.01, tol=1e-8, maxiter=20000), numeric_option="stepsize",
                numeric_values=(0.01, 0.009), rosenbrock=False),
    # Full-batch use of a stochastic method: Armijo steps (c1 = 0.1) stall near 1e-7 where f is
    # flat to rounding, so no 1e-10 implicit-derivative check. PolyakSGD assumes min f = 0
    # (interpolation), which the shared quadratics do not satisfy: see test_parity_smooth.py.
    SolverEntry("ArmijoSGD", jl.ArmijoSGD, dict(tol=1e-6, maxiter=5000), accuracy=1e-4,
                numeric_option="max_stepsize", numeric_values=(1.0, 0.5), rosenbrock=False,
                implicit_diff=False, exact_replay=False),
]

# SciPy wrappers (issue 8): SciPy runs on the host, so no jit/vmap (``jittable=False``).
# CONVERGED means our gradient norm <= tol: SciPy's tolerances are set tighter than tol (its
# gtol bounds the largest gradient entry; BFGS loses precision near a 1e-8 gradient).
SOLVERS += [
    SolverEntry("ScipyMinimize-BFGS", lambda fun, **kw: jl.ScipyMinimize(fun=fun, method="BFGS", **kw),
                dict(tol=1e-7, maxiter=500, options={"gtol": 1e-9}), jittable=False, stepwise=False),
    SolverEntry("ScipyBoundedMinimize",
                lambda fun, **kw: _FirstArg(jl.ScipyBoundedMinimize(fun=fun, **kw), _WIDE),
                dict(tol=1e-7, maxiter=500, options={"gtol": 1e-9, "ftol": 1e-15}), rosenbrock=False,
                jittable=False, stepwise=False),
    # Residual = grad f: the least-squares / root solution is the minimizer of f.
    SolverEntry("ScipyLeastSquares",
                lambda fun, **kw: jl.ScipyLeastSquares(fun=_grad_of(fun), **kw),
                dict(options={"xtol": 1e-14, "ftol": 1e-14, "gtol": 1e-14}), rosenbrock=False,
                jittable=False, stepwise=False),
    SolverEntry("ScipyRootFinding",
                lambda fun, **kw: jl.ScipyRootFinding(optimality_fun=_grad_of(fun), **kw),
                dict(tol=1e-10), numeric_values=(1e-9, 1e-10), rosenbrock=False, jittable=False,
                stepwise=False),
]



@functools.cache
def _qp_data(fun):
    """Jitted ``(x0, args) -> (Q, c)``: Hessian and gradient at 0 of a quadratic ``fun``, flattened."""
    from jax.flatten_util import ravel_pytree

    def data(x0, args):
        flat, unravel = ravel_pytree(x0)
        f = lambda v: fun(unravel(v), *args)
        return jax.hessian(f)(flat), jax.grad(f)(jax.numpy.zeros_like(flat))
    return jax.jit(data)


class _QuadraticAsQP:
    """CvxpyQP on a quadratic ``fun`` (the shared test problems are quadratics): the QP
    ``(Q, c)`` is ``fun``'s Hessian and gradient at 0; ``maxiter``/``tol``/``jit`` are CVXPY's own."""

    def __init__(self, fun, **_options):
        self.fun, self.solver = fun, jl.CvxpyQP(solver="CLARABEL")

    def run(self, init_params, *args):
        from jax.flatten_util import ravel_pytree

        out = self.solver.run(None, _qp_data(self.fun)(init_params, args))
        unravel = ravel_pytree(init_params)[1]
        return jl.OptStep(unravel(out.params.primal), out.state)

    def init_state(self, init_params, *args):
        return self.solver.init_state(init_params, *args)


# CvxpyQP (issue 8): CVXPY on the host through a callback; jittable, but no init_state/update.
SOLVERS += [
    SolverEntry("CvxpyQP", _QuadraticAsQP, dict(tol=1e-9), rosenbrock=False, stepwise=False),
]

TRANSFORMS: list[TransformEntry] = []

# First-order and proximal transforms (issue 6).
_TOP2 = jl.top_k_compressor(2)
_NORMS = [1.0 + 1.0 / (1.0 + t) for t in range(300)]  # gradient norms of a previous run
_refined = lambda peak: jl.refined_schedule(_NORMS, peak_value=peak)
_ALL_LEAVES = lambda params: jl.tree_util.tree_map(lambda _: True, params)
TRANSFORMS += [
    TransformEntry("diffgrad", jl.diffgrad, learning_rate=0.1, steps=300, kwargs=dict(b1=0.9, b2=0.999),
                   core=True),
    TransformEntry("adamp", jl.adamp, learning_rate=0.1, steps=300, kwargs=dict(b1=0.9, b2=0.999)),
    TransformEntry("sgdp", jl.sgdp, learning_rate=0.05, steps=300, kwargs=dict(momentum=0.9)),
    TransformEntry("root", jl.root, learning_rate=0.02, steps=400, accuracy=3e-2, matrix_only=True,
                   kwargs=dict(beta=0.9)),
    TransformEntry("coordinate_clipped_sgd", jl.coordinate_clipped_sgd, learning_rate=0.05,
                   kwargs=dict(threshold=1.0)),
    TransformEntry("perp_grad", jl.perp_grad, learning_rate=0.05, steps=100, leafwise=True,
                   reaches_minimum=False),
    TransformEntry("prox_lasso", jl.prox_lasso_transform, learning_rate=0.1, kwargs=dict(l1reg=1e-3)),
    # k, rank, compressors are static (ints): bound in ``make`` so inject_hyperparams leaves them alone.
    TransformEntry("hard_threshold_topk",
                   lambda learning_rate: jl.hard_threshold_topk(learning_rate, k=8),
                   learning_rate=0.1, recipe=jl.hard_threshold_topk, recipe_kwargs=dict(k=8),
                   recipe_static=("k",)),
    TransformEntry("group_envelope",
                   lambda learning_rate, weight: jl.group_envelope(learning_rate, k=8, weight=weight),
                   learning_rate=0.1, kwargs=dict(weight=1e-3), recipe=jl.group_envelope,
                   recipe_kwargs=dict(k=8, weight=1e-3), recipe_static=("k", "group_axis")),
    TransformEntry("sora_gate",
                   lambda learning_rate, l1reg: jl.sora_gate(learning_rate, l1reg, gate_mask=_ALL_LEAVES),
                   learning_rate=0.1, kwargs=dict(l1reg=1e-3), recipe=jl.sora_gate,
                   recipe_kwargs=dict(l1reg=1e-3, gate_mask=_ALL_LEAVES), recipe_static=("gate_mask",)),
    TransformEntry("econtrol-topk",
                   lambda learning_rate, eta: jl.econtrol(learning_rate, compressor=_TOP2, eta=eta),
                   learning_rate=0.05, steps=300, leafwise=True, kwargs=dict(eta=0.1), recipe=jl.econtrol,
                   recipe_kwargs=dict(compressor=_TOP2, eta=0.1), recipe_static=("compressor",)),
    TransformEntry("lowrank_dct",
                   lambda learning_rate: jl.lowrank_dct(learning_rate, rank=3, update_interval=1),
                   learning_rate=0.05, steps=700, accuracy=3e-2, matrix_only=True, recipe=jl.lowrank_dct,
                   recipe_kwargs=dict(rank=3, update_interval=1), recipe_static=("rank",)),
    TransformEntry("layerwise_noise_adaptive", jl.layerwise_noise_adaptive, learning_rate=0.02, steps=500,
                   accuracy=5e-2, leafwise=True, kwargs=dict(b1=0.9)),
    TransformEntry("layerwise_noise_adaptive-spectral", jl.layerwise_noise_adaptive, learning_rate=0.02,
                   steps=500, accuracy=5e-2, matrix_only=True, kwargs=dict(b1=0.9)),
    TransformEntry("refined_schedule-sgd",
                   lambda learning_rate: optax.sgd(_refined(learning_rate)), learning_rate=0.1,
                   checks_grads_tree=False),
    # Meta-transform (updates pass through; the state carries the next batch size) wrapped around SGD.
    TransformEntry("adaptive_batch_size-sgd",
                   lambda learning_rate, tolerance: optax.chain(
                       jl.adaptive_batch_size(8, tolerance=tolerance), optax.sgd(learning_rate)),
                   learning_rate=0.1, kwargs=dict(tolerance=0.5), needs_per_example_grads=True,
                   checks_grads_tree=False),
]

# Second-order transforms (issue 4).
TRANSFORMS += [
    # Static ints (update_interval, n_samples, num_grads) are bound in ``make`` so that
    # inject_hyperparams leaves them alone.
    TransformEntry("sophia-h",
                   lambda learning_rate, gamma: jl.sophia(learning_rate, gamma=gamma, update_interval=2),
                   learning_rate=0.5, steps=300, needs_value_fn=True, needs_key=True, stochastic=True,
                   kwargs=dict(gamma=1.0), core=True, recipe=jl.sophia, recipe_kwargs={}),
    TransformEntry("adahessian",
                   lambda learning_rate, hessian_power: jl.adahessian(learning_rate,
                                                                      hessian_power=hessian_power),
                   learning_rate=0.3, steps=300, needs_value_fn=True, needs_key=True, stochastic=True,
                   kwargs=dict(hessian_power=1.0), recipe=jl.adahessian, recipe_kwargs={}),
    TransformEntry("mfac",
                   lambda learning_rate, damping: jl.mfac(learning_rate, num_grads=4, damping=damping),
                   learning_rate=0.1, steps=300, kwargs=dict(damping=1.0), recipe=jl.mfac, recipe_kwargs={}),
]

# Zeroth-order transforms (issue 5): value_fn + key, random estimates (fixed keys). The
# estimator options sit in the factory (num_directions sets shapes: static, not injectable).
def _zo(recipe, **options):
    def make(learning_rate):
        return recipe(learning_rate, **options)
    return make


def _zo_recipe(recipe, **options):
    """``TransformEntry`` fields for the public ``recipe`` (shape-setting options static)."""
    static = tuple(k for k in ("num_directions", "density") if k in options)
    return dict(recipe=recipe, recipe_kwargs=options, recipe_static=static)


TRANSFORMS += [
    TransformEntry("zo_sgd-rge", _zo(jl.zo_sgd, num_directions=8), learning_rate=0.05,
                   steps=600, needs_value_fn=True, needs_key=True, stochastic=True, core=True,
                   **_zo_recipe(jl.zo_sgd, num_directions=8)),
    TransformEntry("zo_sgd-cge", _zo(jl.zo_sgd, method="cge", difference="central"),
                   learning_rate=0.1, steps=300, needs_value_fn=True,
                   **_zo_recipe(jl.zo_sgd, method="cge", difference="central")),
    TransformEntry("zo_sgd-spsa", _zo(jl.zo_sgd, method="spsa", num_directions=8),
                   learning_rate=0.05, steps=600, needs_value_fn=True, needs_key=True, stochastic=True,
                   **_zo_recipe(jl.zo_sgd, method="spsa", num_directions=8)),
    TransformEntry("zo_adam-rge", _zo(jl.zo_adam, num_directions=8), learning_rate=0.02,
                   steps=800, needs_value_fn=True, needs_key=True, stochastic=True,
                   **_zo_recipe(jl.zo_adam, num_directions=8)),
    TransformEntry("zo_signsgd-rge", _zo(jl.zo_signsgd, num_directions=8),
                   learning_rate=0.01, steps=800, needs_value_fn=True, needs_key=True, stochastic=True,
                   **_zo_recipe(jl.zo_signsgd, num_directions=8)),
    # DeepZero: sparse CGE on a random half of each leaf (per-leaf counts: leafwise), lazy Adam.
    TransformEntry("deepzero_adam", _zo(jl.zeroth_order.deepzero_adam, density=0.5),
                   learning_rate=0.02, steps=800, needs_value_fn=True, needs_key=True, stochastic=True,
                   leafwise=True, **_zo_recipe(jl.zeroth_order.deepzero_adam, density=0.5)),
    TransformEntry("deepzero_sgd", _zo(jl.zeroth_order.deepzero_sgd, density=0.5),
                   learning_rate=0.05, steps=800, needs_value_fn=True, needs_key=True, stochastic=True,
                   leafwise=True, **_zo_recipe(jl.zeroth_order.deepzero_sgd, density=0.5)),
]


def tiered(entries):
    """pytest parameters for every entry; non-``core`` entries are marked ``slow``.

    The default suite (``make test``) runs each tiered check on the core entries
    only, to stay within its time budget on two cores; ``make test-all`` runs the
    full matrix. Checks that every entry must pass by default are parametrized
    over the plain lists instead.
    """
    import pytest

    return [pytest.param(e, id=e.name, marks=() if e.core else pytest.mark.slow) for e in entries]


def extra_args(entry, fun, key, grads=None) -> dict:
    """The keyword arguments a transform entry's ``update`` needs besides ``value``.

    ``value_fn=fun`` and ``key=key`` when the entry asks for them, and for entries that
    need per-example gradients two examples whose mean is ``grads``.
    """
    import jax.numpy as jnp

    extra: dict = {}
    if entry.needs_value_fn:
        extra["value_fn"] = fun
    if entry.needs_key:
        extra["key"] = key
    if entry.needs_per_example_grads and grads is not None:
        extra["per_example_grads"] = jax.tree_util.tree_map(lambda g: jnp.stack([1.5 * g, 0.5 * g]), grads)
    return extra
