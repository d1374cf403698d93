"""Database against the real Postgres of the test session; every test uses its own ids."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from inkstep.embedded import EmbeddedPostgres, free_port
from inkstep.lessons import Lesson, parse_lesson
from inkstep.store.database import Database, SessionRow, alembic_config, async_database_url
from inkstep.store.errors import StoreConflict, StoreError, StoreUnavailable


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def make_lesson(lesson_id: str, title: str = "Lines", plan: str = "free") -> Lesson:
    return parse_lesson(
        {
            "id": lesson_id,
            "title": title,
            "required_plan": plan,
            "canvas": {"width": 512, "height": 384},
            "steps": [
                {
                    "id": "s1",
                    "title": "A line",
                    "instruction": "Draw a straight line.",
                    "reference": [{"kind": "line", "x1": 10, "y1": 10, "x2": 200, "y2": 10}],
                    "tolerance_px": 8,
                    "pass": {"accuracy": 70},
                },
                {
                    "id": "s2",
                    "title": "A circle",
                    "instruction": "Draw a circle.",
                    "reference": [{"kind": "circle", "cx": 100, "cy": 100, "r": 40}],
                    "tolerance_px": 10,
                    "pass": {"accuracy": 60, "quality": 20},
                    "weights": {"coverage": 0.5},
                },
            ],
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.close()


async def new_session(db: Database, step_id: str = "s1") -> tuple[str, str]:
    """A fresh lesson and a session of it; returns (session_id, teacher id)."""
    lesson_id, session_id, teacher = new_id("lesson"), new_id("sess"), new_id("user")
    await db.upsert_lesson(make_lesson(lesson_id))
    await db.create_session(session_id, lesson_id, teacher, step_id)
    return session_id, teacher


# --- URLs and connectivity -------------------------------------------------------------


def test_urls_become_asyncpg() -> None:
    socket_url = "postgresql://postgres:@/postgres?host=/tmp/pg/sock"
    converted = async_database_url(socket_url)
    assert converted.drivername == "postgresql+asyncpg"
    assert converted.query == {"host": "/tmp/pg/sock"}
    assert async_database_url("postgres://u:p@h:5433/d").port == 5433
    assert async_database_url("postgresql+psycopg://u@h/d").drivername == "postgresql+asyncpg"
    with pytest.raises(StoreError, match="postgresql"):
        async_database_url("mysql://u@h/d")
    with pytest.raises(StoreError, match="not a database URL"):
        async_database_url("::nonsense::")


async def test_ping_through_the_given_url(db: Database) -> None:
    await db.ping()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody@127.0.0.1:{port}/db",
        "postgresql://nobody@/db?host=/nonexistent/socket/dir",
    ],
)
async def test_unreachable_postgres_is_store_unavailable(url: str) -> None:
    async with Database(url.format(port=free_port()), connect_timeout_s=2) as database:
        with pytest.raises(StoreUnavailable, match="Postgres unavailable while trying to ping"):
            await database.ping()
        with pytest.raises(StoreUnavailable):
            await database.user_plan("anyone")


async def test_postgres_restart_is_unavailable_then_recovers(tmp_path: Path) -> None:
    # Its own server: stopping the shared one would break every other test.
    server = EmbeddedPostgres(tmp_path / "pg").start()
    assert server.url is not None
    database = Database(server.url, connect_timeout_s=2)
    try:
        await database.migrate()
        await database.upsert_user("u", "pro")
        server.stop()
        with pytest.raises(StoreUnavailable):
            await database.user_plan("u")
        server.start()
        # The pool notices its dead connections and reconnects; the data is still there.
        assert await database.user_plan("u") == "pro"
    finally:
        await database.close()
        server.stop()


async def test_killed_connections_are_replaced(db: Database) -> None:
    await db.ping()
    async with db.engine.connect() as conn:
        mine = await conn.scalar(text("SELECT pg_backend_pid()"))
    admin = create_async_engine(db.url, poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = :pid"
                ),
                {"pid": mine},
            )
        assert killed == 1
    finally:
        await admin.dispose()
    user = new_id("user")
    await db.upsert_user(user, "free")
    assert await db.user_plan(user) == "free"


async def test_refused_statement_is_store_error_not_unavailable(db: Database) -> None:
    session_id, user = await new_session(db)
    with pytest.raises(StoreError) as caught:
        await db.record_participant(session_id, user, "teacher", "dancing")
    assert not isinstance(caught.value, StoreUnavailable)


# --- migrations --------------------------------------------------------------------------


async def test_migrate_again_is_a_no_op(db: Database) -> None:
    async with db.engine.connect() as conn:
        tables_sql = text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        before = set((await conn.scalars(tables_sql)).all())
    await db.migrate()
    await db.migrate()
    async with db.engine.connect() as conn:
        after = set((await conn.scalars(tables_sql)).all())
        version = (await conn.scalars(text("SELECT version_num FROM alembic_version"))).all()
    assert after == before
    assert {"users", "subscriptions", "lessons", "sessions", "participants", "results"} < after
    assert "replays" in after
    assert version == ["0001"]


def test_table_definitions_match_the_migrations(database_url: str) -> None:
    """The tables the code queries are exactly what the migrations build (alembic check)."""
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(config, "head")
    command.check(config)  # raises when autogenerate would write a new migration


MIGRATE_SCRIPT = """
import asyncio, sys
from inkstep.store.database import Database

