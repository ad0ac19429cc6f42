"""Sends account events to the operator's webhook endpoints, from the database outbox.

Every server process runs one sender. It claims due deliveries (see `store.webhooks`), POSTs
each body signed two ways, and records the outcome; a 2xx answer settles a delivery, anything
else (or no answer within the timeout) schedules a retry with exponential backoff. An event
emitted in this process wakes the sender at once; other processes find it on their next poll.

Signatures (the endpoint's secret as the HMAC key):
- `X-Truto-Signature: format=sha256,v=<base64 HMAC-SHA256 of the body>` (what receivers
  written for Truto verify);
- `X-Unicrm-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` with the same
  `t` in `X-Unicrm-Timestamp`, so a receiver can refuse replays older than a few minutes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection

from unicrm.outbound.policy import GuardedResolver, OriginPolicy, RefusedAddress
from unicrm.store.database import Account, InTransaction
from unicrm.store.webhooks import Delivery, WebhookStore

log = logging.getLogger("unicrm.webhooks")
SEND_TIMEOUT_S = 10.0


def signature_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The signing headers of one delivery attempt."""
    moment = int(time.time()) if timestamp is None else timestamp
    key = secret.encode()
    plain = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    stamped = hmac.new(key, f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Truto-Signature": f"format=sha256,v={plain}",
        "X-Unicrm-Signature": f"t={moment},v1={stamped}",
        "X-Unicrm-Timestamp": str(moment),
    }


def verify_signature(secret: str, body: bytes, header: str, *, now: float | None = None, tolerance_s: int = 300) -> bool:
    """Check an `X-Unicrm-Signature` header (for receivers written in Python, and the tests)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        moment = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - moment) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookSender:
    """The per-process delivery loop.

    An endpoint may only resolve to public addresses (like provider calls: no SSRF into the
    server's network) unless the operator allowed its origin (`--allow-origin`) or private
    targets altogether (`private_targets`, env `UNICRM_WEBHOOK_PRIVATE_TARGETS=1`).
    """

    def __init__(
        self, webhooks: WebhookStore, poll_s: float = 1.0, policy: OriginPolicy | None = None, private_targets: bool = False
    ) -> None:
        self.webhooks = webhooks
        self.poll_s = poll_s
        self.policy = policy or OriginPolicy()
        self.private_targets = private_targets
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None

    def allows_private(self, url: str) -> bool:
        return self.private_targets or self.policy.explicitly_allowed(url)

    async def start(self, *, run_loop: bool = True) -> None:
        """Open the HTTP sessions and (unless `run_loop` is false: tests call `run_once`) start the loop."""
        timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT_S)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._guarded = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(resolver=GuardedResolver()))
        if run_loop:
            self._task = asyncio.create_task(self._run(), name="unicrm-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for session in (self._session, self._guarded):
            if session is not None:
                await session.close()
        self._session = self._guarded = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not end the loop; the rows stay in the outbox.
                log.warning("webhook delivery pass failed; retrying", exc_info=True)
                sent = 0
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim and send one batch; returns how many were attempted."""
        batch = await self.webhooks.claim()
        if batch:
            await asyncio.gather(*(self._deliver(d) for d in batch))
        return len(batch)

    async def _deliver(self, delivery: Delivery) -> None:
        session = self._session if self.allows_private(delivery.target_url) else self._guarded
        assert session is not None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "unicrm",
            "X-Unicrm-Event-Id": delivery.event_id,
            "X-Unicrm-Event": delivery.event_type,
            **signature_headers(delivery.secret, delivery.body),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with session.post(delivery.target_url, data=delivery.body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                await resp.read()
            if not 200 <= status < 300:
                error = f"the endpoint answered HTTP {status}"
        except RefusedAddress:
            error = "refused: the endpoint resolves to a non-public address (allow its origin with --allow-origin)"
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, RefusedAddress) or "non-public" in str(exc)
            error = (
                "refused: the endpoint resolves to a non-public address (allow its origin with --allow-origin)"
                if refused
                else f"no answer from the endpoint ({type(exc).__name__})"
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"no answer from the endpoint ({type(exc).__name__})"
        await self.webhooks.settle(delivery, ok=error is None, status=status, error=error)


class Events:
    """Account events: written to the outbox, then the sender is woken.

    `on(...)` gives the store a callback that writes the outbox rows in the account change's own
    transaction (the change and its event commit together); call `wake()` after the commit.
    """

    def __init__(self, webhooks: WebhookStore, sender: WebhookSender | None) -> None:
        self.webhooks = webhooks
        self.sender = sender

    def on(self, event_type: str, document: Callable[[Account], dict[str, Any]]) -> InTransaction:
        async def write(conn: AsyncConnection, account: Account) -> None:
            await self.webhooks.enqueue(account.environment_id, event_type, document(account), conn)

        return write

    def wake(self) -> None:
        if self.sender is not None:
            self.sender.wake()
