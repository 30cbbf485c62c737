"""Every public solver, transform and estimator, with capability flags.

The conformance suite (``test_conformance.py``) runs over these lists; a new
algorithm gets its engineering tests by adding one entry here. Flags describe what
an algorithm can do (``stochastic``, ``needs_value_fn`` ...), never which tests to skip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

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
    """

    name: str
    make: Callable[..., Any]
    options: dict = dataclasses.field(default_factory=dict)
    numeric_option: str = "tol"
    numeric_values: tuple = (1e-7, 1e-8)
    accuracy: float = 1e-5
    rosenbrock: bool = True
    implicit_diff: bool = True


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
      stochastic: updates are random (compared across runs with the same key).
      injectable: hyperparameters that ``optax.inject_hyperparams`` can change.
      matrix_only: only matrix-shaped leaves are supported.
      keeps_bf16: updates stay in bfloat16 for bfloat16 gradients.
      leafwise: the rule acts per leaf (per-layer norms, per-leaf top-k ...), so splitting a
        vector into several leaves changes the maths.
      reaches_minimum: the rule converges to the unconstrained minimizer of the test problem
        (False for rules that by design do not, e.g. a perpendicular-gradient step keeps
        the weight norm); then only a decrease of the objective is checked.
    """

    name: str
    make: Callable[..., Any]
    learning_rate: float = 0.1
    kwargs: dict = dataclasses.field(default_factory=dict)
    steps: int = 300
    accuracy: float = 1e-2
    needs_value_fn: bool = False
    needs_key: bool = False
    stochastic: bool = False
    injectable: tuple = ("learning_rate",)
    matrix_only: bool = False
    keeps_bf16: bool = True
    leafwise: bool = False
    reaches_minimum: bool = True


_ADAM = optax.adam(0.05)  # one instance: a new optax object is a new static argument

SOLVERS: list[SolverEntry] = [
    SolverEntry("LBFGS", jl.LBFGS, dict(tol=1e-9, maxiter=500)),
    SolverEntry("LBFGS-backtracking", jl.LBFGS,
                dict(tol=1e-9, maxiter=1000, linesearch="backtracking")),
    SolverEntry("GradientDescent", jl.GradientDescent, dict(tol=1e-8, maxiter=5000),
                accuracy=1e-5, rosenbrock=False),
    SolverEntry("GradientDescent-fixed", jl.GradientDescent,
                dict(tol=1e-8, maxiter=5000, stepsize=0.05, acceleration=False),
                numeric_option="stepsize", numeric_values=(0.05, 0.04), rosenbrock=False),
    SolverEntry("OptaxSolver-adam",
                lambda fun, **kw: jl.OptaxSolver(_ADAM, fun, **kw),
                dict(tol=1e-7, maxiter=20000, implicit_diff=True),
                accuracy=1e-4, rosenbrock=False),
]

TRANSFORMS: list[TransformEntry] = []

# First-order and proximal transforms (issue 6).
_TOP2 = jl.top_k_compressor(2)
_ALL_LEAVES = lambda params: jl.tree_util.tree_map(lambda _: True, params)
TRANSFORMS += [
    TransformEntry("diffgrad", jl.diffgrad, learning_rate=0.1, steps=300),
    TransformEntry("adamp", jl.adamp, learning_rate=0.1, steps=300),
    TransformEntry("sgdp", jl.sgdp, learning_rate=0.05, steps=300),
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
                   learning_rate=0.1),
    TransformEntry("group_envelope",
                   lambda learning_rate, weight: jl.group_envelope(learning_rate, k=8, weight=weight),
                   learning_rate=0.1, kwargs=dict(weight=1e-3)),
    TransformEntry("sora_gate",
                   lambda learning_rate, l1reg: jl.sora_gate(learning_rate, l1reg, gate_mask=_ALL_LEAVES),
                   learning_rate=0.1, kwargs=dict(l1reg=1e-3)),
    TransformEntry("econtrol-topk",
                   lambda learning_rate, eta: jl.econtrol(learning_rate, compressor=_TOP2, eta=eta),
                   learning_rate=0.05, steps=300, leafwise=True, kwargs=dict(eta=0.1)),
    TransformEntry("lowrank_dct",
                   lambda learning_rate: jl.lowrank_dct(learning_rate, rank=3, update_interval=1),
                   learning_rate=0.05, steps=700, accuracy=3e-2, matrix_only=True),
]
