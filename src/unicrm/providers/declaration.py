"""The vocabulary a provider module uses to declare everything about its API.

A provider module builds one `Provider` from these parts: where the API lives and how it
authenticates, its endpoints, how it pages, how each unified field maps in both directions,
which fields it requires, which filters it honours natively, how its errors and rate-limit
headers read. The engine (`unicrm.engine`) only ever reads these declarations; behaviour a
declaration cannot express goes into a `Hooks` object defined in the provider's own module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from unicrm.engine.calls import ProviderCall

Lookups = Mapping[str, Mapping[str, Any]]
Op = Literal["list", "get", "create", "update", "delete"]
WRITE_OPS: tuple[Op, ...] = ("create", "update")


class ConversionError(ValueError):
    """A unified value that cannot be turned into the provider's form (message says why)."""


# --------------------------------------------------------------------------- converters
class Converter:
    """Turns one value from the provider's form to the unified one and back.

    `read` never sees None (the compiled mapping skips missing values); `write` may raise
    `ConversionError` with a message that tells the caller what to send instead.
    """

    def read(self, value: Any, lookups: Lookups) -> Any:
        return value

    def write(self, value: Any, lookups: Lookups) -> Any:
        return value

    def describe(self) -> str:
        """A short note for the coverage table and meta endpoint."""
        return ""

    #: Optional one-argument fast path for reads, inlined by the mapping compiler; it may
    #: raise ValueError/TypeError/AttributeError, and then `read` handles the value.
    fast_read: Callable[[Any], Any] | None = None
    #: True when `read` returns its value unchanged (a write-only converter): not compiled in.
    reads_as_is: bool = False


class IdString(Converter):
    """Provider ids (numbers or strings) become strings; `numeric` ids go back as ints."""

    fast_read = str

    def __init__(self, numeric: bool = False) -> None:
        self.numeric = numeric

    def read(self, value: Any, lookups: Lookups) -> Any:
        return str(value)

    def write(self, value: Any, lookups: Lookups) -> Any:
        if not self.numeric:
            return str(value)
        try:
            return int(str(value))
        except ValueError:
            raise ConversionError(f"must be a numeric id, got {value!r}") from None


def parse_iso_datetime(value: str) -> datetime:
    """Parse ISO 8601 (date or date-time, `Z` or offset); naive values are taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is before the first representable UTC instant.
        raise ValueError(f"{value!r} is outside the representable range once converted to UTC") from None


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, milliseconds only when present."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _midnight(value: str) -> str:
    if len(value) != 10:
        raise ValueError(value)
    return value + "T00:00:00Z"


class DateOnly(Converter):
    """Provider dates `YYYY-MM-DD` ⇄ unified date-times at midnight UTC."""

    fast_read = staticmethod(_midnight)

    def read(self, value: Any, lookups: Lookups) -> Any:
        text = str(value)
        return text[:10] + "T00:00:00Z" if len(text) >= 10 else text

    def write(self, value: Any, lookups: Lookups) -> Any:
        return parse_iso_datetime(str(value)).strftime("%Y-%m-%d")

    def describe(self) -> str:
        return "date only: the time is dropped on write, reads give midnight UTC"


def full_name(first: Any, last: Any) -> str | None:
    """A person's display name from its parts: `first last`, either alone, or None."""
    if first and last:
        return f"{first} {last}"
    return str(first or last) if first or last else None


def to_iso_utc(text: str) -> str:
    """Any ISO 8601 / `YYYY-MM-DD HH:MM:SS[.ffffff][Z|+00:00]` text → the `iso_utc` form.

    String surgery handles the UTC forms providers actually send (this runs for every date of
    every record); anything else (other offsets, odd formats) takes the full parse.
    """
    n = len(text)
    if n == 20 and text[19] == "Z" and text[10] == "T":
        return text
    if n == 19 and text[10] == " " and text[4] == "-" and text[13] == ":":
        # `YYYY-MM-DD HH:MM:SS`, UTC by the provider's contract (Insightly's *_UTC fields)
        return text[:10] + "T" + text[11:] + "Z"
    if n == 24 and text[23] == "Z" and text[19] == "." and text[10] == "T":
        # already `YYYY-MM-DDTHH:MM:SS.mmmZ`; iso_utc drops a zero sub-second part
        return text[:19] + "Z" if text[20:23] == "000" else text
    if n == 32 and text[26:] == "+00:00" and text[19] == ".":
        # `YYYY-MM-DD HH:MM:SS.ffffff+00:00` (Pipeliner's form)
        head = text[:10] + "T" + text[11:19]
        return head + "Z" if text[20:26] == "000000" else head + "." + text[20:23] + "Z"
    if len(text) >= 19 and text[4] == "-" and text[13] == ":" and text[10] in "T ":
        head = text[:10] + "T" + text[11:19]
        rest = text[19:]
        if not rest or rest == "Z" or rest == "+00:00":
            return head + "Z"
        if rest[0] == ".":
            frac = rest[1:-1] if rest[-1] == "Z" else rest[1:-6] if rest.endswith("+00:00") else ""
            if frac.isdigit():
                # iso_utc prints milliseconds only when the instant has a sub-second part.
                frac6 = (frac + "00000")[:6]
                return head + "Z" if frac6 == "000000" else head + "." + frac6[:3] + "Z"
    return iso_utc(parse_iso_datetime(text))


