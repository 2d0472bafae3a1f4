"""Track 2, the detector alone: class-agnostic COCO AP and the main-object hit rate of PP-ShiTu's box selection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from service.config import LimitsSettings
from service.inference.detector import Detector
from service.inference.pipeline import RecognizeOptions
from service.inference.selection import select_detections
from service.inference.types import Detection
from trainer.detection.evaluate import ImageDetections, ImageTruth, coco_iou, evaluate_detections
from trainer.evaluation.data import BenchmarkSplit
from trainer.evaluation.recognizer_track import read_pixels

HIT_IOU = 0.5


@dataclass(frozen=True)
class DetectorResult:
    images: int
    ap: float  # COCO AP@[.50:.95], every detection the model returns
    ap50: float
    main_object_hit_rate: float  # the first selected box has IoU ≥ 0.5 with the main object
    main_object_found_rate: float  # any selected box does

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def evaluate_detector(detector: Detector, split: BenchmarkSplit, options: RecognizeOptions, limits: LimitsSettings,
                      advance: Callable[[], None] = lambda: None) -> DetectorResult:
    truths, found, hits, anywhere = [], [], 0, 0
    for scene in split.scenes:
        detections = detector.detect(read_pixels(scene.path.read_bytes(), limits))
        # Main-body detection: every class the model knows is "a product", so AP is class-agnostic.
        truths.append(ImageTruth(scene.image_id, scene.boxes, np.zeros(len(scene.boxes), np.int64), scene.crowd))
        found.append(_image_detections(scene.image_id, detections))
        first, any_selected = main_object_hits(detections, scene.main_box, options)
        hits += first
        anywhere += any_selected
        advance()
    metrics = evaluate_detections(truths, found, num_classes=1)
    count = max(len(split.scenes), 1)
    return DetectorResult(
        images=len(split.scenes),
        ap=max(metrics.ap, 0.0),
        ap50=max(metrics.ap50, 0.0),
        main_object_hit_rate=hits / count,
        main_object_found_rate=anywhere / count,
    )


def main_object_hits(detections: Sequence[Detection], main_box: NDArray[np.float32],
                     options: RecognizeOptions) -> tuple[bool, bool]:
    """(first selected box hits, any selected box hits) the main object at IoU ≥ 0.5, after PP-ShiTu's selection."""
    selected = select_detections(detections, max_detections=options.max_detections,
                                 threshold=options.detection_threshold)
    if not selected:
        return False, False
    boxes = np.array([detection.box.as_tuple() for detection in selected], dtype=np.float32)
    overlaps = coco_iou(boxes, main_box[None], np.zeros(1, dtype=bool))[:, 0]
    return bool(overlaps[0] >= HIT_IOU), bool((overlaps >= HIT_IOU).any())


def _image_detections(image_id: int, detections: Sequence[Detection]) -> ImageDetections:
    return ImageDetections(
        image_id=image_id,
        boxes=np.array([detection.box.as_tuple() for detection in detections], dtype=np.float32).reshape(-1, 4),
        scores=np.array([detection.score for detection in detections], dtype=np.float32),
        labels=np.zeros(len(detections), dtype=np.int64),
    )
