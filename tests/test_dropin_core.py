"""jaxopt drop-in: ``tree_util``, ``loop.while_loop``, ``base`` and ``l2_optimality_error``
against jaxopt 0.8.5 (names, signatures and values)."""

from __future__ import annotations

import functools
import inspect
import operator

import jax
import jax.numpy as jnp
import jaxopt
import jaxopt._src.tree_util as jaxopt_tree_src
import jaxopt.base
import jaxopt.loop
import jaxopt.tree_util
import numpy as np
import pytest

import jaxopt_lab as jl

# ----------------------------------------------------------------------------- tree_util

RNG = np.random.default_rng(0)
T1 = {"a": jnp.asarray(RNG.normal(size=3)), "b": (jnp.asarray(RNG.normal(size=(2, 2))), jnp.asarray(0.5))}
T2 = {"a": jnp.asarray(RNG.normal(size=3)),
      "b": (jnp.asarray(RNG.normal(size=(2, 2))) + 3.0, jnp.asarray(-2.0))}
C1 = {"a": jnp.asarray(RNG.normal(size=3) + 1j * RNG.normal(size=3)), "b": jnp.asarray(1.0 - 2.0j)}
C2 = {"a": jnp.asarray(RNG.normal(size=3) - 2j * RNG.normal(size=3)), "b": jnp.asarray(0.5 + 0.25j)}
BLOCKS = {"a": jnp.asarray(RNG.normal(size=(3, 3))), "b": jnp.asarray(RNG.normal(size=(2, 2)))}
VECS = {"a": jnp.asarray(RNG.normal(size=3)), "b": jnp.asarray(RNG.normal(size=2))}
COND = {"a": jnp.asarray([True, False, True]), "b": (jnp.asarray([[True, False], [False, True]]),
                                                    jnp.asarray(False))}
STACKED = {"a": jnp.asarray(RNG.normal(size=(4, 3))), "b": jnp.asarray(RNG.normal(size=(4,)))}

# One or more calls per public function: (args, kwargs).
CALLS = {
    "broadcast_pytrees": [((T1, 1.5), {}), ((2.0, T1, T2), {})],
    "tree_add": [((T1, T2), {}), ((C1, C2), {})],
    "tree_sub": [((T1, T2), {}), ((C1, C2), {})],
    "tree_mul": [((T1, T2), {}), ((C1, C2), {})],
    "tree_div": [((T1, T2), {}), ((C1, C2), {})],
    "tree_add_scalar_mul": [((T1, 0.3, T2), {}), ((C1, -1.5, C2), {})],
    "tree_scalar_mul": [((2.5, T1), {}), ((0.5, C1), {})],
    "tree_conj": [((C1,), {}), ((T1,), {})],
    "tree_real": [((C1,), {})],
    "tree_imag": [((C1,), {})],
    "tree_dot": [((BLOCKS, VECS), {}), ((VECS, VECS), {})],
    "tree_vdot": [((T1, T2), {}), ((C1, C2), {})],
    "tree_vdot_real": [((T1, T2), {}), ((C1, C2), {})],
    "tree_sum": [((T1,), {}), ((C1,), {})],
    "tree_l2_norm": [((T1,), {}), ((C1,), {}), ((C1,), {"squared": True})],
    "tree_inf_norm": [((T1,), {}), ((C1,), {})],
    "tree_zeros_like": [((C1,), {})],
    "tree_ones_like": [((T1,), {})],
    "tree_negative": [((T1,), {}), ((C1,), {})],
    "tree_where": [((COND, T1, T2), {}), ((jnp.asarray(True), T1, T2), {}), ((COND, T1, 0.0), {})],
    "tree_map": [((lambda x, y: x * y + 1, T1, T2), {}),
                 ((lambda t: t[0], {"p": (1.0, 2.0)}), {"is_leaf": lambda t: isinstance(t, tuple)})],
    "tree_reduce": [((operator.add, {"a": 1.0, "b": (jnp.asarray(2.0), 3.5)}), {}),
                    ((lambda acc, leaf: acc + jnp.sum(leaf), T2, -10.0), {}),
                    ((operator.add, C1), {"initializer": 0.0})],
    # jaxopt._src.tree_util helpers that jaxopt's solvers and user code import.
    "tree_single_dtype": [((T1,), {}), ((C1,), {}), (({"x": np.ones(2), "y": None},), {}),
                          (({"x": np.ones(2, np.float64)},), {"convert_in_jax_dtype": False}), (({},), {})],
    "get_real_dtype": [((jnp.dtype("complex64"),), {}), ((jnp.dtype("complex128"),), {}),
                       ((jnp.dtype("float32"),), {})],
    "tree_mean": [((T1,), {})],
    "tree_reciproqual": [((T2,), {})],
    "tree_gram": [((STACKED,), {})],
    "tree_average": [((STACKED, jnp.asarray([0.1, 0.2, 0.3, 0.4])), {})],
}
# jaxopt's tree_add/sub/mul/div are functools.partial(tree_map, op): their signature shows
# tree_map's ``is_leaf`` by accident; ours take exactly the two trees an operator needs.
PARTIAL_IS_LEAF = {"tree_add", "tree_sub", "tree_mul", "tree_div"}
SRC_EXTRAS = ["tree_single_dtype", "get_real_dtype", "tree_mean", "tree_reciproqual", "tree_gram",
              "tree_average"]