class DateTimeFormat(Converter):
    """Provider date-times in a fixed format (UTC) ⇄ ISO 8601 `Z`.

    Reading accepts anything `datetime.fromisoformat` does (space or `T`, offsets,
    microseconds) so one converter serves `2025-03-02 09:41:57` and
    `2019-02-01 13:17:03.495636+00:00` alike.
    """

    fast_read = staticmethod(to_iso_utc)

    def __init__(self, write_format: str = "%Y-%m-%dT%H:%M:%SZ") -> None:
        self.write_format = write_format

    def read(self, value: Any, lookups: Lookups) -> Any:
        try:
            return to_iso_utc(str(value))
        except ValueError:
            return str(value)

    def write(self, value: Any, lookups: Lookups) -> Any:
        return parse_iso_datetime(str(value)).strftime(self.write_format)


class Scale(Converter):
    """Unified = provider × factor (Wethod keeps amounts in thousands).

    Decimal arithmetic, so 1.1 thousand reads as 1100 and not 1100.0000000000002, and
    1234.5 writes as 1.2345.
    """

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._factor = Decimal(str(factor))

    def read(self, value: Any, lookups: Lookups) -> Any:
        try:
            return float(Decimal(str(value)) * self._factor)
        except (TypeError, ValueError, ArithmeticError):
            return None

    def write(self, value: Any, lookups: Lookups) -> Any:
        return float(Decimal(str(value)) / self._factor)

    def describe(self) -> str:
        return f"provider value × {self.factor:g}"


class Number(Converter):
    """Numbers that providers may send as strings."""

    def read(self, value: Any, lookups: Lookups) -> Any:
        if isinstance(value, int | float):
            return value
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


class Enum(Converter):
    """A provider enum ⇄ unified status values.

    `read_map` maps every provider value to the closest unified value (the original stays
    in `remote_data`); `write_map` lists the unified values the provider accepts.
    """

    def __init__(self, read_map: Mapping[Any, str], write_map: Mapping[str, Any] | None = None) -> None:
        self.read_map = dict(read_map)
        self.write_map = dict(write_map) if write_map is not None else {v: k for k, v in read_map.items()}

    def read(self, value: Any, lookups: Lookups) -> Any:
        return self.read_map.get(value, self.read_map.get(str(value).lower(), None))

    def write(self, value: Any, lookups: Lookups) -> Any:
        if value not in self.write_map:
            allowed = ", ".join(self.write_map)
            raise ConversionError(f"{value!r} is not accepted by this provider; accepted values: {allowed}")
        return self.write_map[value]

    def describe(self) -> str:
        return "accepts " + ", ".join(self.write_map) if self.write_map else "read-only"


class Ref(Converter):
    """A nested provider object ⇄ unified `{id, name}`.

    `name` is a key of the nested object or a callable computing the display name;
    `write_as` is the provider form of a reference given its id (default `{"id": id}`).
    """

    def __init__(
        self,
        id_key: str = "id",
        name: str | Callable[[Mapping[str, Any]], Any] | None = "name",
        write_as: Callable[[str], Any] | None = None,
        numeric: bool = False,
    ) -> None:
        self.id_key = id_key
        self.name = name
        self.numeric = numeric
        self.write_as = write_as

    def read(self, value: Any, lookups: Lookups) -> Any:
        if not isinstance(value, dict):  # dict, not the Mapping ABC: this runs per record
            return {"id": str(value), "name": None}
        ident = value.get(self.id_key)
        if ident is None:
            return None
        name = self.name(value) if callable(self.name) else value.get(self.name) if self.name else None
        return {"id": str(ident), "name": name}

    def write(self, value: Any, lookups: Lookups) -> Any:
        ident = value["id"]
        if self.numeric:
            ident = IdString(numeric=True).write(ident, lookups)
        return self.write_as(ident) if self.write_as else {self.id_key: ident}


_EMPTY: Mapping[str, Any] = {}

#: What a converter's `write` returns to write nothing at all (not even a null).
SKIP: Any = type("Skip", (), {"__repr__": lambda self: "SKIP"})()


def display_name(obj: Any, name: str | Callable[[Mapping[str, Any]], Any] | None) -> Any:
    """A related record's display name: a key of it, a function of it, or first + last name."""
    if not isinstance(obj, dict):
        return obj if isinstance(obj, str) else None
    if callable(name):
        return name(obj)
    if name:
        return obj.get(name)
    return obj.get("name") or full_name(
        obj.get("first_name", obj.get("firstName", obj.get("FIRST_NAME"))),
        obj.get("last_name", obj.get("lastName", obj.get("LAST_NAME"))),
    )


