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
import numpy as np
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
      core: a representative entry for the cross-cutting checks of other test files that
        run a few entries by default and the rest with ``-m slow`` (:func:`tiered`); the
        conformance suite runs its cheap checks on every entry.
      tol_floor: the smallest ``tol`` (on ``state.error``) the solver reaches on the test
        problems in float64; checks asking for a tighter one use this. 0 for solvers that
        iterate to rounding; SciPy's BFGS and L-BFGS-B test sufficient decrease on function
        values, which stops resolving progress once the gradient norm is near
        ``sqrt(eps |f| L)`` (1e-9 to 1e-7 on these problems, ``|f*|`` = 22 for ridge).
      cond20_options: options replacing ``options`` on the condition-20 quadratic of the
        slow suite, for solvers whose rate cannot reach ``options["tol"]`` there within
        ``maxiter`` (None: ``options``).
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
    tol_floor: float = 0.0
    cond20_options: dict | None = None
    covers: tuple = ()


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
      core: as for solvers (:func:`tiered`).
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
    covers: tuple = ()


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
                lambda fun, **kw: jl.OptaxSolver(fun, _ADAM, **kw),
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
    SolverEntry("AdaptiveRegularizedNewton", jl.AdaptiveRegularizedNewton, dict(tol=1e-9, maxiter=300),
                numeric_option="gamma_init", numeric_values=(1.0, 2.0), rosenbrock=False),
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
    SolverEntry("DFP", jl.DFP, dict(tol=1e-9, maxiter=500)),
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
    SolverEntry("BlockCoordinateDescent-gsl",
                lambda fun, **kw: _FirstArg(jl.BlockCoordinateDescent(fun, jl.prox.prox_none, **kw), None),
                dict(tol=1e-9, maxiter=20000, selection="gsl"), rosenbrock=False, pytree_params=False),
    SolverEntry("BlockCoordinateDescent-gsq-active_set",
                lambda fun, **kw: _FirstArg(jl.BlockCoordinateDescent(fun, jl.prox.prox_none, **kw), None),
                dict(tol=1e-9, maxiter=2000, selection="gsq", block_fun=lambda x, hp: 0.0, active_set=True),
                rosenbrock=False, pytree_params=False),
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
# gtol bounds the largest gradient entry). BFGS and L-BFGS-B stop where their line searches
# no longer see f decrease (3e-9 and 6e-8 on the ridge and quadratic test problems in
# float64): ``tol_floor`` and ``numeric_values`` stay above that.
SOLVERS += [
    SolverEntry("ScipyMinimize-BFGS", lambda fun, **kw: jl.ScipyMinimize(fun=fun, method="BFGS", **kw),
                dict(tol=1e-7, maxiter=500, options={"gtol": 1e-9}), jittable=False, stepwise=False,
                tol_floor=1e-8),
    SolverEntry("ScipyBoundedMinimize",
                lambda fun, **kw: _FirstArg(jl.ScipyBoundedMinimize(fun=fun, **kw), _WIDE),
                dict(tol=1e-7, maxiter=500, options={"gtol": 1e-9, "ftol": 1e-15}), rosenbrock=False,
                numeric_values=(1e-6, 2e-7), jittable=False, stepwise=False, tol_floor=2e-7),
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


class _ConsensusOfWeightedCopies:
    """ConsensusADMM on ``fun = 0.25 fun + 0.75 fun``: two blocks (the weights are the
    split data, the problem's ``*args`` are shared), ``g = 0``; same minimizer as ``fun``."""

    _weights = (0.25, 0.75)

    def __init__(self, fun, **options):
        self.solver = jl.ConsensusADMM(_weighted(fun), jl.prox.prox_none, in_axes=0, **options)

    def _args(self, args):
        w = jax.numpy.asarray(self._weights)
        return (None, w, *(jax.tree_util.tree_map(lambda a: jax.numpy.stack([a, a]), a) for a in args))

    def run(self, init_params, *args):
        return self.solver.run(init_params, *self._args(args))

    def init_state(self, init_params, *args):
        return self.solver.init_state(init_params, *self._args(args))

    def update(self, params, state, *args):
        return self.solver.update(params, state, *self._args(args))


@functools.cache
def _weighted(fun):
    return lambda x, w, *a: w * fun(x, *a)


# ADMM (issue 19): g = 0 (prox_none), so the solution is argmin fun; rho is the traced option.
SOLVERS += [
    SolverEntry("ADMM", lambda fun, **kw: _FirstArg(jl.ADMM(fun, jl.prox.prox_none, **kw), None),
                dict(tol=1e-10, maxiter=5000), numeric_option="rho", numeric_values=(1.0, 2.0),
                covers=("ADMM",)),
    SolverEntry("ConsensusADMM", _ConsensusOfWeightedCopies, dict(tol=1e-10, maxiter=5000),
                numeric_option="rho", numeric_values=(1.0, 2.0), rosenbrock=False,
                covers=("ConsensusADMM",)),
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
    TransformEntry("sora",
                   lambda learning_rate, xi: jl.sora(learning_rate, xi, gate_mask=_ALL_LEAVES),
                   learning_rate=0.1, kwargs=dict(xi=1e-3), recipe=jl.sora,
                   recipe_kwargs=dict(xi=1e-3, gate_mask=_ALL_LEAVES), recipe_static=("gate_mask",)),
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
    TransformEntry("adaptive_batch_size-augmented-sgd",
                   lambda learning_rate, tolerance: optax.chain(
                       jl.adaptive_batch_size(8, tolerance=tolerance, test="augmented_inner_product"),
                       optax.sgd(learning_rate)),
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

    For the heavier cross-cutting checks outside the conformance suite (determinism,
    state dtypes): the default suite (``make test``) runs them on the core entries only,
    to stay within its time budget on two cores; ``make test-all`` runs the full matrix.
    The conformance suite runs its cheap checks on every entry by default.
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


# ------------------------------------------------------------ issue 16: the whole public surface
# Solvers of the shared contract that had no entry.
@functools.cache
def _grad_norm_sq(fun):
    """``0.5 ||grad f||^2``: same minimizer as a strongly convex ``f``, with minimum 0, the
    interpolation assumption of Polyak's step (the shared quadratics have ``min f != 0``)."""
    g = jax.grad(fun)
    leaves = jax.tree_util.tree_leaves
    return lambda x, *a, **k: 0.5 * sum(jax.numpy.vdot(v, v) for v in leaves(g(x, *a, **k)))


@functools.cache
def _hessian_matvec(fun):
    """``matvec(args, v)``: the Hessian of ``fun`` at 0 times ``v`` (``fun`` a quadratic)."""
    def matvec(args, v):
        grad = lambda x: jax.grad(fun)(x, *args)
        zero = jax.tree_util.tree_map(jax.numpy.zeros_like, v)
        return jax.jvp(grad, (zero,), (v,))[1]
    return matvec


@functools.cache
def _neg_grad_at_zero(fun):
    """Jitted ``(x, args) -> -grad f(0)`` (cached: one trace of ``fun`` per shape)."""
    def rhs(x, args):
        zero = jax.tree_util.tree_map(jax.numpy.zeros_like, x)
        return jax.tree_util.tree_map(lambda g: -g, jax.grad(fun)(zero, *args))
    return jax.jit(rhs)


class _LinearSystemOf:
    """IterativeRefinement on a quadratic ``fun``: it solves ``H x = -grad f(0)`` (the
    minimizer of ``fun``) matrix-free; ``init_params`` go to the solver unchanged."""

    def __init__(self, fun, **options):
        self.fun = fun
        self.solver = jl.IterativeRefinement(matvec_A=_hessian_matvec(fun), **options)

    def _rhs(self, init_params, args):
        leaves = jax.tree_util.tree_leaves(init_params)
        if not leaves or not all(jax.numpy.issubdtype(jax.numpy.result_type(v), jax.numpy.inexact)
                                 for v in leaves):
            return init_params  # not a valid point: the solver's own checks reject it
        return _neg_grad_at_zero(self.fun)(init_params, args)

    def run(self, init_params, *args):
        return self.solver.run(init_params, args, self._rhs(init_params, args))

    def init_state(self, init_params, *args):
        return self.solver.init_state(init_params, args, self._rhs(init_params, args))


_UNBOUNDED = (-1e3, 1e3)

SOLVERS += [
    SolverEntry("PolyakSGD", lambda fun, **kw: jl.PolyakSGD(_grad_norm_sq(fun), **kw),
                dict(tol=1e-9, maxiter=20000), numeric_option="max_stepsize", numeric_values=(1.0, 0.5),
                # The Polyak step (g - 0) / ||grad g||^2 divides two quantities that vanish together
                # near the solution: rounding differences (vmap vs one lane) change the iteration count.
                rosenbrock=False, exact_replay=False, covers=("PolyakSGD",)),
    SolverEntry("ScipyBoundedLeastSquares",
                lambda fun, **kw: _FirstArg(jl.ScipyBoundedLeastSquares(fun=_grad_of(fun), **kw), _UNBOUNDED),
                dict(options={"xtol": 1e-14, "ftol": 1e-14, "gtol": 1e-14}), rosenbrock=False,
                jittable=False, stepwise=False, covers=("ScipyBoundedLeastSquares",)),
    SolverEntry("IterativeRefinement", _LinearSystemOf, dict(tol=1e-10, maxiter=20),
                rosenbrock=False, covers=("IterativeRefinement",)),
]


# Solvers with their own ``run`` signatures (checked in test_registry_complete.py).
@dataclasses.dataclass(frozen=True)
class QPEntry:
    """A quadratic-program solver: ``min 0.5 x'Qx + c'x`` under its kind of constraint.

    Attributes:
      name: id in test names.
      make: ``make(tol=..., maxiter=...) -> solver``.
      constraint: ``"eq"`` (``a'x = beta``), ``"ineq"`` (``a'x <= beta``) or ``"box"``
        (``l <= x <= u``); the suite builds the data and passes it in the solver's layout.
      options: options giving a tight solve.
      accuracy: distance to the solution expected.
    """

    name: str
    make: Callable[..., Any]
    constraint: str
    options: dict = dataclasses.field(default_factory=dict)
    accuracy: float = 1e-6
    covers: tuple = ()


def _al_qp_fun(x, Q, c, G, h):
    return 0.5 * x @ Q @ x + c @ x


def _al_qp_ineq(x, Q, c, G, h):
    return G @ x - h


class _AugmentedLagrangianQP:
    """AugmentedLagrangian on the suite's QP layout: ``run(None, params_obj=(Q, c), params_ineq=(G, h))``."""

    def __init__(self, **options):
        self.solver = jl.AugmentedLagrangian(_al_qp_fun, ineq_fun=_al_qp_ineq, **options)

    def run(self, init_params, params_obj, params_ineq):
        (Q, c), (G, h) = params_obj, params_ineq
        x0 = jax.numpy.zeros_like(c) if init_params is None else init_params
        return self.solver.run(x0, Q, c, G, h)


QP_SOLVERS: list[QPEntry] = [
    QPEntry("EqualityConstrainedQP", jl.EqualityConstrainedQP, "eq", dict(tol=1e-10)),
    QPEntry("AugmentedLagrangian", _AugmentedLagrangianQP, "ineq", dict(tol=1e-9, maxiter=100),
            accuracy=1e-6, covers=("AugmentedLagrangian",)),
    QPEntry("OSQP", jl.OSQP, "ineq", dict(tol=1e-9, maxiter=20000), accuracy=1e-5),
    QPEntry("BoxOSQP", jl.BoxOSQP, "box", dict(tol=1e-9, maxiter=20000), accuracy=1e-5),
    QPEntry("BoxCDQP", jl.BoxCDQP, "box", dict(tol=1e-10, maxiter=5000)),
]


@dataclasses.dataclass(frozen=True)
class LineSearchEntry:
    """A line search: ``run(init_stepsize, params, descent_direction=...) -> OptStep(stepsize, state)``.

    Attributes:
      wolfe: the accepted step satisfies the strong Wolfe curvature condition too
        (``c2``); otherwise only sufficient decrease (Armijo, ``c1``) is promised.
    """

    name: str
    make: Callable[..., Any]
    options: dict = dataclasses.field(default_factory=dict)
    wolfe: bool = True
    covers: tuple = ()


LINE_SEARCHES: list[LineSearchEntry] = [
    LineSearchEntry("ZoomLineSearch", jl.ZoomLineSearch),
    LineSearchEntry("HagerZhangLineSearch", jl.HagerZhangLineSearch),
    LineSearchEntry("BacktrackingLineSearch-armijo", jl.BacktrackingLineSearch, dict(condition="armijo"),
                    wolfe=False, covers=("BacktrackingLineSearch",)),
    LineSearchEntry("BacktrackingLineSearch-strong-wolfe", jl.BacktrackingLineSearch,
                    dict(condition="strong-wolfe"), covers=("BacktrackingLineSearch",)),
]


@dataclasses.dataclass(frozen=True)
class EstimatorEntry:
    """A gradient estimator: ``estimate(fun, params, key) -> grad estimate``.

    Attributes:
      random: the estimate depends on ``key``; its mean over keys is compared with the
        gradient (a bound from the sample count), else one estimate is.
      atol: distance to the gradient (deterministic) on the suite's quadratic.
    """

    name: str
    estimate: Callable[..., Any]
    random: bool = True
    atol: float = 1e-6
    covers: tuple = ()


def _second(fn):
    return lambda *a, **k: fn(*a, **k)[1]


def _layerwise_cge(fun, params, key):
    # A two-"layer" model whose loss is ``fun`` of both parameter halves concatenated.
    import jax.numpy as jnp

    from jaxopt_lab import zeroth_order as zo

    k = params.shape[0] // 2
    layers = [lambda p, h: jnp.concatenate([h, p]), lambda p, h: jnp.concatenate([h, p])]
    model = zo.LayerwiseLoss(layers, fun, jnp.zeros((0,), params.dtype))
    return jnp.concatenate(zo.cge_layerwise(model, [params[:k], params[k:]], smoothing=1e-4,
                                            difference="central")[1])


def _zo():
    from jaxopt_lab import zeroth_order as zo
    return zo


ESTIMATORS: list[EstimatorEntry] = [
    EstimatorEntry("rge-gaussian-forward", lambda f, x, k: _zo().rge(f, x, k, smoothing=1e-4)[1],
                   covers=("rge",)),
    EstimatorEntry("rge-sphere-central",
                   lambda f, x, k: _zo().rge(f, x, k, distribution="sphere", difference="central")[1],
                   covers=("rge",)),
    EstimatorEntry("spsa", lambda f, x, k: _zo().spsa(f, x, k)[1]),
    EstimatorEntry("forward_gradient", lambda f, x, k: _zo().forward_gradient(f, x, k)[1]),
    EstimatorEntry("cge-central", lambda f, x, k: _zo().cge(f, x, difference="central")[1], random=False,
                   covers=("cge",)),
    EstimatorEntry("cge-forward", lambda f, x, k: _zo().cge(f, x, smoothing=1e-7)[1], random=False,
                   atol=1e-5, covers=("cge",)),
    EstimatorEntry("cge_layerwise", _layerwise_cge, random=False),
    EstimatorEntry("estimate-spsa", lambda f, x, k: _zo().estimate("spsa", f, x, k)[1], covers=("estimate",)),
    EstimatorEntry("value_and_grad-rge", lambda f, x, k: _zo().value_and_grad(f, smoothing=1e-4)(x, key=k)[1],
                   covers=("value_and_grad",)),
    # The custom_jvp wrapper: jax.grad of the wrapped function is the zeroth-order estimate.
    EstimatorEntry("blackbox-cge", lambda f, x, k: jax.grad(_zo().blackbox(f, method="cge",
                                                                           difference="central"))(x),
                   random=False, covers=("blackbox",)),
]


@dataclasses.dataclass(frozen=True)
class OracleEntry:
    """A curvature oracle, compared with a dense reference on the suite's small problem.

    Attributes:
      kind: which reference (``"hvp"``, ``"gnvp"``, ``"diag"``, ``"trace"``, ``"gnb"``,
        ``"fisher"``, ``"eigen"``, ``"density"``); the checks live in test_registry_complete.py.
      random: an unbiased estimator (its mean over keys is compared, with a bound from
        the sample count).
    """

    name: str
    kind: str
    random: bool = False
    covers: tuple = ()


ORACLES: list[OracleEntry] = [
    OracleEntry("hvp", "hvp"),
    OracleEntry("gnvp", "gnvp"),
    OracleEntry("hutchinson_diag", "diag", random=True),
    OracleEntry("hutchinson_trace", "trace", random=True),
    OracleEntry("gnb_diag", "gnb", random=True),
    OracleEntry("fisher_diag", "fisher"),
    OracleEntry("lanczos", "eigen"),
    OracleEntry("slq_density", "density"),
]


@dataclasses.dataclass(frozen=True)
class BilevelEntry:
    """A bilevel algorithm: ``make(problem, **options).run(x0, y0, data) -> OptStep(BilevelParams, state)``.

    Attributes:
      instance: ``() -> BilevelInstance`` from :mod:`jaxopt_lab.problems.bilevel` with a
        closed-form solution ``(x_star, y_star)``.
      options: options reaching ``accuracy``; ``make`` gets ``problem`` and ``instance``.
      numeric_option, numeric_values: a traced hyperparameter for the vmap and retrace checks.
      accuracy: distance of ``x`` to ``x_star`` expected.
      converges: ``run`` ends ``CONVERGED`` (False for fixed-budget stochastic methods).
    """

    name: str
    make: Callable[..., Any]
    instance: Callable[[], Any]
    options: dict = dataclasses.field(default_factory=dict)
    numeric_option: str = "stepsize"
    numeric_values: tuple = (0.5, 0.4)
    accuracy: float = 1e-5
    converges: bool = True
    covers: tuple = ()
    known_bug: str = ""


def _bilevel(cls):
    return lambda inst, **kw: cls(inst.problem, **kw)


def _quadratic_bilevel():
    from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel
    return quadratic_bilevel()


def _multiblock_exact():
    # Every block and every sample per step: no sampling noise, so BSVRB converges exactly.
    from jaxopt_lab.problems.bilevel_problems import multiblock_quadratic
    return multiblock_quadratic(num_blocks=4, num_samples=8)


def _constrained_toy():
    from jaxopt_lab.problems.bilevel_problems import constrained_toy
    return constrained_toy()


def _lvhba(inst, **kw):
    return jl.bilevel.LVHBA(inst.problem, projection=inst.extra, **kw)


def _bsvrb(inst, **kw):
    return jl.bilevel.BSVRB(inst.problem, num_blocks_sampled=4, batch_size=8, key=jax.random.PRNGKey(0), **kw)


def _bsvrb_tracking(inst, **kw):
    return _bsvrb(inst, hessian_tracking=True, **kw)


BILEVEL: list[BilevelEntry] = [
    BilevelEntry("ImplicitBilevel", _bilevel(jl.bilevel.ImplicitBilevel), _quadratic_bilevel,
                 dict(stepsize=0.5, maxiter=2000, tol=1e-8), accuracy=1e-6),
    BilevelEntry("PenaltyBilevel", _bilevel(jl.bilevel.PenaltyBilevel), _quadratic_bilevel,
                 dict(sigma=1e-3, stepsize=0.5, maxiter=3000, tol=1e-8), accuracy=1e-3),
    BilevelEntry("StochasticPenaltyBilevel", _bilevel(jl.bilevel.StochasticPenaltyBilevel),
                 _quadratic_bilevel,
                 dict(sigma=1e-3, sigma0=1.0, sigma_decay=1.0, stepsize=0.5, stepsize_decay=0.0,
                      inner_stepsize_decay=0.0, maxiter=4000, tol=1e-8), accuracy=1e-3),
    BilevelEntry("MAID", _bilevel(jl.bilevel.MAID), _quadratic_bilevel, dict(maxiter=500, tol=1e-7),
                 numeric_values=(1.0, 0.8)),
    BilevelEntry("BOREP", _bilevel(jl.bilevel.BOREP), _quadratic_bilevel,
                 dict(stepsize=1e-3, maxiter=3000, tol=0.0), numeric_values=(1e-3, 2e-3), accuracy=2e-2,
                 converges=False),
    BilevelEntry("BSVRB", _bsvrb, _multiblock_exact, dict(maxiter=400, tol=0.0), numeric_values=(0.05, 0.04),
                 accuracy=1e-4, converges=False),
    BilevelEntry("BSVRB[hessian_tracking]", _bsvrb_tracking, _multiblock_exact, dict(maxiter=300, tol=0.0),
                 numeric_values=(0.05, 0.04), accuracy=1e-6, converges=False, covers=("BSVRB",)),
    BilevelEntry("LVHBA", _lvhba, _constrained_toy, dict(maxiter=10000, tol=1e-7),
                 numeric_values=(0.02, 0.015), accuracy=1e-5),
]


@dataclasses.dataclass(frozen=True)
class HypergradEntry:
    """A hypergradient method of :func:`jaxopt_lab.bilevel.hypergradient` (or a function
    built on it), compared with the closed form on the quadratic bilevel problem."""

    name: str
    hypergrad: Callable[..., Any]
    accuracy: float = 1e-6
    covers: tuple = ()


def _hg(method, **options):
    return lambda inst, x: jl.bilevel.hypergradient(inst.problem, x, inst.y0, inst.data, method=method,
                                                    **options)[0]


def _via_adjoint(inst, x):
    # The implicit hypergradient assembled by hand: grad_x F - (d_x grad_y G)^T v, H v = grad_y F.
    import jax.numpy as jnp

    prob, data = inst.problem, inst.data
    y = jnp.linalg.solve(data["A"], data["B"] @ x)  # y*(x) of the quadratic problem
    rhs = jax.grad(prob.outer_fun, argnums=1)(x, y, data)
    v = jl.bilevel.adjoint_solve(prob, x, y, data, rhs, solver="cg")
    v = v[0] if isinstance(v, tuple) else v
    gy = lambda x_: jax.grad(prob.inner_fun, argnums=1)(x_, y, data)
    cross = jax.vjp(gy, x)[1](v)[0]
    return jax.grad(prob.outer_fun, argnums=0)(x, y, data) - cross


def _mfac_of(inst):
    # Static M-FAC preconditioner from the inner Hessian A = I + (1/m) sum_i g_i g_i^T
    # (eigenvalues of A are >= 1), so that it is A^{-1}.
    A = np.asarray(inst.data["A"])
    s, Q = np.linalg.eigh(A - np.eye(A.shape[0]))
    return jl.mfac_static((np.sqrt(A.shape[0] * np.clip(s, 0, None)) * Q).T, 1.0)


HYPERGRADIENTS: list[HypergradEntry] = [
    HypergradEntry("hypergradient-implicit-cg", _hg("implicit"), covers=("hypergradient",)),
    HypergradEntry("hypergradient-implicit-gmres", _hg("implicit", adjoint_solver="gmres"),
                   covers=("hypergradient",)),
    HypergradEntry("hypergradient-unrolled", _hg("unrolled", steps=400), accuracy=1e-5,
                   covers=("hypergradient",)),
    HypergradEntry("hypergradient-penalty", _hg("penalty", sigma=1e-4), accuracy=1e-3,
                   covers=("hypergradient",)),
    HypergradEntry("hyperobjective",
                   lambda inst, x: jax.grad(jl.bilevel.hyperobjective, argnums=1)(inst.problem, x, inst.y0,
                                                                                  inst.data)),
    HypergradEntry("adjoint_solve", _via_adjoint, accuracy=1e-8),
    HypergradEntry("hypergradient-implicit-mfac_static",
                   lambda inst, x: _hg("implicit", M=_mfac_of(inst))(inst, x),
                   covers=("mfac_static", "MFACStatic")),
]


@dataclasses.dataclass(frozen=True)
class ScalarRootEntry:
    """A scalar root finder: ``make(F, **options).run(None, *args) -> OptStep(root, state)``."""

    name: str
    make: Callable[..., Any]
    options: dict = dataclasses.field(default_factory=dict)
    covers: tuple = ()


SCALAR_ROOTS: list[ScalarRootEntry] = [
    ScalarRootEntry("Bisection", jl.Bisection, dict(lower=-3.0, upper=3.0, tol=1e-12, maxiter=100)),
]


# Frank-Wolfe (issue 19): an l1 ball far larger than the solution, so the minimizer of the
# unconstrained test problems is interior; pairwise steps converge linearly there too. Near
# tol = 1e-12 the backtracking and away-vertex choices follow rounding (vmap vs single run).
SOLVERS += [
    SolverEntry("FrankWolfe-pairwise",
                lambda fun, **kw: _FirstArg(jl.FrankWolfe(fun, jl.lmo.lmo_l1_ball, variant="pairwise", **kw),
                                            100.0),
                dict(tol=1e-12, maxiter=3000), numeric_values=(1e-11, 1e-12), rosenbrock=False,
                implicit_diff=False, exact_replay=False, covers=("FrankWolfe",)),
    # Averaged gradients: O(k^(-1/3)) in expectation, a loose gap and accuracy. On the
    # condition-20 quadratic the gap after 20000 steps is 5e-3 (tol 1e-3 would need ~1e6).
    SolverEntry("StochasticFrankWolfe",
                lambda fun, **kw: _FirstArg(jl.StochasticFrankWolfe(fun, jl.lmo.lmo_l1_ball, **kw), 10.0),
                dict(tol=1e-3, maxiter=20000), numeric_values=(1e-3, 2e-3), accuracy=3e-2, rosenbrock=False,
                implicit_diff=False, cond20_options=dict(tol=1e-2, maxiter=20000),
                covers=("StochasticFrankWolfe",)),
]


@dataclasses.dataclass(frozen=True)
class SaddlePointEntry:
    """A saddle-point solver: ``make(fun, **options).run((x0, y0), *args) -> OptStep((x, y), state)``
    for ``min_x max_y fun(x, y, *args)``; checked in test_mirror_prox.py.

    Attributes:
      options: options reaching ``gap`` on the suite's 20x30 matrix game (players on simplices).
      gap: duality gap of the returned point expected within ``options["maxiter"]`` iterations.
    """

    name: str
    make: Callable[..., Any]
    options: dict = dataclasses.field(default_factory=dict)
    gap: float = 1e-3
    covers: tuple = ()


SADDLE_POINT_SOLVERS: list[SaddlePointEntry] = [
    SaddlePointEntry("MirrorProx", jl.MirrorProx, dict(mirror="entropy", maxiter=5000, tol=1e-3), gap=1e-3),
    SaddlePointEntry("OptimisticMirrorDescent", jl.OptimisticMirrorDescent,
                     dict(mirror="entropy", maxiter=5000, tol=1e-3), gap=1e-3),
]


@dataclasses.dataclass(frozen=True)
class TransportEntry:
    """An entropic optimal-transport solver: ``make(epsilon=..., tol=..., **options)`` with
    ``run((f0, g0), cost, a, b)`` and ``transport_plan(params, cost)``; checked in
    test_optimal_transport.py (marginals, agreement with Sinkhorn, implicit derivatives)."""

    name: str
    make: Callable[..., Any]
    options: dict = dataclasses.field(default_factory=dict)
    covers: tuple = ()


OT_SOLVERS: list[TransportEntry] = [
    TransportEntry("Sinkhorn", jl.Sinkhorn, dict(maxiter=5000)),
    TransportEntry("SinkhornNewtonSparse", jl.SinkhornNewtonSparse, dict(density=0.5, maxiter=300)),
]


@dataclasses.dataclass(frozen=True)
class LossEntry:
    """A public loss of :mod:`jaxopt_lab.loss` with an independent NumPy reference.

    Attributes:
      name: the public name (``make`` defaults to ``getattr(jl.loss, name)``).
      example: ``rng -> tuple`` of float64 NumPy arguments for one example; the last one
        is the prediction (the argument the loss is differentiated in).
      reference: ``(*example) -> float or array``, written in NumPy from the formula.
      make: builds the loss (for factories such as ``make_fenchel_young_loss``).
    """

    name: str
    example: Callable[..., tuple]
    reference: Callable[..., Any]
    make: Callable[[], Callable] | None = None
    covers: tuple = ()

    def fn(self) -> Callable:
        return self.make() if self.make is not None else getattr(jl.loss, self.name)


def _np_sparse_plus(x):
    return np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4))


def _np_simplex_projection(s):
    """Projection of s on the simplex by bisection on the threshold (not the sort formula)."""
    lo, hi = s.min() - 1.0, s.max()
    for _ in range(200):
        tau = 0.5 * (lo + hi)
        lo, hi = (tau, hi) if np.maximum(s - tau, 0).sum() > 1 else (lo, tau)
    return np.maximum(s - 0.5 * (lo + hi), 0)


def _np_stablemax(x):
    s = np.where(x >= 0, x + 1, 1 / (1 - np.minimum(x, 0)))
    return s / s.sum()


def _scalar(rng):
    # away from the kinks at -1, 0 and 1 (hinge, perceptron, sparse_plus, huber)
    return (float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.9) + rng.choice([-2.0, 0.0, 2.0])),)


