"""What the hosted connect flow keeps: link tokens, OAuth `state`s, integration settings.

Link tokens and states are stored as SHA-256 hashes (the plaintext exists only in the link
and the browser); anything that may hold a credential (context defaults, a PKCE verifier, an
OAuth client secret) is encrypted with the store's secret box. Single use is enforced by the
database: a conditional `UPDATE ... WHERE used_at IS NULL` that only one caller can win.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update

from unicrm.store.database import Store, _now
from unicrm.store.database import _aware_or_none as _aware
from unicrm.store.models import ConnectStateRow, IntegrationSettingsRow, LinkTokenRow

LINK_TOKEN_TTL = timedelta(days=7)
STATE_TTL = timedelta(minutes=15)


def token_hash(token: str) -> str:
    """The stored form of a link token or state nonce."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LinkToken:
    """A link token as stored (its context decrypted)."""

    id: str
    environment_id: str
    tenant_id: str | None
    integrated_account_id: str | None
    integrations: list[str] | None
    redirect_uri: str | None
    context: dict[str, Any]
    persist_previous_context: bool
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    result_account_id: str | None
    #: OAuth scopes to ask for instead of the declared ones (Truto's `scopes`).
    scopes: list[str] | None = None

    @property
    def expired(self) -> bool:
        return self.expires_at <= _now()


@dataclass(frozen=True)
class OAuthState:
    """One OAuth attempt: which link and integration it belongs to, and its PKCE verifier."""

    id: str
    link_token_id: str
    integration: str
    verifier: str | None
    expires_at: datetime
    used_at: datetime | None
    #: The link token it started from, so the pages after the provider can offer "Try again".
    link_token: str | None = None


@dataclass(frozen=True)
class IntegrationSettings:
    """The operator's OAuth app and context defaults for an integration in an environment."""

    integration: str
    client_id: str | None = None
    client_secret: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    context: dict[str, Any] | None = None
    source: str = "database"

    @property
    def has_oauth_app(self) -> bool:
        return bool(self.client_id and self.client_secret)


def settings_from_environment(integration: str) -> IntegrationSettings | None:
    """`UNICRM_OAUTH_<NAME>_CLIENT_ID` / `_CLIENT_SECRET` (and `_AUTHORIZE_URL`, `_TOKEN_URL`)."""
    prefix = f"UNICRM_OAUTH_{integration.upper()}_"
    client_id = os.environ.get(prefix + "CLIENT_ID")
    client_secret = os.environ.get(prefix + "CLIENT_SECRET")
    if not (client_id and client_secret):
        return None
    return IntegrationSettings(
        integration,
        client_id=client_id,
        client_secret=client_secret,
        authorize_url=os.environ.get(prefix + "AUTHORIZE_URL") or None,
        token_url=os.environ.get(prefix + "TOKEN_URL") or None,
        source="environment",
    )