class EpochTime(Converter):
    """Unix timestamps (seconds, or milliseconds with `ms=True`) ⇄ ISO 8601 `Z`."""

    def __init__(self, ms: bool = False) -> None:
        self.scale = 1000 if ms else 1

    def read(self, value: Any, lookups: Lookups) -> Any:
        try:
            return iso_utc(datetime.fromtimestamp(float(value) / self.scale, UTC))
        except (TypeError, ValueError, OverflowError):
            return None

    def write(self, value: Any, lookups: Lookups) -> Any:
        seconds = parse_iso_datetime(str(value)).timestamp()
        return round(seconds * self.scale)

    def describe(self) -> str:
        return "Unix time in " + ("milliseconds" if self.scale == 1000 else "seconds")


class LookupRef(Converter):
    """A bare provider id ⇄ unified `{id, name}`, the name from a lookup (`lookup` table).

    The lookup maps id → a name string or the whole related record (then `name` says how to
    name it: a key, a function, or first + last name by default). `many=True` reads a list
    of ids (or of objects holding the id at `id_key`) into a list of refs and writes ids back.
    """

    def __init__(
        self,
        lookup: str | None,
        name: str | Callable[[Mapping[str, Any]], Any] | None = None,
        numeric: bool = False,
        many: bool = False,
        id_key: str = "id",
    ) -> None:
        self.lookup, self.name, self.many, self.id_key = lookup, name, many, id_key
        self._id = IdString(numeric)

        self.read = self._reader()  # type: ignore[method-assign,assignment]

    def _reader(self) -> Callable[[Any, Lookups], Any]:
        # A closure over locals: this runs for every record of every list page.
        lookup, id_key, many, name = self.lookup, self.id_key, self.many, self.name
        namer: Callable[[Any], Any] = name if callable(name) else (lambda obj: display_name(obj, name))

        def ref(ident: Any, table: Mapping[str, Any]) -> dict[str, Any] | None:
            if ident.__class__ is dict:
                ident = ident.get(id_key)
            if ident is None or ident == "":
                return None
            key = str(ident)
            found = table.get(key)
            return {"id": key, "name": found if found is None or found.__class__ is str else namer(found)}

        def read(value: Any, lookups: Lookups) -> Any:
            table = lookups.get(lookup, _EMPTY) if lookup else _EMPTY
            if many:
                if value.__class__ is not list:
                    return []
                out = []
                for v in value:
                    r = ref(v, table)
                    if r is not None:
                        out.append(r)
                return out
            # one reference: `ref` inlined (this runs for every record of every page)
            if value.__class__ is dict:
                value = value.get(id_key)
            if value is None or value == "":
                return None
            key = str(value)
            found = table.get(key)
            return {"id": key, "name": found if found is None or found.__class__ is str else namer(found)}

        return read

    def write(self, value: Any, lookups: Lookups) -> Any:
        if self.many:
            return [self._id.write(v["id"], lookups) for v in value or []]
        return self._id.write(value["id"], lookups)


class IdOf(Converter):
    """Writes a unified `{id, name}` as its bare id (a string, or a number with `numeric`);
    reads pass through, for a field read by a function such as `sibling_ref`."""

    reads_as_is = True

    def __init__(self, numeric: bool = False) -> None:
        self._id = IdString(numeric)

    def write(self, value: Any, lookups: Lookups) -> Any:
        return self._id.write(value["id"], lookups)


def sibling_ref(id_key: str, obj_key: str, name: str | Callable[[Mapping[str, Any]], Any] | None = None) -> Callable[..., Any]:
    """A read function: the id at `id_key` of the record, the name from the related object
    at `obj_key` when the provider embeds it (an expanded relation), else a null name."""

    def read(record: Mapping[str, Any], lookups: Lookups) -> Any:
        ident = record.get(id_key)
        if ident is None or ident == "":
            return None
        obj = record.get(obj_key)
        return {"id": str(ident), "name": display_name(obj, name) if obj.__class__ is dict else None}

    return read


