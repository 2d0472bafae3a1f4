"""The seam between :class:`service.gallery.Gallery` and where a gallery lives.

The facade checks every input (:mod:`service.gallery.validation`, :mod:`service.gallery.filters`) and turns
``None`` into the not-found errors; a back end receives checked values only. Two implementations:
:class:`service.gallery.embedded.EmbeddedGallery` (SQLite + faiss in this process) and
:class:`service.gallery.cluster.ClusterGallery` (PostgreSQL + Milvus, shared by any number of replicas).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from service.gallery.files import ImageFiles
from service.gallery.filters import MetadataFilter
from service.gallery.types import Enrolment, GalleryImage, GalleryItem, GalleryMatch, GalleryStats
from service.gallery.validation import NewImage


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One image with everything needed to put it into another back end as it is (``shitu gallery migrate``)."""

    image: GalleryImage
    label: str
    metadata: dict[str, Any]
    item_created_at: float
    item_updated_at: float
    file_name: str
    embedding: NDArray[np.float32]


def stored_image_from_row(row: Any, image: GalleryImage, dim: int) -> StoredImage:
    """A store's joined image + item row as a :class:`StoredImage` (SQLite's and psycopg's rows both read by column
    name); ``image`` is the row's image, read by the store's own conversion."""
    return StoredImage(
        image=image,
        label=row["label"],
        metadata=json.loads(row["metadata"]),
        item_created_at=row["item_created_at"],
        item_updated_at=row["item_updated_at"],
        file_name=row["file_name"],
        embedding=np.frombuffer(row["embedding"], dtype=np.float32).reshape(dim),
    )


def evenly_spaced(row_ids: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` of the row ids (in enrolment order), evenly spaced from the first to the last."""
    if len(row_ids) <= count:
        return list(row_ids)
    positions = np.unique(np.linspace(0, len(row_ids) - 1, count).round().astype(np.int64))
    return [int(row_ids[position]) for position in positions]


def sampled_from_rows(rows: Sequence[Any], dim: int) -> tuple[list[str], NDArray[np.float32]]:
    """A store's ``(item_id, embedding)`` rows as item ids and an N x dim matrix."""
    vectors = np.zeros((len(rows), dim), dtype=np.float32)
    for index, row in enumerate(rows):
        vectors[index] = np.frombuffer(row["embedding"], dtype=np.float32)
    return [row["item_id"] for row in rows], vectors


class GalleryBackend(Protocol):
    files: ImageFiles

    def get_item(self, item_id: str) -> GalleryItem | None: ...

    def list_items(self, offset: int, limit: int, label: str | None) -> tuple[list[GalleryItem], int]: ...

    def item_images(self, item_id: str) -> list[GalleryImage]: ...

    def get_image(self, image_id: str) -> GalleryImage | None: ...

    def image_file_name(self, image_id: str) -> str | None: ...

    def images_with_labels(self) -> list[tuple[GalleryImage, str]]: ...

    def search(
        self, queries: NDArray[np.float32], top_k: int, metadata_filter: MetadataFilter | None
    ) -> list[list[GalleryMatch]]: ...

    def stats(self) -> GalleryStats: ...

    def check(self, thorough: bool) -> bool: ...

    def enrol(self, request: NewImage) -> Enrolment: ...

    def update_item(self, item_id: str, label: str | None, metadata_text: str | None) -> GalleryItem: ...

    def delete_item(self, item_id: str) -> int: ...

    def delete_image(self, image_id: str) -> GalleryImage: ...

    def stored_images(self) -> Iterator[StoredImage]: ...

    def sampled_embeddings(self, count: int) -> tuple[list[str], NDArray[np.float32]]:
        """Up to ``count`` images evenly spaced in enrolment order: their item ids and embeddings, read alone."""
        ...

    def restore(self, record: StoredImage) -> bool:
        """Puts one migrated image in as it was (ids, times, embedding); False when its image id is already there."""
        ...

    def close(self) -> None: ...


class ReadableStore(Protocol):
    """The read side both stores (SQLite, PostgreSQL) offer under the same names."""

    def get_item(self, item_id: str) -> GalleryItem | None: ...

    def list_items(self, offset: int, limit: int, label: str | None) -> tuple[list[GalleryItem], int]: ...

    def item_images(self, item_id: str) -> list[GalleryImage]: ...

    def get_image(self, image_id: str) -> GalleryImage | None: ...

    def image_row(self, image_id: str) -> Any: ...  # sqlite3.Row or a dict: both index by column name


class StoreReads:
    """The back ends' reads that are the store's own, written once; a back end sets ``_store``."""

    _store: ReadableStore

    def get_item(self, item_id: str) -> GalleryItem | None:
        return self._store.get_item(item_id)

    def list_items(self, offset: int, limit: int, label: str | None) -> tuple[list[GalleryItem], int]:
        return self._store.list_items(offset, limit, label)

    def item_images(self, item_id: str) -> list[GalleryImage]:
        return self._store.item_images(item_id)

    def get_image(self, image_id: str) -> GalleryImage | None:
        return self._store.get_image(image_id)

    def image_file_name(self, image_id: str) -> str | None:
        row = self._store.image_row(image_id)
        return None if row is None else str(row["file_name"])

