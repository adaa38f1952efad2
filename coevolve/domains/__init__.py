"""Domains: what the challenger asks about and how the solver's answers are read.

`DOMAINS` maps a recipe's `domain.name` to a Domain class; `build_domain` instantiates one
with the recipe's `domain.options`.
"""

from __future__ import annotations

import importlib
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


__all__ = ["DOMAINS", "Domain", "build_domain", "domain_class", "register_domain"]
