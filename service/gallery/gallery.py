"""The gallery: one API over two back ends (``gallery.backend`` in the settings).

``embedded`` keeps SQLite + faiss inside this process (one process per gallery); ``cluster`` keeps vectors in
Milvus, rows in PostgreSQL and image files on a volume every replica mounts, so any number of service
replicas share one gallery. This facade checks every input before a back end sees it, so bad input changes
nothing in either, and turns a back end's "not there" into the one not-found error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.config import GalleryBackend as BackendKind
from service.config import GallerySettings
from service.errors import GalleryError, ImageNotFound, ItemNotFound
from service.gallery import validation
from service.gallery.backend import GalleryBackend, StoredImage
from service.gallery.filters import MetadataFilter
from service.gallery.opening import read_embedding_space
from service.gallery.types import Box, Enrolment, GalleryImage, GalleryItem, GalleryMatch, GalleryStats

MAX_PAGE_SIZE = 1000


class Gallery:
    """Thread-safe; open it with :meth:`open`."""

    def __init__(self, settings: GallerySettings, backend: GalleryBackend, *, embedding_dim: int, model_id: str):
        self.settings = settings
        self.embedding_dim = embedding_dim
        self.model_id = model_id
        self._backend = backend
        self._closed = False

    @classmethod
    def open(cls, settings: GallerySettings, *, embedding_dim: int, model_id: str) -> Gallery:
        """Opens (or creates) the gallery of ``settings`` and checks that its index matches its store."""
        settings = GallerySettings.model_validate(settings.model_dump())  # model_copy(update=...) skips validation
        backend: GalleryBackend
        if settings.backend is BackendKind.cluster:
            from service.gallery.cluster import ClusterGallery  # pymilvus and psycopg load only when used

            backend = ClusterGallery.open(settings, embedding_dim=embedding_dim, model_id=model_id)
        else:
            from service.gallery.embedded import EmbeddedGallery

            backend = EmbeddedGallery.open(settings, embedding_dim=embedding_dim, model_id=model_id)
        return cls(settings, backend, embedding_dim=embedding_dim, model_id=model_id)

    @classmethod
    def open_stored(cls, settings: GallerySettings) -> Gallery:
        """Opens an existing gallery in the embedding space it was last opened with, no model needed
        (export, stats, migrate). Adding images then needs embeddings of that space."""
        if settings.backend is BackendKind.cluster:
            from service.gallery.cluster import read_cluster_embedding_space

            embedding_dim, model_id = read_cluster_embedding_space(settings)
        else:
            embedding_dim, model_id = read_embedding_space(settings.path)
        return cls.open(settings, embedding_dim=embedding_dim, model_id=model_id)

    @property
    def backend(self) -> GalleryBackend:
        return self._backend

    # -- reads --------------------------------------------------------------------------------------------

    def get_item(self, item_id: str) -> GalleryItem:
        self._ensure_open()
        return self._require_item(item_id)

    def list_items(
        self, *, offset: int = 0, limit: int = 50, label: str | None = None
    ) -> tuple[list[GalleryItem], int]:
        """A page of items in creation order, and the total number matching ``label`` (exact match)."""
        offset, limit = validation.check_page(offset, limit, MAX_PAGE_SIZE)
        self._ensure_open()
        return self._backend.list_items(offset, limit, label)

    def item_images(self, item_id: str) -> list[GalleryImage]:
        self._ensure_open()
        self._require_item(item_id)
        return self._backend.item_images(item_id)

    def get_image(self, image_id: str) -> GalleryImage:
        self._ensure_open()
        image = self._backend.get_image(image_id) if isinstance(image_id, str) else None
        if image is None:
            raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
        return image

    def image_path(self, image_id: str) -> Path:
        """The stored original bytes (shared by images with identical content)."""
        self._ensure_open()
        file_name = self._backend.image_file_name(image_id) if isinstance(image_id, str) else None
        if file_name is None:
            raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
        return self._backend.files.path(file_name)

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
        return self._backend.images_with_labels()

    def embeddings(self) -> tuple[list[str], NDArray[np.float32]]:
        """Every stored image's item id and embedding (N x dim), in enrolment order (``service.gallery.threshold``)."""
        self._ensure_open()
        records = list(self._backend.stored_images())
        vectors = np.stack([record.embedding for record in records]) if records else np.zeros(
            (0, self.embedding_dim), dtype=np.float32)
        return [record.image.item_id for record in records], vectors.astype(np.float32, copy=False)

    def sampled_embeddings(self, count: int) -> tuple[list[str], NDArray[np.float32]]:
        """Up to ``count`` images evenly spaced in enrolment order: item ids and embeddings, without reading the
        rest of the store (``service.gallery.threshold``)."""
        self._ensure_open()
        return self._backend.sampled_embeddings(max(int(count), 1))

    def search(
        self, embeddings: NDArray[np.float32], top_k: int, metadata_filter: MetadataFilter | None = None
    ) -> list[list[GalleryMatch]]:
        """Per query row, up to ``top_k`` distinct items (each with its best image), best first; with a
        filter (:func:`service.gallery.filters.parse_filter`), only items whose metadata passes it."""
        queries = validation.check_queries(embeddings, self.embedding_dim)
        top_k = validation.check_top_k(top_k)
        self._ensure_open()
        if not len(queries):
            return []
        return self._backend.search(queries, top_k, metadata_filter)

    def stats(self) -> GalleryStats:
        self._ensure_open()
        return self._backend.stats()

    def check(self, *, thorough: bool = False) -> bool:
        """True when the index holds exactly the stored images (``thorough``: compare the id sets themselves)."""
        self._ensure_open()
        return self._backend.check(thorough)

    # -- writes -------------------------------------------------------------------------------------------

    def add_image(
        self,
        *,
        label: str,
        embedding: NDArray[np.float32],
        image_bytes: bytes,
        media_type: str,
        item_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        box: Box | None = None,
    ) -> Enrolment:
        """Enrols one image, creating the item when needed (upsert).

        An existing ``item_id`` with another label raises :class:`LabelConflict`; the same bytes again for
        the same item return the stored image with ``created_image=False``; ``metadata``, when given,
        replaces the item's metadata.
        """
        request = validation.check_new_image(
            label=label,
            embedding=embedding,
            image_bytes=image_bytes,
            media_type=media_type,
            item_id=item_id,
            metadata=metadata,
            box=box,
            dim=self.embedding_dim,
        )
        self._ensure_open()
        return self._backend.enrol(request)

    def update_item(
        self, item_id: str, *, label: str | None = None, metadata: dict[str, Any] | None = None
    ) -> GalleryItem:
        """Changes label and/or metadata (replaced whole); embeddings stay as they are."""
        label = validation.check_label(label) if label is not None else None
        metadata_text = validation.encode_metadata(metadata) if metadata is not None else None
        self._ensure_open()
        return self._backend.update_item(self._checked_id(item_id), label, metadata_text)

    def delete_item(self, item_id: str) -> int:
        """Deletes the item and all its images; returns how many images were removed."""
        self._ensure_open()
        return self._backend.delete_item(self._checked_id(item_id))

    def delete_image(self, image_id: str) -> GalleryImage:
        """Deletes one image. The item stays, even with no image left: its id, label and metadata are the user's."""
        self._ensure_open()
        if not isinstance(image_id, str):
            raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
        return self._backend.delete_image(image_id)

    def restore(self, record: StoredImage, data: bytes) -> bool:
        """Puts one image of another gallery in as it was: file, ids, times and embedding (``migrate``)."""
        self._ensure_open()
        if record.embedding.shape != (self.embedding_dim,):
            raise GalleryError(f"the image {record.image.image_id} has an embedding of another size")
        self._backend.files.write(record.file_name, data)
        return self._backend.restore(record)

    # -- closing ------------------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ensure_open(self) -> None:
        if self._closed:
            raise GalleryError("the gallery is closed")

    @staticmethod
    def _checked_id(item_id: Any) -> str:
        if not isinstance(item_id, str):
            raise ItemNotFound(f"item {item_id} not found", item_id=item_id)
        return item_id

    def _require_item(self, item_id: str) -> GalleryItem:
        item = self._backend.get_item(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise ItemNotFound(f"item {item_id} not found", item_id=item_id)
        return item
