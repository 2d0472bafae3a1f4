"""Track 2, the detector alone: class-agnostic COCO AP and the main-object hit rate of PP-ShiTu's box selection."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.config import LimitsSettings
from service.inference.detector import Detector
from service.inference.pipeline import RecognizeOptions
from service.inference.selection import select_detections
from service.inference.types import Detection
from trainer.detection.evaluate import ImageDetections, ImageTruth, coco_iou, evaluate_detections
from trainer.evaluation.data import BenchmarkSplit, DetectionScene, Scene
from trainer.evaluation.recognizer_track import read_pixels

HIT_IOU = 0.5
# main_object_area_weight values swept by the calibration and reported by the track
AREA_WEIGHTS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class DetectorResult:
    images: int  # standard scenes
    ap: float  # COCO AP@[.50:.95], every detection the model returns
    ap50: float
    main_object_hit_rate: float  # the first selected box has IoU ≥ 0.5 with the main object
    main_object_found_rate: float  # any selected box does
    main_object_hit_by_weight: dict[str, float] = field(default_factory=dict)  # per main_object_area_weight
    shelf_images: int = 0
    shelf_products: int = 0  # visible ones (mostly hidden products are ignore regions)
    shelf_recall: float | None = None  # products matched (IoU ≥ 0.5, one box each) by the selected boxes
    shelf_ap50: float | None = None
    empty_images: int = 0
    empty_with_box_rate: float | None = None  # empty photos where the selection keeps at least one box

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


# Every photo's raw detections (before PP-ShiTu's selection), by path: what the evaluation and the calibration
# sweep over, so a photo is detected once however many thresholds, weights or passes read it.
DetectionsByPath = Mapping[Path, Sequence[Detection]]


def split_photos(split: BenchmarkSplit) -> list[Scene | DetectionScene]:
    """The photos the detector sees: standard scenes, then shelves, then empty photos."""
    return [*split.scenes, *split.shelves, *split.empty_scenes]


def detect_photos(detector: Detector, split: BenchmarkSplit, limits: LimitsSettings,
                  advance: Callable[[], None] = lambda: None) -> dict[Path, list[Detection]]:
    detections = {}
    for scene in split_photos(split):
        detections[scene.path] = detector.detect(read_pixels(scene.path.read_bytes(), limits))
        advance()
    return detections


def evaluate_detector(detections: DetectionsByPath, split: BenchmarkSplit, options: RecognizeOptions) -> DetectorResult:
    truths, found, standard, hits, anywhere = [], [], [], 0, 0
    for scene in split.scenes:
        photo = detections[scene.path]
        # Main-body detection: every class the model knows is "a product", so AP is class-agnostic.
        truths.append(ImageTruth(scene.image_id, scene.boxes, np.zeros(len(scene.boxes), np.int64), scene.crowd))
        found.append(_image_detections(scene.image_id, photo))
        first, any_selected = main_object_hits(photo, scene.main_box, options)
        hits += first
        anywhere += any_selected
        standard.append((photo, scene.main_box))
    metrics = evaluate_detections(truths, found, num_classes=1)
    count = max(len(split.scenes), 1)
    return DetectorResult(
        images=len(split.scenes),
        ap=max(metrics.ap, 0.0),
        ap50=max(metrics.ap50, 0.0),
        main_object_hit_rate=hits / count,
        main_object_found_rate=anywhere / count,
        main_object_hit_by_weight={str(weight): rate for weight, rate in hit_rates_by_weight(
            standard, options.max_detections, options.detection_threshold).items()},
        **_shelf_metrics(detections, split.shelves, options),
        **_empty_metrics(detections, split.empty_scenes, options),
    )


def _shelf_metrics(detections: DetectionsByPath, shelves: Sequence[DetectionScene],
                   options: RecognizeOptions) -> dict[str, Any]:
    """Recall of the visible products with the shipped selection (max_detections, threshold), and AP50."""
    if not shelves:
        return {}
    truths, found, matched, products = [], [], 0, 0
    for scene in shelves:
        photo = detections[scene.path]
        truths.append(ImageTruth(scene.image_id, scene.boxes, np.zeros(len(scene.boxes), np.int64), scene.crowd))
        found.append(_image_detections(scene.image_id, photo))
        selected = select_detections(photo, max_detections=options.max_detections,
                                     threshold=options.detection_threshold)
        visible = scene.boxes[~scene.crowd]
        products += len(visible)
        matched += matched_products(selected, visible)
    metrics = evaluate_detections(truths, found, num_classes=1)
    return {"shelf_images": len(shelves), "shelf_products": products,
            "shelf_recall": matched / max(products, 1), "shelf_ap50": max(metrics.ap50, 0.0)}


def _empty_metrics(detections: DetectionsByPath, scenes: Sequence[DetectionScene],
                   options: RecognizeOptions) -> dict[str, Any]:
    if not scenes:
        return {}
    with_box = sum(bool(select_detections(detections[scene.path], max_detections=options.max_detections,
                                          threshold=options.detection_threshold)) for scene in scenes)
    return {"empty_images": len(scenes), "empty_with_box_rate": with_box / len(scenes)}


def matched_products(selected: Sequence[Detection], truths: NDArray[np.float32]) -> int:
    """Products matched one to one (greedy, best score first) by a box with IoU ≥ 0.5."""
    if not selected or not len(truths):
        return 0
    boxes = np.array([detection.box.as_tuple() for detection in selected], dtype=np.float32)
    overlaps = coco_iou(boxes, truths, np.zeros(len(truths), dtype=bool))
    taken = np.zeros(len(truths), dtype=bool)
    for row in overlaps:  # selected boxes come best first
        candidates = np.where(~taken & (row >= HIT_IOU))[0]
        if candidates.size:
            taken[candidates[np.argmax(row[candidates])]] = True
    return int(taken.sum())


def main_object_hits(detections: Sequence[Detection], main_box: NDArray[np.float32],
                     options: RecognizeOptions) -> tuple[bool, bool]:
    """(first selected box hits, any selected box hits) the main object at IoU ≥ 0.5, after PP-ShiTu's selection
    in the detector manifest's main-object order."""
    selected = select_detections(detections, max_detections=options.max_detections,
                                 threshold=options.detection_threshold, main_area_weight=options.main_area_weight)
    return selected_hits(selected, main_box)


def hit_rates_by_weight(standard: Sequence[tuple[Sequence[Detection], NDArray[np.float32]]], max_detections: int,
                        threshold: float) -> dict[float, float]:
    """Per ``main_object_area_weight`` of :data:`AREA_WEIGHTS`: the share of (detections, main box) photos whose
    first selected box is the main object."""
    rates = {}
    for weight in AREA_WEIGHTS:
        hits = sum(selected_hits(select_detections(detections, max_detections=max_detections, threshold=threshold,
                                                   main_area_weight=weight), main_box)[0]
                   for detections, main_box in standard)
        rates[weight] = hits / max(len(standard), 1)
    return rates


def selected_hits(selected: Sequence[Detection], main_box: NDArray[np.float32]) -> tuple[bool, bool]:
    """(the first box hits, any box hits) the main object at IoU ≥ 0.5."""
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
