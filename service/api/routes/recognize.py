from __future__ import annotations

import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from service.api.auth import Reader
from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.api.schemas import ModelIds, RecognizeResponse
from service.api.uploads import IMAGE_FORMAT, read_upload
from service.config import WholeImage
from service.gallery.filters import parse_filter
from service.inference.image import DecodeLimits
from service.inference.pipeline import recognize_bytes

router = APIRouter(tags=["recognition"])
ERRORS = documented_errors(400, 401, 403, 413, 415, 422, 429, 503, 504)
FILTER_HELP = (
    'only items whose metadata passes, applied inside the search (JSON): {"key": "brand", "eq": "acme"}; '
    'operators eq, ne, in, lt, lte, gt, gte (several on one key: all hold); {"and": [...]}, {"or": [...]}'
)


@router.post("/recognize", response_model=RecognizeResponse, responses=ERRORS)
async def recognize(
    state: StateDep,
    _: Reader,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or BMP photo", json_schema_extra=IMAGE_FORMAT)],
    detection_threshold: Annotated[float | None, Form(ge=0, le=1, description="detector score a box needs")] = None,
    max_detections: Annotated[int | None, Form(ge=1, le=100, description="boxes kept before the threshold")] = None,
    min_score: Annotated[float | None, Form(ge=-1, le=1, description="cosine score a match needs")] = None,
    whole_image: Annotated[WholeImage | None, Form(description="always | fallback | never")] = None,
    top_k: Annotated[int | None, Form(ge=1, le=100, description="distinct items per object")] = None,
    max_objects: Annotated[int | None, Form(ge=1, le=100)] = None,
    include_unknown: Annotated[bool | None, Form(description="also return detected objects without a match")] = None,
    sliding_windows: Annotated[bool | None, Form(description="also search square windows (several products, "
                                                 "no detector)")] = None,
    metadata_filter: Annotated[str | None, Form(alias="filter", description=FILTER_HELP,
                                                json_schema_extra={"format": "metadata-filter"})] = None,
) -> RecognizeResponse:
    """Find the registered products in a photo: per object its box, the best item (or null) and the top-k items."""
    started = time.perf_counter()
    options = state.options(await state.request_defaults(), detection_threshold=detection_threshold,
                            max_detections=max_detections, min_score=min_score, whole_image=whole_image, top_k=top_k,
                            max_objects=max_objects, include_unknown=include_unknown, sliding_windows=sliding_windows)
    parsed = parse_filter(metadata_filter) if metadata_filter else None  # a bad filter is a 422 before any work
    data = await read_upload(image, max_mb=state.settings.limits.max_upload_mb)
    work = partial(recognize_bytes, data=data, options=options,
                   search=partial(state.gallery.search, metadata_filter=parsed),
                   limits=DecodeLimits.of(state.settings.limits))
    async with state.admission():
        result = await state.infer(work)
    embedder_id, detector_id = state.model_ids
    timings = {**result.timings_ms, "total_ms": round((time.perf_counter() - started) * 1000.0, 3)}
    return RecognizeResponse.from_domain(result, ModelIds(embedder=embedder_id, detector=detector_id), timings)
