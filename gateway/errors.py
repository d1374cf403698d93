"""REST errors as `{"error": {"code", "message"}}` with the matching HTTP status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gateway.services import SessionNotFound
from inkstep.store.errors import StoreUnavailable

NOT_JSON_MESSAGE = "body: send a JSON object, with Content-Type: application/json"


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip() == "application/json"


class ApiError(Exception):
    """An error a route answers with; turned into JSON only here, at the edge."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        if where == "body" and not _is_json(request):
            # The body was there but not parsed (curl -d sends a form): say what is expected.
            return error_response(422, "invalid", NOT_JSON_MESSAGE)
        return error_response(422, "invalid", f"{where}: {first['msg']}")

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return error_response(503, "unavailable", str(exc))

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(StoreUnavailable, unavailable)
    app.add_exception_handler(SessionNotFound, not_found)
