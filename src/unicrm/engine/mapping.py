"""Compiles a provider's field declarations into plain Python callables, once, at start-up.

The read direction is on the hot path (every record of every list page), so it is generated
as the source of one flat function: straight-line dict lookups with no loop over fields and no
per-record interpretation of the declaration. The write direction runs once per request and
stays a small interpreter over the declared fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from unicrm.model import RESOURCES, ResourceModel
from unicrm.providers.declaration import ConversionError, Field, Lookups, Op, Provider

ToUnified = Callable[[Mapping[str, Any], Lookups], dict[str, Any]]


class MappingError(ValueError):
    """A unified value that cannot be mapped; `field` is the unified field name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def get_path(record: Any, path: str | None) -> Any:
    """Follow a dotted path through nested dicts; None when any step is missing."""
    if path is None or path == "":
        return record
    value = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path, creating intermediate dicts."""
    parts = path.split(".")
    node = target
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `extra` into `base` recursively; `extra` wins; lists are replaced, not merged."""
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            deep_merge(current, value)
        else:
            base[key] = value
    return base


def unified_for_remote(remote_to_unified: Mapping[str, str], remote_field: str) -> str:
    """The unified field a provider field belongs to; keys ending in `*` match by prefix
    (`metadata_*` for dynamic custom-field keys). Unknown provider fields keep their name."""
    key = remote_field.split(".")[0]
    if key in remote_to_unified:
        return remote_to_unified[key]
    for pattern, unified in remote_to_unified.items():
        if pattern.endswith("*") and key.startswith(pattern[:-1]):
            return unified
    return remote_field


def _compile_reader(fields: tuple[Field, ...], empty: Mapping[str, Any]) -> ToUnified:
    """Generate `def to_unified(r, lk)` for the readable fields."""
    namespace: dict[str, Any] = {}
    lines = ["def to_unified(r, lk):", "    out = {}"]
    for index, fld in enumerate(fields):
        if fld.read is None:
            continue
        if callable(fld.read):
            namespace[f"f{index}"] = fld.read
            lines.append(f"    v = f{index}(r, lk)")
        else:
            parts = fld.read.split(".")
            lines.append(f"    v = r.get({parts[0]!r})")
            for part in parts[1:]:
                lines.append(f"    v = v.get({part!r}) if v.__class__ is dict else None")
        if fld.conv is not None:
            namespace[f"c{index}"] = fld.conv.read
            lines.append("    if v is not None:")
            if fld.conv.fast_read is not None:
                namespace[f"q{index}"] = fld.conv.fast_read
                lines.append("        try:")
                lines.append(f"            v = q{index}(v)")
                lines.append("        except (ValueError, TypeError, AttributeError):")
                lines.append(f"            v = c{index}(v, lk)")
            else:
                lines.append(f"        v = c{index}(v, lk)")
        default = empty.get(fld.unified)
        if default is None:
            lines.append(f"    out[{fld.unified!r}] = v")
        else:
            namespace[f"d{index}"] = default
            lines.append(f"    out[{fld.unified!r}] = v if v is not None else list(d{index})")
    lines.append("    return out")
    exec("\n".join(lines), namespace)
    return namespace["to_unified"]


@dataclass(frozen=True)
class CompiledMapping:
    """A provider's mapping in both directions, plus what the declaration says it supports."""

    provider: Provider
    to_unified: ToUnified
    readable: tuple[str, ...]
    writable: Mapping[Op, frozenset[str]]
    required: Mapping[Op, tuple[str, ...]]
    remote_to_unified: Mapping[str, str]
    model: ResourceModel

    def to_provider(self, body: Mapping[str, Any], op: Op, lookups: Lookups) -> dict[str, Any]:
        """Map a validated unified body to the provider body (before `remote_data` merging)."""
        out: dict[str, Any] = {}
        for name in body:
            fld = self.provider.field(name)
            if fld is None or not fld.writes_on(op):
                raise MappingError(name, f"is not writable in {self.provider.label} on {op}")
        # Declaration order, not body order: when two fields write the same provider key, the
        # later declared one wins, whatever order the client sent them in.
        for fld in self.provider.fields:
            if fld.unified not in body:
                continue
            name, value = fld.unified, body[fld.unified]
            try:
                if callable(fld.write):
                    deep_merge(out, fld.write(value, lookups))
                else:
                    assert fld.write is not None
                    converted = value if value is None or fld.conv is None else fld.conv.write(value, lookups)
                    set_path(out, fld.write, converted)
            except ConversionError as exc:
                raise MappingError(name, str(exc)) from None
            except (KeyError, TypeError, ValueError) as exc:
                raise MappingError(name, f"cannot be converted ({exc})") from None
        return out


def compile_mapping(provider: Provider) -> CompiledMapping:
    """Compile a provider declaration's fields (of the resource the declaration is for)."""
    model = RESOURCES.get(provider.resource)
    if model is None:
        raise ValueError(f"{provider.name}: unknown unified resource {provider.resource!r}")
    names = [f.unified for f in provider.fields]
    unknown = [n for n in names if n not in model.fields_by_name]
    if unknown:
        raise ValueError(f"{provider.name}: unknown unified {provider.resource} fields {unknown}")
    if len(set(names)) != len(names):
        raise ValueError(f"{provider.name}: a unified {provider.resource} field is declared twice")
    empty: dict[str, list[Any]] = {f.name: [] for f in model.fields if f.kind in ("ref_list", "object_list")}
    reader = _compile_reader(provider.fields, empty)
    writable: dict[Op, frozenset[str]] = {
        op: frozenset(f.unified for f in provider.fields if f.writes_on(op)) for op in ("create", "update")
    }
    required: dict[Op, tuple[str, ...]] = {
        op: tuple(f.unified for f in provider.fields if op in f.required) for op in ("list", "get", "create", "update", "delete")
    }
    remote: dict[str, str] = {}
    for fld in provider.fields:
        for key in fld.provider_keys():
            remote.setdefault(key, fld.unified)
    return CompiledMapping(
        provider=provider,
        to_unified=reader,
        readable=tuple(f.unified for f in provider.fields if f.read is not None),
        writable=writable,
        required=required,
        remote_to_unified=remote,
        model=model,
    )
