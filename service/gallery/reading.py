"""The read side of the gallery: item and image records straight from the store.

Reads take no lock: each thread reads through its own SQLite connection, which sees every committed write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from service.errors import GalleryError, ImageNotFound, ItemNotFound
from service.gallery import validation
from service.gallery.files import ImageFiles
from service.gallery.store import GalleryStore
from service.gallery.types import GalleryImage, GalleryItem

MAX_PAGE_SIZE = 1000


class GalleryReader:
    """Base of :class:`service.gallery.Gallery`, which sets these attributes when it opens."""

    _store: GalleryStore
    _files: ImageFiles
    _closed: bool

    def get_item(self, item_id: str) -> GalleryItem:
        self._ensure_open()
        return self._require_item(item_id)

    def list_items(
        self, *, offset: int = 0, limit: int = 50, label: str | None = None
    ) -> tuple[list[GalleryItem], int]:
        """A page of items in creation order, and the total number matching ``label`` (exact match)."""
        offset, limit = validation.check_page(offset, limit, MAX_PAGE_SIZE)
        self._ensure_open()
        return self._store.list_items(offset, limit, label)

    def item_images(self, item_id: str) -> list[GalleryImage]:
        self._ensure_open()
        self._require_item(item_id)
        return self._store.item_images(item_id)

    def get_image(self, image_id: str) -> GalleryImage:
        self._ensure_open()
        image = self._store.get_image(image_id)
        if image is None:
            raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
        return image

    def image_path(self, image_id: str) -> Path:
        """The stored original bytes (shared by images with identical content)."""
        self._ensure_open()
        row = self._store.image_row(image_id)
        if row is None:
            raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
        return self._files.path(row["file_name"])

    def image_file(self, image_id: str) -> tuple[bytes, str]:
        """The stored original bytes of one image and their media type (for thumbnails)."""
        image = self.get_image(image_id)
        try:
            return self.image_path(image_id).read_bytes(), image.media_type
        except FileNotFoundError as error:  # deleted between the lookup and the read
            raise ImageNotFound(f"image {image_id} not found", image_id=image_id) from error

    def images_with_labels(self) -> list[tuple[GalleryImage, str]]:
        """Every image with its item's label, in enrolment order (for export)."""
        self._ensure_open()
        return [(image, label) for image, label, _ in self._store.iter_images()]

    def _ensure_open(self) -> None:
        if self._closed:
            raise GalleryError("the gallery is closed")

    def _require_item(self, item_id: str, connection: sqlite3.Connection | None = None) -> GalleryItem:
        item = self._store.get_item(item_id, connection) if isinstance(item_id, str) else None
        if item is None:
            raise ItemNotFound(f"item {item_id} not found", item_id=item_id)
        return item
