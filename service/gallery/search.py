"""The in-memory side of the gallery: the faiss index plus the row → image → item → label maps.

Everything a search reads sits behind one readers-writer lock, so a search sees a write either
entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from service.gallery.index import VectorIndex
from service.gallery.locks import ReadWriteLock
from service.gallery.types import GalleryMatch

# First fetch per query: enough for top_k distinct items when an item has a few images.
OVERFETCH = 4


class SearchIndex:
    def __init__(
        self, index: VectorIndex, rows: dict[int, tuple[str, str]], labels: dict[str, str], mutations: int = 0
    ) -> None:
        self._index = index
        self._rows = rows  # faiss id -> (image_id, item_id)
        self._labels = labels  # item_id -> label
        self.lock = ReadWriteLock()
        self.mutations = mutations  # changes since the index was loaded: is the snapshot on disk stale?

    @property
    def index(self) -> VectorIndex:
        return self._index

    def search(
        self, queries: NDArray[np.float32], top_k: int, selected: NDArray[np.int64] | None = None
    ) -> list[list[GalleryMatch]]:
        """``selected``: the row ids a metadata filter allows (read from the store; rows not indexed yet or no
        longer indexed are dropped here, under the lock)."""
        with self.lock.reading():
            if selected is not None:
                rows = self._rows
                selected = np.fromiter((row for row in selected.tolist() if row in rows), dtype=np.int64)
            live = self._index.size - self._index.masked if selected is None else len(selected)
            if live == 0:
                return [[] for _ in range(len(queries))]
            results: list[list[GalleryMatch]] = [[] for _ in range(len(queries))]
            pending = list(range(len(queries)))
            limit = self._index.size if selected is None else len(selected)
            fetch = min(top_k * OVERFETCH, limit)
            while pending:
                scores, ids = self._index.search(queries[pending], fetch, selected)
                still_short = []
                for position, query in enumerate(pending):
                    results[query] = self._distinct(scores[position], ids[position], top_k)
                    exhausted = fetch >= limit or ids[position][-1] < 0
                    if len(results[query]) < top_k and not exhausted:
                        still_short.append(query)
                pending = still_short
                fetch = min(fetch * 2, limit)
            return results

    def _distinct(self, scores: NDArray[np.float32], ids: NDArray[np.int64], top_k: int) -> list[GalleryMatch]:
        matches: list[GalleryMatch] = []
        seen: set[str] = set()
        for score, row_id in zip(scores.tolist(), ids.tolist(), strict=True):
            if row_id < 0:
                break
            image_id, item_id = self._rows[row_id]
            if item_id in seen:
                continue
            seen.add(item_id)
            matches.append(GalleryMatch(item_id, self._labels[item_id], image_id, float(score)))
            if len(matches) == top_k:
                break
        return matches

    # -- mutations: the caller holds the gallery's writer lock, these take the index lock -----------------

    def add(self, row_id: int, image_id: str, item_id: str, label: str, vector: NDArray[np.float32]) -> None:
        with self.lock.writing():
            self._index.add(np.array([row_id], dtype=np.int64), vector.reshape(1, -1))
            self.mutations += 1
            self._rows[row_id] = (image_id, item_id)
            self._labels[item_id] = label

    def remove(self, row_ids: Iterable[int], dropped_item: str | None = None) -> None:
        row_ids = list(row_ids)
        with self.lock.writing():
            self._index.remove(row_ids)
            self.mutations += 1
            for row_id in row_ids:
                self._rows.pop(row_id, None)
            if dropped_item is not None:
                self._labels.pop(dropped_item, None)

    def set_label(self, item_id: str, label: str) -> None:
        with self.lock.writing():
            self._labels[item_id] = label

    def replace_index(self, index: VectorIndex) -> None:
        with self.lock.writing():
            self._index = index
            self.mutations += 1

    def live_ids(self) -> NDArray[np.int64]:
        with self.lock.reading():
            return self._index.live_ids()

    def row_ids(self) -> set[int]:
        with self.lock.reading():
            return set(self._rows)
