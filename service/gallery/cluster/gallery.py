"""The cluster back end: PostgreSQL is the source of truth, Milvus an index derived from it, shared by replicas.

A replica keeps nothing another one needs: ids come from a PostgreSQL sequence, writers of one item take its
advisory lock (whichever replica they run on), and every Milvus call asks for Strong consistency.

Write order, per item: (1) the change and a ``pending`` mark for the item commit in one PostgreSQL
transaction; (2) Milvus is brought to match (upsert or delete, both idempotent); (3) the mark is cleared.
The write is acknowledged after (3). A failure in (2) undoes (1) and the item is synced again, so neither
half stays behind; a replica killed between (1) and (3) leaves the mark, and :meth:`ClusterGallery.repair`
(at every replica's start, then every ``REPAIR_INTERVAL_S``) makes the item's Milvus rows equal its
PostgreSQL rows. Until then a search only shows rows PostgreSQL has: every hit is looked up there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings
from service.errors import GalleryError, GalleryUnavailable, ImageNotFound, ItemNotFound
from service.gallery.backend import StoredImage, StoreReads
from service.gallery.cluster.expressions import to_milvus
from service.gallery.cluster.milvus import MilvusIndex
from service.gallery.cluster.opening import check_embedding_space, open_store
from service.gallery.cluster.postgres import Connection, PostgresStore
from service.gallery.cluster.repair import Repairer
from service.gallery.embedded import new_id
from service.gallery.files import ImageFiles, file_name_for, sha256_hex
from service.gallery.filters import MetadataFilter
from service.gallery.opening import IMAGES_DIRECTORY
from service.gallery.types import Enrolment, GalleryImage, GalleryItem, GalleryMatch, GalleryStats
from service.gallery.validation import NewImage

logger = logging.getLogger(__name__)
# A search widens its Milvus limit while hits of rows PostgreSQL no longer has hide items, up to this factor.
MAX_WIDENING = 16


class ClusterGallery(StoreReads):
    def __init__(self, settings: GallerySettings, store: PostgresStore, index: MilvusIndex, *, embedding_dim: int,
                 model_id: str) -> None:
        self.settings = settings
        self.embedding_dim = embedding_dim
        self.model_id = model_id
        self.files = ImageFiles(settings.path / IMAGES_DIRECTORY)
        self._store = store
        self._index = index
        self._repairer = Repairer(store, index)

    _store: PostgresStore

    @classmethod
    def open(cls, settings: GallerySettings, *, embedding_dim: int, model_id: str) -> ClusterGallery:
        """Connects to both stores (creating schema and collection if missing) and repairs interrupted writes."""
        store = open_store(settings)
        try:
            check_embedding_space(store, settings.cluster.name, embedding_dim, model_id)
            index = MilvusIndex(settings, embedding_dim)
        except BaseException:
            store.close()
            raise
        gallery = cls(settings, store, index, embedding_dim=embedding_dim, model_id=model_id)
        gallery.repair()
        if not gallery.check(thorough=True):
            gallery.close()
            raise GalleryError(f"the Milvus collection {settings.cluster.name} does not match PostgreSQL")
        gallery._repairer.start()
        items, images = store.counts()
        logger.info("cluster gallery %s: %d items, %d images", settings.cluster.name, items, images)
        return gallery

    # -- reads --------------------------------------------------------------------------------------------

    def images_with_labels(self) -> list[tuple[GalleryImage, str]]:
        return self._store.images_with_labels()

    def search(
        self, queries: NDArray[np.float32], top_k: int, metadata_filter: MetadataFilter | None
    ) -> list[list[GalleryMatch]]:
        expression = "" if metadata_filter is None else to_milvus(metadata_filter)
        limit = top_k
        while True:
            hits = self._index.search(queries, limit, expression)
            known = self._store.matches(sorted({row_id for row in hits for row_id, _ in row}))
            results = [
                [GalleryMatch(known[row_id][1], known[row_id][2], known[row_id][0], score)
                 for row_id, score in row if row_id in known][:top_k]
                for row in hits
            ]
            hidden = any(len(row) == limit and len(result) < top_k for row, result in zip(hits, results, strict=True))
            if not hidden or limit >= top_k * MAX_WIDENING:
                return results
            limit *= 2

    def stats(self) -> GalleryStats:
        items, images = self._store.counts()
        return GalleryStats(
            items=items,
            images=images,
            index_kind=self.settings.cluster.milvus_index.lower(),
            index_size=self._index.count(),
            masked_deletions=0,
            embedding_dim=self.embedding_dim,
            model_id=self.model_id,
            rebuilding=bool(self._store.pending_items(time.time())),
            backend="cluster",
        )

    def check(self, thorough: bool = False) -> bool:
        """Milvus holds exactly PostgreSQL's images, but for items whose writes are in flight (``pending``).

        The default compares counts (a readiness probe); ``thorough`` compares the id sets (done at start).
        """
        pending = set(self._store.pending_items(time.time()))
        if not thorough:
            return bool(pending) or self._store.counts()[1] == self._index.count()
        stored = {row["row_id"]: row["item_id"] for row in self._store.query("SELECT row_id, item_id FROM "
                                                                             "{schema}.images")}
        indexed = self._index.rows()
        differing = set(stored).symmetric_difference(indexed)
        return all(stored.get(row_id, indexed.get(row_id)) in pending for row_id in differing)

    # -- writes -------------------------------------------------------------------------------------------

    def enrol(self, request: NewImage) -> Enrolment:
        item_id = request.item_id or new_id()
        with self._store.item_lock(item_id) as connection:
            existing = self._store.get_item(item_id, connection) if request.item_id is not None else None
            request.check_label_against(existing, item_id)
            sha256 = sha256_hex(request.data)
            image = self._store.find_image(connection, item_id, sha256) if existing is not None else None
            metadata_changed = request.changes_metadata_of(existing)
            if existing is not None and image is not None and not metadata_changed:
                return Enrolment(existing, image, created_item=False, created_image=False)
            created_image = image is None
            if image is None:
                image = self._add_image(connection, request, item_id, sha256, existing, metadata_changed)
            elif existing is not None:  # the same bytes again, with new metadata
                self._change_metadata(connection, existing, str(request.metadata_text))
            item = self._require_item(item_id, connection)
            return Enrolment(item, image, created_item=existing is None, created_image=created_image)

    def _add_image(self, connection: Connection, request: NewImage, item_id: str, sha256: str,
                   existing: GalleryItem | None, metadata_changed: bool) -> GalleryImage:
        file_name = file_name_for(sha256, request.media_type)
        image = GalleryImage(image_id=new_id(), item_id=item_id, box=request.box, model_id=self.model_id,
                             sha256=sha256, media_type=request.media_type, created_at=time.time())
        wrote_file = False
        try:
            with connection.transaction():
                self._store.lock_file(connection, file_name)
                wrote_file = self.files.write(file_name, request.data)
                if existing is None:
                    self._store.insert_item(connection, item_id, request.label, request.metadata_text or "{}",
                                            image.created_at)
                elif metadata_changed:
                    self._store.update_item(connection, item_id, {"metadata": request.metadata_text},
                                            image.created_at)
                self._store.insert_image(connection, image, file_name, request.vector)
                self._store.mark_pending(connection, item_id, image.created_at)
        except BaseException:
            if wrote_file:
                self._forget_files(connection, {file_name})
            raise
        try:
            rows = self._store.index_rows(connection, item_id)
            # new metadata reaches every image of the item; otherwise only the new row goes to Milvus
            self._index.upsert(rows if metadata_changed else [row for row in rows if row["image_id"] == image.image_id])
        except Exception as error:
            with connection.transaction():
                self._store.delete_image(connection, image.image_id)
                if existing is None:
                    self._store.delete_item(connection, item_id)
                elif metadata_changed:
                    previous = {"metadata": json.dumps(existing.metadata, ensure_ascii=False)}
                    self._store.update_item(connection, item_id, previous, existing.updated_at)
            self._repairer.sync(connection, item_id)
            self._forget_files(connection, {file_name})
            raise GalleryUnavailable(f"could not add the image to Milvus, nothing was stored: {error}",
                                     retry_after_s=5) from error
        self._store.clear_pending(connection, item_id)
        return image

    def _change_metadata(self, connection: Connection, existing: GalleryItem, metadata_text: str) -> None:
        """New metadata in PostgreSQL, then on every Milvus row of the item (the filters read it there)."""
        item_id = existing.item_id
        with connection.transaction():
            self._store.update_item(connection, item_id, {"metadata": metadata_text}, time.time())
            self._store.mark_pending(connection, item_id, time.time())
        try:
            self._index.upsert(self._store.index_rows(connection, item_id))
        except Exception as error:
            with connection.transaction():
                previous = {"metadata": json.dumps(existing.metadata, ensure_ascii=False)}
                self._store.update_item(connection, item_id, previous, existing.updated_at)
            self._repairer.sync(connection, item_id)
            raise GalleryUnavailable(f"could not change the item's metadata in Milvus, nothing was changed: {error}",
                                     retry_after_s=5) from error
        self._store.clear_pending(connection, item_id)

    def update_item(self, item_id: str, label: str | None, metadata_text: str | None) -> GalleryItem:
        with self._store.item_lock(item_id) as connection:
            existing = self._require_item(item_id, connection)
            if metadata_text is not None:
                self._change_metadata(connection, existing, metadata_text)
            if label is not None and label != existing.label:
                with connection.transaction():  # labels live in PostgreSQL only: every hit is looked up there
                    self._store.update_item(connection, item_id, {"label": label}, time.time())
            return self._require_item(item_id, connection)

    def delete_item(self, item_id: str) -> int:
        with self._store.item_lock(item_id) as connection:
            self._require_item(item_id, connection)
            with connection.transaction():
                removed = self._store.delete_item(connection, item_id)
                self._store.mark_pending(connection, item_id, time.time())
            self._delete_rows(connection, item_id, [row["row_id"] for row in removed])
            self._forget_files(connection, {row["file_name"] for row in removed})
            return len(removed)

    def delete_image(self, image_id: str) -> GalleryImage:
        row = self._store.image_row(image_id)
        if row is None:
            raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
        with self._store.item_lock(row["item_id"]) as connection:
            image = self._store.get_image(image_id, connection)
            if image is None:  # deleted by another replica meanwhile
                raise ImageNotFound(f"image {image_id} not found", image_id=image_id)
            with connection.transaction():
                self._store.delete_image(connection, image_id)
                self._store.update_item(connection, image.item_id, {}, time.time())
                self._store.mark_pending(connection, image.item_id, time.time())
            self._delete_rows(connection, image.item_id, [row["row_id"]])
            self._forget_files(connection, {row["file_name"]})
            return image

    def _delete_rows(self, connection: Connection, item_id: str, row_ids: list[int]) -> None:
        """The delete is committed in PostgreSQL, so searches no longer show the rows whatever Milvus holds;
        if Milvus fails, the item stays pending and the repair deletes them there."""
        try:
            self._index.delete(row_ids)
        except Exception:
            logger.warning("Milvus delete of %d row(s) of item %s failed; the repair retries", len(row_ids), item_id,
                           exc_info=True)
            return
        self._store.clear_pending(connection, item_id)

    # -- moving a gallery (shitu gallery migrate) ------------------------------------------------------------

    def stored_images(self) -> Iterator[StoredImage]:
        yield from self._store.stored_images(self.embedding_dim)

    def sampled_embeddings(self, count: int) -> tuple[list[str], NDArray[np.float32]]:
        return self._store.sampled_embeddings(count, self.embedding_dim)

    def restore(self, record: StoredImage) -> bool:
        image = record.image
        with self._store.item_lock(image.item_id) as connection:
            if self._store.get_image(image.image_id, connection) is not None:
                return False
            with connection.transaction():
                if self._store.get_item(image.item_id, connection) is None:
                    self._store.insert_item(connection, image.item_id, record.label,
                                            json.dumps(record.metadata, ensure_ascii=False), record.item_created_at)
                    self._store.update_item(connection, image.item_id, {}, record.item_updated_at)
                self._store.insert_image(connection, image, record.file_name, record.embedding)
                self._store.mark_pending(connection, image.item_id, time.time())
            rows = self._store.index_rows(connection, image.item_id)
            self._index.upsert([row for row in rows if row["image_id"] == image.image_id])
            self._store.clear_pending(connection, image.item_id)
            return True

    # -- closing ------------------------------------------------------------------------------------------

    def repair(self) -> int:
        """Syncs the items interrupted writes left pending (also done at start and every REPAIR_INTERVAL_S)."""
        return self._repairer.repair()

    def close(self) -> None:
        self._repairer.stop()
        self._index.close()
        self._store.close()

    # -- helpers ------------------------------------------------------------------------------------------

    def _forget_files(self, connection: Connection, file_names: set[str]) -> None:
        for file_name in file_names:
            with connection.transaction():
                self._store.lock_file(connection, file_name)
                if not self._store.file_in_use(connection, file_name):
                    self.files.remove(file_name)

    def _require_item(self, item_id: str, connection: Connection) -> GalleryItem:
        item = self._store.get_item(item_id, connection)
        if item is None:
            raise ItemNotFound(f"item {item_id} not found", item_id=item_id)
        return item
