"""COCO AP: hand-computed cases, then agreement with pycocotools on random detections."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from trainer.detection.evaluate import ImageDetections, ImageTruth, evaluate_detections
from trainer.detection.postprocess import NmsSettings, select_detections


def _truth(image_id: int, boxes: list, labels: list | None = None, crowd: list | None = None) -> ImageTruth:
    count = len(boxes)
    return ImageTruth(
        image_id,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels if labels is not None else [0] * count, np.int64),
        np.asarray(crowd if crowd is not None else [False] * count, bool),
    )


def _detections(image_id: int, boxes: list, scores: list, labels: list | None = None) -> ImageDetections:
    return ImageDetections(
        image_id,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(labels if labels is not None else [0] * len(scores), np.int64),
    )


def test_perfect_detection_scores_one() -> None:
    metrics = evaluate_detections([_truth(1, [[0, 0, 10, 10]])], [_detections(1, [[0, 0, 10, 10]], [0.9])], 1)
    assert (metrics.ap, metrics.ap50, metrics.ap75) == (1.0, 1.0, 1.0)


def test_a_loose_box_counts_only_at_low_iou_thresholds() -> None:
    # IoU 64/100 = 0.64: a hit at thresholds .50, .55, .60 only → AP = 3/10
    metrics = evaluate_detections([_truth(1, [[0, 0, 10, 10]])], [_detections(1, [[0, 0, 8, 8]], [0.9])], 1)
    assert metrics.ap50 == 1.0 and metrics.ap75 == 0.0
    assert metrics.ap == pytest.approx(0.3)


def test_false_positive_between_hits_uses_interpolated_precision() -> None:
    truths = [_truth(1, [[0, 0, 10, 10], [20, 20, 30, 30]])]
    detections = [_detections(1, [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0.9, 0.8, 0.7])]
    # precision/recall: (1, .5), (.5, .5), (2/3, 1) → interpolated 1 up to recall .5 (51 points), 2/3 after (50)
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert evaluate_detections(truths, detections, 1).ap == pytest.approx(expected)


def test_detections_on_crowd_regions_are_ignored_and_missed_images_count() -> None:
    truths = [_truth(1, [[0, 0, 10, 10], [40, 40, 90, 90]], crowd=[False, True]), _truth(2, [[0, 0, 10, 10]])]
    detections = [_detections(1, [[0, 0, 10, 10], [45, 45, 60, 60], [50, 50, 70, 70]], [0.9, 0.95, 0.85])]
    metrics = evaluate_detections(truths, detections, 2)
    # both crowd hits are ignored (not false positives); image 2's box is never found → recall stops at 1/2
    assert metrics.ap50 == pytest.approx(51 / 101)
    assert (metrics.precision[:, :, 1] == -1).all()  # class 1 has no ground truth: left out of the mean


def test_select_detections_applies_threshold_nms_and_top_k() -> None:
    scores = [np.array([[0.9, 0.85, 0.01, 0.5]], np.float32)]
    boxes = [np.array([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30], [20, 20, 40, 40]], np.float32)]
    kept_boxes, kept_scores, labels = select_detections(scores, boxes, NmsSettings())
    np.testing.assert_allclose(kept_scores, [0.9, 0.5])  # .85 overlaps .9 (IoU .91 > .6); .01 under .025
    np.testing.assert_array_equal(kept_boxes[1], [20, 20, 40, 40])  # not clipped before NMS, as the export
    capped = select_detections(scores, boxes, NmsSettings(keep_top_k=1, score_threshold=0.5))[1]
    np.testing.assert_allclose(capped, [0.9])  # over the threshold (0.5 itself is not), the best keep_top_k
    np.testing.assert_array_equal(labels, [0, 0])


def _random_case(seed: int) -> tuple[list[ImageTruth], list[ImageDetections]]:
    generator = np.random.default_rng(seed)
    truths, detections = [], []
    for image_id in range(1, 16):
        count = int(generator.integers(0, 5))
        corner = generator.uniform(0, 80, (count, 2))
        boxes = np.concatenate([corner, corner + generator.uniform(5, 40, (count, 2))], axis=1)
        labels = generator.integers(0, 3, count)
        truths.append(_truth(image_id, boxes.tolist(), labels.tolist(), (generator.uniform(size=count) < 0.1).tolist()))
        jittered = boxes + generator.normal(0, 4, boxes.shape)
        jittered[:, 2:] = np.maximum(jittered[:, 2:], jittered[:, :2] + 1)
        corner = generator.uniform(0, 80, (3, 2))
        strays = np.concatenate([corner, corner + generator.uniform(5, 40, (3, 2))], axis=1)
        found = np.concatenate([jittered, strays], axis=0)
        found_labels = np.concatenate([labels, generator.integers(0, 3, 3)])
        # Scores in steps of 0.05 so that ties across images occur, as with real score quantisation.
        scores = np.round(generator.uniform(0.05, 1.0, len(found)) * 20) / 20
        detections.append(_detections(image_id, found.tolist(), scores.tolist(), found_labels.tolist()))
    return truths, detections


def _pycocotools_stats(truths: list[ImageTruth], detections: list[ImageDetections], tmp_path: Path) -> np.ndarray:
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    images = [{"id": truth.image_id, "width": 200, "height": 200} for truth in truths]
    annotations = []
    for truth in truths:
        for box, label, crowd in zip(truth.boxes.tolist(), truth.labels.tolist(), truth.crowd.tolist(), strict=True):
            width, height = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": truth.image_id, "category_id": label + 1,
                 "bbox": [box[0], box[1], width, height], "area": width * height, "iscrowd": int(crowd)}
            )  # fmt: skip
    gt_file = tmp_path / "gt.json"
    categories = [{"id": index + 1, "name": str(index)} for index in range(3)]
    gt_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    results = [
        {"image_id": found.image_id, "category_id": int(label) + 1, "score": float(score),
         "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]}
        for found in detections
        for box, score, label in zip(found.boxes.tolist(), found.scores.tolist(), found.labels, strict=True)
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = coco.COCO(str(gt_file))
        evaluator = cocoeval.COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pycocotools(seed: int, tmp_path: Path) -> None:
    truths, detections = _random_case(seed)
    stats = _pycocotools_stats(truths, detections, tmp_path)
    metrics = evaluate_detections(truths, detections, 3)
    assert 0.05 < metrics.ap < 0.95  # a case that exercises misses and false positives
    # float32 boxes on our side, float64 in pycocotools: identical up to rounding
    np.testing.assert_allclose([metrics.ap, metrics.ap50, metrics.ap75], stats[:3], atol=1e-6)
