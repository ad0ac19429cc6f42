"""Bearer API-token authentication, cached so a request costs no database round trip."""

from __future__ import annotations

import hashlib
import time

from starlette.requests import Request

from unicrm.engine.errors import unauthorized
from unicrm.outbound.trace import current_trace
from unicrm.store.database import Store

TOKEN_CACHE_TTL_S = 60.0


class TokenAuthenticator:
    """Resolves `Authorization: Bearer <token>` to an environment id."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # sha256(token) -> (expires, environment id); the plaintext token is never kept.
        self._cache: dict[str, tuple[float, str]] = {}

    async def environment_of(self, request: Request) -> str:
        return await self.environment_for(request.headers.get("authorization", ""))

    async def environment_for(self, header: str) -> str:
        """The environment of an `Authorization` header's token, or a 401."""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized(
                "Missing API token: send the header 'Authorization: Bearer <api token>' "
                "(create a token with `unicrm token create`)."
            )
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[0] > now:
            environment = cached[1]
        else:
            found = await self.store.authenticate_token(token)
            if found is None:
                raise unauthorized("Invalid API token: it is unknown or was revoked. Create one with `unicrm token create`.")
            environment = found
            self._cache[digest] = (now + TOKEN_CACHE_TTL_S, environment)
        trace = current_trace()
        if trace is not None:
            trace.environment_id = environment
        return environment
