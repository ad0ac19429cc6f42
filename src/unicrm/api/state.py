"""What every request handler shares: the store, the engine, caches, the token check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from unicrm.api.account_cache import AccountCache, StoreGateway
from unicrm.api.auth import TokenAuthenticator
from unicrm.api.webhook_worker import Events, WebhookSender
from unicrm.engine.cursor import CursorCodec
from unicrm.engine.operations import Engine
from unicrm.engine.pacing import DEFAULT_MAX_WAIT_S
from unicrm.engine.proxy import Proxy
from unicrm.outbound.policy import OriginPolicy
from unicrm.outbound.pool import SessionPool, Timeouts
from unicrm.providers import all_providers
from unicrm.store.connect import ConnectStore
from unicrm.store.database import Store
from unicrm.store.webhooks import WebhookStore


@dataclass
class AppState:
    """The server's long-lived parts, built once at start-up."""

    store: Store
    engine: Engine
    accounts: AccountCache
    auth: TokenAuthenticator
    pool: SessionPool
    connect: ConnectStore
    webhooks: WebhookStore
    sender: WebhookSender
    events: Events
    proxy: Proxy = field(init=False)

    def __post_init__(self) -> None:
        self.proxy = Proxy(self.engine)

    @classmethod
    def build(
        cls,
        store: Store,
        cursor_secret: bytes,
        timeouts: Timeouts | None = None,
        policy: OriginPolicy | None = None,
        webhook_private_targets: bool = False,
        stream_max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> AppState:
        pool = SessionPool(timeouts, policy=policy)
        accounts = AccountCache(store)
        webhooks = WebhookStore(store)
        sender = WebhookSender(webhooks, policy=policy, private_targets=webhook_private_targets)
        events = Events(webhooks, sender)
        gateway = StoreGateway(store, accounts, events)
        engine = Engine(all_providers(), pool, gateway, CursorCodec(cursor_secret), stream_max_wait_s=stream_max_wait_s)
        accounts.listeners.append(engine.forget_account)
        return cls(
            store=store,
            engine=engine,
            accounts=accounts,
            auth=TokenAuthenticator(store),
            pool=pool,
            connect=ConnectStore(store),
            webhooks=webhooks,
            sender=sender,
            events=events,
        )

    async def close(self) -> None:
        await self.sender.stop()
        await self.accounts.stop()
        await self.pool.close()
        await self.store.close()


def derive_key(master: bytes, purpose: str) -> bytes:
    """A purpose-specific key from the server secret (so cursors and storage use different keys)."""
    return hashlib.sha256(purpose.encode() + b"\x00" + master).digest()