class AsId:
    """In a `list_of` shape: the item's value at `key` as a string id (null stays null)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def list_of(key: str, shape: Mapping[str, str | AsId | None]) -> Callable[..., Any]:
    """A read function: the provider's list of objects at `key` as unified objects.

    `shape` maps each unified key to the item's key it reads (`None`: always null, `AsId(k)`:
    a string id), in output order; anything but a list reads as `[]`, non-objects are skipped.
    """
    plain = tuple((out, src) for out, src in shape.items() if src.__class__ is str)
    ids = tuple((out, src.key) for out, src in shape.items() if isinstance(src, AsId))
    template = dict.fromkeys(shape)

    def read(record: Mapping[str, Any], lookups: Lookups) -> Any:
        rows = record.get(key)
        if not rows or rows.__class__ is not list:
            return []
        out = []
        for row in rows:
            if row.__class__ is dict:
                item = template.copy()
                for name, src in plain:
                    item[name] = row.get(src)
                for name, src in ids:
                    value = row.get(src)
                    item[name] = None if value is None else str(value)
                out.append(item)
        return out

    return read


VALUE, KIND = object(), object()


def values_at(kinds: Iterable[tuple[str, str]], shape: Mapping[str, object]) -> Callable[..., Any]:
    """A read function: flat provider keys (`phone1` … `phone5`) as a list of unified objects.

    One object per `(provider key, kind)` whose value is set, in `kinds` order; `shape` maps
    each unified key to `VALUE` (the key's value), `KIND` (its kind) or a constant.
    """
    pairs = tuple(kinds)
    value_at = [name for name, src in shape.items() if src is VALUE]
    kind_at = [name for name, src in shape.items() if src is KIND]
    template = {name: (None if src is VALUE or src is KIND else src) for name, src in shape.items()}

    def read(record: Mapping[str, Any], lookups: Lookups) -> Any:
        out = []
        for key, kind in pairs:
            value = record.get(key)
            if value:
                item = template.copy()
                for name in value_at:
                    item[name] = value
                for name in kind_at:
                    item[name] = kind
                out.append(item)
        return out

    return read


class TypedRef(Converter):
    """One provider slot holding a record of one of several types (a party that is an
    organisation or a person) read by several unified fields, each for its `kind`.

    `type_key` names the type in the nested object (`kind=None`: any type, for a single
    nested record read as a unified list); `many=True` reads the slot as a one-item list (a
    unified list that the provider holds one of) and writes at most one; an empty list writes
    nothing (`SKIP`), so another field of the group may set the slot, or clears the slot
    with `empty_clears=True`.
    """

    def __init__(
        self,
        kind: str | None,
        type_key: str = "type",
        name: str | Callable[[Mapping[str, Any]], Any] | None = None,
        numeric: bool = False,
        many: bool = False,
        too_many: str = "the provider holds one",
        empty_clears: bool = False,
    ) -> None:
        self.kind, self.type_key, self.name, self.many, self.too_many = kind, type_key, name, many, too_many
        self.empty_clears = empty_clears
        self._id = IdString(numeric)
        # Needs no lookups: the mapping compiler inlines it as a one-argument fast path.
        self._read = self.fast_read = self._reader()

    def read(self, value: Any, lookups: Lookups) -> Any:
        return self._read(value)

    def _reader(self) -> Callable[[Any], Any]:
        kind, type_key, many, name = self.kind, self.type_key, self.many, self.name
        namer: Callable[[Any], Any] = name if callable(name) else (lambda obj: display_name(obj, name))

        def read(value: Any) -> Any:
            if value.__class__ is dict and (kind is None or value.get(type_key) == kind):
                ident = value.get("id")
                if ident is not None:
                    ref = {"id": str(ident), "name": namer(value)}
                    return [ref] if many else ref
            return [] if many else None

        return read

    def write(self, value: Any, lookups: Lookups) -> Any:
        if self.many:
            if not value:
                return None if self.empty_clears else SKIP
            if len(value) > 1:
                raise ConversionError(self.too_many)
            value = value[0]
        return {"id": self._id.write(value["id"], lookups)}


class TagNames(Converter):
    """Tags a provider keeps by name ⇄ unified `[{id, name}]` (the id is the name, or the
    provider's tag id when it has one). Items are strings, or objects with the name at `key`
    (and the id at `id_key`); writes send names (or `{id_key: id}` when only an id is given
    and the provider has ids)."""

    def __init__(self, key: str | None = None, id_key: str | None = None, numeric_id: bool = False) -> None:
        self.key, self.id_key = key, id_key
        self._id = IdString(numeric_id)
        self._read = self.fast_read = self._reader()  # no lookups: inlined by the mapping compiler

    def read(self, value: Any, lookups: Lookups) -> Any:
        return self._read(value)

    def _reader(self) -> Callable[[Any], Any]:
        key, id_key = self.key, self.id_key

        def read(value: Any) -> Any:
            if value.__class__ is not list:
                return []
            if key is None:
                return [{"id": t, "name": t} for t in value if t.__class__ is str]
            if id_key is None:
                return [{"id": str(n), "name": n} for t in value if t.__class__ is dict and (n := t.get(key)) is not None]
            return [{"id": str(i), "name": t.get(key)} for t in value if t.__class__ is dict and (i := t.get(id_key)) is not None]

        return read

    def write(self, value: Any, lookups: Lookups) -> Any:
        out: list[Any] = []
        for tag in value or []:
            name = tag.get("name") or (None if self.id_key else tag.get("id"))
            if name:
                item = {self.key: str(name).strip()} if self.key else str(name).strip()
                if item not in out:  # a tag sent twice is attached once
                    out.append(item)
            elif self.id_key:
                out.append({self.id_key: self._id.write(tag["id"], lookups)})
        return out


class CustomFieldList(Converter):
    """Custom fields a provider keeps as a list of `{<definition id>, <value>}` items ⇄ the
    unified object `{name or id: value}`.

    `id_path` finds the definition id in an item (`definition.id`), `value_key` its value; the
    name shown is the one at `name_path` in the item, else from the `lookup` (name → id table,
    read backwards), else the id. Writes accept names (through the lookup) or ids and build
    items with `write_id_path` (default `id_path`); unknown names are a 400 naming the known ones.
    """

    def __init__(
        self,
        id_path: str,
        value_key: str = "value",
        name_path: str | None = None,
        lookup: str | None = None,
        write_id_path: str | None = None,
        numeric: bool = False,
        by_name: bool = True,
    ) -> None:
        self.id_path, self.value_key, self.name_path, self.lookup = id_path, value_key, name_path, lookup
        self.write_id_path = write_id_path or id_path
        self.by_name = by_name
        self._id = IdString(numeric)
        self._id_parts = tuple(id_path.split("."))
        self._name_parts = tuple(name_path.split(".")) if name_path and by_name else ()
        self._names: tuple[Any, dict[str, Any]] = (None, {})
        self.read = self._reader()  # type: ignore[method-assign,assignment]

    @staticmethod
    def _get(item: Any, parts: tuple[str, ...]) -> Any:
        for part in parts:
            item = item.get(part) if item.__class__ is dict else None
        return item

    def _id_names(self, lookups: Lookups) -> dict[str, Any]:
        """id → name from the lookup (name → id), inverted once per lookup table."""
        table = lookups.get(self.lookup) if self.lookup and self.by_name else None
        if not table:
            return {}
        if self._names[0] is not table:
            self._names = (table, {str(v): k for k, v in table.items()})
        return self._names[1]

    def _reader(self) -> Callable[[Any, Lookups], Any]:
        get, id_parts, name_parts, value_key, id_names = (
            self._get,
            self._id_parts,
            self._name_parts,
            self.value_key,
            self._id_names,
        )
        flat = len(id_parts) == 1 and not name_parts and not (self.lookup and self.by_name)
        id_key = id_parts[0]
        id_sub = id_parts[1] if len(id_parts) == 2 else ""
        # the name next to the id in the same nested object (`definition.name`), if any
        name_sub = name_parts[1] if len(name_parts) == 2 and name_parts[0] == id_key else ""
        two_level = bool(id_sub) and (not name_parts or bool(name_sub))

        def read(value: Any, lookups: Lookups) -> Any:
            if value.__class__ is not list:
                return None
            if flat:  # {FIELD_NAME, FIELD_VALUE} items keyed by their own name/id
                return {str(i[id_key]): i.get(value_key) for i in value if i.__class__ is dict and i.get(id_key) is not None}
            names = id_names(lookups)
            out: dict[str, Any] = {}
            for item in value:
                if item.__class__ is not dict:
                    continue
                if two_level:  # `definition.id`, the common case, without a call per item
                    node = item.get(id_key)
                    ident = node.get(id_sub) if node.__class__ is dict else None
                    shown = node.get(name_sub) if name_sub and node.__class__ is dict else None
                else:
                    ident = get(item, id_parts)
                    shown = get(item, name_parts) if name_parts else None
                out[str(shown or names.get(str(ident)) or ident)] = item.get(value_key)
            return out

        return read

    def write(self, value: Any, lookups: Lookups) -> Any:
        if value is None:
            raise ConversionError('cannot be cleared as a whole: send {"<field>": null} for each field to clear')
        ids = lookups.get(self.lookup, {}) if self.lookup else {}
        known = {str(v) for v in ids.values()}
        out = []
        for key, field_value in value.items():
            key = str(key)
            if key in ids:
                ident: Any = ids[key]
            elif key in known or not self.lookup or key.isdigit():
                ident = key
            else:
                raise ConversionError(f"{key!r} is not a custom field here; known fields: {', '.join(sorted(ids)) or 'none'}")
            item: dict[str, Any] = {}
            node = item
            parts = self.write_id_path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = self._id.write(ident, lookups)
            item[self.value_key] = field_value
            out.append(item)
        return out


# --------------------------------------------------------------------------- fields
ReadFn = Callable[[Mapping[str, Any], Lookups], Any]
WriteFn = Callable[[Any, Lookups], Mapping[str, Any]]


@dataclass(frozen=True)
class Field:
    """How one unified field maps to the provider.

    `read` is a dotted path into the provider record, or a function of (record, lookups);
    `write` is a dotted path the (converted) value is written to, or a function returning a
    fragment that is deep-merged into the provider body. `conv` converts in both directions
    when `read`/`write` are paths. `required` names the operations that need the field.
    `remote_fields` are the provider keys a write touches (derived from a `write` path), used to
    name provider field errors back in unified terms; a key ending in `*` is a prefix
    (`metadata_*`). `not_clearable` is why a null is refused for this field (a 400 naming it).
    """

    unified: str
    read: str | ReadFn | None = None
    write: str | WriteFn | None = None
    conv: Converter | None = None
    required: tuple[Op, ...] = ()
    write_ops: tuple[Op, ...] = WRITE_OPS
    remote_fields: tuple[str, ...] = ()
    note: str = ""
    not_clearable: str = ""

    def writes_on(self, op: Op) -> bool:
        return self.write is not None and op in self.write_ops

    def provider_keys(self) -> tuple[str, ...]:
        if self.remote_fields:
            return self.remote_fields
        if isinstance(self.write, str):
            return (self.write.split(".")[0],)
        if isinstance(self.read, str):
            return (self.read.split(".")[0],)
        return ()


# --------------------------------------------------------------------------- endpoints
@dataclass(frozen=True)
class Endpoint:
    """One provider call.

    `path` may hold `{id}` (URL-encoded record id). `query` is static query (or body, for
    `params_in="body"`) merged first. `wrap` wraps a write body (`{"kase": body}`);
    `record_path` finds the record in the answer (`kase`, `data`); `id_in_body` puts the id
    into the body instead of (or as well as) the path (`PUT /Projects` with `PROJECT_ID`).
    `returns` says what a write answers with: the whole record, only an id (at `id_path`),
    or `no_record` (an empty body or a status document; `nothing` is its old name); anything
    short of a record is read back with the `get` endpoint. `records_path` finds a list
    endpoint's records (`kases`, `data`; unset: the answer is the list itself); it replaces
    `Provider.list_path`, which still works. `safe` says
    the call changes nothing and may be retried on a transient failure; by default only a GET
    is (RPC APIs read with POST: they mark their reads `safe=True`).
    """

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    params_in: Literal["query", "body"] = "query"
    wrap: str | None = None
    record_path: str | None = None
    id_in_body: str | None = None
    returns: Literal["record", "id", "no_record", "nothing"] = "record"
    id_path: str | None = None
    safe: bool | None = None
    records_path: str | None = None

    @property
    def retriable(self) -> bool:
        """Whether a transient failure of this call may be retried (never for a write)."""
        return self.method == "GET" if self.safe is None else self.safe


@dataclass(frozen=True)
class ExternalReference:
    """A key of the caller's that a created record can carry and be found by (Planhat's `externalId`).

    On a create with an Idempotency-Key, the engine writes a reference derived from the key to
    `write_path` (unless the body already sets it) and, when the answer is lost, reads
    `lookup` (`{id}` is the reference): found means the create happened, so it completes
    instead of answering an unknown outcome.
    """

    write_path: str
    lookup: Endpoint


# --------------------------------------------------------------------------- pagination
@dataclass(frozen=True)
class Pagination:
    """How the provider pages a list. `style` picks a paginator from the engine's registry.

    Styles: `link_header` (page + size params, next page from an RFC 5988 Link header),
    `cursor` (size param, cursor param, next cursor and has-more at body paths), `offset`
    (offset + limit params, a short page ends), `page_number` (page + size params; a short
    page, or a `last_page_path` value, ends).
    """

    style: Literal["link_header", "cursor", "offset", "page_number"]
    size_param: str | None
    max_size: int
    default_size: int
    page_param: str | None = None
    offset_param: str | None = None
    cursor_param: str | None = None
    next_cursor_path: str | None = None
    has_more_path: str | None = None
    last_page_path: str | None = None
    first_page: int = 1


# --------------------------------------------------------------------------- auth
#: Context keys the engine reads as URLs (overrides of the declared base URL and token URL);
#: they must be http(s) URLs to an allowed origin.
URL_CONTEXT_KEYS = frozenset({"base_url", "token_url"})


@dataclass(frozen=True)
class ContextField:
    """One key of an integrated account's `context` (credentials or instance settings).

    `form` puts the key on the hosted connect page's form (`label` names the input, `where`
    tells the user where to find the value); a secret is a password input. A provider with no
    `form` key is connected by OAuth only.

    `pattern` (a regular expression the whole value must match) is required of a value that
    is templated into a host name (an Insightly pod, a Pipeliner region), so that the origin
    a call goes to stays one of the provider's own. `url` marks a value that is a URL
    (always true for `base_url` and `token_url`).
    """

    name: str
    description: str
    required: bool = True
    secret: bool = False
    default: Any = None
    form: bool = False
    label: str | None = None
    where: str | None = None
    pattern: str | None = None
    url: bool = False

    @property
    def is_url(self) -> bool:
        return self.url or self.name in URL_CONTEXT_KEYS


@dataclass(frozen=True)
class Auth:
    """How requests authenticate. `scheme` picks an auth flow from the outbound registry.

    Schemes: `bearer` (token from `token_key`), `basic` (`username_key`, `password_key`;
    a missing password key means an empty password), `oauth2` (bearer access token that is
    refreshed at `token_url` with the refresh token, rotating it when the provider does),
    `header` (the token from `token_key` in the header `header_name`, with `header_prefix`
    before it; no `Authorization` header).

    `authorize_url` (with `scopes`, joined by `scope_separator`, and `pkce` when the provider
    supports RFC 7636) lets the hosted connect page run the authorization-code flow; the code
    is exchanged at `token_url`.
    """

    scheme: Literal["bearer", "basic", "oauth2", "header"]
    token_key: str = "access_token"
    username_key: str | None = None
    password_key: str | None = None
    token_url: str | None = None
    refresh_margin_s: int = 120
    header_name: str | None = None
    header_prefix: str = ""
    authorize_url: str | None = None
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    pkce: bool = False


@dataclass(frozen=True)
class RateLimitHeaders:
    """The provider's rate-limit headers, normalized to `ratelimit-*` on our answers.

    `reset_kind`: `epoch` (UTC epoch seconds), `seconds` (seconds from now), `datetime`
    (an ISO timestamp).
    """

    limit: str | None = None
    remaining: str | None = None
    reset: str | None = None
    reset_kind: Literal["epoch", "seconds", "datetime"] = "epoch"
    retry_after: str | None = "Retry-After"
    window_s: int | None = None


@dataclass(frozen=True)
class FieldError:
    """A provider validation error about one provider field."""

    remote_field: str
    message: str


@dataclass(frozen=True)
class Errors:
    """How to read the provider's error bodies.

    `message` extracts a human message (default: common keys); `field_errors` extracts
    per-field validation errors, named back to unified fields by the engine.
    """

    message: Callable[[Any], str | None] | None = None
    field_errors: Callable[[Any], list[FieldError]] | None = None


@dataclass(frozen=True)
class NativeFilter:
    """A unified filter the provider applies itself: `build(op, moment)` gives the params."""

    field: str
    ops: tuple[str, ...]
    build: Callable[[str, datetime], Mapping[str, Any]]


#: `Lookup(value=WHOLE_RECORD)`: the lookup keeps each related record whole.
WHOLE_RECORD: None = None


@dataclass(frozen=True)
class Lookup:
    """Reference data read once per account and cached (currencies, custom-field definitions).

    The result is `{key: value}` built from the records at `records_path`, where `value` is a
    key of each record, or `WHOLE_RECORD` (None; the old spelling `""` still works) for the
    record itself; converters and hooks see every lookup of the provider in `lookups`.
    """

    name: str
    endpoint: Endpoint
    records_path: str | None
    key: str
    value: str | None = None
    ttl_s: int = 300


@dataclass(frozen=True)
class ApiSpec:
    """The provider's published specification this declaration is held to.

    The spec itself lives in tests/specs/<provider>/ (the conformance tests read it; the
    runtime does not); this says which one it is, for the coverage table.
    """

    kind: str
    source: str
    official: str


@dataclass(frozen=True)
class Difference:
    """Where the provider's real API differs from Truto's matrix (seed 000), and why."""

    field: str
    op: str
    truto: str
    ours: str
    why: str


class Hooks:
    """Code for what a declaration cannot say; subclass it in the provider's module.

    Every method has a do-nothing default, so a provider overrides only what it needs.
    """

    #: Read the record before an update, so `after_write` can diff relations against it.
    needs_before_update: bool = False

    def endpoints(self) -> Mapping[str, Endpoint]:
        """The provider calls the hooks make beyond the declared ones (checked against the spec)."""
        return {}

    async def after_write(
        self, op: Op, call: ProviderCall, record_id: str, unified: Mapping[str, Any], before: Mapping[str, Any] | None
    ) -> bool:
        """Follow-up calls after a create/update (relations the main call cannot set).

        Returns True when it changed the record, so the engine reads it back.
        """
        return False

    async def before_write(
        self,
        op: Op,
        call: ProviderCall,
        record_id: str | None,
        unified: Mapping[str, Any],
        body: dict[str, Any],
        before: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Adjust the provider body just before a create/update is sent (not on dry runs).

        For what needs the provider's current state, e.g. a read-merge-write of an object the
        provider replaces whole. `before` is the record as read before an update when
        `needs_before_update` is set (else None); the hook may call the provider through `call`.
        An update whose body ends up empty is not sent: the hooks did all there was to do.
        """
        return body

    async def delete(self, call: ProviderCall, record_id: str) -> Any:
        """Override the delete call; return the provider's answer, or NotImplemented."""
        return NotImplemented

    def after_read(self, record: dict[str, Any]) -> dict[str, Any]:
        """Adjust a provider record before mapping (rarely needed)."""
        return record


