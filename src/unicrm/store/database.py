"""The store: environments, API tokens, integrated accounts (encrypted context), idempotency.

SQLite (embedded, zero configuration) or PostgreSQL (shared by many stateless servers), both
through SQLAlchemy's async engine, migrated with Alembic at start-up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Table, delete, event, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from unicrm.store.models import ApiTokenRow, EnvironmentRow, IdempotencyKeyRow, IntegratedAccountRow
from unicrm.store.secrets import SecretBox
from unicrm.store.settings import DatabaseConfigError, default_data_dir, resolve_database_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
IDEMPOTENCY_TTL = timedelta(hours=24)
# Any constant: the lock that serialises migrations of concurrently starting servers.
MIGRATION_LOCK_ID = 7_314_159


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


#: Work done in the same transaction as an account change (the webhook outbox row), so the
#: change and its notification commit together or not at all.
InTransaction = Callable[[AsyncConnection, "Account"], Awaitable[None]]


def _aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)


@dataclass(frozen=True)
class Account:
    """An integrated account with its decrypted context."""

    id: str
    environment_id: str
    integration: str
    tenant_id: str
    context: dict[str, Any]
    status: str
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class IdempotencyHit:
    """An earlier request with the same Idempotency-Key."""

    state: str
    request_hash: str
    status_code: int | None
    body: bytes | None


class Store:
    """All persistent state, behind one async engine."""

    def __init__(self, engine: AsyncEngine, url: str, secret_box: SecretBox) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self.secret_box = secret_box

    @classmethod
    async def open(cls, database_url: str | None = None, data_dir: Path | None = None, *, migrate: bool = True) -> Store:
        """Connect (creating the SQLite file on first run) and migrate to the latest schema."""
        data_dir = data_dir or default_data_dir()
        url = resolve_database_url(database_url, data_dir)
        try:
            engine = cls._engine(url)
        except (ArgumentError, ValueError) as exc:
            raise DatabaseConfigError(
                f"the database URL is malformed ({exc}): fix --database-url or UNICRM_DATABASE_URL"
            ) from None
        store = cls(engine, url, SecretBox.from_environment(data_dir))
        if migrate:
            try:
                await store.migrate()
            except Exception as exc:
                await engine.dispose()
                # aiosqlite answers from its own thread: let a failed connection finish before the loop closes.
                await asyncio.sleep(0.05)
                raise DatabaseConfigError(explain_database_error(exc, url)) from exc
        return store

    @staticmethod
    def _engine(url: str) -> AsyncEngine:
        if url.startswith("sqlite"):
            engine = create_async_engine(url, connect_args={"timeout": 30})

            @event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
                # WAL lets readers and a writer work at once, across processes too.
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

        else:
            engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        return engine

    async def readiness(self) -> dict[str, Any]:
        """Whether this server can serve: the database answers and its schema is at the newest migration."""
        head = _script_head()
        try:
            async with self.engine.connect() as conn:
                current = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
        except Exception as exc:
            return {"ready": False, "database": "unreachable", "detail": explain_database_error(exc, self.url)}
        at_head = current == head
        return {
            "ready": at_head,
            "database": "ok",
            "migration": current,
            "migration_head": head,
            **({} if at_head else {"detail": "the database schema is not at the newest migration; restart a server to migrate"}),
        }

    async def migrate(self) -> None:
        """Upgrade to the latest schema; servers starting at once take turns.

        When the database is already at the latest revision, Alembic is not even imported
        (it is a third of a second of start-up).
        """
        if await self._schema_version() == _script_head():
            return
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            elif self.dialect == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.run_sync(self._upgrade)
            await conn.commit()

    async def _schema_version(self) -> str | None:
        try:
            async with self.engine.connect() as conn:
                return (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            return None

    @staticmethod
    def _upgrade(sync_connection: Any) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "head")

    async def close(self) -> None:
        await self.engine.dispose()

    # ------------------------------------------------------------------ environments & tokens
    async def ensure_environment(self, name: str) -> str:
        """The id of the environment with this name, created if needed."""
        async with self.engine.begin() as conn:
            found = (await conn.execute(select(EnvironmentRow.id).where(EnvironmentRow.name == name))).scalar()
            if found:
                return str(found)
        env_id = str(uuid.uuid4())
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(EnvironmentRow).values(id=env_id, name=name, created_at=_now()))
            return env_id
        except IntegrityError:
            # Another process created it at the same moment.
            async with self.engine.begin() as conn:
                return str((await conn.execute(select(EnvironmentRow.id).where(EnvironmentRow.name == name))).scalar_one())

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def create_api_token(self, environment: str = "default") -> str:
        """A new token for the environment; the plaintext is returned once and never stored."""
        env_id = await self.ensure_environment(environment)
        token = "ucrm_" + secrets.token_urlsafe(32)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(ApiTokenRow).values(
                    id=str(uuid.uuid4()), environment_id=env_id, token_hash=self._hash(token), prefix=token[:9], created_at=_now()
                )
            )
        return token

    async def authenticate_token(self, token: str) -> str | None:
        """The environment id of a valid token, else None."""
        digest = self._hash(token)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(ApiTokenRow.token_hash, ApiTokenRow.environment_id).where(ApiTokenRow.token_hash == digest)
                )
            ).first()
        if row is None or not hmac.compare_digest(row[0], digest):
            return None
        return str(row[1])

    # ------------------------------------------------------------------ accounts
    def _account(self, row: Any) -> Account:
        return Account(
            id=row.id,
            environment_id=row.environment_id,
            integration=row.integration,
            tenant_id=row.tenant_id,
            context=self.secret_box.decrypt(row.context_encrypted),
            status=row.status,
            last_error=row.last_error,
            created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
            version=row.version,
        )

    async def create_account(
        self, environment_id: str, integration: str, tenant_id: str, context: dict[str, Any], *, then: InTransaction | None = None
    ) -> Account:
        now = _now()
        values = {
            "id": str(uuid.uuid4()),
            "environment_id": environment_id,
            "integration": integration,
            "tenant_id": tenant_id,
            "context_encrypted": self.secret_box.encrypt(context),
            "status": "active",
            "last_error": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        account = _values_to_account(values, context)
        async with self.engine.begin() as conn:
            await conn.execute(insert(IntegratedAccountRow).values(**values))
            if then is not None:
                await then(conn, account)
        return account

    async def get_account(self, account_id: str, environment_id: str | None = None) -> Account | None:
        query = select(IntegratedAccountRow.__table__).where(IntegratedAccountRow.id == account_id)
        if environment_id is not None:
            query = query.where(IntegratedAccountRow.environment_id == environment_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else self._account(row)

    async def account_version(self, account_id: str) -> int | None:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(select(IntegratedAccountRow.version).where(IntegratedAccountRow.id == account_id))
            ).scalar()
        return None if value is None else int(value)

    async def list_accounts(
        self,
        environment_id: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        integration: str | None = None,
        tenant_id: str | None = None,
    ) -> tuple[list[Account], str | None]:
        """A page of accounts ordered by (created_at, id); the cursor is opaque."""
        table = cast(Table, IntegratedAccountRow.__table__)
        query = select(table).where(table.c.environment_id == environment_id)
        if integration:
            query = query.where(table.c.integration == integration)
        if tenant_id:
            query = query.where(table.c.tenant_id == tenant_id)
        if cursor:
            try:
                after = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                after_id = str(after["id"])
            except Exception:
                raise ValueError("bad cursor") from None
            query = query.where(table.c.id > after_id)
        query = query.order_by(table.c.id).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        accounts = [self._account(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = base64.urlsafe_b64encode(orjson.dumps({"id": accounts[-1].id})).rstrip(b"=").decode()
        return accounts, next_cursor

    async def update_account(
        self,
        account_id: str,
        environment_id: str,
        *,
        tenant_id: str | None = None,
        context: dict[str, Any] | None = None,
        status: str | None = None,
        last_error: Any = ...,
        then: InTransaction | None = None,
    ) -> Account | None:
        values: dict[str, Any] = {"updated_at": _now(), "version": IntegratedAccountRow.version + 1}
        if tenant_id is not None:
            values["tenant_id"] = tenant_id
        if context is not None:
            values["context_encrypted"] = self.secret_box.encrypt(context)
        if status is not None:
            values["status"] = status
        if last_error is not ...:
            values["last_error"] = last_error
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(IntegratedAccountRow)
                .where(IntegratedAccountRow.id == account_id, IntegratedAccountRow.environment_id == environment_id)
                .values(**values)
            )
            if result.rowcount == 0:
                return None
            if then is not None:
                row = (
                    await conn.execute(select(IntegratedAccountRow.__table__).where(IntegratedAccountRow.id == account_id))
                ).first()
                await then(conn, self._account(row))
        return await self.get_account(account_id, environment_id)

    async def delete_account(self, account_id: str, environment_id: str, *, then: InTransaction | None = None) -> bool:
        async with self.engine.begin() as conn:
            if then is not None:
                row = (
                    await conn.execute(
                        select(IntegratedAccountRow.__table__).where(
                            IntegratedAccountRow.id == account_id, IntegratedAccountRow.environment_id == environment_id
                        )
                    )
                ).first()
                if row is not None:
                    await then(conn, self._account(row))
            result = await conn.execute(
                delete(IntegratedAccountRow).where(
                    IntegratedAccountRow.id == account_id, IntegratedAccountRow.environment_id == environment_id
                )
            )
        return bool(result.rowcount)

    async def set_account_status(
        self, account_id: str, status: str, last_error: str | None, *, then: InTransaction | None = None
    ) -> bool:
        """Set the status; True when it changed (only then does `then` run: one caller announces it)."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(IntegratedAccountRow)
                .where(IntegratedAccountRow.id == account_id, IntegratedAccountRow.status != status)
                .values(status=status, last_error=last_error, updated_at=_now(), version=IntegratedAccountRow.version + 1)
            )
            if changed.rowcount:
                if then is not None:
                    row = (
                        await conn.execute(select(IntegratedAccountRow.__table__).where(IntegratedAccountRow.id == account_id))
                    ).first()
                    await then(conn, self._account(row))
                return True
            # Same status: keep the newest error message.
            await conn.execute(
                update(IntegratedAccountRow).where(IntegratedAccountRow.id == account_id).values(last_error=last_error)
            )
        return False

    async def refresh_account_context(
        self,
        account_id: str,
        needs_refresh: Callable[[dict[str, Any]], bool],
        refresh: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> Account:
        """Refresh an account's credentials once, whatever the number of processes asking.

        The row is locked for the whole refresh (PostgreSQL `FOR UPDATE`; SQLite `BEGIN
        IMMEDIATE`, which serialises writers across processes), the context is re-read under
        the lock, and the new context (a rotated refresh token included) is written in the same
        transaction. A process that waited finds the fresh context and does not refresh again.
        """
        async with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await conn.begin()
            try:
                row = await self._locked_row(conn, account_id)
                if row is None:
                    raise LookupError(f"no integrated account {account_id}")
                account = self._account(row)
                if needs_refresh(dict(account.context)):
                    new_context = await refresh(dict(account.context))
                    await conn.execute(
                        update(IntegratedAccountRow)
                        .where(IntegratedAccountRow.id == account_id)
                        .values(
                            context_encrypted=self.secret_box.encrypt(new_context),
                            status="active",
                            last_error=None,
                            updated_at=_now(),
                            version=IntegratedAccountRow.version + 1,
                        )
                    )
                    account = Account(**{**account.__dict__, "context": new_context, "version": account.version + 1})
                await self._commit(conn)
                return account
            except BaseException:
                await self._rollback(conn)
                raise

    async def _locked_row(self, conn: AsyncConnection, account_id: str) -> Any:
        query = select(IntegratedAccountRow.__table__).where(IntegratedAccountRow.id == account_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return (await conn.execute(query)).first()

    async def _commit(self, conn: AsyncConnection) -> None:
        if self.dialect == "sqlite":
            await conn.exec_driver_sql("COMMIT")
        else:
            await conn.commit()

    async def _rollback(self, conn: AsyncConnection) -> None:
        try:
            if self.dialect == "sqlite":
                await conn.exec_driver_sql("ROLLBACK")
            else:
                await conn.rollback()
        except Exception:
            pass

    # ------------------------------------------------------------------ idempotency
    async def idempotency_begin(
        self, environment_id: str, account_id: str, key: str, method: str, path: str, request_hash: str
    ) -> IdempotencyHit | None:
        """Claim a key (None), or return the earlier request that holds it."""
        table = _idempotency_table()
        cutoff = _now() - IDEMPOTENCY_TTL
        where = (table.c.environment_id == environment_id, table.c.key == key, table.c.method == method, table.c.path == path)
        async with self.engine.begin() as conn:
            await conn.execute(delete(table).where(*where, table.c.created_at < cutoff))
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    table.insert().values(
                        environment_id=environment_id,
                        integrated_account_id=account_id,
                        key=key,
                        method=method,
                        path=path,
                        request_hash=request_hash,
                        state="in_progress",
                        created_at=_now(),
                    )
                )
            return None
        except IntegrityError:
            async with self.engine.connect() as conn:
                row = (await conn.execute(select(table).where(*where))).first()
            if row is None:  # it expired between the two statements: treat as new
                return await self.idempotency_begin(environment_id, account_id, key, method, path, request_hash)
            return IdempotencyHit(row.state, row.request_hash, row.status_code, row.body)

    async def idempotency_finish(
        self, environment_id: str, key: str, method: str, path: str, status_code: int, body: bytes
    ) -> None:
        table = _idempotency_table()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(table)
                .where(
                    table.c.environment_id == environment_id, table.c.key == key, table.c.method == method, table.c.path == path
                )
                .values(state="done", status_code=status_code, body=body)
            )

    async def idempotency_abort(self, environment_id: str, key: str, method: str, path: str) -> None:
        table = _idempotency_table()
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(table).where(
                    table.c.environment_id == environment_id, table.c.key == key, table.c.method == method, table.c.path == path
                )
            )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's `.orig`, causes and contexts)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or item in seen:
            continue
        seen.append(item)
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def explain_database_error(exc: BaseException, url: str) -> str:
    """One line saying what is wrong with the database and what to fix (no password, no traceback)."""
    try:
        parsed = make_url(url)
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}" if parsed.host is not None or "postgres" in url else ""
        database = parsed.database or ""
    except ArgumentError:
        where, database = "", ""
    names = {type(e).__name__ for e in _chain(exc)}
    text_all = " ".join(str(e) for e in _chain(exc)).lower()
    fix = "fix --database-url or UNICRM_DATABASE_URL"
    if url.startswith("sqlite"):
        if "unable to open" in text_all or "readonly" in text_all or "read-only" in text_all:
            return (
                f"cannot open the SQLite database {database!r}: its directory must exist and be writable ({fix}, or --data-dir)"
            )
        return f"the SQLite database {database!r} cannot be used ({_first_line(exc)}): {fix}"
    if "InvalidCatalogNameError" in names or ("database" in text_all and "does not exist" in text_all):
        return f"the database {database!r} does not exist on {where}: create it (createdb {database}) or {fix}"
    if {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"} & names or "authentication failed" in text_all:
        return f"the database at {where} refused the user name or password: {fix}"
    if "gaierror" in names or "name or service not known" in text_all or "nodename nor servname" in text_all:
        return f"cannot resolve the database host in {where}: {fix}"
    if {"ConnectionRefusedError", "ConnectionError", "OSError", "TimeoutError", "CannotConnectNowError"} & names:
        return f"cannot reach the database at {where} ({_first_line(exc)}): is PostgreSQL running there? Otherwise {fix}"
    return f"the database at {where} cannot be used ({_first_line(exc)}): {fix}"


def _first_line(exc: BaseException) -> str:
    root = _chain(exc)[-1]
    message = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
    return message[:200]


def _script_head() -> str | None:
    """The newest revision among the migration scripts (the one no other script revises)."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text()
        rev = re.search(r'^revision = "([^"]+)"', text, re.M)
        down = re.search(r'^down_revision = (?:"([^"]+)"|None)', text, re.M)
        if rev:
            revisions[rev.group(1)] = down.group(1) if down else None
    heads = set(revisions) - {d for d in revisions.values() if d}
    return heads.pop() if len(heads) == 1 else None


def _values_to_account(values: dict[str, Any], context: dict[str, Any]) -> Account:
    return Account(
        id=values["id"],
        environment_id=values["environment_id"],
        integration=values["integration"],
        tenant_id=values["tenant_id"],
        context=dict(context),
        status=values["status"],
        last_error=values["last_error"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        version=values["version"],
    )


def _idempotency_table() -> Table:
    return cast(Table, IdempotencyKeyRow.__table__)
