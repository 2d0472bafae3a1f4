"""PP-ShiTu's rules for choosing candidate boxes and for suppressing duplicate results."""

from __future__ import annotations

from collections.abc import Sequence

from service.box import Box
from service.inference.types import Detection


def select_detections(detections: Sequence[Detection], *, max_detections: int, threshold: float) -> list[Detection]:
    """Best ``max_detections`` first, THEN the score threshold (PP-ShiTu's order, which matters when many pass)."""
    best = sorted(detections, key=lambda detection: detection.score, reverse=True)[:max_detections]
    return [detection for detection in best if detection.score >= threshold]


def overlap(first: Box, second: Box) -> float:
    """IoU with PP-ShiTu's +1 pixel convention on areas and intersections."""
    width = min(first.x2, second.x2) - max(first.x1, second.x1) + 1
    height = min(first.y2, second.y2) - max(first.y1, second.y1) + 1
    intersection = max(0, width) * max(0, height)
    area_first = (first.x2 - first.x1 + 1) * (first.y2 - first.y1 + 1)
    area_second = (second.x2 - second.x1 + 1) * (second.y2 - second.y1 + 1)
    return intersection / float(area_first + area_second - intersection)


def suppress(boxes: Sequence[Box], scores: Sequence[float], *, iou_threshold: float,
             kept: Sequence[Box] = ()) -> list[int]:
    """Greedy NMS by descending score; a box survives only if its IoU with every kept box is ≤ the threshold.

    ``kept`` holds boxes that already won (they suppress but are not returned). Returns indices, best first.
    """
    order = sorted(range(len(boxes)), key=lambda index: scores[index], reverse=True)
    winners: list[Box] = list(kept)
    chosen: list[int] = []
    for index in order:
        if all(overlap(boxes[index], winner) <= iou_threshold for winner in winners):
            winners.append(boxes[index])
            chosen.append(index)
    return chosen
