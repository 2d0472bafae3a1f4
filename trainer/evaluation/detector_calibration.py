"""The detector's shipped ``score_threshold``: the one with the best box F1 on the calibration split's photos.

All three scene kinds count: standard photos and dense shelves give true and missed products, empty photos only
false boxes. A box is a true positive when it matches a visible product one to one at IoU ≥ 0.5 (PP-ShiTu's
selection first: the ``max_detections`` best boxes, then the threshold); mostly hidden shelf products are neither.
Every photo is detected once; the thresholds are swept over the cached detections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from service.config import LimitsSettings
from service.inference.detector import Detector
from service.inference.manifest import MANIFEST_FILE, ModelKind, load_manifest
from service.inference.selection import select_detections
from service.inference.types import Detection
from trainer.detection.evaluate import coco_iou
from trainer.evaluation.data import BenchmarkSplit
from trainer.evaluation.detector_track import HIT_IOU, matched_products
from trainer.evaluation.recognizer_track import read_pixels

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

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def calibrate_detector(detector: Detector, split: BenchmarkSplit, max_detections: int, limits: LimitsSettings,
                       advance: Callable[[], None] = lambda: None) -> DetectorCalibration:
    photos = [(scene.path, scene.boxes, scene.crowd) for scene in split.scenes]
    photos += [(scene.path, scene.boxes, scene.crowd) for scene in [*split.shelves, *split.empty_scenes]]
    cached = []
    for path, boxes, crowd in photos:
        cached.append((detector.detect(read_pixels(path.read_bytes(), limits)), boxes[~crowd], boxes[crowd]))
        advance()
    products = sum(len(visible) for _, visible, _ in cached)
    best: DetectorCalibration | None = None
    for threshold in THRESHOLDS:
        true, false = 0, 0
        for detections, visible, hidden in cached:
            selected = select_detections(detections, max_detections=max_detections, threshold=threshold)
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
    return best


def _on_hidden(selected: list[Detection], hidden: np.ndarray, unmatched: int) -> int:
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
    manifest.provenance["detector_calibration"] = {"command": command, **calibration.as_dict()}
    manifest.write(detector_dir)
