"""How well the gallery's own min_score suggestion (``service.gallery.threshold``) rejects unknown products.

Each benchmark gallery's nearest-other-item scores give one suggestion per quantile; the open-set point of the
evaluated queries at each suggestion is set beside the manifest's calibrated threshold in the report, and picks
the quantile the settings default to (``gallery.threshold_quantile``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from service.gallery.threshold import nearest_other_scores_of_vectors
from trainer.evaluation.open_set import OpenSetPoint, OpenSetQuery, point_at

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


@dataclass(frozen=True)
class GalleryThresholdPoint:
    quantile: float
    min_score: float
    point: OpenSetPoint


def gallery_scores(vectors: NDArray[np.float32], item_ids: list[str]) -> NDArray[np.float32]:
    """Every gallery image's best score against another item's images."""
    return nearest_other_scores_of_vectors(vectors, item_ids)


def gallery_threshold_points(scores: NDArray[np.float32], queries: Sequence[OpenSetQuery],
                             quantiles: Sequence[float] = QUANTILES) -> list[GalleryThresholdPoint]:
    if len(scores) == 0 or not queries:
        return []
    points = []
    for quantile in quantiles:
        suggested = round(float(np.quantile(scores, quantile)), 3)  # as service.gallery.threshold.estimate
        points.append(GalleryThresholdPoint(quantile, suggested, point_at(queries, suggested)))
    return points
