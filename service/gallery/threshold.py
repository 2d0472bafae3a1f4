"""A gallery's own suggestion for ``min_score``: how close its items already come to each other.

For each image, its best score against the images of *other* items is what a product that is not in the
gallery but looks like one of its items would score: the nearest impostor. The suggested ``min_score`` is a
high quantile of those scores, so that look-alikes of the gallery's own products are rejected. A gallery of
flags (Norway beside Iceland) suggests a higher threshold than one of unrelated logos, which one threshold
calibrated on other data cannot know.

Only the gallery's public API is used (:meth:`service.gallery.Gallery.embeddings`), so the estimate works on any
back end. The cost is one matrix product of the sampled images against all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings
from service.gallery.gallery import Gallery

CHUNK = 512  # rows of the similarity matrix computed at a time: bounds memory on large galleries


@dataclass(frozen=True, slots=True)
class GalleryThreshold:
    """``suggested_min_score`` is ``None`` while the gallery has fewer than ``min_items`` items."""

    suggested_min_score: float | None
    quantile: float
    images_sampled: int
    items: int
    median_nearest_other: float | None  # the typical nearest-impostor score, for the operator's eye
    computed_at: float


def nearest_other_scores(vectors: NDArray[np.float32], item_ids: list[str], sample: NDArray[np.int64]
                         ) -> NDArray[np.float32]:
    """For each sampled row, its best inner product with a row of another item (-1 when there is none)."""
    owners = np.unique(np.asarray(item_ids), return_inverse=True)[1]
    best = np.full(len(sample), -1.0, np.float32)
    for start in range(0, len(sample), CHUNK):
        rows = sample[start : start + CHUNK]
        scores = vectors[rows] @ vectors.T
        scores[owners[rows][:, None] == owners[None, :]] = -np.inf  # its own item's images do not count
        best[start : start + len(rows)] = np.maximum(scores.max(axis=1), -1.0)
    return best


def estimate(vectors: NDArray[np.float32], item_ids: list[str], *, quantile: float, max_images: int,
             min_items: int) -> GalleryThreshold:
    """The ``quantile`` of the nearest-other-item scores of up to ``max_images`` evenly spaced images."""
    items = len(set(item_ids))
    now = time.time()
    if items < max(min_items, 2):
        return GalleryThreshold(None, quantile, 0, items, None, now)
    # evenly spaced rows: deterministic, and spread over the enrolment history
    sample = np.unique(np.linspace(0, len(item_ids) - 1, min(max_images, len(item_ids))).round().astype(np.int64))
    scores = nearest_other_scores(vectors, item_ids, sample)
    suggested = round(float(np.quantile(scores, quantile)), 3)
    return GalleryThreshold(suggested, quantile, len(sample), items, round(float(np.median(scores)), 3), now)


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
        """Blocking (a matrix product when stale): call it from a worker thread."""
        with self._lock:
            now = self.clock()
            if self._current is not None and now - self._checked_at < self.settings.threshold_refresh_s:
                return self._current
            stats = self.gallery.stats()
            key = (stats.items, stats.images, stats.index_size, stats.masked_deletions)
            self._checked_at = now
            if stats.images > self.settings.threshold_max_gallery_images:
                quantile = self.settings.threshold_quantile
                self._current = GalleryThreshold(None, quantile, 0, stats.items, None, time.time())
                self._key = key
            elif self._current is None or key != self._key:
                item_ids, vectors = self.gallery.embeddings()
                self._current = estimate(vectors, item_ids, quantile=self.settings.threshold_quantile,
                                         max_images=self.settings.threshold_max_images,
                                         min_items=self.settings.threshold_min_items)
                self._key = key
            return self._current
