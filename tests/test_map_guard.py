"""The conftest guard that keeps test workers below ``vm.max_map_count``.

A worker that keeps thousands of compiled executables alive runs out of memory
mappings and segfaults inside XLA:CPU compilation; the guard clears the jit caches
before that. These tests check that cached executables really hold mappings and that
the guard releases them.
"""

import jax
import jax.numpy as jnp
import pytest

from tests import conftest

pytestmark = pytest.mark.skipif(conftest.map_count() == 0, reason="needs /proc/self/maps (Linux)")


def _compile_many(n: int) -> None:
    f = jax.jit(lambda x: jnp.sin(x) * 3.0 + jnp.cos(x) ** 2)
    for size in range(1, n + 1):  # one cached executable per shape
        f(jnp.ones(size)).block_until_ready()


def test_cached_executables_hold_maps_and_the_guard_releases_them():
    jax.clear_caches()
    before = conftest.map_count()
    _compile_many(60)
    grown = conftest.map_count()
    assert grown - before >= 60  # at least one mapping per live executable
    assert not conftest.release_executables_if_needed(grown + 10)
    assert conftest.release_executables_if_needed(before + 100)
    assert conftest.map_count() - before < (grown - before) // 2


def test_threshold_is_half_the_kernel_limit():
    assert conftest.max_map_count() >= 1000
    assert conftest._MAP_THRESHOLD == conftest.max_map_count() // 2
