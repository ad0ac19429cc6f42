"""Integrated accounts (with decrypted context) cached in memory between requests.

A request then costs no database round trip for its account. The cache stays correct when an
account changes:
- in this process, the change invalidates the entry at once;
- in other processes sharing PostgreSQL, every change is announced with `NOTIFY
  unicrm_accounts, '<id>'` and each process `LISTEN`s and drops the entry;
- with SQLite (processes on one machine), or if the listener connection is lost, an entry lives
  at most `ttl_s` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from unicrm.store.database import Account, Store

if TYPE_CHECKING:
    from unicrm.api.webhook_worker import Events

log = logging.getLogger("unicrm.accounts")
CHANNEL = "unicrm_accounts"


class AccountCache:
    """Account lookups by id, scoped by environment."""

    def __init__(self, store: Store, ttl_s: float = 2.0, listened_ttl_s: float = 60.0) -> None:
        self.store = store
        self._ttl_s = ttl_s
        # With a live LISTEN connection, entries can live much longer: changes are pushed.
        self._listened_ttl_s = listened_ttl_s
        self._listening = False
        self._listener: Any = None
        self._entries: dict[str, tuple[float, Account]] = {}
        self._loading: dict[str, asyncio.Future[Account | None]] = {}
        # Bumped by every invalidation, so a read that started before one is not cached after it.
        self._generation = 0
        self.listeners: list[Callable[[str], None]] = []

    @property
    def ttl_s(self) -> float:
        return self._listened_ttl_s if self._listening else self._ttl_s

    async def start(self) -> None:
        """Listen for account changes from other processes (PostgreSQL only)."""
        if self.store.dialect != "postgresql":
            return
        try:
            import asyncpg

            dsn = self.store.url.replace("postgresql+asyncpg://", "postgresql://", 1)
            self._listener = await asyncpg.connect(dsn)
            await self._listener.add_listener(CHANNEL, self._on_notify)
            self._listener.add_termination_listener(self._on_lost)
            self._listening = True
        except Exception:
            log.warning("cannot LISTEN for account changes; cached accounts expire after %.0f s", self._ttl_s, exc_info=True)
            self._listening = False

    async def stop(self) -> None:
        self._listening = False
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._drop(payload)

    def _on_lost(self, connection: Any) -> None:
        self._listening = False
        self._generation += 1
        self._entries.clear()

    async def get(self, account_id: str, environment_id: str) -> Account | None:
        entry = self._entries.get(account_id)
        if entry is not None and entry[0] > time.monotonic():
            account: Account | None = entry[1]
        else:
            # One database read per account at a time: when an entry expires under load, the
            # requests that arrive meanwhile wait for that read instead of each sending their own.
            loading = self._loading.get(account_id)
            if loading is None:
                loading = asyncio.ensure_future(self._load(account_id, self._generation))
                self._loading[account_id] = loading
                loading.add_done_callback(lambda done: self._forget_load(account_id, done))
            account = await asyncio.shield(loading)
        if account is None:
            return None
        return account if account.environment_id == environment_id else None

    def _forget_load(self, account_id: str, done: asyncio.Future[Account | None]) -> None:
        if self._loading.get(account_id) is done:
            del self._loading[account_id]

    async def _load(self, account_id: str, generation: int) -> Account | None:
        found = await self.store.get_account(account_id)
        # A change announced while the read was under way may have been read before it: keep
        # the answer for this request only, and let the next one read again.
        if generation == self._generation:
            if found is None:
                self._entries.pop(account_id, None)
            else:
                self._entries[account_id] = (time.monotonic() + self.ttl_s, found)
        return found

    async def changed(self, account: Account | str) -> None:
        """An account was changed or deleted here: update this process and tell the others."""
        account_id = account if isinstance(account, str) else account.id
        if isinstance(account, str):
            self._drop(account_id)
        else:
            self._generation += 1
            self._loading.pop(account_id, None)
            self._entries[account_id] = (time.monotonic() + self.ttl_s, account)
            self._notify_local(account_id)
        if self.store.dialect == "postgresql":
            async with self.store.engine.begin() as conn:
                await conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": account_id})

    def _drop(self, account_id: str) -> None:
        self._generation += 1
        self._loading.pop(account_id, None)
        self._entries.pop(account_id, None)
        self._notify_local(account_id)

    def _notify_local(self, account_id: str) -> None:
        for listener in self.listeners:
            listener(account_id)


class StoreGateway:
    """The engine's `AccountGateway`: token refresh and reauth flags through the store."""

    def __init__(self, store: Store, cache: AccountCache, events: Events | None = None) -> None:
        self.store = store
        self.cache = cache
        self.events = events
        self._locks: dict[str, asyncio.Lock] = {}

    async def refresh_context(
        self,
        account_id: str,
        needs: Callable[[dict[str, Any]], bool],
        refresh: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        # One refresh at a time per account in this process (the store serialises processes),
        # so a burst of requests on an expired token queues here instead of in the database.
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            account = await self.store.refresh_account_context(account_id, needs, refresh)
        await self.cache.changed(account)
        return dict(account.context)

    async def mark_needs_reauth(self, account_id: str, message: str) -> None:
        then = None
        if self.events is not None:
            # Only the request that flips the status announces it (Truto's event name), in the
            # same transaction as the flip.
            from unicrm.api.admin import account_document
            from unicrm.providers import all_providers

            then = self.events.on(
                "integrated_account:authentication_error",
                lambda a: account_document(a, all_providers().get(a.integration)),
            )
        changed = await self.store.set_account_status(account_id, "needs_reauth", message, then=then)
        await self.cache.changed(account_id)
        if changed and self.events is not None:
            self.events.wake()
