"""Small generated COCO detection sets for the detector-training tests: 1–2 filled shapes on noise."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def make_synthetic_coco(
    root: Path, *, count: int = 24, size: int = 128, seed: int = 0, categories: tuple[str, ...] = ("box", "ellipse")
) -> Path:
    """Write ``count`` PNGs and ``annotations.json`` under ``root``; returns the json path."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        pixels = rng.integers(0, 90, size=(size, size, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            width, height = (int(value) for value in rng.integers(size // 5, size // 2, size=2))
            left, top = int(rng.integers(0, size - width)), int(rng.integers(0, size - height))
            colour = tuple(int(value) for value in rng.integers(140, 256, size=3))
            category = int(rng.integers(len(categories)))
            if categories[category] == "ellipse":
                centre = (left + width // 2, top + height // 2)
                cv2.ellipse(pixels, centre, (width // 2, height // 2), 0, 0, 360, colour, -1)
            else:
                cv2.rectangle(pixels, (left, top), (left + width - 1, top + height - 1), colour, -1)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category + 1,
                    "bbox": [left, top, width, height],
                    "area": width * height,
                    "iscrowd": 0,
                }
            )
        name = f"{image_id:04d}.png"
        cv2.imwrite(str(root / name), pixels)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
    document = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": index + 1, "name": name} for index, name in enumerate(categories)],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
