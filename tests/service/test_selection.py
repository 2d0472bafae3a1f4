from __future__ import annotations

import pytest

from service.box import Box
from service.inference.selection import overlap, select_detections, suppress
from service.inference.types import Detection


def _detection(score: float, x1: int = 0) -> Detection:
    return Detection(box=Box(x1, 0, x1 + 10, 10), score=score, class_id=0, label="foreground")


def test_top_k_comes_before_the_threshold() -> None:
    detections = [_detection(score) for score in (0.1, 0.9, 0.3, 0.25, 0.8, 0.7, 0.6)]

    selected = select_detections(detections, max_detections=5, threshold=0.28)

    # The five best are 0.9, 0.8, 0.7, 0.6, 0.3; then the threshold keeps all of them.
    assert [d.score for d in selected] == [0.9, 0.8, 0.7, 0.6, 0.3]
    assert [d.score for d in select_detections(detections, max_detections=3, threshold=0.75)] == [0.9, 0.8]


def test_the_main_object_order_puts_a_large_box_before_a_small_one_at_a_close_score() -> None:
    small = Detection(box=Box(0, 0, 10, 10), score=0.9, class_id=0, label="foreground")
    large = Detection(box=Box(20, 0, 60, 40), score=0.7, class_id=0, label="foreground")  # 16x the area
    tiny_best = Detection(box=Box(0, 50, 2, 52), score=0.99, class_id=0, label="foreground")
    faint = Detection(box=Box(0, 60, 100, 160), score=0.1, class_id=0, label="foreground")
    detections = [small, large, tiny_best, faint]

    by_score = select_detections(detections, max_detections=3, threshold=0.5)
    assert by_score == [tiny_best, small, large]  # weight 0: PP-ShiTu's order
    # 0.7 x 1 against 0.9 x (1/16)^0.25 = 0.45 and 0.99 x (1/400)^0.25 = 0.22; the faint large box is not selected
    # (the order never changes which boxes are kept)
    assert select_detections(detections, max_detections=3, threshold=0.5, main_area_weight=0.25) == [
        large, small, tiny_best]
    # a small weight does not lift the large box over much better scores: 0.7 against 0.78 and 0.73
    assert select_detections(detections, max_detections=3, threshold=0.5, main_area_weight=0.05)[-1] == large


def test_overlap_uses_the_plus_one_pixel_convention() -> None:
    first, second = Box(0, 0, 9, 9), Box(5, 0, 14, 9)

    # areas (9-0+1)^2 = 100 each; intersection (9-5+1) * 10 = 50; IoU = 50 / 150
    assert overlap(first, second) == pytest.approx(50 / 150)
    assert overlap(Box(0, 0, 9, 9), Box(20, 20, 29, 29)) == 0.0


def test_suppress_keeps_only_boxes_at_or_under_the_threshold() -> None:
    boxes = [Box(0, 0, 99, 99), Box(0, 0, 639, 479), Box(200, 200, 299, 299), Box(0, 0, 97, 99)]
    scores = [0.7, 0.9, 0.8, 0.95]

    kept = suppress(boxes, scores, iou_threshold=0.05)

    # 0.95 wins; the whole image (0.9) overlaps it by 0.03 <= 0.05, so it stays; box 0 is a near-duplicate of 3,
    # box 2 overlaps the whole image by 10000/307200 = 0.033 and stays.
    assert kept == [3, 1, 2]


def test_suppress_against_already_kept_boxes() -> None:
    kept = suppress([Box(0, 0, 9, 9), Box(50, 50, 59, 59)], [0.5, 0.4], iou_threshold=0.05, kept=[Box(0, 0, 9, 9)])

    assert kept == [1]
