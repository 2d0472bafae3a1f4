"""The values the gallery hands out: frozen, so callers can share them between threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.box import Box


@dataclass(frozen=True, slots=True)
class GalleryItem:
    """A product: one label, free JSON metadata and any number of images (possibly none)."""

    item_id: str
    label: str
    metadata: dict[str, Any]
    image_count: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class GalleryImage:
    """One enrolled picture of an item; ``box`` is the region that was embedded (``None``: the whole image)."""

    image_id: str
    item_id: str
    box: Box | None
    model_id: str
    sha256: str
    media_type: str
    created_at: float


@dataclass(frozen=True, slots=True)
class GalleryMatch:
    """The best-scoring image of one item for one query; ``score`` is the inner product (cosine)."""

    item_id: str
    label: str
    image_id: str
    score: float


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What ``add_image`` did: ``created_image`` is false for an idempotent retry of the same bytes."""

    item: GalleryItem
    image: GalleryImage
    created_item: bool
    created_image: bool


@dataclass(frozen=True, slots=True)
class GalleryStats:
    items: int
    images: int
    index_kind: str
    index_size: int
    masked_deletions: int
    embedding_dim: int
    model_id: str
    rebuilding: bool
    backend: str = "embedded"
