"""The application factory: routes, the error table, and a lifespan that owns models and gallery."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Histogram

from service import __version__
from service.api.errors import register_error_handlers
from service.api.routes import gallery, health, recognize
from service.config import Settings, get_settings
from service.state import close_state, open_state

logger = logging.getLogger(__name__)
UI_DIRECTORY = Path(__file__).resolve().parent / "ui"  # the web console: plain files, no build step
REQUESTS = Counter("shitu_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("shitu_request_seconds", "HTTP request latency", ["route"])


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; models and gallery load in the lifespan, so ``/health`` answers while they do."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await asyncio.to_thread(open_state, settings)
        app.state.service = state
        logger.info("ready: embedder %s, detector %s", *state.model_ids)
        try:
            yield
        finally:
            app.state.service = None
            await asyncio.to_thread(close_state, state)

    app = FastAPI(title="PP-ShiTuV2 product recognition", version=__version__, lifespan=lifespan)
    app.state.service = None
    register_error_handlers(app)
    for module in (recognize, gallery, health):
        app.include_router(module.router)
    app.mount("/ui", StaticFiles(directory=UI_DIRECTORY, html=True), name="ui")
    app.middleware("http")(_observe)
    return app


async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    LATENCY.labels(path).observe(time.perf_counter() - started)
    REQUESTS.labels(path, str(response.status_code)).inc()
    return response
