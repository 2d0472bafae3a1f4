"""COCO-format detection annotations (the format PaddleDetection users have) → clean training samples.

Broken annotations never stop an epoch: they are skipped when the file is read, counted by reason and logged
once. Only a dataset with nothing valid left is an error.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.detection.boxes import box_area

logger = logging.getLogger(__name__)

# Slivers thinner than this (pixels) carry no learnable signal and produce degenerate regression targets.
MIN_BOX_SIDE = 1.0


class DetectionDataError(ValueError):
    """An annotation file cannot be used at all (unreadable, malformed, or nothing valid left)."""


class ImageReadError(OSError):
    """An image listed in the annotations cannot be decoded."""


@dataclass(frozen=True)
class DetectionSample:
    image_id: int
    path: Path
    width: int
    height: int
    boxes: NDArray[np.float32]  # [N, 4] x1, y1, x2, y2 in pixels
    labels: NDArray[np.int64]  # [N] contiguous class index
    crowd: NDArray[np.bool_]  # [N] COCO iscrowd: ignored by training, an ignore region in evaluation

    @property
    def training_boxes(self) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        keep = ~self.crowd
        return self.boxes[keep], self.labels[keep]


@dataclass
class AnnotationReport:
    """What was skipped while reading, by reason."""

    skipped: Counter[str] = field(default_factory=Counter)
    images: int = 0
    boxes: int = 0

    def summary(self) -> str:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        return f"{self.images} images, {self.boxes} boxes" + (f"; skipped: {reasons}" if reasons else "")


class CocoDetectionDataset:
    """Images and boxes of a COCO ``instances`` json.

    ``single_class`` maps every category to that one name (PP-ShiTu's ``foreground``); otherwise categories become
    contiguous indices in ascending ``id`` order. ``keep_empty_images`` keeps images without boxes (evaluation needs
    them: detections there are false positives).
    """

    def __init__(
        self,
        annotation_file: Path,
        image_root: Path | None = None,
        *,
        single_class: str | None = None,
        keep_empty_images: bool = True,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root) if image_root is not None else self.annotation_file.parent
        document = _read_json(self.annotation_file)
        self.report = AnnotationReport()
        try:
            category_index = self._read_categories(document, single_class)
            self.samples = self._build_samples(document, category_index, keep_empty_images)
        except (KeyError, TypeError, ValueError) as error:
            # A missing or non-numeric image/category id: the file is not COCO, no use guessing.
            raise DetectionDataError(f"{self.annotation_file} is malformed: {error!r}") from error
        if self.report.skipped:
            logger.warning("%s: %s", self.annotation_file, self.report.summary())
        if not self.samples or self.report.boxes == 0:
            raise DetectionDataError(
                f"{self.annotation_file}: nothing valid to train or evaluate on ({self.report.summary()})"
            )

    def extend(self, other: CocoDetectionDataset) -> None:
        """Train on ``other``'s images too (image ids may repeat: training does not read them, evaluation would)."""
        if other.category_names != self.category_names:
            raise DetectionDataError(f"{other.annotation_file}'s categories differ from {self.annotation_file}'s")
        self.samples.extend(other.samples)
        self.report.images += other.report.images
        self.report.boxes += other.report.boxes

    @property
    def num_classes(self) -> int:
        return len(self.category_names)

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, index: int) -> NDArray[np.uint8]:
        """RGB uint8 HWC pixels of sample ``index``."""
        path = self.samples[index].path
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ImageReadError(f"cannot decode {path}")
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)

    def _read_categories(self, document: dict[str, Any], single_class: str | None) -> dict[int, int]:
        categories = sorted(_list_field(document, "categories", self.annotation_file), key=lambda item: item["id"])
        if not categories:
            raise DetectionDataError(f"{self.annotation_file} lists no categories")
        if single_class is not None:
            self.category_names = [single_class]
            return {int(category["id"]): 0 for category in categories}
        self.category_names = [str(category.get("name", category["id"])) for category in categories]
        return {int(category["id"]): index for index, category in enumerate(categories)}

    def _build_samples(
        self, document: dict[str, Any], category_index: dict[int, int], keep_empty_images: bool
    ) -> list[DetectionSample]:
        annotations_by_image: dict[int, list[dict[str, Any]]] = {}
        for annotation in _list_field(document, "annotations", self.annotation_file):
            image_id = annotation.get("image_id")
            annotations_by_image.setdefault(int(image_id) if image_id is not None else -1, []).append(annotation)
        known_images = set()
        samples = []
        for image in _list_field(document, "images", self.annotation_file):
            known_images.add(int(image["id"]))
            sample = self._build_sample(image, annotations_by_image.get(int(image["id"]), []), category_index)
            if sample is None:
                continue
            if len(sample.boxes) == 0 and not keep_empty_images:
                self.report.skipped["images without boxes"] += 1
                continue
            samples.append(sample)
            self.report.images += 1
            self.report.boxes += len(sample.boxes)
        orphans = sum(len(items) for image_id, items in annotations_by_image.items() if image_id not in known_images)
        if orphans:
            self.report.skipped["annotations of unknown images"] += orphans
        return samples

    def _build_sample(
        self, image: dict[str, Any], annotations: list[dict[str, Any]], category_index: dict[int, int]
    ) -> DetectionSample | None:
        path = self.image_root / str(image.get("file_name", ""))
        if not path.is_file():
            self.report.skipped["missing image files"] += 1
            return None
        width, height = int(image.get("width") or 0), int(image.get("height") or 0)
        if width <= 0 or height <= 0:
            size = _image_size(path)
            if size is None:
                self.report.skipped["unreadable image files"] += 1
                return None
            width, height = size
        boxes, labels, crowd = [], [], []
        for annotation in annotations:
            box = self._valid_box(annotation, category_index, width, height)
            if box is not None:
                boxes.append(box)
                labels.append(category_index[int(annotation["category_id"])])
                crowd.append(bool(annotation.get("iscrowd", 0)))
        return DetectionSample(
            image_id=int(image["id"]),
            path=path,
            width=width,
            height=height,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64),
            crowd=np.asarray(crowd, dtype=bool),
        )

    def _valid_box(
        self, annotation: dict[str, Any], category_index: dict[int, int], width: int, height: int
    ) -> list[float] | None:
        if annotation.get("category_id") not in category_index:
            self.report.skipped["boxes of unknown categories"] += 1
            return None
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list | tuple) or len(bbox) != 4:
            self.report.skipped["malformed boxes"] += 1
            return None
        x, y, box_width, box_height = (float(value) for value in bbox)
        if not np.isfinite([x, y, box_width, box_height]).all() or box_width <= 0 or box_height <= 0:
            self.report.skipped["boxes of non-positive size"] += 1
            return None
        corners = np.array([x, y, x + box_width, y + box_height])
        clipped = np.clip(corners, 0, [width, height, width, height])
        if min(clipped[2] - clipped[0], clipped[3] - clipped[1]) < MIN_BOX_SIDE or box_area(clipped) <= 0:
            self.report.skipped["boxes outside the image"] += 1
            return None
        return clipped.tolist()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DetectionDataError(f"cannot read the annotation file {path}: {error}") from error
    if not isinstance(document, dict):
        raise DetectionDataError(f"{path} is not a COCO annotation object")
    return document


def _list_field(document: dict[str, Any], name: str, path: Path) -> list[dict[str, Any]]:
    value = document.get(name, [] if name == "annotations" else None)
    if not isinstance(value, list):
        raise DetectionDataError(f"{path} has no '{name}' list")
    return [item for item in value if isinstance(item, dict)]


def _image_size(path: Path) -> tuple[int, int] | None:
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if pixels is None else (int(pixels.shape[1]), int(pixels.shape[0]))
