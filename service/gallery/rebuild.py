"""Background rebuilds: of an HNSW graph whose deletions are only masked, and of an ``auto`` gallery's flat index
into HNSW once it grows past ``exact_max_images``.

The new graph is built from a store snapshot without holding any lock; the swap happens under the
gallery's write lock, after replaying what changed meanwhile (new rows added, deleted rows masked).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from service.config import GallerySettings, IndexKind
from service.gallery.index import IndexParameters, VectorIndex, index_kind_for
from service.gallery.search import SearchIndex
from service.gallery.store import GalleryStore

logger = logging.getLogger(__name__)


class IndexRebuilder:
    def __init__(
        self, settings: GallerySettings, store: GalleryStore, search_index: SearchIndex, write_lock: threading.Lock
    ) -> None:
        self._settings = settings
        self._store = store
        self._search = search_index
        self._write_lock = write_lock
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def maybe_start(self) -> None:
        """Starts a rebuild once too much of the graph is masked, or once an ``auto`` gallery outgrows exact search;
        the caller holds the write lock."""
        if self._stopped or self.running:
            return
        target = self._target()
        if target is not None:
            self._thread = threading.Thread(target=self._run, args=(target,), name="gallery-rebuild", daemon=True)
            self._thread.start()

    def _target(self) -> IndexParameters | None:
        index = self._search.index
        parameters = index.parameters
        if parameters.kind is IndexKind.hnsw:
            return parameters if index.masked_fraction > self._settings.rebuild_deleted_fraction else None
        live = index.size - index.masked
        if index_kind_for(self._settings, live) is IndexKind.hnsw:
            return parameters.with_kind(IndexKind.hnsw)
        return None

    def stop(self) -> None:
        """Waits for a running rebuild; it does not swap once stopped. Call without holding the write lock."""
        with self._write_lock:
            self._stopped = True
        if self._thread is not None:
            self._thread.join()

    def _run(self, parameters: IndexParameters) -> None:
        try:
            with self._store.private_reader() as connection:
                ids, vectors, _ = self._store.index_rows(parameters.dim, connection)
            index = VectorIndex.build(parameters, ids, vectors)
            with self._write_lock:
                if self._stopped:
                    return
                writer = self._store.writer
                current = self._store.row_ids(writer)
                added = np.setdiff1d(current, ids)
                index.add(added, self._store.vectors_for(writer, added.tolist(), parameters.dim))
                index.remove(np.setdiff1d(ids, current).tolist())
                self._search.replace_index(index)
            logger.info("rebuilt the %s index: %d vectors, %d masked", parameters.kind.value, index.size,
                        index.masked)
        except Exception:
            logger.exception("the index rebuild failed; the current index stays until the next one")