def _binary(rng):
    return (float(rng.integers(0, 2)), *_scalar(rng))


def _multiclass(rng):
    return (int(rng.integers(0, 5)), rng.normal(size=5) * 2.0)


def _logits(rng):
    return (rng.normal(size=5) * 3.0,)


def _fy_logsumexp():
    return jl.loss.make_fenchel_young_loss(jax.nn.logsumexp)


def _np_logsumexp(s):
    return np.log(np.exp(s - s.max()).sum()) + s.max()


LOSSES: list[LossEntry] = [
    LossEntry("sparse_plus", _scalar, _np_sparse_plus),
    LossEntry("sparse_sigmoid", _scalar, lambda x: min(max((x + 1) / 2, 0.0), 1.0)),
    LossEntry("binary_logistic_loss", _binary, lambda y, z: np.log1p(np.exp(z)) - y * z),
    LossEntry("binary_sparsemax_loss", _binary, lambda y, z: _np_sparse_plus(z) - y * z),
    LossEntry("binary_hinge_loss", _binary, lambda y, z: max(0.0, 1 - (2 * y - 1) * z)),
    LossEntry("binary_perceptron_loss", _binary, lambda y, z: max(0.0, -(2 * y - 1) * z)),
    LossEntry("huber_loss", lambda rng: (float(rng.normal()), *_scalar(rng)),
              lambda t, p: 0.5 * (p - t) ** 2 if abs(p - t) <= 1 else abs(p - t) - 0.5),
    LossEntry("multiclass_logistic_loss", _multiclass, lambda y, s: _np_logsumexp(s) - s[y]),
    LossEntry("multiclass_sparsemax_loss", _multiclass,
              lambda y, s: (lambda p: p @ s - 0.5 * p @ p + 0.5 - s[y])(_np_simplex_projection(s))),
    LossEntry("multiclass_hinge_loss", _multiclass,
              lambda y, s: max(s[j] + (j != y) for j in range(len(s))) - s[y]),
    LossEntry("multiclass_perceptron_loss", _multiclass, lambda y, s: s.max() - s[y]),
    LossEntry("make_fenchel_young_loss-logsumexp",
              lambda rng: (np.eye(5)[rng.integers(0, 5)], rng.normal(size=5) * 2.0),
              lambda y, s: _np_logsumexp(s) - y @ s, make=_fy_logsumexp, covers=("make_fenchel_young_loss",)),
    LossEntry("stablemax", _logits, _np_stablemax),
    LossEntry("log_stablemax", _logits, lambda x: np.log(_np_stablemax(x))),
    LossEntry("stablemax_cross_entropy", _multiclass, lambda y, x: -np.log(_np_stablemax(x)[y])),
]