def _public_tree_util():
    return sorted(n for n in dir(jaxopt.tree_util) if not n.startswith("_"))


def _ref(name):
    return getattr(jaxopt.tree_util, name, None) or getattr(jaxopt_tree_src, name)


def test_every_jaxopt_tree_util_name_is_covered_here():
    names = _public_tree_util() + SRC_EXTRAS
    assert set(names) == set(CALLS), "a jaxopt.tree_util function without a value check"
    missing = [n for n in names if not hasattr(jl.tree_util, n)]
    assert not missing


@pytest.mark.parametrize("name", _public_tree_util() + SRC_EXTRAS)
def test_tree_util_signature_compatible(name):
    theirs, ours = inspect.signature(_ref(name)), inspect.signature(getattr(jl.tree_util, name))
    for p in theirs.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is p.empty:
            continue
        if name in PARTIAL_IS_LEAF and p.name == "is_leaf":
            continue
        # Every optional keyword of jaxopt's exists here with the same default.
        assert p.name in ours.parameters, f"{name}: keyword {p.name!r} missing"
        q = ours.parameters[p.name]
        if p.name != "initializer":  # jax's own "unspecified" sentinel vs ours
            assert q.default == p.default, f"{name}: default of {p.name!r}"
    for args, kwargs in CALLS[name]:
        theirs.bind(*args, **kwargs)
        ours.bind(*args, **kwargs)


def _assert_same(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, np.dtype | type) or isinstance(y, np.dtype | type):
            assert np.dtype(x) == np.dtype(y)
            continue
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape
        assert np.iscomplexobj(x) == np.iscomplexobj(y)
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_tree_util_values_match_jaxopt(name):
    for args, kwargs in CALLS[name]:
        _assert_same(getattr(jl.tree_util, name)(*args, **kwargs), _ref(name)(*args, **kwargs))


def test_tree_single_dtype_mixed_raises_and_float32_default():
    with pytest.raises(ValueError):
        jl.tree_util.tree_single_dtype({"a": jnp.ones(2, jnp.float32), "b": jnp.ones(2, jnp.float64)})
    with jax.enable_x64(False):
        t = {"x": np.ones(2, np.float64)}
        assert jl.tree_util.tree_single_dtype(t) == jaxopt_tree_src.tree_single_dtype(t) == jnp.float32
        assert jl.tree_util.tree_single_dtype(t, convert_in_jax_dtype=False) == np.float64


def test_tree_dot_is_blockwise_as_in_jaxopt():
    # Regression: tree_dot was an alias of tree_vdot (a scalar); jaxopt's is leaf-wise.
    out = jl.tree_util.tree_dot(BLOCKS, VECS)
    np.testing.assert_allclose(out["a"], BLOCKS["a"] @ VECS["a"])
    np.testing.assert_allclose(out["b"], BLOCKS["b"] @ VECS["b"])


# ----------------------------------------------------------------------------- loop.while_loop


def _collatz_like():
    cond = lambda v: v[1] > 1e-3
    body = lambda v: (v[0] + 1, v[1] * 0.5)
    return cond, body, (0, 1.0)


