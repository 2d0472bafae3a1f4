"""Request and response bodies of the HTTP API (pydantic, at the edge only)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from service.gallery import Enrolment, GalleryImage, GalleryItem, GalleryMatch
from service.gallery.validation import (
    LABEL_SCHEMA_PATTERN,
    MAX_LABEL_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_INTEGER,
)
from service.inference.types import Recognition, RecognizedObject


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable error code, e.g. invalid_image, item_not_found, overloaded")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorBody


class MatchPublic(BaseModel):
    item_id: str
    label: str
    image_id: str
    score: float = Field(description="cosine similarity of the L2-normalised embeddings")

    @classmethod
    def from_domain(cls, match: GalleryMatch) -> MatchPublic:
        return cls(item_id=match.item_id, label=match.label, image_id=match.image_id, score=round(match.score, 6))


class ObjectPublic(BaseModel):
    bbox: list[int] = Field(description="[x1, y1, x2, y2] in image pixels, exclusive end")
    source: str = Field(description="detector, whole_image for the whole-image candidate, or window")
    detection_score: float
    match: MatchPublic | None = Field(description="best item if its score reaches min_score, else null (unknown)")
    candidates: list[MatchPublic] = Field(description="top-k distinct items, best first")

    @classmethod
    def from_domain(cls, found: RecognizedObject) -> ObjectPublic:
        return cls(
            bbox=list(found.box.as_tuple()),
            source=found.source.value,
            detection_score=round(found.detection_score, 6),
            match=MatchPublic.from_domain(found.match) if found.match else None,
            candidates=[MatchPublic.from_domain(candidate) for candidate in found.candidates],
        )


class ImageSize(BaseModel):
    width: int
    height: int


class ModelIds(BaseModel):
    embedder: str
    detector: str | None


class RecognizeResponse(BaseModel):
    image: ImageSize
    objects: list[ObjectPublic]
    timings_ms: dict[str, float]
    models: ModelIds

    @classmethod
    def from_domain(cls, result: Recognition, models: ModelIds, timings_ms: dict[str, float]) -> RecognizeResponse:
        return cls(
            image=ImageSize(width=result.width, height=result.height),
            objects=[ObjectPublic.from_domain(found) for found in result.objects],
            timings_ms=timings_ms,
            models=models,
        )


class ItemPublic(BaseModel):
    item_id: str
    label: str
    metadata: dict[str, Any]
    image_count: int
    created_at: float
    updated_at: float

    @classmethod
    def from_domain(cls, item: GalleryItem) -> ItemPublic:
        return cls(item_id=item.item_id, label=item.label, metadata=item.metadata, image_count=item.image_count,
                   created_at=item.created_at, updated_at=item.updated_at)


class ImagePublic(BaseModel):
    image_id: str
    item_id: str
    bbox: list[int] | None = Field(description="region that was embedded; null: the whole image")
    model_id: str
    sha256: str
    media_type: str
    created_at: float

    @classmethod
    def from_domain(cls, image: GalleryImage) -> ImagePublic:
        bbox = list(image.box.as_tuple()) if image.box else None
        return cls(image_id=image.image_id, item_id=image.item_id, bbox=bbox,
                   model_id=image.model_id, sha256=image.sha256, media_type=image.media_type,
                   created_at=image.created_at)


class EnrolmentResponse(BaseModel):
    item: ItemPublic
    image: ImagePublic
    created_item: bool
    created_image: bool = Field(description="false when the same bytes were already registered for this item")

    @classmethod
    def from_domain(cls, enrolment: Enrolment) -> EnrolmentResponse:
        return cls(item=ItemPublic.from_domain(enrolment.item), image=ImagePublic.from_domain(enrolment.image),
                   created_item=enrolment.created_item, created_image=enrolment.created_image)


class ItemDetail(ItemPublic):
    images: list[ImagePublic]


class ItemPage(BaseModel):
    items: list[ItemPublic]
    total: int
    offset: int
    limit: int


# What the schema promises is accepted (a subset of what is: nesting is allowed too, up to the limits the
# field descriptions give), so that a client generated from the schema never sends what we refuse.
_METADATA_SCHEMA = {
    "type": "object",
    "maxProperties": 32,
    "propertyNames": {"maxLength": 64},
    "additionalProperties": {"anyOf": [
        {"type": "string", "maxLength": 200},
        {"type": "integer", "minimum": -MAX_METADATA_INTEGER, "maximum": MAX_METADATA_INTEGER},
        {"type": "number", "minimum": -1e300, "maximum": 1e300},
        {"type": "boolean"},
        {"type": "null"},
    ]},
}


class ItemUpdate(BaseModel):
    label: str | None = Field(None, min_length=1, max_length=MAX_LABEL_CHARS, pattern=LABEL_SCHEMA_PATTERN)
    metadata: Annotated[dict[str, Any] | None, WithJsonSchema({"anyOf": [_METADATA_SCHEMA, {"type": "null"}]})] = (
        Field(None, description=f"replaces the metadata: a JSON object of at most {MAX_METADATA_BYTES} bytes, "
        f"{MAX_METADATA_DEPTH} levels deep"))


class ItemDeleted(BaseModel):
    item_id: str
    images_removed: int


class ImageDeleted(BaseModel):
    image_id: str
    item_id: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    models_loaded: bool
    index_consistent: bool


class ModelInfo(BaseModel):
    model_id: str
    kind: str
    architecture: str
    directory: str
    format: str
    passes_deleted: list[str] = Field(description="Paddle passes removed because the program could not run with them")
    preprocess: dict[str, Any]
    provenance: dict[str, Any] | None = Field(description="how it was made; null without the details scope")


class GalleryThresholdInfo(BaseModel):
    """The gallery's own min_score suggestion: a quantile of its images' best scores against other items."""

    suggested_min_score: float | None = Field(
        description="null while the gallery has fewer items than gallery.threshold_min_items")
    quantile: float
    images_sampled: int
    items: int
    median_nearest_other: float | None = Field(description="the typical best score against another item")
    min_score_source: str = Field(description="pipeline.min_score_source: manifest | gallery")
    in_use: bool = Field(description="the suggestion is the default min_score now")


class InfoResponse(BaseModel):
    version: str
    embedder: ModelInfo
    detector: ModelInfo | None
    embedding_dim: int
    gallery: dict[str, Any]
    defaults: dict[str, Any]
    gallery_threshold: GalleryThresholdInfo
    runtime: dict[str, Any] | None = Field(description="null without the details scope")
    limits: dict[str, Any] | None = Field(description="null without the details scope")
