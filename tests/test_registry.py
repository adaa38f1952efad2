"""The registry refuses duplicates and lists valid names on a miss."""

import pytest

from coevolve.domains import Registry


def test_duplicate_is_refused():
    reg = Registry[int]("thing")
    reg.add("a", 1)
    with pytest.raises(KeyError, match="already registered"):
        reg.add("a", 2)
    assert reg.get("a") == 1


def test_miss_lists_valid_names():
    reg = Registry[int]("thing")
    reg.register("b")(2)
    reg.add("a", 1)
    with pytest.raises(KeyError, match="valid names: a, b"):
        reg.get("c")
