"""Open-set rejection: precision and recall of "matched" decisions over ``min_score`` thresholds, and calibration.

A query is *matched* at threshold ``t`` when its top-1 score is ≥ ``t``. A matched query is correct when its class
is in the gallery and the top-1 label is that class; every other matched query (a wrong label, or a class absent
from the gallery) is a false match. precision = correct / matched (1 when nothing is matched: no false match was
made); recall = correct / queries of gallery classes. Recall and the number of matches can only fall as ``t`` rises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# 0.000, 0.005, …, 1.000: fine enough to place a threshold, coarse enough to be written into a setting.
THRESHOLDS: tuple[float, ...] = tuple(float(value) for value in np.round(np.linspace(0.0, 1.0, 201), 3))


@dataclass(frozen=True)
class OpenSetQuery:
    truth: str
    known: bool  # the true class is in the gallery
    predicted: str | None  # top-1 label; None when the pipeline returned nothing for the query
    score: float | None  # top-1 score (cosine)
    source: str | None = None  # the candidate source of the answer (detector, whole_image, window)


@dataclass(frozen=True)
class OpenSetPoint:
    min_score: float
    precision: float
    recall: float
    f1: float
    false_accept_rate: float  # share of queries of absent classes that were matched anyway
    matched: int


def balanced(queries: Sequence[OpenSetQuery]) -> list[OpenSetQuery]:
    """Half from gallery classes, half from absent ones: the first ``n`` of each kind, ``n`` the smaller count."""
    known = [query for query in queries if query.known]
    unknown = [query for query in queries if not query.known]
    count = min(len(known), len(unknown))
    return known[:count] + unknown[:count]


def point_at(queries: Sequence[OpenSetQuery], min_score: float,
             by_source: Mapping[str, float] | None = None) -> OpenSetPoint:
    """The operating point at ``min_score``; ``by_source`` gives other thresholds to answers of those sources."""
    by_source = by_source or {}
    matched = [query for query in queries
               if query.score is not None and query.score >= by_source.get(query.source or "", min_score)]
    correct = sum(1 for query in matched if query.known and query.predicted == query.truth)
    known = sum(1 for query in queries if query.known)
    unknown = len(queries) - known
    precision = correct / len(matched) if matched else 1.0
    recall = correct / known if known else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    false_accepts = sum(1 for query in matched if not query.known)
    return OpenSetPoint(
        min_score=float(min_score),
        precision=precision,
        recall=recall,
        f1=f1,
        false_accept_rate=false_accepts / unknown if unknown else 0.0,
        matched=len(matched),
    )


def open_set_curve(queries: Sequence[OpenSetQuery], thresholds: Sequence[float] = THRESHOLDS) -> list[OpenSetPoint]:
    return [point_at(queries, threshold) for threshold in thresholds]


def calibrate(curve: Sequence[OpenSetPoint], precision_target: float | None = None) -> OpenSetPoint | None:
    """The threshold to ship as ``min_score``.

    Without a target: the best F1 (of equal ones, the middle threshold, away from both edges of the plateau).
    With a target: the lowest threshold whose precision reaches it while something is still recalled (the most
    recall at that precision). None when no point qualifies.
    """
    if precision_target is None:
        best = max((point.f1 for point in curve), default=0.0)
        tied = [point for point in curve if point.f1 == best and best > 0]
        return tied[len(tied) // 2] if tied else None
    reaching = [point for point in curve if point.precision >= precision_target and point.recall > 0]
    return min(reaching, key=lambda point: point.min_score) if reaching else None