class ConnectStore:
    """Link tokens, OAuth states and integration settings, on the server's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.box = store.secret_box

    # ------------------------------------------------------------------ link tokens
    async def create_link_token(
        self,
        environment_id: str,
        *,
        tenant_id: str | None,
        integrated_account_id: str | None,
        integrations: list[str] | None,
        redirect_uri: str | None,
        context: dict[str, Any],
        persist_previous_context: bool = False,
        ttl: timedelta = LINK_TOKEN_TTL,
        scopes: list[str] | None = None,
    ) -> tuple[str, LinkToken]:
        """A new link token; the plaintext is returned once and only its hash is kept."""
        token = "lt_" + secrets.token_urlsafe(32)
        now = _now()
        values = {
            "id": str(uuid.uuid4()),
            "environment_id": environment_id,
            "token_hash": token_hash(token),
            "tenant_id": tenant_id,
            "integrated_account_id": integrated_account_id,
            "integrations": orjson.dumps(integrations).decode() if integrations is not None else None,
            "scopes": orjson.dumps(scopes).decode() if scopes else None,
            "redirect_uri": redirect_uri,
            "context_encrypted": self.box.encrypt(context),
            "persist_previous_context": persist_previous_context,
            "created_at": now,
            "expires_at": now + ttl,
            "used_at": None,
            "result_account_id": None,
        }
        async with self.store.engine.begin() as conn:
            await conn.execute(insert(LinkTokenRow).values(**values))
        return token, self._link(values)

    def _link(self, row: Any) -> LinkToken:
        def get(key: str) -> Any:
            return row[key] if isinstance(row, dict) else getattr(row, key)

        integrations = get("integrations")
        return LinkToken(
            id=get("id"),
            environment_id=get("environment_id"),
            tenant_id=get("tenant_id"),
            integrated_account_id=get("integrated_account_id"),
            integrations=orjson.loads(integrations) if integrations else None,
            redirect_uri=get("redirect_uri"),
            context=self.box.decrypt(get("context_encrypted")),
            persist_previous_context=bool(get("persist_previous_context")),
            created_at=_aware(get("created_at")) or _now(),
            expires_at=_aware(get("expires_at")) or _now(),
            used_at=_aware(get("used_at")),
            result_account_id=get("result_account_id"),
            scopes=orjson.loads(get("scopes")) if get("scopes") else None,
        )

    async def find_link_token(self, token: str) -> LinkToken | None:
        """The link token with this plaintext, used or not, expired or not (the caller decides)."""
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(LinkTokenRow.__table__).where(LinkTokenRow.token_hash == token_hash(token)))).first()
        return None if row is None else self._link(row)

    async def get_link_token(self, link_id: str) -> LinkToken | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(LinkTokenRow.__table__).where(LinkTokenRow.id == link_id))).first()
        return None if row is None else self._link(row)

    async def consume_link_token(self, link_id: str) -> bool:
        """Use the link up; False if another request used it first or it has expired."""
        now = _now()
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                update(LinkTokenRow)
                .where(LinkTokenRow.id == link_id, LinkTokenRow.used_at.is_(None), LinkTokenRow.expires_at > now)
                .values(used_at=now)
            )
        return bool(result.rowcount)

    async def release_link_token(self, link_id: str) -> None:
        """Undo `consume_link_token` when nothing could be stored after all."""
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(LinkTokenRow)
                .where(LinkTokenRow.id == link_id, LinkTokenRow.result_account_id.is_(None))
                .values(used_at=None)
            )

    async def set_link_result(self, link_id: str, account_id: str) -> None:
        """Remember which account a used link connected."""
        async with self.store.engine.begin() as conn:
            await conn.execute(update(LinkTokenRow).where(LinkTokenRow.id == link_id).values(result_account_id=account_id))

    async def expire_link_token(self, link_id: str) -> None:
        """Make a link expire now (tests and operators revoking a link)."""
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(LinkTokenRow).where(LinkTokenRow.id == link_id).values(expires_at=_now() - timedelta(seconds=1))
            )

    # ------------------------------------------------------------------ OAuth states
    async def create_state(self, link_id: str, integration: str, verifier: str | None, link_token: str) -> str:
        """A new single-use nonce for one authorization attempt (signed by the caller)."""
        nonce = secrets.token_urlsafe(24)
        now = _now()
        async with self.store.engine.begin() as conn:
            await conn.execute(
                insert(ConnectStateRow).values(
                    id=str(uuid.uuid4()),
                    link_token_id=link_id,
                    integration=integration,
                    nonce_hash=token_hash(nonce),
                    verifier_encrypted=self.box.encrypt({"v": verifier, "t": link_token}),
                    created_at=now,
                    expires_at=now + STATE_TTL,
                    used_at=None,
                )
            )
            # Old attempts are of no use to anyone.
            await conn.execute(delete(ConnectStateRow).where(ConnectStateRow.expires_at < now - timedelta(days=1)))
        return nonce

    async def use_state(self, nonce: str) -> tuple[OAuthState | None, str]:
        """Claim a state once: (state, "ok"), or (state or None, "unknown" | "used" | "expired")."""
        digest = token_hash(nonce)
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(ConnectStateRow.__table__).where(ConnectStateRow.nonce_hash == digest))).first()
        if row is None:
            return None, "unknown"
        secret = self.box.decrypt(row.verifier_encrypted) if row.verifier_encrypted else {}
        state = OAuthState(
            row.id,
            row.link_token_id,
            row.integration,
            secret.get("v"),
            _aware(row.expires_at) or _now(),
            _aware(row.used_at),
            secret.get("t"),
        )
        if state.used_at is not None:
            return state, "used"
        if state.expires_at <= _now():
            return state, "expired"
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                update(ConnectStateRow)
                .where(ConnectStateRow.id == row.id, ConnectStateRow.used_at.is_(None))
                .values(used_at=_now())
            )
        return (state, "ok") if result.rowcount else (state, "used")

    # ------------------------------------------------------------------ integration settings
    async def set_settings(
        self,
        environment_id: str,
        integration: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        authorize_url: str | None = None,
        token_url: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> IntegrationSettings:
        """Create or update; a None argument keeps what is stored."""
        current = await self.get_settings(environment_id, integration, fallback=False)
        merged = IntegrationSettings(
            integration,
            client_id=client_id if client_id is not None else current.client_id if current else None,
            client_secret=client_secret if client_secret is not None else current.client_secret if current else None,
            authorize_url=authorize_url if authorize_url is not None else current.authorize_url if current else None,
            token_url=token_url if token_url is not None else current.token_url if current else None,
            context=context if context is not None else current.context if current else None,
        )
        values = {
            "client_id": merged.client_id,
            "client_secret_encrypted": self.box.encrypt({"s": merged.client_secret}) if merged.client_secret else None,
            "authorize_url": merged.authorize_url,
            "token_url": merged.token_url,
            "context_encrypted": self.box.encrypt(merged.context) if merged.context else None,
            "updated_at": _now(),
        }
        table = IntegrationSettingsRow
        async with self.store.engine.begin() as conn:
            if current is None:
                await conn.execute(insert(table).values(environment_id=environment_id, integration=integration, **values))
            else:
                await conn.execute(
                    update(table).where(table.environment_id == environment_id, table.integration == integration).values(**values)
                )
        return merged

    async def get_settings(self, environment_id: str, integration: str, *, fallback: bool = True) -> IntegrationSettings | None:
        """The stored settings; with `fallback`, the OAuth app from environment variables when none is stored."""
        table = IntegrationSettingsRow
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(table.__table__).where(table.environment_id == environment_id, table.integration == integration)
                )
            ).first()
        stored = None
        if row is not None:
            stored = IntegrationSettings(
                integration,
                client_id=row.client_id,
                client_secret=self.box.decrypt(row.client_secret_encrypted).get("s") if row.client_secret_encrypted else None,
                authorize_url=row.authorize_url,
                token_url=row.token_url,
                context=self.box.decrypt(row.context_encrypted) if row.context_encrypted else None,
            )
        if not fallback or (stored is not None and stored.has_oauth_app):
            return stored
        env = settings_from_environment(integration)
        if env is None:
            return stored
        if stored is None:
            return env
        return IntegrationSettings(
            integration,
            client_id=env.client_id,
            client_secret=env.client_secret,
            authorize_url=stored.authorize_url or env.authorize_url,
            token_url=stored.token_url or env.token_url,
            context=stored.context,
            source="environment",
        )

    async def list_settings(self, environment_id: str) -> list[IntegrationSettings]:
        table = IntegrationSettingsRow
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(table.integration).where(table.environment_id == environment_id))).all()
        found = []
        for (name,) in rows:
            settings = await self.get_settings(environment_id, name, fallback=False)
            if settings is not None:
                found.append(settings)
        return found