async def main() -> None:
    db = Database(sys.argv[1])
    await db.migrate()
    await db.close()

asyncio.run(main())
"""


@pytest_asyncio.fixture(loop_scope="session")
async def empty_database_url(database_url: str) -> AsyncIterator[str]:
    """A new, empty database on the same server, dropped afterwards."""
    name = f"inkstep_tmp_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(async_database_url(database_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_processes_migrating_a_new_database_at_once(empty_database_url: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", MIGRATE_SCRIPT, empty_database_url, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    errors = [(await p.communicate())[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    async with Database(empty_database_url) as migrated:
        await migrated.upsert_user("u", "free")
        assert await migrated.user_plan("u") == "free"


async def test_database_from_a_newer_version_is_refused(empty_database_url: str) -> None:
    async with Database(empty_database_url) as database:
        await database.migrate()
        async with database.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StoreError, match=r"cannot migrate the database schema.*9999"):
            await database.migrate()


# --- users and plans ---------------------------------------------------------------------


async def test_users_and_plans(db: Database) -> None:
    user = new_id("user")
    assert await db.user_plan(user) is None
    await db.upsert_user(user, "free")
    assert await db.user_plan(user) == "free"
    await db.upsert_user(user, "pro")
    assert await db.user_plan(user) == "pro"
    await db.upsert_user(user, "free")
    assert await db.user_plan(user) == "free"


async def test_subscriptions_raise_the_plan_until_they_expire(db: Database) -> None:
    user, other = new_id("user"), new_id("user")
    await db.upsert_user(user, "free")
    await db.set_subscription(user, "pro", datetime.now(UTC) - timedelta(days=1))
    assert await db.user_plan(user) == "free"
    await db.set_subscription(user, "pro", datetime.now(UTC) + timedelta(days=30))
    assert await db.user_plan(user) == "pro"
    await db.set_subscription(other, "pro", None)
    assert await db.user_plan(other) == "pro"


# --- lessons -----------------------------------------------------------------------------


async def test_lessons_round_trip(db: Database) -> None:
    lesson_id = new_id("lesson")
    assert await db.lesson(lesson_id) is None
    lesson = make_lesson(lesson_id, plan="pro")
    await db.upsert_lesson(lesson)
    assert await db.lesson(lesson_id) == lesson
    renamed = make_lesson(lesson_id, title="Straight lines")
    await db.upsert_lesson(renamed)
    assert await db.lesson(lesson_id) == renamed
    listed = await db.lessons()
    assert [les for les in listed if les.id == lesson_id] == [renamed]
    assert [les.id for les in listed] == sorted(les.id for les in listed)


# --- sessions ----------------------------------------------------------------------------


async def test_session_create_and_read(db: Database) -> None:
    session_id, teacher = await new_session(db)
    row = await db.session(session_id)
    assert isinstance(row, SessionRow)
    assert (row.id, row.created_by, row.step_id, row.last_seq, row.ended_at) == (
        session_id,
        teacher,
        "s1",
        0,
        None,
    )
    assert row.lesson_id.startswith("lesson-")
    assert row.created_at.tzinfo is not None
    assert await db.session(new_id("sess")) is None


async def test_create_session_retry_is_no_op_and_clash_is_conflict(db: Database) -> None:
    session_id, teacher = await new_session(db)
    row = await db.session(session_id)
    assert row is not None
    await db.create_session(session_id, row.lesson_id, teacher, "s1")
    with pytest.raises(StoreConflict, match="already taken"):
        await db.create_session(session_id, row.lesson_id, new_id("user"), "s1")


async def test_create_session_of_unknown_lesson_is_refused(db: Database) -> None:
    with pytest.raises(StoreError, match="upsert_lesson first"):
        await db.create_session(new_id("sess"), new_id("lesson"), new_id("user"), "s1")


async def test_session_progress_never_goes_backwards(db: Database) -> None:
    session_id, _ = await new_session(db)
    assert await db.update_session_progress(session_id, "s1", 40)
    assert await db.update_session_progress(session_id, "s2", 57)
    assert not await db.update_session_progress(session_id, "s1", 41)
    row = await db.session(session_id)
    assert row is not None
    assert (row.step_id, row.last_seq) == ("s2", 57)
    assert not await db.update_session_progress(new_id("sess"), "s1", 1)


async def test_end_session_keeps_the_first_end(db: Database) -> None:
    session_id, _ = await new_session(db)
    await db.end_session(session_id)
    first = await db.session(session_id)
    assert first is not None and first.ended_at is not None
    await db.end_session(session_id)
    again = await db.session(session_id)
    assert again is not None and again.ended_at == first.ended_at


# --- participants ------------------------------------------------------------------------


async def test_participants_are_the_latest_joins(db: Database) -> None:
    session_id, teacher = await new_session(db)
    student, viewer = new_id("user"), new_id("user")
    assert await db.participants(session_id) == []
    await db.record_participant(session_id, teacher, "teacher", "joined")
    await db.record_participant(session_id, student, "student", "joined")
    await db.record_participant(session_id, viewer, "viewer", "joined")
    await db.record_participant(session_id, student, "student", "left")
    now = await db.participants(session_id)
    assert [(p["user_id"], p["role"], p["state"]) for p in now] == [
        (teacher, "teacher", "joined"),
        (viewer, "viewer", "joined"),
    ]
    # rejoining (with another role) puts the user back, in order of their latest join
    await db.record_participant(session_id, student, "viewer", "joined")
    await db.record_participant(session_id, teacher, "teacher", "left")
    now = await db.participants(session_id)
    assert [(p["user_id"], p["role"]) for p in now] == [(viewer, "viewer"), (student, "viewer")]
    assert all(isinstance(p["at"], datetime) for p in now)


# --- results -----------------------------------------------------------------------------


async def test_results_are_idempotent_by_seq(db: Database) -> None:
    session_id, _ = await new_session(db)
    student = new_id("user")
    details = {"coverage": 0.91, "hausdorff_px": 7.5, "notes": ["wobbly"]}
    assert await db.add_result(session_id, student, "s1", 12, 64.5, 40.0, False, {})
    assert await db.add_result(session_id, student, "s1", 30, 88.0, 71.25, True, details)
    # A retried write of seq 30 (say, after an actor restart) changes nothing.
    assert not await db.add_result(session_id, student, "s1", 30, 1.0, 1.0, False, {})
    rows = await db.results(session_id)
    assert [(r["seq"], r["accuracy"], r["passed"]) for r in rows] == [
        (12, 64.5, False),
        (30, 88.0, True),
    ]
    assert rows[1]["details"] == details
    assert rows[1]["user_id"] == student and rows[1]["step_id"] == "s1"
    assert rows[1]["session_id"] == session_id and rows[1]["quality"] == 71.25
    assert await db.results(new_id("sess")) == []


# --- replays -----------------------------------------------------------------------------


async def test_replay_index(db: Database) -> None:
    session_id, _ = await new_session(db)
    assert await db.replay(session_id) is None
    await db.record_replay(session_id, 1200, 1200, 2)
    first = await db.replay(session_id)
    assert first is not None
    assert (first["session_id"], first["last_seq"], first["events"], first["segments"]) == (
        session_id,
        1200,
        1200,
        2,
    )
    # ended, resumed and ended again: the index follows the newest replay
    await db.record_replay(session_id, 1500, 1500, 3)
    second = await db.replay(session_id)
    assert second is not None and (second["last_seq"], second["segments"]) == (1500, 3)
