"""Domains: what the challenger asks about and how the solver's answers are read.

`DOMAINS` maps a recipe's `domain.name` to a Domain class; `build_domain` instantiates one
with the recipe's `domain.options`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from coevolve.domains.base import Domain

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes, functions) registered once each.

    >>> colours = Registry[int]("colour")
    >>> colours.add("red", 1)
    >>> colours.get("red")
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def wrap(item: T) -> T:
            self.add(name, item)
            return item

        return wrap

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


DOMAINS: Registry[type[Domain]] = Registry("domain")


def register_domain(name: str):
    """Class decorator: register a Domain subclass under `name` and set its `name`."""

    def wrap(cls: type[Domain]) -> type[Domain]:
        cls.name = name
        DOMAINS.add(name, cls)
        return cls

    return wrap


def build_domain(name: str, options: Mapping[str, Any] | None = None) -> Domain:
    """Instantiate the domain `name` with keyword `options`.

    `name` is a registered domain, or `package.module:Class` naming a Domain subclass that
    a user wrote (imported on demand, so a recipe can bring its own domain code).
    """
    return domain_class(name)(**dict(options or {}))


def domain_class(name: str) -> type[Domain]:
    """The class behind a domain name (registered name or `module:Class`)."""
    if ":" not in name:
        _import_builtin_domains()
        return DOMAINS.get(name)
    module_name, _, class_name = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise KeyError(f"domain {name!r}: cannot import {class_name} from {module_name} ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, Domain)):
        raise KeyError(f"domain {name!r}: {cls!r} is not a subclass of coevolve.domains.Domain")
    return cls


def _import_builtin_domains() -> None:
    # Imported lazily so that each module registers itself exactly once.
    from coevolve.domains import arithmetic, generic, math, reasoning_gym  # noqa: F401


__all__ = ["DOMAINS", "Domain", "Registry", "build_domain", "domain_class", "register_domain"]
