"""Argument checks have one implementation, in ``core/checks.py``; ``core/tree_util`` keeps the older
names (``check_tree_like``, ``static_int`` ...) as thin aliases of it."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab.core import checks
from jaxopt_lab.core import tree_util as tu

PARAMS = {"a": jnp.ones((3, 4)), "b": jnp.ones(2)}


def test_tree_util_holds_no_second_implementation():
    source = inspect.getsource(tu)
    for name in ("_first_difference", "_inject_hint"):
        assert f"def {name}" not in source, name
    assert tu.check_update_args is checks.check_update_args
    assert tu.check_eps_dtype is checks.check_eps_dtype


@pytest.mark.parametrize("tree,where", [
    ({"a": jnp.ones((3, 4)), "c": jnp.ones(2)}, r"leaf \['c'\] of `mask` is not in `params`"),
    ({"a": jnp.ones((3, 4))}, r"leaf \['b'\] of `params` is missing from `mask`"),
    ({"a": jnp.ones((4, 3)), "b": jnp.ones(2)},
     r"`mask` leaf \['a'\] has shape \(4, 3\), but `params` has \(3, 4\)"),
])
def test_same_structure_names_the_path(tree, where):
    with pytest.raises(ValueError, match=where):
        checks.check_same_structure(tree, PARAMS, "mask", "params")
    # The alias reports the same error, prefixed by the caller.
    with pytest.raises(ValueError, match="^scale_by_x: .*" + where.replace("mask", "grads")):
        tu.check_tree_like(tree, PARAMS, who="scale_by_x")
    checks.check_same_structure(jax.tree_util.tree_map(jnp.zeros_like, PARAMS), PARAMS, "mask", "params")


def test_check_int_is_static_int():
    assert checks.check_int(3, "k") == 3 and tu.static_int(np.int64(3), "k") == 3
    assert type(checks.check_int(np.int32(2), "k")) is int
    assert checks.check_int(-1, "axis", minimum=None) == -1
    with pytest.raises(TypeError, match=r"`rank`.*static_args=\('rank',\)"):
        checks.check_int(jnp.asarray(3), "rank")  # what optax.inject_hyperparams passes
    for bad in (True, 2.0, "3"):
        with pytest.raises(TypeError, match="`k` must be a Python int"):
            tu.static_int(bad, "k")
    with pytest.raises(ValueError, match="`k` must be >= 1, got 0"):
        checks.check_int(0, "k")


def test_traceable_int_and_all_concrete():
    assert tu.traceable_int(jnp.asarray(4), "every") == 4
    with pytest.raises(ValueError, match="`every` must be >= 1"):
        checks.check_traceable_int(0, "every")
    assert checks.all_concrete((jnp.ones(2), {"x": 1.0}))
    seen = []
    jax.jit(lambda x: seen.append(checks.all_concrete((jnp.ones(2), x))) or x)(1.0)
    assert seen == [False]
