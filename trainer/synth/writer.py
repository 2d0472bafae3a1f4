"""Output formats: PaddleClas label lists (recognition) and COCO json (detection).

Files are written with sorted keys and fixed separators, so the same content always gives the same bytes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FOREGROUND_CATEGORY = {"id": 1, "name": "foreground", "supercategory": "object"}


@dataclass(frozen=True)
class Annotation:
    box: tuple[int, int, int, int]
    area: int
    class_id: int
    crowd: bool = False  # a mostly hidden shelf product: COCO's ignore region


@dataclass
class DetectionImage:
    file_name: str
    width: int
    height: int
    background: str
    annotations: list[Annotation] = field(default_factory=list)
    kind: str = "standard"  # trainer.synth.generator.SceneKind


def write_label_list(path: Path, entries: Iterable[tuple[str, int | str]], separator: str = " ") -> int:
    """PaddleClas format: ``relative/path.jpg<separator>label`` per line. Returns the number of lines."""
    lines = [f"{image}{separator}{label}\n" for image, label in entries]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def read_label_list(path: Path, separator: str | None = None) -> list[tuple[str, str]]:
    """The inverse of :func:`write_label_list` (``None`` splits at the last run of whitespace)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            image, label = line.rsplit(separator, 1) if separator else line.rsplit(None, 1)
            entries.append((image, label))
    return entries


def coco_document(images: list[DetectionImage], description: str) -> dict[str, Any]:
    """One category ``foreground``; each standard image names its main object: the largest target by mask area
    (shelf and empty scenes name none: ``main_annotation_id`` null)."""
    coco_images: list[dict[str, Any]] = []
    coco_annotations: list[dict[str, Any]] = []
    for image_id, image in enumerate(images, start=1):
        main_id = None
        main_area = -1
        for annotation in image.annotations:
            annotation_id = len(coco_annotations) + 1
            x, y, width, height = annotation.box
            coco_annotations.append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": FOREGROUND_CATEGORY["id"],
                    "bbox": [x, y, width, height],
                    "area": annotation.area,
                    "iscrowd": int(annotation.crowd),
                    "class_id": annotation.class_id,
                }
            )
            if image.kind == "standard" and not annotation.crowd and annotation.area > main_area:
                main_id, main_area = annotation_id, annotation.area
        coco_images.append(
            {
                "id": image_id,
                "file_name": image.file_name,
                "width": image.width,
                "height": image.height,
                "background": image.background,
                "main_annotation_id": main_id,
                "scene_kind": image.kind,
            }
        )
    return {
        "info": {"description": description, "version": "1"},
        "images": coco_images,
        "annotations": coco_annotations,
        "categories": [FOREGROUND_CATEGORY],
    }


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def prepare_output(out: Path, overwrite: bool, parts: tuple[str, ...]) -> None:
    """Refuses to mix two runs in one directory: earlier ``parts`` go only with ``overwrite``."""
    existing = [part for part in parts if (out / part).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them")
    for part in existing:
        target = out / part
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)
