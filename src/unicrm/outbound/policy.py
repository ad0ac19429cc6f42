"""Where provider calls may go (the outbound allow-list), checked before and during connection.

A provider's calls go only to the origins its declaration names (the origins of its
`base_url` and OAuth `token_url`, with templated parts such as an Insightly pod checked
against the context field's declared pattern, plus `Provider.origins`), and to the origins the
operator allows (`unicrm serve --allow-origin`, `UNICRM_ALLOW_ORIGINS`). An origin is
`scheme://host[:port]`; `*.` may stand for the first label of the host.

Two checks guard every connection:
1. `Destinations.check(url)` before a request: the URL's origin must be in the set;
2. `GuardedResolver` while connecting: a name that resolves to a loopback, private,
   link-local or otherwise non-public address is refused unless the operator allowed that
   origin explicitly (declared provider origins are public hosts, so a DNS answer pointing one
   at 169.254.169.254 is an attack, not a configuration).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

ENV_ALLOW = "UNICRM_ALLOW_ORIGINS"
DEFAULT_PORTS = {"http": 80, "https": 443}
# A templated host part without a declared pattern must still be one DNS label.
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOW_TO_ALLOW = "start the server with --allow-origin {origin} (or add it to UNICRM_ALLOW_ORIGINS)"


class OriginError(ValueError):
    """A malformed origin or URL (the message says what is wrong)."""


class OutboundRefused(Exception):
    """A request to an origin outside the allow-list, or to an address it may not reach."""

    def __init__(self, origin: str, reason: str) -> None:
        super().__init__(f"{origin}: {reason}")
        self.origin = origin
        self.reason = reason


class RefusedAddress(OSError):
    """Raised by the resolver: the name resolves to an address that is not public."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to the non-public address {address}")
        self.host = host
        self.address = address


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (not loopback/private/link-local/...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return bool(ip.is_global and not ip.is_multicast)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Origin:
    """A URL's origin, normalised: lower-case scheme and host, explicit port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS.get(self.scheme)
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def origin_of(url: str) -> Origin:
    """The origin of an http(s) URL, or `OriginError` saying why it has none."""
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise OriginError("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise OriginError(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise OriginError("must be an http:// or https:// URL")
    if not host:
        raise OriginError("has no host")
    if parts.username is not None or parts.password is not None:
        raise OriginError("must not carry user:password@ (put credentials in their context keys)")
    if not host.isascii():
        raise OriginError("must use an ASCII (punycode) host name")
    return Origin(scheme, host.lower(), port if port is not None else DEFAULT_PORTS[scheme])


@dataclass(frozen=True)
class OriginRule:
    """One allowed origin: a host pattern, a scheme and a port."""

    text: str
    scheme: str
    host: re.Pattern[str]
    port: int
    #: Allowed by the operator: may resolve to private addresses (emulators, on-premise CRMs).
    explicit: bool

    def matches(self, origin: Origin) -> bool:
        return origin.scheme == self.scheme and origin.port == self.port and bool(self.host.fullmatch(origin.host))


def parse_allowed(text: str, *, explicit: bool = True) -> OriginRule:
    """An operator's origin: `scheme://host[:port]`, `*.` allowed as the first host label."""
    raw = text.strip()
    wildcard = "://*." in raw
    probe = raw.replace("://*.", "://wildcard-label.", 1) if wildcard else raw
    origin = origin_of(probe)
    rest = probe.split("://", 1)[1]
    if "/" in rest.rstrip("/") or "?" in rest or "#" in rest:
        raise OriginError("must be scheme://host[:port] without a path")
    host = re.escape(origin.host)
    if wildcard:
        host = LABEL + host[len(re.escape("wildcard-label")) :]
    shown = str(origin).replace("wildcard-label.", "*.", 1)
    return OriginRule(shown, origin.scheme, re.compile(host), origin.port, explicit)


def declared_rule(url_template: str, patterns: Mapping[str, str | None]) -> OriginRule:
    """The origin of a declared URL template, `{key}` host parts matched by their patterns."""
    scheme, _, rest = url_template.partition("://")
    netloc = rest.split("/", 1)[0]
    host, _, port_text = netloc.partition(":")
    regex = ""
    for piece in re.split(r"(\{[a-z_][a-z0-9_]*\})", host.lower()):
        if piece.startswith("{"):
            regex += "(?:" + (patterns.get(piece[1:-1]) or LABEL) + ")"
        elif piece.startswith("*."):
            regex += LABEL + r"\." + re.escape(piece[2:])
        else:
            regex += re.escape(piece)
    scheme = scheme.lower()
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    return OriginRule(f"{scheme}://{netloc}", scheme, re.compile(regex), port, explicit=False)


def render_url(template: str, values: Mapping[str, Any]) -> str:
    """Fill `{key}` in a declared URL; each value is percent-encoded so it stays one part."""

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        text = "" if value is None else str(value)
        if text in (".", ".."):
            text = text.replace(".", "%2E")
        return quote(text, safe="")

    return re.sub(r"\{([a-z_][a-z0-9_]*)\}", fill, template)


def operator_origins(cli: Iterable[str] = (), env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The origins the operator allows: command-line values plus `UNICRM_ALLOW_ORIGINS`."""
    env = os.environ if env is None else env
    from_env = [part.strip() for part in env.get(ENV_ALLOW, "").split(",") if part.strip()]
    return tuple(dict.fromkeys([*cli, *from_env]))


class Destinations:
    """The origins one provider's calls may reach."""

    def __init__(self, label: str, declared: Iterable[OriginRule], operator: Iterable[OriginRule]) -> None:
        self.label = label
        self.declared = tuple(declared)
        self.operator = tuple(operator)
        # `scheme://netloc` text → the rule it passed with. The origin of a URL depends only on
        # that text, so a hit skips the parse (this runs for every provider call).
        self._passed: dict[str, OriginRule] = {}

    def rule_for(self, url: str) -> OriginRule | None:
        origin = origin_of(url)
        for rule in self.operator:
            if rule.matches(origin):
                return rule
        if is_ip_literal(origin.host):
            return None  # declared origins are host names; an address needs the operator
        for rule in self.declared:
            if rule.matches(origin):
                return rule
        return None

    def check(self, url: str) -> OriginRule:
        """The rule that lets this URL through, or `OutboundRefused`."""
        parts = url.split("/", 3)
        prefix = "/".join(parts[:3]) if len(parts) > 3 else None
        if prefix is not None and (hit := self._passed.get(prefix)) is not None:
            return hit
        try:
            origin = origin_of(url)
        except OriginError as exc:
            raise OutboundRefused(url.split("?", 1)[0], f"the URL {exc}") from None
        rule = self.rule_for(url)
        if rule is None:
            raise OutboundRefused(str(origin), self.refusal(str(origin)))
        if prefix is not None and len(self._passed) < 4096:
            self._passed[prefix] = rule
        return rule

    def refusal(self, origin: str) -> str:
        declared = ", ".join(r.text for r in self.declared) or "none"
        return (
            f"{origin} is not an origin of {self.label} (declared: {declared}) nor one the operator allowed; "
            "to send this account's credentials there, " + HOW_TO_ALLOW.format(origin=origin)
        )


class OriginPolicy:
    """The operator's allowed origins; builds each provider's `Destinations`."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = tuple(allowed)
        self.rules = tuple(parse_allowed(a) for a in self.allowed)

    def destinations(self, label: str, declared_templates: Iterable[str], patterns: Mapping[str, str | None]) -> Destinations:
        return Destinations(label, [declared_rule(t, patterns) for t in declared_templates], self.rules)

    def explicitly_allowed(self, url: str) -> bool:
        """True when the operator allowed this URL's origin (private addresses permitted)."""
        try:
            origin = origin_of(url)
        except OriginError:
            return False
        return any(rule.matches(origin) for rule in self.rules)


class GuardedResolver(AbstractResolver):
    """A resolver that refuses names resolving to non-public addresses (SSRF, DNS rebinding)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not is_public(result["host"]):
                raise RefusedAddress(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()
