"""Data-building helpers for tests that talk to real gateways."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import ray

from actors.session_actor import actor_name
from inkstep.client import InkstepApi, InkstepClient
from inkstep.settings import Settings
from inkstep.tokens import mint_user_token
from tests.servers import TEST_NAMESPACE, TEST_SECRET


def user_token(user_id: str, plan: str = "pro", teacher: bool = False) -> str:
    return mint_user_token(Settings(secret_key=TEST_SECRET), user_id, plan, teacher)


def session_actor(session_id: str) -> Any:
    """The live actor of a session the test gateways serve (ValueError if there is none)."""
    return ray.get_actor(actor_name(session_id), namespace=TEST_NAMESPACE)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def new_session(base_url: str, teacher: str, lesson_id: str = "circles-101") -> str:
    async with InkstepApi(base_url, user_token(teacher)) as api:
        created = await api.create_session(lesson_id)
    session_id: str = created["session_id"]
    return session_id


async def session_token(base_url: str, user: str, session_id: str, role: str) -> str:
    async with InkstepApi(base_url, user_token(user)) as api:
        _, token = await api.join(session_id, role)
    return token


async def connect(
    ws_url: str, base_url: str, user: str, session_id: str, role: str = "student", **kw: Any
) -> InkstepClient:
    token = await session_token(base_url, user, session_id, role)
    client = InkstepClient(ws_url, token, backoff_base_s=0.05, **kw)
    await client.start()
    return client


@asynccontextmanager
async def teacher_and_student(
    teacher_gw: Any, student_gw: Any
) -> AsyncIterator[tuple[str, InkstepClient, InkstepClient]]:
    """A new session with its teacher on one gateway and a student on another, both live."""
    teacher, student = unique("tea"), unique("stu")
    session_id = await new_session(teacher_gw.url, teacher)
    a = await connect(teacher_gw.ws_url, teacher_gw.url, teacher, session_id, "teacher")
    b = await connect(student_gw.ws_url, student_gw.url, student, session_id)
    try:
        yield session_id, a, b
    finally:
        await a.close()
        await b.close()


def line(x0: float, y0: float, n: int = 20, dx: float = 2.0) -> list[list[float]]:
    return [[x0 + i * dx, y0, 0.5, float(i * 16)] for i in range(n)]


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll an async-side condition without sleeping a fixed time."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)


def comparable(strokes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Strokes as plain data, points as lists (JSON round trips turn tuples into lists)."""
    return {
        k: {**v, "points": [list(p) for p in v["points"]], "style": dict(v["style"])}
        for k, v in strokes.items()
    }
