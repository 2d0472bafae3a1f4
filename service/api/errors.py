"""Render every error, ours and the framework's, as one body shape: ``{"error": {code, message, details}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.schemas import ErrorResponse
from service.errors import ServiceError

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def documented_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: these statuses carry the one error shape (for the OpenAPI schema)."""
    return {status: {"model": ErrorResponse} for status in statuses}


def error_response(status: int, code: str, message: str, details: dict[str, object] | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    headers = dict(headers or {})
    retry_after = (details or {}).get("retry_after_s")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="shitu"')
    return JSONResponse(status_code=status, content=body, headers=headers or None)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, error: ServiceError) -> JSONResponse:
        if error.status >= 500:
            logger.error("%s: %s", error.code, error.message)
        return error_response(error.status, error.code, error.message, error.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(part) for part in problem["loc"] if part != "body"), "problem": problem["msg"]}
            for problem in error.errors()
        ]
        summary = "; ".join(f"{problem['field']}: {problem['problem']}" for problem in problems)
        return error_response(422, "invalid_request", summary or "invalid request", {"problems": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        # The framework's headers carry meaning (Allow on a 405); its 400s are bodies it could not parse.
        code = _HTTP_CODES.get(error.status_code, "invalid_request" if error.status_code == 400 else "http_error")
        return error_response(error.status_code, code, str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error", exc_info=error)
        return error_response(500, "internal_error", "internal error; the server log has the details")
