"""The gallery: SQLite is the source of truth, the faiss index is rebuilt from it at start.

Writers are serialised by one lock. A write is committed (fsynced) first and only then applied to the
in-memory index, so an acknowledged write is durable and visible to the next search; a failed write
leaves neither a row nor an index entry behind.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings, IndexKind
from service.errors import GalleryError, ImageNotFound, ItemNotFound, LabelConflict
from service.gallery import validation
from service.gallery.files import ImageFiles, file_name_for, sha256_hex
from service.gallery.index import IndexParameters, VectorIndex
from service.gallery.opening import GalleryLock, build_search_index, check_embedding_space
from service.gallery.search import SearchIndex
from service.gallery.store import GalleryStore
from service.gallery.types import Box, Enrolment, GalleryImage, GalleryItem, GalleryMatch, GalleryStats

logger = logging.getLogger(__name__)

DATABASE_FILE = "gallery.db"
IMAGES_DIRECTORY = "images"
MAX_PAGE_SIZE = 1000


def new_id() -> str:
    return uuid.uuid4().hex


class Gallery:
    """Thread-safe; open it with :meth:`open`, which also takes an exclusive lock on the directory."""

    def __init__(
        self,
        settings: GallerySettings,
        store: GalleryStore,
        files: ImageFiles,
        search_index: SearchIndex,
        lock: GalleryLock,
        *,
        embedding_dim: int,
        model_id: str,
    ) -> None:
        self.settings = settings
        self.embedding_dim = embedding_dim
        self.model_id = model_id
        self._store = store
        self._files = files
        self._search = search_index
        self._lock = lock
        self._write_lock = threading.Lock()
        self._rebuild_thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def open(cls, settings: GallerySettings, *, embedding_dim: int, model_id: str) -> Gallery:
        """Creates the directory and database if missing, rebuilds the index from the store and verifies it."""
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise GalleryError(f"embedding_dim must be a positive integer, got {embedding_dim!r}")
        if not isinstance(model_id, str) or not model_id:
            raise GalleryError("model_id must be a non-empty string")
        settings.path.mkdir(parents=True, exist_ok=True)
        lock = GalleryLock.acquire(settings.path)
        try:
            store = GalleryStore(settings.path / DATABASE_FILE)
        except sqlite3.DatabaseError as error:
            lock.release()
            raise GalleryError(f"cannot open the gallery database in {settings.path}: {error}") from error
        try:
            check_embedding_space(store, settings.path, embedding_dim, model_id)
            files = ImageFiles(settings.path / IMAGES_DIRECTORY)
            files.sweep(store.file_names())
            parameters = IndexParameters.from_settings(settings, embedding_dim)
            gallery = cls(
                settings,
                store,
                files,
                build_search_index(store, parameters),
                lock,
                embedding_dim=embedding_dim,
                model_id=model_id,
            )
        except BaseException:
            store.close()
            lock.release()
            raise
        if not gallery.check():
            gallery.close()
            raise GalleryError(f"the rebuilt index does not match the store in {settings.path}")
        items, images = store.counts()
        logger.info("gallery %s: %d items, %d images, %s index", settings.path, items, images, settings.index.value)
        return gallery

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
        label = validation.check_label(label)
        item_id = validation.check_item_id(item_id) if item_id is not None else None
        metadata_text = validation.encode_metadata(metadata) if metadata is not None else None
        box = validation.check_box(box)
        media_type = validation.check_media_type(media_type)
        image_bytes = validation.check_image_bytes(image_bytes)
        vector = validation.check_embedding(embedding, self.embedding_dim)
        sha256 = sha256_hex(image_bytes)
        file_name = file_name_for(sha256, media_type)
        with self._write_lock:
            self._ensure_open()
            writer = self._store.writer
            existing = self._store.get_item(item_id, writer) if item_id is not None else None
            if existing is not None and existing.label != label:
                raise LabelConflict(
                    f"item {item_id} has label {existing.label!r}, not {label!r}",
                    item_id=item_id,
                    label=existing.label,
                    requested_label=label,
                )
            item_id = item_id or new_id()
            image = self._store.find_image(writer, item_id, sha256) if existing is not None else None
            metadata_changed = metadata_text is not None and (
                existing is None or json.loads(metadata_text) != existing.metadata
            )
            if image is not None and not metadata_changed:
                return Enrolment(existing, image, created_item=False, created_image=False)  # type: ignore[arg-type]
            wrote_file = image is None and self._files.write(file_name, image_bytes)
            image_id = new_id()
            now = time.time()
            try:
                with self._store.write() as connection:
                    if existing is None:
                        self._store.insert_item(connection, item_id, label, metadata_text or "{}", now)
                    elif metadata_changed:
                        self._store.update_item(connection, item_id, {"metadata": metadata_text}, now)
                    row_id = None
                    if image is None:
                        row_id = self._store.insert_image(
                            connection,
                            image_id=image_id,
                            item_id=item_id,
                            sha256=sha256,
                            file_name=file_name,
                            media_type=media_type,
                            box=box,
                            model_id=self.model_id,
                            embedding=vector,
                            now=now,
                        )
            except BaseException:
                if wrote_file and not self._store.file_in_use(writer, file_name):
                    self._files.remove(file_name)
                raise
            if row_id is not None:
                image = self._index_new_image(row_id, image_id, item_id, label, vector, created_item=existing is None)
            item = self._store.get_item(item_id, writer)
        return Enrolment(item, image, created_item=existing is None, created_image=row_id is not None)  # type: ignore[arg-type]

    def _index_new_image(
        self, row_id: int, image_id: str, item_id: str, label: str, vector: NDArray[np.float32], *, created_item: bool
    ) -> GalleryImage:
        try:
            self._search.add(row_id, image_id, item_id, label, vector)
        except Exception as error:
            # Undo the committed row so that the store never holds an image the index lacks.
            with self._store.write() as connection:
                self._store.delete_image(connection, image_id)
                if created_item:
                    self._store.delete_item(connection, item_id)
            raise GalleryError(f"could not add the image to the index: {error}") from error
        return self._store.get_image(image_id, self._store.writer)  # type: ignore[return-value]

    def update_item(
        self, item_id: str, *, label: str | None = None, metadata: dict[str, Any] | None = None
    ) -> GalleryItem:
        """Changes label and/or metadata (replaced whole); embeddings stay as they are."""
        label = validation.check_label(label) if label is not None else None
        metadata_text = validation.encode_metadata(metadata) if metadata is not None else None
        with self._write_lock:
            self._ensure_open()
            existing = self._require_item(item_id, self._store.writer)
            changes: dict[str, Any] = {}
            if label is not None and label != existing.label:
                changes["label"] = label
            if metadata_text is not None:
                changes["metadata"] = metadata_text
            if changes:
                with self._store.write() as connection:
                    self._store.update_item(connection, item_id, changes, time.time())
            if "label" in changes:
                self._search.set_label(item_id, changes["label"])
            return self._require_item(item_id, self._store.writer)

    def delete_item(self, item_id: str) -> int:
        """Deletes the item and all its images; returns how many images were removed."""
        with self._write_lock:
            self._ensure_open()
            self._require_item(item_id, self._store.writer)
            with self._store.write() as connection:
                removed = self._store.delete_item(connection, item_id)
            self._search.remove((row["row_id"] for row in removed), dropped_item=item_id)
            self._forget_files({row["file_name"] for row in removed})
            self._maybe_rebuild()
            return len(removed)

    def delete_image(self, image_id: str) -> GalleryImage:
        """Deletes one image. The item stays, even with no image left: its id, label and metadata are the user's."""
        with self._write_lock:
            self._ensure_open()
            writer = self._store.writer
            row = self._store.image_row(image_id, writer)
            image = self._store.get_image(image_id, writer)
            if row is None or image is None:
                raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
            with self._store.write() as connection:
                self._store.delete_image(connection, image_id)
                self._store.update_item(connection, row["item_id"], {}, time.time())
            self._search.remove([row["row_id"]])
            self._forget_files({row["file_name"]})
            self._maybe_rebuild()
            return image

    def _forget_files(self, file_names: set[str]) -> None:
        for file_name in file_names:
            if not self._store.file_in_use(self._store.writer, file_name):
                self._files.remove(file_name)

    # -- reads --------------------------------------------------------------------------------------------

    def search(self, embeddings: NDArray[np.float32], top_k: int) -> list[list[GalleryMatch]]:
        """Per query row, up to ``top_k`` distinct items (each with its best image), best first."""
        queries = validation.check_queries(embeddings, self.embedding_dim)
        top_k = validation.check_top_k(top_k)
        self._ensure_open()
        return self._search.search(queries, top_k)

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

    def images_with_labels(self) -> list[tuple[GalleryImage, str]]:
        """Every image with its item's label, in enrolment order (for export)."""
        self._ensure_open()
        return [(image, label) for image, label, _ in self._store.iter_images()]

    def stats(self) -> GalleryStats:
        self._ensure_open()
        items, images = self._store.counts()
        index = self._search.index
        rebuilding = self._rebuild_thread is not None and self._rebuild_thread.is_alive()
        return GalleryStats(
            items=items,
            images=images,
            index_kind=self.settings.index.value,
            index_size=index.size,
            masked_deletions=index.masked,
            embedding_dim=self.embedding_dim,
            model_id=self.model_id,
            rebuilding=rebuilding,
        )

    def check(self) -> bool:
        """True when the index holds exactly the stored images (ids and vector count)."""
        self._ensure_open()
        with self._write_lock:
            stored = np.sort(self._store.row_ids(self._store.writer))
            indexed = np.sort(self._search.live_ids())
            mapped = self._search.row_ids()
        index = self._search.index
        return (
            np.array_equal(stored, indexed)
            and mapped == set(stored.tolist())
            and index.size - index.masked == len(stored)
        )

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
        if self._rebuild_thread is not None:
            self._rebuild_thread.join()
        self._store.close()
        self._lock.release()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise GalleryError("the gallery is closed")

    def _require_item(self, item_id: str, connection: sqlite3.Connection | None = None) -> GalleryItem:
        item = self._store.get_item(item_id, connection) if isinstance(item_id, str) else None
        if item is None:
            raise ItemNotFound(f"item {item_id} not found", item_id=item_id)
        return item

    def _maybe_rebuild(self) -> None:
        """Starts a background HNSW rebuild once too much of the graph is masked (caller holds the write lock)."""
        index = self._search.index
        if self.settings.index is not IndexKind.hnsw or index.masked_fraction <= self.settings.rebuild_deleted_fraction:
            return
        if self._rebuild_thread is not None and self._rebuild_thread.is_alive():
            return
        self._rebuild_thread = threading.Thread(target=self._rebuild, name="gallery-rebuild", daemon=True)
        self._rebuild_thread.start()

    def _rebuild(self) -> None:
        try:
            with self._store.private_reader() as connection:
                ids, vectors, _ = self._store.index_rows(self.embedding_dim, connection)
            index = VectorIndex.build(self._search.index.parameters, ids, vectors)
            with self._write_lock:
                if self._closed:
                    return
                # Writes that landed while the graph was built: add new rows, mask the deleted ones.
                writer = self._store.writer
                current = self._store.row_ids(writer)
                added = np.setdiff1d(current, ids)
                index.add(added, self._store.vectors_for(writer, added.tolist(), self.embedding_dim))
                index.remove(np.setdiff1d(ids, current).tolist())
                self._search.replace_index(index)
            logger.info("rebuilt the HNSW index: %d vectors, %d masked", index.size, index.masked)
        except Exception:
            logger.exception("the HNSW rebuild failed; deletions stay masked until the next one")
