"""``jaxopt_lab.transforms.__all__`` lists transforms only; operators and helpers moved out of it stay
importable; renamed modules keep their earlier paths."""

from __future__ import annotations

import importlib
import inspect
import pathlib

import optax
import pytest

import jaxopt_lab
from jaxopt_lab import problems, transforms, zeroth_order

# In transforms.__all__ before it was cleaned, not transforms: where they live now.
MOVED_OUT = {
    "orthogonalize": "jaxopt_lab.ops.orthogonalize", "ns_schedule": "jaxopt_lab.ops.orthogonalize",
    "soft_threshold": "jaxopt_lab.ops.sparsify", "topk_magnitude_mask": "jaxopt_lab.ops.sparsify",
    "prox_topk": "jaxopt_lab.ops.sparsify", "prox_group_envelope": "jaxopt_lab.ops.sparsify",
    "group_envelope_prox_norms": "jaxopt_lab.ops.sparsify", "top_k_compressor": "jaxopt_lab.ops.sparsify",
    "random_k_compressor": "jaxopt_lab.ops.sparsify",
    "norm_test": "jaxopt_lab.transforms.adaptive_batch_size",
    "inner_product_test": "jaxopt_lab.transforms.adaptive_batch_size",
    "dct_basis": "jaxopt_lab.transforms.lowrank_dct", "mfac_ihvp": "jaxopt_lab.transforms.mfac",
    "refined_schedule": "jaxopt_lab.transforms.refined_schedule",
}


def _returns_transform(fn) -> bool:
    return "GradientTransformation" in str(inspect.signature(fn).return_annotation)


def test_all_lists_only_transform_factories_and_states():
    for name in transforms.__all__:
        obj = getattr(transforms, name)
        if inspect.isclass(obj):
            assert name.endswith("State") and issubclass(obj, tuple), name
        else:
            assert inspect.isfunction(obj) and _returns_transform(obj), name


def test_a_factory_really_builds_a_transform():
    for name in ("scale_by_root", "root", "prox_lasso_transform", "econtrol", "scale_by_zo_estimate"):
        fn = getattr(transforms, name)
        required = [p for p in inspect.signature(fn).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
        out = fn(*[0.1] * len(required))
        assert isinstance(out, optax.GradientTransformation | optax.GradientTransformationExtraArgs), name


@pytest.mark.parametrize("name", sorted(MOVED_OUT))
def test_moved_out_names_stay_importable(name):
    obj = getattr(importlib.import_module(MOVED_OUT[name]), name)
    assert obj.__module__ == MOVED_OUT[name]
    assert name not in transforms.__all__ and name in transforms.HELPERS
    assert getattr(transforms, name) is obj and getattr(jaxopt_lab, name) is obj
    assert name in jaxopt_lab.__all__
    assert not (inspect.isfunction(obj) and _returns_transform(obj)), name


def test_renamed_modules_keep_their_earlier_paths():
    from jaxopt_lab.problems.bilevel import quadratic_bilevel
    from jaxopt_lab.transforms.root import scale_by_root
    from jaxopt_lab.zeroth_order.api import value_and_grad

    assert scale_by_root is transforms.scale_by_root and scale_by_root.__module__.endswith("root_optimizer")
    assert value_and_grad is zeroth_order.value_and_grad
    assert value_and_grad.__module__ == "jaxopt_lab.zeroth_order.wrappers"
    assert quadratic_bilevel.__module__ == "jaxopt_lab.problems.bilevel_problems"
    assert problems.bilevel is problems.bilevel_problems


def test_zeroth_order_modules_are_not_named_like_its_functions():
    # (transforms follow optax's one-algorithm-one-file naming: ``adahessian.py`` defines ``adahessian``.)
    modules = {p.stem for p in pathlib.Path(zeroth_order.__file__).parent.glob("*.py")}
    assert not modules & set(zeroth_order.__all__), modules & set(zeroth_order.__all__)
    assert "root" not in {p.stem for p in pathlib.Path(transforms.__file__).parent.glob("*.py")}
