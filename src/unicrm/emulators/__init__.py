"""Provider emulators: one module per provider, each exposing `build(seed, dataset_size)`.

Modules are discovered, like the provider declarations, so adding an emulator touches no
shared file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unicrm.emulators.base import Emulator

_NOT_EMULATORS = frozenset({"base"})


def _discover() -> dict[str, Callable[..., Emulator]]:
    found: dict[str, Callable[..., Any]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_EMULATORS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        build = getattr(module, "build", None)
        if callable(build):
            found[info.name] = build
    return found


EMULATORS: dict[str, Callable[..., Emulator]] = _discover()
