"""COCO box AP, written from the COCO protocol (and checked against pycocotools in the tests).

Protocol: area range "all", at most 100 detections per image (best scores), IoU thresholds .50:.05:.95; per
threshold and class, detections are greedily matched best score first to the unmatched ground truth of highest
IoU; crowd boxes and matches to them are ignored (a crowd box can absorb several detections, its IoU is the
overlap over the detection's area); precision is made monotone and read at the 101 recall points 0:.01:1.
AP averages over thresholds and over classes that have ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from trainer.detection.boxes import box_area

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100


@dataclass(frozen=True)
class ImageDetections:
    image_id: int
    boxes: NDArray[np.float32]  # [D, 4] x1, y1, x2, y2 pixels
    scores: NDArray[np.float32]  # [D]
    labels: NDArray[np.int64]  # [D]


@dataclass(frozen=True)
class ImageTruth:
    image_id: int
    boxes: NDArray[np.float32]  # [G, 4]
    labels: NDArray[np.int64]  # [G]
    crowd: NDArray[np.bool_]  # [G]


@dataclass(frozen=True)
class DetectionMetrics:
    ap: float  # AP@[.50:.95]
    ap50: float
    ap75: float
    precision: NDArray[np.float64]  # [T, R, K] (−1 where a class has no ground truth)

    def as_dict(self) -> dict[str, float]:
        return {"ap": self.ap, "ap50": self.ap50, "ap75": self.ap75}


def coco_iou(detections: NDArray[np.floating], truths: NDArray[np.floating], crowd: NDArray[np.bool_]) -> NDArray:
    """[D, G] IoU; for crowd truths the union is the detection's own area."""
    detections = np.asarray(detections, np.float64).reshape(-1, 4)
    truths = np.asarray(truths, np.float64).reshape(-1, 4)
    top_left = np.maximum(detections[:, None, :2], truths[None, :, :2])
    bottom_right = np.minimum(detections[:, None, 2:], truths[None, :, 2:])
    overlap = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    detection_area = box_area(detections)[:, None]
    union = np.where(crowd[None, :], detection_area, detection_area + box_area(truths)[None, :] - overlap)
    return np.where(union > 0, overlap / np.where(union > 0, union, 1), 0.0)


def evaluate_detections(
    truths: Sequence[ImageTruth], detections: Sequence[ImageDetections], num_classes: int
) -> DetectionMetrics:
    """COCO AP / AP50 / AP75 of ``detections`` against ``truths`` (images without detections count)."""
    by_image = {detection.image_id: detection for detection in detections}
    # pycocotools walks images in ascending id order; equal scores in different images keep that order.
    truths = sorted(truths, key=lambda truth: truth.image_id)
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_POINTS), num_classes))
    for class_index in range(num_classes):
        scores, matched, ignored, num_truths = [], [], [], 0
        for truth in truths:
            outcome = _match_image(truth, by_image.get(truth.image_id), class_index)
            if outcome is None:
                continue
            image_scores, image_matched, image_ignored, image_truths = outcome
            scores.append(image_scores)
            matched.append(image_matched)
            ignored.append(image_ignored)
            num_truths += image_truths
        if num_truths == 0:
            continue
        precision[:, :, class_index] = _class_precision(scores, matched, ignored, num_truths)
    return DetectionMetrics(
        ap=_mean_valid(precision),
        ap50=_mean_valid(precision[0]),
        ap75=_mean_valid(precision[5]),
        precision=precision,
    )


def _match_image(
    truth: ImageTruth, detections: ImageDetections | None, class_index: int
) -> tuple[NDArray, NDArray, NDArray, int] | None:
    """Scores [D], matched [T, D], ignored [T, D] of this image's best detections of the class; truth count."""
    truth_mask = truth.labels == class_index
    truth_boxes, crowd = truth.boxes[truth_mask], truth.crowd[truth_mask]
    if detections is None:
        detection_boxes, detection_scores = np.zeros((0, 4)), np.zeros(0)
    else:
        keep = detections.labels == class_index
        detection_boxes, detection_scores = detections.boxes[keep], detections.scores[keep]
    if len(truth_boxes) == 0 and len(detection_boxes) == 0:
        return None
    truth_order = np.argsort(crowd, kind="stable")  # regular truths first, crowd last
    truth_boxes, crowd = truth_boxes[truth_order], crowd[truth_order]
    order = np.argsort(-detection_scores, kind="stable")[:MAX_DETECTIONS]
    detection_boxes, detection_scores = detection_boxes[order], detection_scores[order]
    ious = coco_iou(detection_boxes, truth_boxes, crowd)
    matched = np.zeros((len(IOU_THRESHOLDS), len(detection_boxes)), dtype=bool)
    ignored = np.zeros_like(matched)
    for threshold_index, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(truth_boxes), dtype=bool)
        for detection in range(len(detection_boxes)):
            best = _best_truth(ious[detection], taken, crowd, min(threshold, 1 - 1e-10))
            if best < 0:
                continue
            ignored[threshold_index, detection] = crowd[best]
            matched[threshold_index, detection] = True
            taken[best] = True
    return detection_scores, matched, ignored, int((~crowd).sum())


def _best_truth(ious: NDArray, taken: NDArray[np.bool_], crowd: NDArray[np.bool_], threshold: float) -> int:
    best, best_iou = -1, threshold
    for index in range(len(ious)):
        if taken[index] and not crowd[index]:
            continue
        # Truths are sorted regular first: once a regular one matched, crowd regions cannot take over.
        if best > -1 and not crowd[best] and crowd[index]:
            break
        if ious[index] < best_iou:
            continue
        best, best_iou = index, ious[index]
    return best


def _class_precision(
    scores: list[NDArray], matched: list[NDArray], ignored: list[NDArray], num_truths: int
) -> NDArray[np.float64]:
    """[T, R] interpolated precision at the recall points."""
    all_scores = np.concatenate(scores)
    order = np.argsort(-all_scores, kind="mergesort")
    all_matched = np.concatenate(matched, axis=1)[:, order]
    all_ignored = np.concatenate(ignored, axis=1)[:, order]
    true_positives = np.cumsum(all_matched & ~all_ignored, axis=1, dtype=np.float64)
    false_positives = np.cumsum(~all_matched & ~all_ignored, axis=1, dtype=np.float64)
    result = np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS)))
    for threshold_index in range(len(IOU_THRESHOLDS)):
        hits, misses = true_positives[threshold_index], false_positives[threshold_index]
        recall = hits / num_truths
        precision = hits / np.maximum(hits + misses, np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
        positions = np.searchsorted(recall, RECALL_POINTS, side="left")
        inside = positions < len(precision)
        result[threshold_index, inside] = precision[positions[inside]]
    return result


def _mean_valid(values: NDArray[np.float64]) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0
