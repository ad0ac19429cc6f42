"""Provider declarations: one module per provider, each exposing `PROVIDER`.

Modules are discovered, so adding a provider means adding a module here and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from unicrm.providers.declaration import Provider

_NOT_PROVIDERS = frozenset({"declaration"})


@cache
def all_providers() -> dict[str, Provider]:
    """Every declared provider by name, in alphabetical order."""
    found: dict[str, Provider] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_PROVIDERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        provider = getattr(module, "PROVIDER", None)
        if isinstance(provider, Provider):
            found[provider.name] = provider
    return found
