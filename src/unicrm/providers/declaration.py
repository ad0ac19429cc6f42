"""The vocabulary a provider module uses to declare everything about its API.

A provider module builds one `Provider` from these parts: where the API lives and how it
authenticates, its endpoints, how it pages, how each unified field maps in both directions,
which fields it requires, which filters it honours natively, how its errors and rate-limit
headers read. The engine (`unicrm.engine`) only ever reads these declarations; behaviour a
declaration cannot express goes into a `Hooks` object defined in the provider's own module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    (`metadata_*`).
    """

    unified: str
    read: str | ReadFn | None = None
    write: str | WriteFn | None = None
    conv: Converter | None = None
    required: tuple[Op, ...] = ()
    write_ops: tuple[Op, ...] = WRITE_OPS
    remote_fields: tuple[str, ...] = ()
    note: str = ""

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
    or nothing; anything short of a record is read back with the `get` endpoint. `safe` says
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
    returns: Literal["record", "id", "nothing"] = "record"
    id_path: str | None = None
    safe: bool | None = None

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
    refreshed at `token_url` with the refresh token, rotating it when the provider does).

    `authorize_url` (with `scopes`, joined by `scope_separator`, and `pkce` when the provider
    supports RFC 7636) lets the hosted connect page run the authorization-code flow; the code
    is exchanged at `token_url`.
    """

    scheme: Literal["bearer", "basic", "oauth2"]
    token_key: str = "access_token"
    username_key: str | None = None
    password_key: str | None = None
    token_url: str | None = None
    refresh_margin_s: int = 120
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


@dataclass(frozen=True)
class Lookup:
    """Reference data read once per account and cached (currencies, custom-field definitions).

    The result is `{key: value}` built from the records at `records_path`; converters and
    hooks see every lookup of the provider in their `lookups` argument.
    """

    name: str
    endpoint: Endpoint
    records_path: str | None
    key: str
    value: str
    ttl_s: int = 300


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