@pytest.mark.parametrize("unroll,jit", [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize("maxiter", [0, 3, 50])
def test_while_loop_matches_jaxopt(unroll, jit, maxiter):
    cond, body, init = _collatz_like()
    ours = jl.loop.while_loop(cond, body, init, maxiter, unroll=unroll, jit=jit)
    ref = jaxopt.loop.while_loop(cond, body, init, maxiter, unroll=unroll, jit=jit)
    assert int(ours[0]) == int(ref[0]) == min(maxiter, 10)
    np.testing.assert_allclose(ours[1], ref[1])


def test_while_loop_default_is_jit_and_no_python_while():
    cond, body, init = _collatz_like()
    assert int(jl.loop.while_loop(cond, body, init, 100)[0]) == 10
    # jaxopt's signature, with our default jit=True (jaxopt's default jit=False raises
    # for unroll=False).
    params = inspect.signature(jl.loop.while_loop).parameters
    assert list(params) == list(inspect.signature(jaxopt.loop.while_loop).parameters)
    with pytest.raises(ValueError, match="unroll"):
        jl.loop.while_loop(cond, body, init, 10, unroll=False, jit=False)
    with pytest.raises(TypeError, match="body_fun"):
        jl.loop.while_loop(cond, 3, init, 10)
    with pytest.raises(ValueError, match="maxiter"):
        jl.loop.while_loop(cond, body, init, -1)


def test_while_loop_unrolled_is_reverse_differentiable():
    # x_{k+1} = x_k - a (x_k - c), stopped when |x - c| < 1e-6 or after 200 steps:
    # x_K = c + (1 - a)^K (x0 - c) with K the first k where |x_k - c| < 1e-6.
    a, c, x0 = 0.3, 2.0, 5.0

    def solve(x0, c, unroll, lib):
        cond = lambda v: jnp.abs(v - c) >= 1e-6
        body = lambda v: v - a * (v - c)
        return lib.loop.while_loop(cond, body, x0, 200, unroll=unroll, jit=True)

    K = int(np.ceil(np.log(1e-6 / 3.0) / np.log(0.7)))
    g = jax.grad(lambda x, c: solve(x, c, True, jl), argnums=(0, 1))(x0, c)
    ref = jax.grad(lambda x, c: solve(x, c, True, jaxopt), argnums=(0, 1))(x0, c)
    np.testing.assert_allclose(g, ((1 - a) ** K, 1 - (1 - a) ** K), rtol=1e-10)
    np.testing.assert_allclose(g, ref, rtol=1e-12)
    # Forward mode through the lax.while_loop form.
    jv = jax.jvp(lambda x: solve(x, c, False, jl), (x0,), (1.0,))[1]
    np.testing.assert_allclose(jv, (1 - a) ** K, rtol=1e-10)
    # A traced maxiter works in the while_loop form (vmapped over caps).
    caps = jnp.asarray([1, 5, 100])
    out = jax.vmap(lambda m: jl.loop.while_loop(lambda v: v[1] > 1e-3, lambda v: (v[0] + 1, v[1] / 2),
                                                (0, 1.0), m))(caps)
    np.testing.assert_array_equal(out[0], [1, 5, 10])


# ----------------------------------------------------------------------------- base


def test_base_has_jaxopt_names():
    theirs = {n for n in dir(jaxopt.base) if not n.startswith("_")}
    missing = [n for n in theirs if not hasattr(jl.base, n)]
    assert not missing
    assert jl.base.OptStep._fields == jaxopt.base.OptStep._fields
    assert jl.base.KKTSolution._fields == jaxopt.base.KKTSolution._fields
    assert jl.base.KKTSolution(1).dual_eq is None
    assert issubclass(jl.base.StochasticSolver, jl.base.IterativeSolver)


def test_linear_operator_matches_jaxopt():
    A = jnp.asarray(RNG.normal(size=(4, 3)))
    x, u = jnp.asarray(RNG.normal(size=3)), jnp.asarray(RNG.normal(size=4))
    ours, ref = jl.base.LinearOperator(A), jaxopt.base.LinearOperator(A)
    assert ours.shape() == ref.shape()
    calls = [("matvec", (x,)), ("rmatvec", (u,)), ("matvec_element", (x, 2)), ("rmatvec_element", (u, 1)),
             ("update_matvec", (A @ x, 0.7, 1)), ("update_matvec", (A @ jnp.ones((3, 2)), jnp.ones(2), 0)),
             ("update_rmatvec", (A.T @ u, -0.3, 3)), ("column_l2_norms", ()), ("column_l2_norms", (True,))]
    for name, args in calls:
        np.testing.assert_allclose(getattr(ours, name)(*args), getattr(ref, name)(*args), rtol=1e-12)
    np.testing.assert_allclose(ours.update_matvec(A @ x, 0.7, 1), A @ (x + 0.7 * jnp.eye(3)[1]))
    # A pytree: it goes through jit and vmap as jaxopt's does.
    out = jax.jit(lambda op, v: op.matvec(v))(ours, x)
    np.testing.assert_allclose(out, A @ x)
    batched = jax.vmap(lambda M: jl.base.LinearOperator(M))(jnp.stack([A, 2 * A]))
    np.testing.assert_allclose(jax.vmap(lambda op: op.matvec(x))(batched), jnp.stack([A @ x, 2 * A @ x]))
    with pytest.raises(ValueError, match="Ax"):
        ours.update_matvec(jnp.ones((2, 2, 2)), 1.0, 0)


# ----------------------------------------------------------------------------- l2_optimality_error

# jaxopt's line searches inherit ``l2_optimality_error`` but have no ``optimality_fun``, so
# theirs raises AttributeError: nothing to carry over.
NO_OPTIMALITY_IN_JAXOPT = {"BacktrackingLineSearch", "HagerZhangLineSearch", "ZoomLineSearch"}


def test_every_jaxopt_solver_class_has_l2_optimality_error():
    missing = []
    for name in dir(jaxopt):
        ref = getattr(jaxopt, name)
        wanted = inspect.isclass(ref) and hasattr(ref, "l2_optimality_error")
        if wanted and name not in NO_OPTIMALITY_IN_JAXOPT:
            if not callable(getattr(getattr(jl, name), "l2_optimality_error", None)):
                missing.append(name)
    assert not missing
    assert inspect.signature(jl.base.IterativeSolver.l2_optimality_error).parameters.keys() == \
        inspect.signature(jaxopt.base.IterativeSolver.l2_optimality_error).parameters.keys()


def _ridge():
    A = jnp.asarray(RNG.normal(size=(8, 3)))
    b = jnp.asarray(RNG.normal(size=8))
    fun = lambda w, lam: 0.5 * jnp.sum((A @ w - b) ** 2) + 0.5 * lam * w @ w
    res = lambda w, lam: jnp.concatenate([A @ w - b, jnp.sqrt(lam) * w])
    return A, b, fun, res


@pytest.mark.parametrize("name", ["GradientDescent", "LBFGS", "BFGS", "NonlinearCG", "OptaxSolver",
                                  "ArmijoSGD", "PolyakSGD", "GaussNewton", "LevenbergMarquardt"])
def test_l2_optimality_error_equals_jaxopt(name):
    import optax
    A, b, fun, res = _ridge()
    w = jnp.asarray([0.3, -1.0, 2.0])
    make = {
        "OptaxSolver": lambda lib: lib.OptaxSolver(fun=fun, opt=optax.sgd(1e-2)),
        "GaussNewton": lambda lib: lib.GaussNewton(residual_fun=res),
        "LevenbergMarquardt": lambda lib: lib.LevenbergMarquardt(residual_fun=res),
    }.get(name, lambda lib: getattr(lib, name)(fun=fun))
    ours, ref = make(jl).l2_optimality_error(w, 0.7), make(jaxopt).l2_optimality_error(w, 0.7)
    expected = jnp.linalg.norm(A.T @ (A @ w - b) + 0.7 * w)
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    np.testing.assert_allclose(ref, expected, rtol=1e-10)


def test_l2_optimality_error_prox_and_projected_gradient_equal_jaxopt():
    A, b, fun, _ = _ridge()
    w = jnp.asarray([0.3, -1.0, 2.0])
    for lib in (jl, jaxopt):
        pg = lib.ProximalGradient(fun=lambda w: fun(w, 0.0), prox=lib.prox.prox_lasso)
        pj = lib.ProjectedGradient(fun=lambda w: fun(w, 0.0), projection=lib.projection.projection_box)
        if lib is jl:
            ours = (pg.l2_optimality_error(w, 0.5), pj.l2_optimality_error(w, (-1.0, 1.0)))
        else:
            ref = (pg.l2_optimality_error(w, 0.5), pj.l2_optimality_error(w, (-1.0, 1.0)))
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    assert functools.reduce(operator.mul, [float(v) > 0 for v in ours])
