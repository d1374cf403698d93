"""REST routes: identity, lessons, sessions, session tokens, replays, results, health."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import ApiError
from gateway.services import Services, SessionNotFound
from inkstep.lessons import Lesson
from inkstep.protocol import ID_PATTERN
from inkstep.replay import replay_lines
from inkstep.settings import Settings
from inkstep.store.blob import blob_store_for
from inkstep.store.database import Database
from inkstep.store.streams import SessionLog
from inkstep.tokens import TokenError, UserClaims, mint_session_token, mint_user_token
from inkstep.tokens import verify_user_token as verify

router = APIRouter()


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_user(request: Request, services: ServicesDep) -> UserClaims:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <user token>")
    try:
        user = verify(services.settings, header[7:].strip())
    except TokenError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None
    assert services.db is not None
    return await effective_user(services.settings, services.db, user)


async def effective_user(settings: Settings, db: Database, user: UserClaims) -> UserClaims:
    """The user with the plan that counts: the token's claim, or Postgres in production."""
    if settings.plans_from == "token":
        await db.upsert_user(user.user_id, user.plan)
        return user
    plan = await db.user_plan(user.user_id) or "free"
    return UserClaims(user.user_id, plan, user.teacher)


UserDep = Annotated[UserClaims, Depends(current_user)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionCreate(Strict):
    lesson_id: str = Field(pattern=ID_PATTERN)


class JoinRequest(Strict):
    role: Literal["teacher", "student", "viewer"] = "student"


class LocalSignIn(Strict):
    name: str = Field(min_length=1, max_length=40)


# ---- identity ---------------------------------------------------------------------------


@router.get("/v1/config")
async def client_config(services: ServicesDep) -> dict[str, Any]:
    return {"local_sign_in": services.settings.local_sign_in}


@router.post("/v1/auth/local")
async def local_sign_in(body: LocalSignIn, services: ServicesDep) -> dict[str, Any]:
    """Sign in by name: only for the embedded setup (or when enabled in settings)."""
    if not services.settings.local_sign_in:
        raise ApiError(403, "forbidden", "local sign-in is disabled on this server")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", body.name.strip()).strip("-")[:24] or "user"
    user_id = f"{slug}-{uuid.uuid4().hex[:6]}"
    token = mint_user_token(services.settings, user_id, plan="pro", teacher=True)
    return {"token": token, "user_id": user_id}


# ---- lessons ----------------------------------------------------------------------------


def _allowed(user: UserClaims, lesson: Lesson) -> bool:
    return lesson.required_plan == "free" or user.plan == "pro"


@router.get("/v1/lessons")
async def list_lessons(services: ServicesDep, user: UserDep) -> list[dict[str, Any]]:
    assert services.db is not None
    return [lesson.summary() for lesson in await services.db.lessons()]


@router.get("/v1/lessons/{lesson_id}")
async def get_lesson(lesson_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    lesson = await services.lesson(lesson_id)
    if lesson is None:
        raise ApiError(404, "not_found", f"no lesson {lesson_id!r}")
    return lesson.to_json_dict()


# ---- sessions ---------------------------------------------------------------------------


def _check_plan(user: UserClaims, lesson: Lesson) -> None:
    if not _allowed(user, lesson):
        raise ApiError(
            403, "forbidden",
            f"the lesson {lesson.id!r} needs the {lesson.required_plan} plan; "
            f"your plan is {user.plan}",
        )  # fmt: skip


@router.post("/v1/sessions", status_code=201)
async def create_session(
    body: SessionCreate, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    lesson = await services.lesson(body.lesson_id)
    if lesson is None:
        raise ApiError(404, "not_found", f"no lesson {body.lesson_id!r}")
    _check_plan(user, lesson)
    session_id = uuid.uuid4().hex
    assert services.db is not None
    step_id = lesson.steps[0].id
    await services.db.create_session(session_id, lesson.id, user.user_id, step_id)
    return {"session_id": session_id, "lesson_id": lesson.id, "step_id": step_id}


async def _session_or_404(services: Services, session_id: str) -> Any:
    try:
        return await services.session(session_id)
    except SessionNotFound:
        raise ApiError(404, "not_found", f"no session {session_id!r}") from None


@router.post("/v1/sessions/{session_id}/join")
async def join_session(
    session_id: str, body: JoinRequest, services: ServicesDep, user: UserDep, request: Request
) -> dict[str, Any]:
    session = await _session_or_404(services, session_id)
    _check_plan(user, await services.lesson_of(session))
    if body.role == "teacher" and not (user.teacher or session.created_by == user.user_id):
        raise ApiError(403, "forbidden", "only the session's creator or a teacher may teach")
    token, expires_at = mint_session_token(services.settings, session_id, user.user_id, body.role)
    return {"token": token, "ws_url": _ws_url(services, request), "expires_at": expires_at}


def _ws_url(services: Services, request: Request) -> str:
    base = services.settings.public_url or str(request.base_url)
    return base.replace("http", "ws", 1).rstrip("/") + "/v1/ws"


@router.get("/v1/sessions/{session_id}")
async def session_summary(session_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    session = await _session_or_404(services, session_id)
    assert services.hub is not None and services.db is not None
    log = SessionLog(services.hub.redis, session_id)
    step_id, last_seq = await log.step_now(session.step_id, session.last_seq)
    return {
        "session_id": session_id,
        "lesson_id": session.lesson_id,
        "step_id": step_id,
        "last_seq": last_seq,
        "participants": await services.db.participants(session_id),
    }


async def _ndjson(services: Services, session_id: str) -> AsyncIterator[str]:
    assert services.hub is not None
    async for raw in replay_lines(services.settings, services.hub.redis, session_id):
        yield raw + "\n"


@router.get("/v1/sessions/{session_id}/replay")
async def session_replay(
    session_id: str, services: ServicesDep, user: UserDep
) -> StreamingResponse:
    await _session_or_404(services, session_id)
    return StreamingResponse(_ndjson(services, session_id), media_type="application/x-ndjson")


@router.get("/v1/sessions/{session_id}/doc")
async def session_doc(session_id: str, services: ServicesDep, user: UserDep) -> Response:
    await _session_or_404(services, session_id)
    actor = await services.actor(session_id)
    update: bytes = await actor.export_doc.remote()
    return Response(update, media_type="application/octet-stream")


@router.get("/v1/sessions/{session_id}/results")
async def session_results(
    session_id: str, services: ServicesDep, user: UserDep
) -> list[dict[str, Any]]:
    await _session_or_404(services, session_id)
    assert services.db is not None
    results: list[dict[str, Any]] = await services.db.results(session_id)
    return results


# ---- operations -------------------------------------------------------------------------


@router.get("/healthz")
async def healthz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    assert services.hub is not None and services.db is not None
    try:
        await services.hub.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    try:
        await services.db.ping()
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {exc}"
    try:
        blobs = blob_store_for(services.settings)
        await asyncio.to_thread(blobs.list, "healthz/")
        checks["blobs"] = "ok"
    except Exception as exc:
        checks["blobs"] = f"error: {exc}"
    checks["ray"] = await services.ray_check.status()
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics")
async def metrics(services: ServicesDep) -> PlainTextResponse:
    assert services.hub is not None
    gauges = {"inkstep_events_delivered_total": float(services.hub.delivered)}
    return PlainTextResponse(
        services.metrics.render(gauges), media_type="text/plain; version=0.0.4"
    )
