"""PP-ShiTu's rules for choosing candidate boxes and for suppressing duplicate results."""

from __future__ import annotations

from collections.abc import Sequence

from service.box import Box
from service.inference.types import Detection


def select_detections(detections: Sequence[Detection], *, max_detections: int, threshold: float,
                      main_area_weight: float = 0.0) -> list[Detection]:
    """Best ``max_detections`` first, THEN the score threshold (PP-ShiTu's order, which matters when many pass).

    The selected boxes come main object first: by score x (area / the largest selected area)^``main_area_weight``,
    so that a large product outranks a small one at a slightly higher score (a gallery photo's product, not the
    sticker beside it); 0 keeps PP-ShiTu's order by score. The selection itself never depends on it.
    """
    best = sorted(detections, key=lambda detection: detection.score, reverse=True)[:max_detections]
    selected = [detection for detection in best if detection.score >= threshold]
    if main_area_weight == 0.0 or len(selected) < 2:
        return selected
    largest = max(_area(detection.box) for detection in selected)
    return sorted(selected, key=lambda detection: detection.score * (_area(detection.box) / largest)
                  ** main_area_weight, reverse=True)


def _area(box: Box) -> float:
    return float(max(box.width, 1) * max(box.height, 1))


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