# ---------------------------------------------------------------- what each entry covers
# Recipes are chains of public blocks (as optax builds ``adam`` from ``scale_by_adam``): an
# entry of the recipe runs the block too.
RECIPE_BLOCKS: dict[str, tuple[str, ...]] = {
    "diffgrad": ("scale_by_diffgrad",),
    "adamp": ("scale_by_adamp",),
    "sgdp": ("scale_by_sgdp",),
    "root": ("scale_by_root",),
    "coordinate_clipped_sgd": ("clip_by_coordinate",),
    "perp_grad": ("scale_by_perp_grad",),
    "prox_lasso_transform": ("prox_update",),
    "hard_threshold_topk": ("prox_update",),
    "group_envelope": ("prox_update",),
    "sora_gate": ("prox_update",),
    "sora": ("scale_by_sora_prox",),
    "econtrol": ("scale_by_econtrol",),
    "lowrank_dct": ("scale_by_lowrank_dct",),
    "layerwise_noise_adaptive": ("scale_by_layerwise_noise_adaptive",),
    "sophia": ("scale_by_sophia",),
    "adahessian": ("scale_by_adahessian",),
    "mfac": ("scale_by_mfac",),
    "zo_sgd": ("scale_by_zo_estimate",),
    "zo_adam": ("scale_by_zo_estimate",),
    "zo_signsgd": ("scale_by_zo_estimate",),
    "deepzero_adam": ("scale_by_sparse_cge", "scale_by_lazy_adam"),
    "deepzero_sgd": ("scale_by_sparse_cge",),
}

