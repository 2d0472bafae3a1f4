"""A hand-checkable benchmark in the ``shitu data synth`` layout, written without the npm assets.

Six "products" (random colour mosaics); classes 0-3 are in the gallery, 4-5 are not. Every gallery view, query
crop and scene of a class is the SAME PNG, and each scene's main object is the whole frame: with the whole image
as a candidate and registration without the detector, every known scene and crop must be found at rank 1 with a
cosine of ~1, and no absent class can reach that score.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

KNOWN = (0, 1, 2, 3)
ABSENT = (4, 5)
SIDE = 96


def product_image(class_id: int) -> np.ndarray:
    rng = np.random.default_rng(100 + class_id)
    mosaic = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = cv2.resize(mosaic, (SIDE, SIDE), interpolation=cv2.INTER_NEAREST)
    center = tuple(int(value) for value in rng.integers(24, 72, size=2))
    color = tuple(int(value) for value in rng.integers(0, 256, size=3))
    return cv2.circle(image, center, 18, color, thickness=-1)


def write_benchmark(root: Path, splits: tuple[str, ...] = ("val", "test")) -> Path:
    for split in splits:
        folder = root / "images" / split
        folder.mkdir(parents=True)
        for class_id in KNOWN + ABSENT:
            cv2.imwrite(str(folder / f"{class_id}.png"), product_image(class_id))
        lists = {
            "gallery": KNOWN,
            "query": KNOWN,
            "openset": ABSENT,
        }
        (root / "recognition").mkdir(exist_ok=True)
        for name, classes in lists.items():
            lines = "".join(f"../images/{split}/{class_id}.png {class_id}\n" for class_id in classes)
            (root / "recognition" / f"{split}_{name}_list.txt").write_text(lines, encoding="utf-8")
        (root / "detection").mkdir(exist_ok=True)
        (root / "detection" / f"{split}.json").write_text(json.dumps(_coco(split)), encoding="utf-8")
    classes = [{"id": class_id, "title": f"product {class_id}"} for class_id in KNOWN + ABSENT]
    (root / "classes.json").write_text(json.dumps(classes), encoding="utf-8")
    return root


def _coco(split: str) -> dict:
    images, annotations = [], []
    for image_id, class_id in enumerate(KNOWN + ABSENT, start=1):
        images.append({"id": image_id, "file_name": f"../images/{split}/{class_id}.png", "width": SIDE,
                       "height": SIDE, "main_annotation_id": image_id})
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "bbox": [0, 0, SIDE, SIDE],
                            "area": SIDE * SIDE, "iscrowd": 0, "class_id": class_id})
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "foreground"}]}
