"""The application factory: routes, the error table, the guards, and a lifespan that owns models and gallery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from service import __version__
from service.api.auth import Guard
from service.api.errors import register_error_handlers
from service.api.middleware import BodyLimit, RequestMetrics, SameOriginWrites
from service.api.openapi import install_openapi
from service.api.routes import gallery, health, recognize
from service.auth import KeyRing, RateLimiter
from service.config import Settings, get_settings
from service.state import close_state, open_state

logger = logging.getLogger(__name__)
# Multipart framing around the image and the form fields; the image itself is held to the exact limit.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
UI_DIRECTORY = Path(__file__).resolve().parent / "ui"  # the web console: plain files, no build step


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

    docs = settings.auth.docs
    app = FastAPI(title="PP-ShiTuV2 product recognition", version=__version__, lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.service = None
    app.state.metrics_scope = settings.auth.metrics_scope
    app.state.guard = Guard(KeyRing(settings.auth, settings.server),
                            RateLimiter(settings.limits.rate_per_client, settings.limits.rate_burst))
    register_error_handlers(app)
    for module in (recognize, gallery, health):
        app.include_router(module.router)
    app.mount("/ui", StaticFiles(directory=UI_DIRECTORY, html=True), name="ui")
    install_openapi(app)
    # Added innermost first: metrics see every answer, the body limit acts before any route reads a byte.
    app.add_middleware(CORSMiddleware, allow_origins=settings.auth.cors_origins, allow_credentials=False,
                       allow_methods=["GET", "POST", "PATCH", "DELETE"],
                       allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(SameOriginWrites, allowed_origins=settings.auth.cors_origins)
    max_bytes = int(settings.limits.max_upload_mb * (1 << 20)) + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.add_middleware(RequestMetrics)
    return app
