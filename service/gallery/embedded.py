"""The embedded back end: SQLite is the source of truth, the faiss index is rebuilt from it at start.

Read top to bottom: opening, reads, writes, closing, then the helpers. Reads take no lock:
each thread reads through its own SQLite connection, which sees every committed write. Writers are
serialised by one lock. A write is committed (fsynced) first and only then applied to the
in-memory index, so an acknowledged write is durable and visible to the next search; a failed write
leaves neither a row nor an index entry behind. One process owns the gallery (a directory lock).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings, IndexKind
from service.errors import GalleryError, ImageNotFound, ItemNotFound
from service.gallery import validation
from service.gallery.backend import StoredImage, StoreReads
from service.gallery.files import file_name_for, sha256_hex
from service.gallery.filters import MetadataFilter, describe
from service.gallery.opening import GalleryParts, open_parts
from service.gallery.rebuild import IndexRebuilder
from service.gallery.store import GalleryStore
from service.gallery.types import Enrolment, GalleryImage, GalleryItem, GalleryMatch, GalleryStats
from service.gallery.validation import NewImage

logger = logging.getLogger(__name__)
CACHED_SELECTIONS = 64


class EmbeddedGallery(StoreReads):
    """Thread-safe; :meth:`open` also takes an exclusive lock on the directory."""

    _store: GalleryStore

    def __init__(self, settings: GallerySettings, parts: GalleryParts, *, embedding_dim: int, model_id: str) -> None:
        self.settings = settings
        self.embedding_dim = embedding_dim
        self.model_id = model_id
        self._store = parts.store
        self.files = parts.files
        self._search = parts.search_index
        self._lock = parts.lock
        self._snapshots = parts.snapshots
        self._snapshot_mutations = 0
        self._write_lock = threading.Lock()
        self._rebuilder = IndexRebuilder(settings, self._store, self._search, self._write_lock)
        self._closed = False
        # filter -> (writes counter when read, selected row ids): a repeated filter skips the SQLite scan
        self._selections: OrderedDict[str, tuple[int, NDArray[np.int64]]] = OrderedDict()
        self._selections_lock = threading.Lock()
        self._writes = 0

    @classmethod
    def open(cls, settings: GallerySettings, *, embedding_dim: int, model_id: str) -> EmbeddedGallery:
        """Creates the directory and database if missing, rebuilds the index from the store and verifies it."""
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # nothing searches yet: build the graph on every core
        try:
            parts = open_parts(settings, embedding_dim, model_id)
        finally:
            faiss.omp_set_num_threads(settings.search_threads)
        gallery = cls(settings, parts, embedding_dim=embedding_dim, model_id=model_id)
        if not gallery.check(thorough=True):
            gallery.close()
            raise GalleryError(f"the rebuilt index does not match the store in {settings.path}")
        with gallery._write_lock:
            gallery._rebuilder.maybe_start()  # a reloaded snapshot may carry many masked deletions
        items, images = parts.store.counts()
        logger.info("gallery %s: %d items, %d images, %s index", settings.path, items, images,
                    parts.search_index.index.parameters.kind.value)
        return gallery

    # -- reads --------------------------------------------------------------------------------------------

    def images_with_labels(self) -> list[tuple[GalleryImage, str]]:
        return [(image, label) for image, label, _ in self._store.iter_images()]

    def search(
        self, queries: NDArray[np.float32], top_k: int, metadata_filter: MetadataFilter | None
    ) -> list[list[GalleryMatch]]:
        selected = None if metadata_filter is None else self._selected(metadata_filter)
        return self._search.search(queries, top_k, selected)

    def _selected(self, metadata_filter: MetadataFilter) -> NDArray[np.int64]:
        """The rows a filter selects, from SQLite; cached until the next write (every write counts one, after it
        is applied, so a selection read before a write is never kept past it)."""
        key = describe(metadata_filter)
        with self._selections_lock:
            writes = self._writes
            cached = self._selections.get(key)
            if cached is not None and cached[0] == writes:
                self._selections.move_to_end(key)
                return cached[1]
        selected = self._store.selected_row_ids(metadata_filter)
        with self._selections_lock:
            self._selections[key] = (writes, selected)
            self._selections.move_to_end(key)
            while len(self._selections) > CACHED_SELECTIONS:
                self._selections.popitem(last=False)
        return selected

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """Around each write, inside the write lock: the count goes up once the write is applied (or failed)."""
        try:
            yield
        finally:
            with self._selections_lock:
                self._writes += 1

    def stats(self) -> GalleryStats:
        items, images = self._store.counts()
        index = self._search.index
        return GalleryStats(
            items=items,
            images=images,
            index_kind=index.parameters.kind.value,
            index_size=index.size,
            masked_deletions=index.masked,
            embedding_dim=self.embedding_dim,
            model_id=self.model_id,
            rebuilding=self._rebuilder.running,
            backend="embedded",
        )

    def check(self, thorough: bool = False) -> bool:
        """True when the index holds exactly the stored images.

        The default compares count, sum, min and max of the ids in the store, the index and the id map:
        cheap enough for a readiness probe on a large gallery. ``thorough`` compares the id sets
        themselves (done at start).
        """
        with self._write_lock:
            if thorough:
                stored = np.sort(self._store.row_ids(self._store.writer))
                indexed = np.sort(self._search.live_ids())
                return np.array_equal(stored, indexed) and self._search.row_ids() == set(stored.tolist())
            stored_fingerprint = self._store.row_id_fingerprint(self._store.writer)
            indexed = self._search.live_ids()
            mapped = np.fromiter(self._search.row_ids(), dtype=np.int64)
        return stored_fingerprint == id_fingerprint(indexed) == id_fingerprint(mapped)

    # -- writes -------------------------------------------------------------------------------------------

    def enrol(self, request: NewImage) -> Enrolment:
        with self._write_lock, self._counted():
            self._ensure_open()
            return self._enrol(request)

    def update_item(self, item_id: str, label: str | None, metadata_text: str | None) -> GalleryItem:
        with self._write_lock, self._counted():
            self._ensure_open()
            existing = self._require_item(item_id, self._store.writer)
            changes: dict[str, object] = {}
            if label is not None and label != existing.label:
                changes["label"] = label
            if metadata_text is not None:
                changes["metadata"] = metadata_text
            if changes:
                with self._store.write() as connection:
                    self._store.update_item(connection, item_id, changes, time.time())
            if "label" in changes:
                self._search.set_label(item_id, str(changes["label"]))
            return self._require_item(item_id, self._store.writer)

    def delete_item(self, item_id: str) -> int:
        with self._write_lock, self._counted():
            self._ensure_open()
            self._require_item(item_id, self._store.writer)
            with self._store.write() as connection:
                removed = self._store.delete_item(connection, item_id)
            self._search.remove((row["row_id"] for row in removed), dropped_item=item_id)
            self._forget_files({row["file_name"] for row in removed})
            self._rebuilder.maybe_start()
            return len(removed)

    def delete_image(self, image_id: str) -> GalleryImage:
        with self._write_lock, self._counted():
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
            self._rebuilder.maybe_start()
            return image

    # -- moving a gallery (shitu gallery migrate) ------------------------------------------------------------

    def stored_images(self) -> Iterator[StoredImage]:
        yield from self._store.stored_images(self.embedding_dim)

    def sampled_embeddings(self, count: int) -> tuple[list[str], NDArray[np.float32]]:
        return self._store.sampled_embeddings(count, self.embedding_dim)

    def restore(self, record: StoredImage) -> bool:
        with self._write_lock, self._counted():
            self._ensure_open()
            writer = self._store.writer
            if self._store.get_image(record.image.image_id, writer) is not None:
                return False
            item = self._store.get_item(record.image.item_id, writer)
            with self._store.write() as connection:
                if item is None:
                    self._store.insert_item(connection, record.image.item_id, record.label,
                                            validation.encode_metadata(record.metadata), record.item_created_at)
                    self._store.update_item(connection, record.image.item_id, {}, record.item_updated_at)
                row_id = self._store.insert_stored_image(connection, record)
            label = item.label if item is not None else record.label
            self._search.add(row_id, record.image.image_id, record.image.item_id, label, record.embedding)
            return True

    # -- closing ------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._write_lock:  # a write in progress finishes first; later ones are refused
            if self._closed:
                return
            self._closed = True
        self._rebuilder.stop()
        index = self._search.index
        if (self._snapshots is not None and index.parameters.kind is IndexKind.hnsw
                and self._search.mutations != self._snapshot_mutations):
            with self._search.lock.reading():
                self._snapshots.write(index)
        self._store.close()
        self._lock.release()

    # -- helpers ---------------------------------------------------------------------------------------------

    def _enrol(self, request: NewImage) -> Enrolment:
        writer = self._store.writer
        existing = self._store.get_item(request.item_id, writer) if request.item_id is not None else None
        item_id = request.item_id or new_id()
        request.check_label_against(existing, item_id)
        sha256 = sha256_hex(request.data)
        image = self._store.find_image(writer, item_id, sha256) if existing is not None else None
        metadata_changed = request.changes_metadata_of(existing)
        if existing is not None and image is not None and not metadata_changed:
            return Enrolment(existing, image, created_item=False, created_image=False)
        created_image = image is None
        if image is None:
            image = self._commit_new_image(request, item_id, sha256, existing, metadata_changed)
        else:  # the same bytes again, with new metadata
            with self._store.write() as connection:
                self._store.update_item(connection, item_id, {"metadata": request.metadata_text}, time.time())
        item = self._require_item(item_id, writer)
        return Enrolment(item, image, created_item=existing is None, created_image=created_image)

    def _commit_new_image(
        self, request: NewImage, item_id: str, sha256: str, existing: GalleryItem | None, metadata_changed: bool
    ) -> GalleryImage:
        """Writes the file, then item and image rows in one transaction, then the index entry."""
        file_name = file_name_for(sha256, request.media_type)
        wrote_file = self.files.write(file_name, request.data)
        image_id = new_id()
        now = time.time()
        try:
            with self._store.write() as connection:
                if existing is None:
                    self._store.insert_item(connection, item_id, request.label, request.metadata_text or "{}", now)
                elif metadata_changed:
                    self._store.update_item(connection, item_id, {"metadata": request.metadata_text}, now)
                row_id = self._store.insert_image(
                    connection,
                    image_id=image_id,
                    item_id=item_id,
                    sha256=sha256,
                    file_name=file_name,
                    media_type=request.media_type,
                    box=request.box,
                    model_id=self.model_id,
                    embedding=request.vector,
                    now=now,
                )
        except BaseException:
            if wrote_file and not self._store.file_in_use(self._store.writer, file_name):
                self.files.remove(file_name)
            raise
        try:
            self._search.add(row_id, image_id, item_id, request.label, request.vector)
        except Exception as error:
            # Undo the committed rows so that the store never holds an image the index lacks.
            with self._store.write() as connection:
                self._store.delete_image(connection, image_id)
                if existing is None:
                    self._store.delete_item(connection, item_id)
                elif metadata_changed:
                    previous = {"metadata": validation.encode_metadata(existing.metadata)}
                    self._store.update_item(connection, item_id, previous, existing.updated_at)
            self._forget_files({file_name})
            raise GalleryError(f"could not add the image to the index: {error}") from error
        self._rebuilder.maybe_start()  # an auto gallery that outgrew exact search switches to HNSW
        return self._store.get_image(image_id, self._store.writer)  # type: ignore[return-value]

    def _forget_files(self, file_names: set[str]) -> None:
        for file_name in file_names:
            if not self._store.file_in_use(self._store.writer, file_name):
                self.files.remove(file_name)

    def _ensure_open(self) -> None:
        if self._closed:
            raise GalleryError("the gallery is closed")

    def _require_item(self, item_id: str, connection: sqlite3.Connection | None = None) -> GalleryItem:
        item = self._store.get_item(item_id, connection) if isinstance(item_id, str) else None
        if item is None:
            raise ItemNotFound(f"item {item_id} not found", item_id=item_id)
        return item


def new_id() -> str:
    return uuid.uuid4().hex


def id_fingerprint(ids: NDArray[np.int64]) -> tuple[int, int, int, int]:
    if not len(ids):
        return (0, 0, 0, 0)
    return (len(ids), int(ids.sum()), int(ids.min()), int(ids.max()))
