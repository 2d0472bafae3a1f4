"""The detector's shipped ``score_threshold``: the one with the best box F1 on the calibration split's photos;
then its ``main_object_area_weight``: the one whose first box is the main object most often there.

All three scene kinds count for the threshold: standard photos and dense shelves give true and missed products,
empty photos only false boxes. A box is a true positive when it matches a visible product one to one at IoU ≥ 0.5
(PP-ShiTu's selection first: the ``max_detections`` best boxes, then the threshold); mostly hidden shelf products
are neither. The weight orders the selected boxes of the standard photos (their main object is the largest
product); a tie keeps the smaller weight, so 0 (PP-ShiTu's order by score) stays unless a weight is better.
Every photo is detected once; thresholds and weights are swept over those detections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from service.inference.manifest import MANIFEST_FILE, ModelKind, load_manifest
from service.inference.selection import select_detections
from service.inference.types import Detection
from trainer.detection.evaluate import coco_iou
from trainer.evaluation.data import BenchmarkSplit
from trainer.evaluation.detector_track import (
    AREA_WEIGHTS,
    HIT_IOU,
    DetectionsByPath,
    hit_rates_by_weight,
    matched_products,
    split_photos,
)

THRESHOLDS = tuple(float(value) for value in np.round(np.arange(0.05, 0.951, 0.025), 3))


@dataclass(frozen=True)
class DetectorCalibration:
    split: str
    max_detections: int
    score_threshold: float
    precision: float
    recall: float
    f1: float
    photos: int
    products: int
    main_area_weight: float = 0.0
    main_object_hit_rate: float = 0.0  # first selected box on the main object, standard photos, at that weight
    main_object_hit_rate_by_score: float = 0.0  # the same in PP-ShiTu's order (weight 0)

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def calibrate_detector(detections: DetectionsByPath, split: BenchmarkSplit, max_detections: int) -> DetectorCalibration:
    """The sweeps over ``split``'s photos, each detected once (:func:`detect_photos`)."""
    return calibrate_selection(split, [detections[photo.path] for photo in split_photos(split)], max_detections)


def calibrate_selection(split: BenchmarkSplit, detections: Sequence[Sequence[Detection]],
                        max_detections: int) -> DetectorCalibration:
    """The sweeps over each photo's detections (``split``'s standard scenes, shelves, then empty photos)."""
    photos = split_photos(split)
    cached = [(found, scene.boxes[~scene.crowd], scene.boxes[scene.crowd])
              for found, scene in zip(detections, photos, strict=True)]
    products = sum(len(visible) for _, visible, _ in cached)
    best: DetectorCalibration | None = None
    for threshold in THRESHOLDS:
        true, false = 0, 0
        for found, visible, hidden in cached:
            selected = select_detections(found, max_detections=max_detections, threshold=threshold)
            matched = matched_products(selected, visible)
            true += matched
            false += len(selected) - matched - _on_hidden(selected, hidden, len(selected) - matched)
        precision = true / (true + false) if true + false else 1.0
        recall = true / products if products else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if best is None or f1 > best.f1:
            best = DetectorCalibration(split.name, max_detections, threshold, precision, recall, f1, len(photos),
                                       products)
    assert best is not None
    standard = [(found, scene.main_box) for found, scene in zip(detections, split.scenes, strict=False)]
    hit_rates = hit_rates_by_weight(standard, best.max_detections, best.score_threshold)
    weight = max(AREA_WEIGHTS, key=lambda candidate: (hit_rates[candidate], -candidate))
    return replace(best, main_area_weight=weight, main_object_hit_rate=hit_rates[weight],
                   main_object_hit_rate_by_score=hit_rates[0.0])


def _on_hidden(selected: Sequence[Detection], hidden: np.ndarray, unmatched: int) -> int:
    """Unmatched boxes on a mostly hidden product are not false (an ignore region), at most ``unmatched``."""
    if not len(hidden) or not unmatched:
        return 0
    boxes = np.array([detection.box.as_tuple() for detection in selected], dtype=np.float32)
    on_hidden = int((coco_iou(boxes, hidden, np.zeros(len(hidden), dtype=bool)).max(axis=1) >= HIT_IOU).sum())
    return min(on_hidden, unmatched)


def record_detector_calibration(detector_dir: Path, calibration: DetectorCalibration, command: str) -> None:
    """Writes ``detector.score_threshold`` and ``max_detections`` and the calibration into the manifest."""
    manifest = load_manifest(detector_dir)
    ours = (detector_dir / MANIFEST_FILE).is_file()
    if manifest.kind is not ModelKind.detector or manifest.detector is None or not ours:
        raise ValueError(f"{detector_dir} holds no detector manifest of ours")
    manifest.detector.score_threshold = calibration.score_threshold
    manifest.detector.max_detections = calibration.max_detections
    manifest.detector.main_object_area_weight = calibration.main_area_weight
    manifest.provenance["detector_calibration"] = {"command": command, **calibration.as_dict()}
    manifest.write(detector_dir)
