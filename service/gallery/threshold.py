"""A gallery's own suggestion for ``min_score``: how close its items already come to each other.

For each image, its best score against the images of *other* items is what a product that is not in the
gallery but looks like one of its items would score: the nearest impostor. The suggested ``min_score`` is a
high quantile of those scores, so that look-alikes of the gallery's own products are rejected. A gallery of
flags (Norway beside Iceland) suggests a higher threshold than one of unrelated logos, which one threshold
calibrated on other data cannot know.

The sample is read alone (evenly spaced rows, not the whole store) and each sampled image is searched in the
gallery's own index for its two best items, so the cost is that of ``threshold_max_images`` searches at any
gallery size; only the gallery's public API is used (:meth:`service.gallery.Gallery.sampled_embeddings`,
:meth:`~service.gallery.Gallery.search`), so the estimate works on any back end. With an HNSW index the scores
are the graph's (recall@1 0.95-0.998 on the benchmarks): an estimate, as the sample already is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings
from service.gallery.gallery import Gallery
from service.gallery.types import GalleryMatch

CHUNK = 512  # rows of a similarity matrix computed at a time: bounds memory
# The search returns distinct items: the image's own comes first, so the second is its nearest other item.
ITEMS_SEARCHED = 2


@dataclass(frozen=True, slots=True)
class GalleryThreshold:
    """``suggested_min_score`` is ``None`` while the gallery has fewer than ``min_items`` items."""

    suggested_min_score: float | None
    quantile: float
    images_sampled: int
    items: int
    median_nearest_other: float | None  # the typical nearest-impostor score, for the operator's eye
    computed_at: float


def nearest_other_scores(item_ids: Sequence[str], matches: Sequence[Sequence[GalleryMatch]]) -> NDArray[np.float32]:
    """For each sampled image (its item id, its search results), the score of the best match of another item
    (-1 when the search found none)."""
    return np.array([next((match.score for match in found if match.item_id != item_id), -1.0)
                     for item_id, found in zip(item_ids, matches, strict=True)], dtype=np.float32)


def nearest_other_scores_of_vectors(vectors: NDArray[np.float32], item_ids: Sequence[str]) -> NDArray[np.float32]:
    """The same scores computed exactly from all the embeddings at hand (``shitu eval``, which has no gallery
    index for its feature arrays): each row's best inner product with a row of another item (-1 when none)."""
    owners = np.unique(np.asarray(item_ids), return_inverse=True)[1]
    best = np.full(len(vectors), -1.0, np.float32)
    for start in range(0, len(vectors), CHUNK):
        scores = vectors[start : start + CHUNK] @ vectors.T
        scores[owners[start : start + CHUNK][:, None] == owners[None, :]] = -np.inf  # its own item's do not count
        best[start : start + len(scores)] = np.maximum(scores.max(axis=1), -1.0)
    return best


def estimate(gallery: Gallery, items: int, *, quantile: float, max_images: int, min_items: int) -> GalleryThreshold:
    """The ``quantile`` of the nearest-other-item scores of up to ``max_images`` evenly spaced images of a gallery
    of ``items`` items (its stats, which the caller has already read)."""
    now = time.time()
    if items < max(min_items, 2):
        return GalleryThreshold(None, quantile, 0, items, None, now)
    item_ids, vectors = gallery.sampled_embeddings(max_images)  # evenly spaced: deterministic, over all enrolment
    scores = nearest_other_scores(item_ids, gallery.search(vectors, ITEMS_SEARCHED))
    suggested = round(float(np.quantile(scores, quantile)), 3)
    return GalleryThreshold(suggested, quantile, len(item_ids), items, round(float(np.median(scores)), 3), now)


class ThresholdEstimator:
    """The current estimate of one gallery, recomputed when the gallery changed and ``refresh_s`` has passed
    (a stale estimate for that long is fine; recomputing on every write of an import is not)."""

    def __init__(self, gallery: Gallery, settings: GallerySettings, clock: Callable[[], float] = time.monotonic):
        self.gallery = gallery
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._current: GalleryThreshold | None = None
        self._key: tuple[int, ...] | None = None
        self._checked_at = -np.inf

    def current(self) -> GalleryThreshold:
        """Blocking (the sample's searches when stale): call it from a worker thread."""
        with self._lock:
            now = self.clock()
            if self._current is not None and now - self._checked_at < self.settings.threshold_refresh_s:
                return self._current
            stats = self.gallery.stats()
            key = (stats.items, stats.images, stats.index_size, stats.masked_deletions)
            self._checked_at = now
            if self._current is None or key != self._key:
                self._current = estimate(self.gallery, stats.items, quantile=self.settings.threshold_quantile,
                                         max_images=self.settings.threshold_max_images,
                                         min_items=self.settings.threshold_min_items)
                self._key = key
            return self._current
