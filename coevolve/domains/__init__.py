"""Domains: what the challenger asks about and how the solver's answers are read.

`DOMAINS` maps a recipe's `domain.name` to a Domain class; `build_domain` instantiates one
with the recipe's `domain.options`.
"""

from __future__ import annotations

from typing import Any, Mapping

from coevolve.domains.base import Domain
from coevolve.registry import Registry

DOMAINS: Registry[type[Domain]] = Registry("domain")


def register_domain(name: str):
    """Class decorator: register a Domain subclass under `name` and set its `name`."""

    def wrap(cls: type[Domain]) -> type[Domain]:
        cls.name = name
        DOMAINS.add(name, cls)
        return cls

    return wrap


def build_domain(name: str, options: Mapping[str, Any] | None = None) -> Domain:
    """Instantiate the domain registered as `name` with keyword `options`."""
    _import_builtin_domains()
    return DOMAINS.get(name)(**dict(options or {}))


def _import_builtin_domains() -> None:
    # Imported lazily so that each module registers itself exactly once.
    from coevolve.domains import arithmetic, math, reasoning_gym  # noqa: F401


__all__ = ["DOMAINS", "Domain", "build_domain", "register_domain"]