# Transform entries whose ``make`` is a lambda around the public factory.
_TRANSFORM_COVERS = {
    "refined_schedule-sgd": ("refined_schedule",),
    "adaptive_batch_size-sgd": ("adaptive_batch_size",),
    "adaptive_batch_size-augmented-sgd": ("adaptive_batch_size",),
}

_STATE = "state of an algorithm (a NamedTuple of arrays), tested through the algorithm's entry"
_TYPE = "result or problem type, not an algorithm"
_MODULE = "a submodule (its own public names are checked where it is an algorithm package)"

# Public names that are not algorithms, with the reason. A new public name must get a
# registry entry (``covers`` it) or a line here.
NOT_ALGORITHMS: dict[str, str] = {
    # jaxopt_lab (top level)
    "KKTSolution": _TYPE, "OptStep": _TYPE, "Status": "status codes (an IntEnum)",
    "ImplicitAdjoint": "a solver's differentiation option (tested in test_adjoint.py)",
    "UnrollAdjoint": "a solver's differentiation option (tested in test_adjoint.py)",
    "batch_run": "a runtime driving many solves of one solver (tested in test_batch_run.py)",
    "status_name": "name of a status code", "base": _MODULE, "bilevel": _MODULE, "curvature": _MODULE,
    "implicit_diff": _MODULE, "isotonic": _MODULE, "linear_solve": _MODULE, "loss": _MODULE,
    "objective": _MODULE, "perturbations": _MODULE, "projection": _MODULE, "prox": _MODULE,
    "sweep": _MODULE, "tree_util": _MODULE, "zeroth_order": _MODULE,
    "core": _MODULE, "linalg": _MODULE, "loop": _MODULE, "ops": _MODULE,
    # jaxopt_lab.solvers
    **{n: _STATE for n in (
        "ADMMState", "AndersonState", "AndersonWrapperState", "ArmijoSGDState", "AugmentedLagrangianState",
        "ConsensusADMMState",
        "BfgsState", "BisectionState",
        "BlockCDState", "BoxCDQPState", "BoxOSQPState", "BroydenState", "CBOState", "EqQPState",
        "FixedPointState", "GaussNewtonState", "IterativeRefinementState", "LbfgsState", "LbfgsbState",
        "LevenbergMarquardtState", "LineSearchState", "MirrorDescentState", "NewtonCGState",
        "NonlinearCGState", "OptaxState", "PolyakSGDState", "ProxGradState", "RegularizedNewtonState",
        "AdaptiveRegularizedNewtonState", "SinkhornState", "SinkhornNewtonSparseState",
        "GradientDescentState", "ProjectedGradientState", "ProximalGradientState")},
    "ScipyMinimizeInfo": "SciPy's result fields, the state of the SciPy wrappers",
    "projection_grad_simplex_kl": "a projection used as MirrorDescent's step (an operator, not a solver); "
                                  "tested in test_block_cd_mirror.py",
    # jaxopt_lab.transforms
    **{n: _STATE for n in (
        "AdaptiveBatchSizeState", "ScaleByAdaHessianState", "ScaleByAdamPState", "ScaleByDiffGradState",
        "ScaleByEControlState", "ScaleByLayerwiseNoiseAdaptiveState", "ScaleByLowRankDCTState",
        "ScaleByMfacState", "ScaleByRootState", "ScaleBySGDPState", "ScaleBySophiaState",
        "ScaleByZoEstimateState")},
    "ScaleBySoraProxState": _STATE,
    "sora_init": "parameters of a gated adapter for sora (helper; tested in test_sora.py)",
    "sora_merge": "the adapted weight W + A diag(gate) B (helper; tested in test_sora.py)",
    "sora_prune": "drops zero-gate ranks after sora training (helper; tested in test_sora.py)",
    "sora_gate_mask": "marks the gate leaves for sora's gate_mask (helper)",
    "sora_xi_schedule": "sparsity schedule handed to sora as xi (a schedule; tested in test_sora.py)",
    "dct_basis": "orthonormal DCT matrix used by lowrank_dct (linear algebra helper)",
    "group_envelope_prox_norms": "shrink factors inside prox_group_envelope (helper)",
    "inner_product_test": "batch-size test statistic used by adaptive_batch_size (helper)",
    "coordinate_norm_test": "batch-size test statistic used by adaptive_batch_size (helper)",
    "norm_test": "batch-size test statistic used by adaptive_batch_size (helper)",
    "ns_schedule": "Newton-Schulz coefficient schedule used by orthogonalize (helper)",
    "orthogonalize": "Newton-Schulz polar factor used by root and layerwise_noise_adaptive (helper)",
    "mfac_ihvp": "dense inverse-Hessian-vector product inside scale_by_mfac (helper)",
    "prox_group_envelope": "a prox operator handed to prox_update (tested in test_prox_transforms.py)",
    "prox_topk": "a prox operator handed to prox_update (tested in test_prox_transforms.py)",
    "soft_threshold": "a prox operator handed to prox_update (tested in test_prox_transforms.py)",
    "random_k_compressor": "a compressor handed to econtrol (an argument, not a transform)",
    "top_k_compressor": "a compressor handed to econtrol (an argument, not a transform)",
    "topk_magnitude_mask": "top-k mask helper of the compressors and prox_topk",
    # jaxopt_lab.zeroth_order
    "LayerwiseLoss": _TYPE, "METHODS": "table of the estimator names accepted by `estimate`",
    "ScaleByLazyAdamState": _STATE, "ScaleBySparseCGEState": _STATE,
    "layerwise_density": "per-layer densities from pruning scores (DeepZero set-up helper)",
    "random_sparse_mask": "random coordinate mask of sparse CGE (helper)",
    "zo_grasp_scores": "pruning scores for layerwise_density (tested in test_deepzero.py)",
    "zo_saliency": "pruning scores for layerwise_density (tested in test_deepzero.py)",
    # jaxopt_lab.solvers.constrained (Frank-Wolfe, saddle points) and the oracles' module
    "FrankWolfeState": _STATE, "SaddlePointState": _STATE, "lmo": _MODULE,
    # jaxopt_lab.curvature
    "LanczosResult": _TYPE, "SLQResult": _TYPE,
    "rademacher_like": "random +-1 probe vectors of the Hutchinson estimators (helper)",
    # jaxopt_lab.bilevel
    "BilevelParams": _TYPE, "BilevelProblem": _TYPE, "HypergradDiagnostics": _TYPE,
    **{n: _STATE for n in ("BOREPState", "BSVRBState", "ImplicitBilevelState", "LVHBAState", "MAIDState",
                           "PenaltyBilevelState", "StochasticPenaltyBilevelState")},
}


