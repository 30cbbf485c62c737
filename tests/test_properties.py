"""Property-based tests (hypothesis) over every public solver and transform.

Properties:
- random pytree structures, shapes and dtypes go through every registry transform (and,
  under ``slow``, every registry solver) with structure, shapes and dtypes kept and finite
  results;
- malformed input fails with a ``ValueError``/``TypeError`` naming the argument (bad
  options, non-finite or non-numeric ``init_params``, bad counts, missing or wrong
  ``key``/``value_fn``, mismatched trees), or, for non-finite data inside a solve, a
  non-CONVERGED status with finite params: never an unhandled internal error or a silent
  NaN.

The number of hypothesis cases tried, per kind, is printed in the terminal summary of every
run (``hypothesis cases tried: N (...)``, summed over xdist workers by ``tests/conftest.py``).
``max_examples`` is small in the default suite; ``-m slow`` runs more.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxopt_lab as jl
import jaxopt_lab.solvers as jl_solvers
import jaxopt_lab.transforms as jl_transforms
from tests import problems as P
from tests.registry import SOLVERS, TRANSFORMS, extra_args

CASES: collections.Counter = collections.Counter()
FAST = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
MORE = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _record_cases(request):
    """Record each test's hypothesis cases; tests/conftest.py prints the run's total."""
    before = CASES.copy()
    yield
    for kind, count in (CASES - before).items():
        request.node.user_properties.append((f"hypothesis_cases:{kind}", count))


def _quad(x, *args, **kwargs):
    return 0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(x))


def _solver_classes():
    out = []
    for name in jl_solvers.__all__:
        cls = getattr(jl_solvers, name)
        if isinstance(cls, type) and issubclass(cls, jl.base.IterativeSolver):
            out.append(cls)
    return out


def _attempts(cls, options, fun=_quad):
    return [lambda: cls(fun, **options), lambda: cls(optax.sgd(0.1), fun, **options),
            lambda: cls(jl.GradientDescent(fun), **options),
            lambda: cls(fun, lower=-1.0, upper=1.0, **options)]


_BUILDER: dict = {}


def _baseline(cls, **options):
    """A solver of class ``cls`` on the quadratic, with the constructor shape that works for it."""
    if cls not in _BUILDER:
        for i, make in enumerate(_attempts(cls, {})):
            try:
                make()
                _BUILDER[cls] = i
                break
            except (TypeError, ValueError):
                continue
        else:
            raise TypeError(f"no generic constructor for {cls.__name__}")
    return _attempts(cls, options)[_BUILDER[cls]]()


SOLVER_CLASSES = _solver_classes()
def _can_build(cls) -> bool:
    try:
        _baseline(cls)
        return True
    except (TypeError, ValueError):
        return False


CONSTRUCTIBLE = [c for c in SOLVER_CLASSES if _can_build(c)]
INT_OPTIONS = {"maxiter", "maxls", "history_size", "num_particles", "cg_maxiter", "mixing_frequency",
               "memory_size", "num_grads"}
# (LBFGS's ``increase_factor``/``min_stepsize`` are accepted for jaxopt compatibility but unused.)
POSITIVE_OPTIONS = {"stepsize", "max_stepsize", "decrease_factor", "c1", "c2",
                    "damping_parameter", "ridge", "dt", "init_std", "hessian_lipschitz", "cg_tol"}


def test_every_public_solver_class_is_constructible_generically():
    names = [c.__name__ for c in SOLVER_CLASSES]
    built = [c.__name__ for c in CONSTRUCTIBLE]
    print(f"\nsolver classes built generically: {built}; not (own constructor shape, "
          f"not covered by the option tests): {sorted(set(names) - set(built))}")
    assert {"LBFGS", "GradientDescent"} <= set(built)


def _option_cases():
    cases = []
    for cls in CONSTRUCTIBLE:
        for f in dataclasses.fields(cls):
            if f.name in INT_OPTIONS and isinstance(f.default, int):
                cases += [(cls, f.name, v) for v in (0, -1, 2.5)]
            elif f.name == "stepsize" and isinstance(f.default, float) and f.default <= 0:
                # ``stepsize <= 0`` is jaxopt's documented sentinel (line search, these
                # classes' default): only NaN is bad.
                cases += [(cls, f.name, float("nan"))]
            elif f.name in POSITIVE_OPTIONS and isinstance(f.default, float):
                cases += [(cls, f.name, v) for v in (-1.0, float("nan"))]
            elif f.name == "tol":
                cases += [(cls, "tol", v) for v in (-1e-3, float("nan"))]
    return cases


OPTION_CASES = _option_cases()


@FAST
@given(case=st.sampled_from(OPTION_CASES))
def test_bad_solver_option_raises_naming_it(case):
    _bad_option(case)


def _bad_option(case):
    cls, name, value = case
    CASES["solver_option"] += 1
    with pytest.raises((ValueError, TypeError), match=name):
        _baseline(cls, **{name: value})


@pytest.mark.slow
@MORE
@given(case=st.sampled_from(OPTION_CASES))
def test_bad_solver_option_raises_naming_it_more(case):
    _bad_option(case)


# ------------------------------------------------------------------- random pytrees


def _leaf_shapes(matrix_only, min_len=1):
    if matrix_only:
        # At least 3x3: the registry's low-rank entries use rank 3, and a rank above
        # min(shape) is an input error (a clear ValueError naming ``rank``), not a random tree.
        return st.tuples(st.integers(3, 5), st.integers(3, 5))
    return st.one_of(st.tuples(st.integers(min_len, 5)), st.tuples(st.integers(2, 4), st.integers(2, 4)))


@st.composite
def pytrees(draw, matrix_only=False, dtypes=(jnp.float32, jnp.float64), min_len=1):
    """A random nested dict/list/tuple pytree of arrays sharing one dtype."""
    dtype = draw(st.sampled_from(dtypes))
    n_leaves = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    leaves = [jnp.asarray(rng.standard_normal(draw(_leaf_shapes(matrix_only, min_len))), dtype)
              for _ in range(n_leaves)]
    kind = draw(st.sampled_from(["dict", "list", "tuple", "nested", "leaf"]))
    if kind == "leaf" or n_leaves == 1:
        return leaves[0]
    if kind == "dict":
        return {f"w{i}": x for i, x in enumerate(leaves)}
    if kind == "list":
        return list(leaves)
    if kind == "tuple":
        return tuple(leaves)
    return {"a": leaves[0], "b": [{"c": x} for x in leaves[1:]]}


def _shifted_quadratic(target):
    def fun(x):
        diffs = jax.tree_util.tree_map(lambda a, b: jnp.sum((a - b).astype(jnp.float32) ** 2), x, target)
        return 0.5 * sum(jax.tree_util.tree_leaves(diffs)).astype(jax.tree_util.tree_leaves(x)[0].dtype)
    return fun




def _transform_steps(entry, params, fun, steps=2, opt=None):
    opt = entry.make(entry.learning_rate, **entry.kwargs) if opt is None else opt
    state = opt.init(params)
    for k in range(steps):
        value, grads = jax.value_and_grad(fun)(params)
        extra = extra_args(entry, fun, jax.random.PRNGKey(k), grads)
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            updates, state = opt.update(grads, state, params, value=value, **extra)
        else:
            updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def _check_same_tree(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, y.shape, x.dtype, y.dtype)
        assert bool(jnp.all(jnp.isfinite(x.astype(jnp.float32))))


@st.composite
def transform_cases(draw):
    entry = draw(st.sampled_from(TRANSFORMS))
    dtypes = (jnp.bfloat16, jnp.float32, jnp.float64) if entry.keeps_bf16 else (jnp.float32, jnp.float64)
    # Vectors of >= 4 entries: M-FAC's window (num_grads=4 in the registry) needs that many
    # coordinates, and fewer is an input error (a clear ValueError naming ``num_grads``).
    return entry, draw(pytrees(entry.matrix_only, dtypes, min_len=4))


def _transform_random_tree(case):
    entry, params = case
    CASES["transform_pytree"] += 1
    target = jax.tree_util.tree_map(lambda x: x + jnp.asarray(1.0, x.dtype), params)
    out, _ = _transform_steps(entry, params, _shifted_quadratic(target))
    _check_same_tree(out, params)


@settings(FAST, max_examples=3)
@given(case=transform_cases())
def test_transforms_keep_random_pytree_structure_shapes_dtypes(case):
    _transform_random_tree(case)


@pytest.mark.slow
@MORE
@given(case=transform_cases())
def test_transforms_keep_random_pytree_structure_shapes_dtypes_more(case):
    _transform_random_tree(case)


@st.composite
def solver_cases(draw):
    entry = draw(st.sampled_from([e for e in SOLVERS if e.pytree_params]))
    return entry, draw(pytrees(False, (jnp.float64,)))


def _solver_random_tree(case):
    entry, params = case
    CASES["solver_pytree"] += 1
    target = jax.tree_util.tree_map(lambda x: 0.5 * x, params)
    out = entry.make(_shifted_quadratic(target), **{**entry.options, "maxiter": 5}).run(params)
    _check_same_tree(out.params, params)
    assert int(out.state.status) in [s.value for s in jl.Status]


@pytest.mark.slow
@settings(MORE, max_examples=15)
@given(case=solver_cases())
def test_solvers_keep_random_pytree_structure_more(case):
    _solver_random_tree(case)


# ----------------------------------------------------------------- malformed input


@st.composite
def nonfinite_trees(draw):
    tree = draw(pytrees(False, (jnp.float32, jnp.float64)))
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    i = draw(st.integers(0, len(leaves) - 1))
    flat = np.array(leaves[i]).reshape(-1)
    flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    leaves[i] = jnp.asarray(flat.reshape(leaves[i].shape))
    return treedef.unflatten(leaves)


@FAST
@given(entry=st.sampled_from(SOLVERS), tree=nonfinite_trees())
def test_nonfinite_init_params_raise_naming_init_params(entry, tree):
    CASES["nonfinite_init"] += 1
    solver = entry.make(_quad, **entry.options)
    with pytest.raises(ValueError, match="init_params"):
        solver.run(tree)


@FAST
@given(entry=st.sampled_from(SOLVERS),
       bad=st.sampled_from([{}, [], "abc", {"a": "x"}, [jnp.ones(2), None, object()]]))
def test_empty_or_non_numeric_init_params_raise(entry, bad):
    CASES["non_numeric_init"] += 1
    solver = entry.make(_quad, **entry.options)
    with pytest.raises((ValueError, TypeError), match="init_params"):
        solver.run(bad)


@FAST
@given(cls=st.sampled_from(CONSTRUCTIBLE), bad=st.sampled_from([3, "f", [1, 2]]))
def test_non_callable_fun_raises_type_error(cls, bad):
    CASES["non_callable_fun"] += 1
    _baseline(cls)  # records which constructor shape works
    with pytest.raises(TypeError):
        _attempts(cls, {}, fun=bad)[_BUILDER[cls]]()


def _nonfinite_data_run(entry, where, value):
    fun, x0, _ = P.quadratic(4, cond=5.0)
    Q = jax.hessian(fun)(x0)
    f = lambda x, c: 0.5 * x @ (Q @ x) - c @ x
    c = jnp.ones(4).at[where].set(value)
    out = entry.make(f, **{**entry.options, "maxiter": 50}).run(x0, c)
    status = int(out.state.status)
    # Never CONVERGED on non-finite data, never a NaN result without a failure status.
    assert status != jl.Status.CONVERGED, jl.status_name(status)
    finite = bool(jnp.all(jnp.isfinite(out.params)))
    assert finite or status in (jl.Status.NONFINITE, jl.Status.LINESEARCH_FAILED), jl.status_name(status)


@pytest.mark.slow
@settings(MORE, max_examples=20)
@given(entry=st.sampled_from(SOLVERS), where=st.integers(0, 3), value=st.sampled_from([np.nan, np.inf]))
def test_nonfinite_data_gives_failure_status_not_silent_nan(entry, where, value):
    CASES["nonfinite_data"] += 1
    _nonfinite_data_run(entry, where, value)


# -- transforms: trees, keys, value_fn, counts, non-finite gradients


CHECKS_TREE = [e for e in TRANSFORMS if e.checks_grads_tree]


@settings(FAST, max_examples=3)
@given(entry=st.sampled_from(CHECKS_TREE))
def test_transform_mismatched_grads_tree_raises(entry):
    _mismatch(entry)


@pytest.mark.slow
@MORE
@given(entry=st.sampled_from(CHECKS_TREE))
def test_transform_mismatched_grads_tree_raises_more(entry):
    _mismatch(entry)


def _mismatch(entry):
    CASES["transform_mismatch"] += 1
    shape = (3, 4)
    params = {"a": jnp.ones(shape), "b": jnp.ones(shape)}
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(params)
    grads = {"a": jnp.ones(shape), "c": jnp.ones(shape)}
    # Extra arguments consistent with the (mismatched) gradients: the error must come from
    # comparing the gradients with params / state, not from a missing keyword.
    extra = extra_args(entry, _quad, jax.random.PRNGKey(0), grads)
    with pytest.raises((ValueError, TypeError)):
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            opt.update(grads, state, params, value=jnp.asarray(1.0), **extra)
        else:
            opt.update(grads, state, params)


NEEDS_KEY = [e for e in TRANSFORMS if e.needs_key]
NEEDS_VALUE_FN = [e for e in TRANSFORMS if e.needs_value_fn]


@FAST
@given(entry=st.sampled_from(NEEDS_KEY),
       bad=st.sampled_from(["missing", 3, 1.5, "key", np.zeros(3, np.float32), jnp.zeros((2, 2))]))
def test_transform_missing_or_wrong_key_raises_naming_key(entry, bad):
    CASES["transform_key"] += 1
    params = jnp.ones((3, 4))
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(params)
    extra = {"value_fn": _quad} if entry.needs_value_fn else {}
    if not isinstance(bad, str) or bad != "missing":
        extra["key"] = bad
    with pytest.raises((ValueError, TypeError), match="key"):
        opt.update(jnp.ones((3, 4)), state, params, value=_quad(params), **extra)


@FAST
@given(entry=st.sampled_from(NEEDS_VALUE_FN))
def test_transform_missing_value_fn_raises_naming_it(entry):
    CASES["transform_value_fn"] += 1
    params = jnp.ones((3, 4))
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    state = opt.init(params)
    extra = {"key": jax.random.PRNGKey(0)} if entry.needs_key else {}
    with pytest.raises((ValueError, TypeError), match="value_fn"):
        opt.update(jnp.ones((3, 4)), state, params, **extra)


COUNT_ARGS = {"num_directions", "n_samples", "num_grads", "update_interval", "rank", "k", "block_size",
              "initial_batch_size", "max_batch_size", "smoothing_steps"}
FILL = {"learning_rate": 0.1, "rank": 2, "k": 2, "l1reg": 1e-3, "initial_batch_size": 8,
        "threshold": 1.0, "compressor": None}


def _count_cases():
    cases = []
    for name in jl_transforms.__all__:
        fn = getattr(jl_transforms, name)
        if isinstance(fn, type) or not callable(fn):
            continue
        sig = inspect.signature(fn)
        required = [p for p in sig.parameters.values() if p.default is inspect.Parameter.empty
                    and p.kind is not inspect.Parameter.VAR_KEYWORD]
        if any(p.name not in FILL for p in required):
            continue
        for p in sig.parameters.values():
            if p.name in COUNT_ARGS and (isinstance(p.default, int) or p.name in ("rank", "k")):
                cases += [(name, p.name, v) for v in (0, -2)]
    return cases


COUNT_CASES = _count_cases()


@FAST
@given(case=st.sampled_from(COUNT_CASES))
def test_transform_bad_counts_raise_naming_them(case):
    name, arg, value = case
    CASES["transform_counts"] += 1
    fn = getattr(jl_transforms, name)
    sig = inspect.signature(fn)
    kwargs = {p: FILL[p] for p in sig.parameters if p in FILL and sig.parameters[p].default
              is inspect.Parameter.empty}
    if "compressor" in kwargs:
        kwargs["compressor"] = jl.top_k_compressor(2)
    kwargs[arg] = value
    with pytest.raises((ValueError, TypeError), match=arg):
        opt = fn(**kwargs)
        params = jnp.ones((4, 4))
        state = opt.init(params)
        extra = {"value_fn": _quad, "key": jax.random.PRNGKey(0)}
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            opt.update(params, state, params, value=_quad(params), **extra)
        else:
            opt.update(params, state, params)


@settings(FAST, max_examples=3)
@given(entry=st.sampled_from(TRANSFORMS), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_apply_if_finite_skips_nonfinite_gradients_for_every_transform(entry, bad):
    """``optax.apply_if_finite`` around any transform skips a non-finite step, then resumes."""
    _apply_if_finite(entry, bad)


@pytest.mark.slow
@MORE
@given(entry=st.sampled_from(TRANSFORMS), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_apply_if_finite_skips_nonfinite_gradients_more(entry, bad):
    _apply_if_finite(entry, bad)


def _apply_if_finite(entry, bad):
    CASES["apply_if_finite"] += 1
    params = jnp.ones((3, 4))
    opt = optax.apply_if_finite(entry.make(entry.learning_rate, **entry.kwargs), max_consecutive_errors=3)
    state = opt.init(params)
    bad_grads = jnp.ones((3, 4)).at[1, 2].set(bad)
    extra = extra_args(entry, _quad, jax.random.PRNGKey(0), bad_grads)
    if entry.needs_value_fn or entry.needs_key:
        extra["value"] = _quad(params)
    updates, state = opt.update(bad_grads, state, params, **extra)
    assert bool(jnp.all(updates == 0))
    assert int(state.notfinite_count) == 1
    # A finite gradient not parallel to params (a perpendicular-gradient rule maps a
    # gradient parallel to the weights to zero).
    good = jax.grad(_quad)(params) + jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    extra = extra_args(entry, _quad, jax.random.PRNGKey(0), good)
    if entry.needs_value_fn or entry.needs_key:
        extra["value"] = _quad(params)
    updates, state = opt.update(good, state, params, **extra)
    assert int(state.notfinite_count) == 0
    assert bool(jnp.all(jnp.isfinite(updates))) and bool(jnp.any(updates != 0))
