from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from service.api.auth import Reader, Writer
from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.api.schemas import (
    EnrolmentResponse,
    ImageDeleted,
    ImagePublic,
    ItemDeleted,
    ItemDetail,
    ItemPage,
    ItemPublic,
    ItemUpdate,
)
from service.api.uploads import BBOX_PATTERN, IMAGE_FORMAT, parse_bbox, parse_metadata, read_upload
from service.gallery import Enrolment
from service.gallery.validation import (
    ITEM_ID_PATTERN,
    LABEL_SCHEMA_PATTERN,
    MAX_LABEL_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_INTEGER,
)
from service.inference.pipeline import Recognizer
from service.registration import Registration, register
from service.state import CommitGate, ServiceState

router = APIRouter(prefix="/gallery", tags=["gallery"])
ERRORS = documented_errors(400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504)
ENROLMENT = {**ERRORS, 200: {"model": EnrolmentResponse,
                             "description": "these bytes were already registered for this item: nothing changed"}}
MAX_OFFSET = 1_000_000_000
DetectField = Annotated[bool | None, Form(description="crop the main object first (default: on with a detector)")]
BboxField = Annotated[str | None, Form(
    pattern=BBOX_PATTERN, json_schema_extra={"format": "bbox"},
    description="x1,y1,x2,y2 in pixels, 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height: embed this region "
    "instead of detecting")]
LabelField = Annotated[str, Form(min_length=1, max_length=MAX_LABEL_CHARS, pattern=LABEL_SCHEMA_PATTERN,
                                 description="product name shown in results (no control characters or line breaks)")]
ItemIdField = Annotated[str | None, Form(pattern=f"^{ITEM_ID_PATTERN.pattern}$",
                                         description="your id for the product; generated when absent")]
MetadataField = Annotated[str | None, Form(
    max_length=MAX_METADATA_BYTES, json_schema_extra={"format": "json-object", "contentMediaType": "application/json"},
    description=f"a JSON object stored with the item: at most {MAX_METADATA_BYTES} bytes, {MAX_METADATA_DEPTH} "
    f"levels deep, integers within ±{MAX_METADATA_INTEGER}")]


async def _register(state: ServiceState, response: Response, request: Registration) -> EnrolmentResponse:
    request = request.checked()

    def work(recognizer: Recognizer, gate: CommitGate) -> Enrolment:
        return register(recognizer, state.gallery, request, limits=state.settings.limits, options=state.defaults,
                        may_commit=gate.begin_commit)

    async with state.admission("write"):
        enrolment = await state.infer_write(work)
    response.status_code = status.HTTP_201_CREATED if enrolment.created_image else status.HTTP_200_OK
    return EnrolmentResponse.from_domain(enrolment)


def _detect(state: ServiceState, detect: bool | None) -> bool:
    return state.settings.gallery.detect_on_enroll if detect is None else detect


@router.post("", response_model=EnrolmentResponse, status_code=201, responses=ENROLMENT)
async def add_product_image(
    state: StateDep,
    _: Writer,
    response: Response,
    image: Annotated[UploadFile, File(description="product photo: JPEG, PNG, WebP or BMP",
                                      json_schema_extra=IMAGE_FORMAT)],
    label: LabelField,
    item_id: ItemIdField = None,
    metadata: MetadataField = None,
    bbox: BboxField = None,
    detect: DetectField = None,
) -> EnrolmentResponse:
    """Register a product photo, creating the item if needed. Repeating the same item_id and bytes is a no-op (200)."""
    data = await read_upload(image, max_mb=state.settings.limits.max_upload_mb)
    request = Registration(data=data, label=label, item_id=item_id, metadata=parse_metadata(metadata),
                           box=parse_bbox(bbox), detect=_detect(state, detect))
    return await _register(state, response, request)


@router.post("/items/{item_id}/images", response_model=EnrolmentResponse, status_code=201, responses=ENROLMENT)
async def add_item_image(
    state: StateDep,
    _: Writer,
    response: Response,
    item_id: str,
    image: Annotated[UploadFile, File(description="another photo of this product",
                                      json_schema_extra=IMAGE_FORMAT)],
    bbox: BboxField = None,
    detect: DetectField = None,
) -> EnrolmentResponse:
    """Add a photo to an existing item (404 if the item does not exist)."""
    item = await asyncio.to_thread(state.gallery.get_item, item_id)
    data = await read_upload(image, max_mb=state.settings.limits.max_upload_mb)
    request = Registration(data=data, label=item.label, item_id=item_id, box=parse_bbox(bbox),
                           detect=_detect(state, detect))
    return await _register(state, response, request)


@router.get("/items", response_model=ItemPage, responses=ERRORS)
async def list_items(
    state: StateDep,
    _: Reader,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    label: Annotated[str | None, Query(max_length=MAX_LABEL_CHARS, description="only items with exactly this label")]
    = None,
) -> ItemPage:
    items, total = await asyncio.to_thread(state.gallery.list_items, offset=offset, limit=limit, label=label)
    return ItemPage(items=[ItemPublic.from_domain(item) for item in items], total=total, offset=offset, limit=limit)


@router.get("/items/{item_id}", response_model=ItemDetail, responses=ERRORS)
async def get_item(state: StateDep, _: Reader, item_id: str) -> ItemDetail:
    item = await asyncio.to_thread(state.gallery.get_item, item_id)
    images = await asyncio.to_thread(state.gallery.item_images, item_id)
    return ItemDetail(**ItemPublic.from_domain(item).model_dump(), images=[ImagePublic.from_domain(i) for i in images])


@router.patch("/items/{item_id}", response_model=ItemPublic, responses=ERRORS)
async def update_item(state: StateDep, _: Writer, item_id: str, update: ItemUpdate) -> ItemPublic:
    """Change the label or replace the metadata; embeddings stay as they are."""
    item = await asyncio.to_thread(state.gallery.update_item, item_id, label=update.label, metadata=update.metadata)
    return ItemPublic.from_domain(item)


@router.delete("/items/{item_id}", response_model=ItemDeleted, responses=ERRORS)
async def delete_item(state: StateDep, _: Writer, item_id: str) -> ItemDeleted:
    removed = await asyncio.to_thread(state.gallery.delete_item, item_id)
    return ItemDeleted(item_id=item_id, images_removed=removed)


@router.get("/images/{image_id}/file", response_class=Response, responses={
    200: {"content": {"image/*": {}}, "description": "the bytes as uploaded, with their media type"}, **ERRORS})
async def get_image_file(state: StateDep, _: Reader, image_id: str) -> Response:
    """The stored photo itself (the whole upload, not the embedded box), e.g. for thumbnails."""
    data, media_type = await asyncio.to_thread(state.gallery.image_file, image_id)
    # an image id always names the same bytes; nosniff: the browser treats them as the stored type only
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(content=data, media_type=media_type, headers=headers)


@router.delete("/images/{image_id}", response_model=ImageDeleted, responses=ERRORS)
async def delete_image(state: StateDep, _: Writer, image_id: str) -> ImageDeleted:
    """Remove one photo; the item stays, even with no photos left."""
    image = await asyncio.to_thread(state.gallery.delete_image, image_id)
    return ImageDeleted(image_id=image.image_id, item_id=image.item_id)
