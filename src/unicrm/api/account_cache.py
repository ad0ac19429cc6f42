"""Integrated accounts (with decrypted context) cached in memory between requests.

Changes made through this process invalidate the entry at once; changes made by another
server process are seen after at most `ttl_s` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from unicrm.store.database import Account, Store


class AccountCache:
    """Account lookups by id, scoped by environment, with a short time-to-live."""

    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Account]] = {}
        self.listeners: list[Callable[[str], None]] = []

    async def get(self, account_id: str, environment_id: str) -> Account | None:
        now = time.monotonic()
        entry = self._entries.get(account_id)
        if entry is not None and entry[0] > now:
            account = entry[1]
        else:
            found = await self.store.get_account(account_id)
            if found is None:
                self._entries.pop(account_id, None)
                return None
            account = found
            self._entries[account_id] = (now + self.ttl_s, account)
        return account if account.environment_id == environment_id else None

    def put(self, account: Account) -> None:
        self._entries[account.id] = (time.monotonic() + self.ttl_s, account)
        self._notify(account.id)

    def forget(self, account_id: str) -> None:
        self._entries.pop(account_id, None)
        self._notify(account_id)

    def _notify(self, account_id: str) -> None:
        for listener in self.listeners:
            listener(account_id)


class StoreGateway:
    """The engine's `AccountGateway`: token refresh and reauth flags through the store."""

    def __init__(self, store: Store, cache: AccountCache) -> None:
        self.store = store
        self.cache = cache

    async def refresh_context(
        self,
        account_id: str,
        needs: Callable[[dict[str, Any]], bool],
        refresh: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        account = await self.store.refresh_account_context(account_id, needs, refresh)
        self.cache.put(account)
        return dict(account.context)

    async def mark_needs_reauth(self, account_id: str, message: str) -> None:
        await self.store.set_account_status(account_id, "needs_reauth", message)
        self.cache.forget(account_id)
