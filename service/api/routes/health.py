from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import __version__
from service.api.auth import Reader, requires
from service.api.deps import StateDep
from service.api.schemas import ErrorResponse, GalleryThresholdInfo, Health, InfoResponse, ModelInfo, Readiness
from service.config import inference_workers, lone_cpu_threads
from service.inference.manifest import ModelManifest
from service.inference.models import cpu_has_bf16, embedder_precision
from service.inference.session import Session
from service.state import ServiceState

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request) -> Response:
    """Readiness: models loaded and the index agrees with the store."""
    state = getattr(request.app.state, "service", None)
    consistent = bool(state is not None and await asyncio.to_thread(state.gallery.check))
    body = Readiness(ready=consistent, models_loaded=state is not None, index_consistent=consistent)
    return JSONResponse(body.model_dump(), status_code=200 if consistent else 503)


@router.get("/info", response_model=InfoResponse, responses={401: {"model": ErrorResponse}})
async def info(state: StateDep, caller: Reader) -> InfoResponse:
    """Models, gallery size and the effective defaults; provenance, runtime and limits for the scope the settings
    name (``SHITU_AUTH__INFO_DETAILS_SCOPE``, admin by default)."""
    recognizer = state.recognizer
    detector = recognizer.detector
    settings = state.settings
    scope = settings.auth.info_details_scope
    details = scope is None or scope in caller.scopes
    store = settings.models.store
    threshold = await asyncio.to_thread(state.gallery_threshold)
    defaults = state.effective_defaults(threshold)
    in_use = state.uses_gallery_threshold and threshold.suggested_min_score is not None
    return InfoResponse(
        version=__version__,
        embedder=_model_info(recognizer.embedder.manifest, recognizer.embedder.session, store, details=details),
        detector=_model_info(detector.manifest, detector.session, store, details=details) if detector else None,
        embedding_dim=recognizer.embedder.embedding_dim,
        gallery=asdict(await asyncio.to_thread(state.gallery.stats)),
        defaults={**asdict(defaults), "whole_image": defaults.whole_image.value},
        gallery_threshold=GalleryThresholdInfo(
            **{key: value for key, value in asdict(threshold).items() if key != "computed_at"},
            min_score_source=settings.pipeline.min_score_source.value, in_use=in_use),
        runtime=_runtime(state) if details else None,
        limits=settings.limits.model_dump(mode="json") if details else None,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    await requires(request.app.state.metrics_scope)(request)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _runtime(state: ServiceState) -> dict[str, Any]:
    """The settings, and what start-up made of them: precision by CPU, workers, how well batching works."""
    settings = state.settings
    return {
        **settings.runtime.model_dump(mode="json", exclude={"tensorrt_cache_dir"}),
        "embedder_precision": embedder_precision(settings.runtime),
        "cpu_bf16": cpu_has_bf16(),
        "inference_workers": inference_workers(settings),
        "lone_cpu_threads": lone_cpu_threads(settings.runtime),
        "batching": {**settings.batching.model_dump(mode="json"), "since_start": state.pool.stats()},
    }


def _model_info(manifest: ModelManifest, session: Session, store: Path, *, details: bool) -> ModelInfo:
    loaded = session.info
    directory, store = Path(loaded.directory).resolve(), store.resolve()
    # Where the model lives in the store, but never the server's file system layout.
    shown = directory.relative_to(store) if directory.is_relative_to(store) else Path(directory.name)
    return ModelInfo(
        model_id=manifest.model_id,
        kind=manifest.kind.value,
        architecture=manifest.architecture,
        directory=shown.as_posix(),
        format=loaded.format,
        passes_deleted=list(loaded.passes_deleted),
        preprocess=manifest.preprocess.model_dump(mode="json"),
        provenance=manifest.provenance if details else None,
    )
