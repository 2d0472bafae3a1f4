"""Bringing an item's Milvus rows back to its PostgreSQL rows after a write that did not finish.

A write marks its item ``pending`` in the transaction of its change and clears the mark once Milvus matches. A
mark whose item lock is free belongs to a writer that is gone (its connection, and so its lock, died with it):
:meth:`Repairer.repair` syncs those items, at a replica's start and then every ``REPAIR_INTERVAL_S``.
"""

from __future__ import annotations

import logging
import threading
import time

from service.gallery.cluster.milvus import MilvusIndex
from service.gallery.cluster.postgres import Connection, PostgresStore

logger = logging.getLogger(__name__)
REPAIR_INTERVAL_S = 30.0


class Repairer:
    def __init__(self, store: PostgresStore, index: MilvusIndex) -> None:
        self._store = store
        self._index = index
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._repair_periodically, name="gallery-repair", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def repair(self) -> int:
        """Syncs every pending item whose writer is gone (its lock is free); returns how many were synced."""
        repaired = 0
        for item_id in self._store.pending_items(time.time()):
            with self._store.connection() as connection:
                if not self._store.try_item_lock(connection, item_id):
                    continue  # a live writer holds it and will finish
                try:
                    repaired += self.sync(connection, item_id)
                finally:
                    self._store.unlock_item(connection, item_id)
        if repaired:
            logger.info("repaired %d item(s) left pending by an interrupted write", repaired)
        return repaired

    def sync(self, connection: Connection, item_id: str) -> bool:
        """Makes the item's Milvus rows equal its PostgreSQL rows, then clears its mark; the caller holds its lock."""
        try:
            rows = self._store.index_rows(connection, item_id)
            self._index.upsert(rows)
            kept = {row["row_id"] for row in rows}
            self._index.delete([row_id for row_id in self._index.item_row_ids(item_id) if row_id not in kept])
        except Exception:
            logger.warning("could not sync item %s to Milvus; it stays pending", item_id, exc_info=True)
            return False
        self._store.clear_pending(connection, item_id)
        return True

    def _repair_periodically(self) -> None:
        while not self._stop.wait(REPAIR_INTERVAL_S):
            try:
                self.repair()
            except Exception:
                logger.warning("the periodic gallery repair failed", exc_info=True)
