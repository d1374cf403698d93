"""The gateway's FastAPI application: REST, the WebSocket endpoint and the web client."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway import rest, ws
from gateway.errors import error_response, install_error_handlers
from gateway.services import Services
from inkstep.settings import PACKAGE_ROOT, Settings

logger = logging.getLogger(__name__)
WEB_DIST = PACKAGE_ROOT / "web" / "dist"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A gateway app; settings come from the environment unless given."""
    services = Services(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        # What start-up loaded (FastAPI, pydantic, Ray, SQLAlchemy: ~150k objects) never
        # becomes garbage; scanning it made each full collection stall every connection of
        # the process for 50-100 ms.
        gc.collect()
        gc.freeze()
        logger.info("gateway %s ready", services.gateway_id)
        try:
            yield
        finally:
            services.draining = True
            await services.stop()

    app = FastAPI(title="inkstep", version="1", lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(ws.router)
    _serve_web_client(app, WEB_DIST)
    return app


def _serve_web_client(app: FastAPI, dist: Path) -> None:
    """The built web client at `/`; client-side routes fall back to index.html."""
    if (dist / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=dist / "assets"), name="assets")

    @app.get("/{path:path}", include_in_schema=False)
    def web_client(path: str) -> Response:  # sync: file checks run in the thread pool
        if path.startswith(("v1/", "healthz", "metrics")):
            return error_response(404, "not_found", f"no route /{path}")
        candidate = (dist / path).resolve()
        if path and candidate.is_file() and dist.resolve() in candidate.parents:
            return FileResponse(candidate)
        index = dist / "index.html"
        if not index.is_file():
            return error_response(404, "not_found", "the web client is not built (make web)")
        return FileResponse(index)


class Gateway:
    """The ASGI entry: `/v1/ws` goes straight to its handler, everything else to FastAPI.

    FastAPI's middleware wraps every receive and send of a WebSocket; for a socket that
    carries tens of frames a second that wrapping costs more than the handler itself.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == ws.PATH:
            scope["app"] = self.app
            await ws.websocket_endpoint(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


def app_from_env() -> Gateway:
    """Entry point for `uvicorn --factory gateway.app:app_from_env` (one per worker)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return Gateway(create_app())
