"""One pooled aiohttp session per provider host, reused for the server's lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from unicrm.outbound.policy import Destinations, GuardedResolver, OriginPolicy


@dataclass(frozen=True)
class Timeouts:
    """Outbound timeouts in seconds; a provider that exceeds them answers 504."""

    connect: float = 5.0
    read: float = 30.0


class SessionPool:
    """Keeps one `aiohttp.ClientSession` per scheme://host:port.

    A session per host keeps each provider's keep-alive connections together and lets a slow
    provider exhaust only its own connection limit.
    """

    def __init__(self, timeouts: Timeouts | None = None, limit_per_host: int = 64, policy: OriginPolicy | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self.policy = policy or OriginPolicy()
        self._limit_per_host = limit_per_host
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session_for(self, url: str, destinations: Destinations) -> aiohttp.ClientSession:
        """The session for this URL's origin, once the origin is known to be allowed.

        Raises `OutboundRefused` for an origin outside `destinations`. A session of an origin
        the operator did not allow explicitly resolves names through `GuardedResolver`, so it
        can only ever connect to public addresses.
        """
        rule = destinations.check(url)
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit_per_host,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
                resolver=None if rule.explicit else GuardedResolver(),
            )
            # Only the connect timeout lives here: the read timeout is one asyncio.timeout per
            # request (outbound.http.send), because aiohttp's sock_read re-arms a timer on every
            # chunk received, which showed as ~8% of server CPU in a profile.
            timeout = aiohttp.ClientTimeout(total=None, connect=self.timeouts.connect, sock_read=None)
            session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
            # aiohttp silently re-sends PUT and DELETE once when a kept-alive connection drops;
            # our own policy (GETs only, bounded, in outbound.http) must be the only retry.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._sessions[key] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
