"""Webhook endpoints and the delivery outbox.

An event becomes one row per subscribed endpoint, its body fixed at that moment (so every
retry is signed over the same bytes). Any server process may send: it claims due rows for a
while (PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED`, SQLite one atomic `UPDATE` that only
one writer can run at a time), so two processes never send the same row at once; a claim
that is not settled (the process died) lapses and the row is due again. A row is `delivered`
when the receiver answered 2xx, `failed` after the last attempt.
"""

from __future__ import annotations

import builtins
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from unicrm.store.database import Store, _now
from unicrm.store.database import _aware_or_none as _aware
from unicrm.store.models import WebhookDeliveryRow, WebhookRow

EVENT_TYPES = (
    "integrated_account:created",
    "integrated_account:updated",
    "integrated_account:active",
    "integrated_account:authentication_error",
    "integrated_account:deleted",
)
MAX_ATTEMPTS = 8
CLAIM_FOR = timedelta(seconds=60)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def backoff(attempts: int) -> timedelta:
    """Delay before attempt `attempts + 1`: 2 s, 4 s, 8 s, … capped at one hour."""
    return timedelta(seconds=min(3600, 2**attempts))


@dataclass(frozen=True)
class Webhook:
    id: str
    environment_id: str
    target_url: str
    secret: str
    event_types: list[str] | None
    is_active: bool
    created_at: datetime
    updated_at: datetime

    def document(self, *, with_secret: bool = False) -> dict[str, Any]:
        """Truto's webhook object; the secret only when just created."""
        out: dict[str, Any] = {
            "id": self.id,
            "target_url": self.target_url,
            "is_active": self.is_active,
            "event_types": self.event_types or list(EVENT_TYPES),
            "environment_id": self.environment_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if with_secret:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook_id: str
    target_url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes
    attempts: int


class WebhookStore:
    """Endpoints and deliveries, on the server's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.box = store.secret_box

    def _webhook(self, row: Any) -> Webhook:
        return Webhook(
            id=row.id,
            environment_id=row.environment_id,
            target_url=row.target_url,
            secret=str(self.box.decrypt(row.secret_encrypted).get("s", "")),
            event_types=orjson.loads(row.event_types) if row.event_types else None,
            is_active=bool(row.is_active),
            created_at=_aware(row.created_at) or _now(),
            updated_at=_aware(row.updated_at) or _now(),
        )

    # ------------------------------------------------------------------ endpoints
    async def create(
        self, environment_id: str, target_url: str, event_types: list[str] | None, is_active: bool = True
    ) -> Webhook:
        now = _now()
        secret = secrets.token_hex(32)
        values = {
            "id": str(uuid.uuid4()),
            "environment_id": environment_id,
            "target_url": target_url,
            "secret_encrypted": self.box.encrypt({"s": secret}),
            "event_types": orjson.dumps(event_types).decode() if event_types else None,
            "is_active": is_active,
            "created_at": now,
            "updated_at": now,
        }
        async with self.store.engine.begin() as conn:
            await conn.execute(insert(WebhookRow).values(**values))
        return Webhook(str(values["id"]), environment_id, target_url, secret, event_types or None, is_active, now, now)

    async def get(self, webhook_id: str, environment_id: str) -> Webhook | None:
        query = select(WebhookRow.__table__).where(WebhookRow.id == webhook_id, WebhookRow.environment_id == environment_id)
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else self._webhook(row)

    async def all(self, environment_id: str, conn: AsyncConnection | None = None) -> builtins.list[Webhook]:
        query = select(WebhookRow.__table__).where(WebhookRow.environment_id == environment_id).order_by(WebhookRow.created_at)
        if conn is not None:
            return [self._webhook(r) for r in (await conn.execute(query)).all()]
        async with self.store.engine.connect() as own:
            rows = (await own.execute(query)).all()
        return [self._webhook(r) for r in rows]

    async def update(
        self, webhook_id: str, environment_id: str, *, target_url: str | None, event_types: Any, is_active: bool | None
    ) -> Webhook | None:
        values: dict[str, Any] = {"updated_at": _now()}
        if target_url is not None:
            values["target_url"] = target_url
        if event_types is not ...:
            values["event_types"] = orjson.dumps(event_types).decode() if event_types else None
        if is_active is not None:
            values["is_active"] = is_active
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(WebhookRow)
                .where(WebhookRow.id == webhook_id, WebhookRow.environment_id == environment_id)
                .values(**values)
            )
        return await self.get(webhook_id, environment_id)

    async def delete(self, webhook_id: str, environment_id: str) -> bool:
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                delete(WebhookRow).where(WebhookRow.id == webhook_id, WebhookRow.environment_id == environment_id)
            )
        return bool(result.rowcount)

    # ------------------------------------------------------------------ outbox
    async def enqueue(
        self, environment_id: str, event_type: str, payload: dict[str, Any], conn: AsyncConnection | None = None
    ) -> int:
        """One delivery row per active endpoint subscribed to this event; returns how many.

        With `conn`, inside that transaction (the account change's): both commit or neither.
        """
        hooks = [
            w for w in await self.all(environment_id, conn) if w.is_active and (not w.event_types or event_type in w.event_types)
        ]
        if not hooks:
            return 0
        now = _now()
        event_id = str(uuid.uuid4())
        rows = []
        for hook in hooks:
            body = {
                "id": event_id,
                "event": event_type,
                "payload": payload,
                "environment_id": environment_id,
                "created_at": iso(now),
                "webhook_id": hook.id,
            }
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "webhook_id": hook.id,
                    "environment_id": environment_id,
                    "event_id": event_id,
                    "event_type": event_type,
                    "body": orjson.dumps(body).decode(),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "locked_until": None,
                    "claim": None,
                    "last_status": None,
                    "last_error": None,
                    "created_at": now,
                    "delivered_at": None,
                }
            )
        if conn is not None:
            await conn.execute(insert(WebhookDeliveryRow), rows)
            return len(rows)
        async with self.store.engine.begin() as own:
            await own.execute(insert(WebhookDeliveryRow), rows)
        return len(rows)

    async def claim(self, limit: int = 20) -> builtins.list[Delivery]:
        """Due deliveries, claimed by this process for `CLAIM_FOR`."""
        now = _now()
        token = str(uuid.uuid4())
        table = WebhookDeliveryRow
        due = and_(
            table.status == "pending",
            table.next_attempt_at <= now,
            or_(table.locked_until.is_(None), table.locked_until < now),
        )
        claim_values = {"claim": token, "locked_until": now + CLAIM_FOR}
        # Every process polls: a read first, so an empty outbox never takes SQLite's write lock.
        async with self.store.engine.connect() as conn:
            if (await conn.execute(select(table.id).where(due).limit(1))).first() is None:
                return []
        async with self.store.engine.begin() as conn:
            if self.store.dialect == "postgresql":
                ids = (
                    (
                        await conn.execute(
                            select(table.id)
                            .where(due)
                            .order_by(table.next_attempt_at)
                            .limit(limit)
                            .with_for_update(skip_locked=True)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return []
                await conn.execute(update(table).where(table.id.in_(ids)).values(**claim_values))
            else:
                # SQLite runs one writer at a time, so this UPDATE is the claim.
                chosen = select(table.id).where(due).order_by(table.next_attempt_at).limit(limit).scalar_subquery()
                result = await conn.execute(update(table).where(table.id.in_(chosen), due).values(**claim_values))
                if not result.rowcount:
                    return []
            rows = (
                await conn.execute(
                    select(table.__table__, WebhookRow.target_url, WebhookRow.secret_encrypted)
                    .join(WebhookRow, WebhookRow.id == table.webhook_id)
                    .where(table.claim == token)
                )
            ).all()
        return [
            Delivery(
                id=r.id,
                webhook_id=r.webhook_id,
                target_url=r.target_url,
                secret=str(self.box.decrypt(r.secret_encrypted).get("s", "")),
                event_id=r.event_id,
                event_type=r.event_type,
                body=r.body.encode(),
                attempts=r.attempts,
            )
            for r in rows
        ]

    async def settle(self, delivery: Delivery, *, ok: bool, status: int | None, error: str | None) -> None:
        """Record an attempt: delivered, due again after the backoff, or failed for good."""
        attempts = delivery.attempts + 1
        now = _now()
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "last_error": error,
            "locked_until": None,
            "claim": None,
        }
        if ok:
            values.update(status="delivered", delivered_at=now)
        elif attempts >= MAX_ATTEMPTS:
            values.update(status="failed")
        else:
            values.update(next_attempt_at=now + backoff(attempts))
        async with self.store.engine.begin() as conn:
            await conn.execute(update(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery.id).values(**values))

    async def deliveries(self, webhook_id: str, limit: int = 50) -> builtins.list[dict[str, Any]]:
        """The most recent deliveries of an endpoint and their outcome."""
        table = WebhookDeliveryRow
        query = select(table.__table__).where(table.webhook_id == webhook_id).order_by(table.created_at.desc()).limit(limit)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                "id": r.id,
                "event_id": r.event_id,
                "event": r.event_type,
                "status": r.status,
                "attempts": r.attempts,
                "last_status_code": r.last_status,
                "last_error": r.last_error,
                "next_attempt_at": iso(_aware(r.next_attempt_at)) if r.status == "pending" else None,
                "created_at": iso(_aware(r.created_at)),
                "delivered_at": iso(_aware(r.delivered_at)),
            }
            for r in rows
        ]