@dataclass(frozen=True)
class Resource:
    """A unified resource other than projects (users, accounts, contacts, ...) in one provider.

    It says what differs from the provider's projects: its endpoints (list and get; writes only
    where the provider makes them free), its fields, where a list answer holds the records.
    Whatever it leaves unset (`pagination`) is the provider's. `keep` picks the provider records
    that are this resource when one endpoint serves two (Capsule's parties are organisations
    and people): a list skips the others, a get of another answers 404.
    """

    endpoints: Mapping[Op, Endpoint]
    fields: tuple[Field, ...]
    list_path: str | None = None
    pagination: Pagination | None = None
    filters: tuple[NativeFilter, ...] = ()
    lookups: tuple[Lookup, ...] = ()
    keep: Callable[[Mapping[str, Any]], bool] | None = None
    keep_note: str = ""
    required_any: Mapping[Op, Sequence[tuple[str, ...]]] = field(default_factory=dict)
    exclusive: Sequence[tuple[str, ...]] = ()
    create_defaults: Mapping[str, Any] = field(default_factory=dict)
    hooks: Hooks = field(default_factory=Hooks)
    docs_url: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provider:
    """Everything about one provider's API: projects at the top level, other resources in `resources`.

    The engine serves every resource through a `Provider` whose top-level endpoints and fields
    are that resource's (`for_resource`), so one code path maps, validates and pages them all.
    """

    name: str
    label: str
    docs_url: str
    base_url: str
    context: tuple[ContextField, ...]
    auth: Auth
    endpoints: Mapping[Op, Endpoint]
    pagination: Pagination
    fields: tuple[Field, ...]
    #: Old name of `Endpoint.records_path` on the list endpoint (still read when that is unset).
    list_path: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Groups of fields of which at least one is required on an operation.
    required_any: Mapping[Op, Sequence[tuple[str, ...]]] = field(default_factory=dict)
    #: Groups of fields of which at most one may be sent (they write the same provider key).
    exclusive: Sequence[tuple[str, ...]] = ()
    #: Provider-body keys set on create when the mapped body lacks them: a constant, or a
    #: function of (context, lookups) for defaults that depend on the account.
    create_defaults: Mapping[str, Any] = field(default_factory=dict)
    filters: tuple[NativeFilter, ...] = ()
    errors: Errors = field(default_factory=Errors)
    rate_limit: RateLimitHeaders = field(default_factory=RateLimitHeaders)
    lookups: tuple[Lookup, ...] = ()
    differences: tuple[Difference, ...] = ()
    #: What Truto's matrix (seed 000) marks as required on create for this provider, so the
    #: coverage table can show where the provider's real API asks for more or less.
    truto_required_on_create: tuple[str, ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    notes: tuple[str, ...] = ()
    spec: ApiSpec | None = None
    #: The path under the base URL that proxy resource names are relative to (`/entities`
    #: makes `/proxy/Accounts` call `<base>/entities/Accounts`).
    proxy_prefix: str = ""
    #: Unified resources besides projects, by route name (`users`, `accounts`, ...).
    resources: Mapping[str, Resource] = field(default_factory=dict)
    #: Which resource this declaration's top-level endpoints and fields are (set by `for_resource`).
    resource: str = "projects"
    keep: Callable[[Mapping[str, Any]], bool] | None = None
    keep_note: str = ""
    #: Origins of the real API besides those of `base_url` and `auth.token_url` (regional or
    #: renamed hosts an account may set as its `base_url`); `*.` may be a host's first label.
    origins: tuple[str, ...] = ()
    #: How a lost create's outcome can be settled, when the provider lets a record carry a
    #: searchable reference of ours.
    external_reference: ExternalReference | None = None

    def origin_templates(self) -> tuple[str, ...]:
        """Every declared origin, `{key}` host parts still templated."""
        declared = [self.base_url, *([self.auth.token_url] if self.auth.token_url else []), *self.origins]
        return tuple(dict.fromkeys("/".join(t.split("/", 3)[:3]) for t in declared))

    @property
    def form_fields(self) -> tuple[ContextField, ...]:
        """The context keys the hosted connect page asks the user for (API-key connects)."""
        return tuple(c for c in self.context if c.form)

    @property
    def oauth_connect(self) -> bool:
        """Whether the hosted connect page can run this provider's authorization-code flow."""
        return self.auth.scheme == "oauth2" and bool(self.auth.authorize_url and self.auth.token_url)

    def field(self, unified: str) -> Field | None:
        for f in self.fields:
            if f.unified == unified:
                return f
        return None

    @property
    def records_path(self) -> str | None:
        """Where the list endpoint's answer keeps its records."""
        return self.endpoints["list"].records_path or self.list_path if "list" in self.endpoints else self.list_path

    def resource_names(self) -> tuple[str, ...]:
        """Every unified resource this provider serves, projects first."""
        return ("projects", *self.resources)

    def for_resource(self, name: str) -> Provider | None:
        """This provider as seen by one resource (None when it has no such resource)."""
        if name == self.resource:
            return self
        res = self.resources.get(name)
        if res is None:
            return None
        return replace(
            self,
            endpoints=res.endpoints,
            fields=res.fields,
            list_path=res.list_path,
            pagination=res.pagination or self.pagination,
            filters=res.filters,
            lookups=res.lookups,
            required_any=res.required_any,
            exclusive=res.exclusive,
            create_defaults=res.create_defaults,
            hooks=res.hooks,
            differences=(),
            truto_required_on_create=(),
            notes=res.notes,
            docs_url=res.docs_url or self.docs_url,
            resources={},
            resource=name,
            keep=res.keep,
            keep_note=res.keep_note,
        )