def _public_name(obj):
    name = getattr(obj, "__name__", None)
    return (name,) if name and not name.startswith(("<", "_")) else ()


def covered_names() -> dict[str, list[str]]:
    """Public name -> the registry entries that cover it.

    An entry covers the names in its ``covers`` field, else the public factory or class
    behind ``make`` (``recipe`` for transforms, the entry's name for estimators, oracles,
    QP solvers, line searches, scalar solvers and bilevel entries), plus the blocks its
    recipe chains (``RECIPE_BLOCKS``).
    """
    out: dict[str, list[str]] = {}

    def add(names, entry):
        for n in names:
            for m in (n, *RECIPE_BLOCKS.get(n, ())):
                out.setdefault(m, []).append(entry.name)

    for e in SOLVERS:
        add(e.covers or _public_name(e.make) or (e.name.split("-")[0],), e)
    for e in TRANSFORMS:
        add(e.covers or _TRANSFORM_COVERS.get(e.name) or _public_name(e.recipe or e.make)
            or (e.name.split("-")[0],), e)
    for entries in (QP_SOLVERS, LINE_SEARCHES, ESTIMATORS, ORACLES, BILEVEL, HYPERGRADIENTS, SCALAR_ROOTS,
                    SADDLE_POINT_SOLVERS, OT_SOLVERS):
        for e in entries:
            add(e.covers or (e.name,), e)
    return out
