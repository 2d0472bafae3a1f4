"""A benchmark split on disk, as ``shitu data synth`` writes it (see ``trainer/synth/dataset.py``).

Paths inside each list and json file are relative to that file's folder, as ``shitu gallery import`` reads them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.errors import InvalidRequest
from service.gallery import ListEntry, read_list_file
from trainer.evaluation.breakdown import Groups, class_groups, crop_groups

STANDARD_KIND = "standard"  # trainer.synth.generator.SceneKind.standard


class BenchmarkDataError(ValueError):
    """The dataset directory lacks a file the benchmark needs, or a file is malformed."""


@dataclass(frozen=True)
class Scene:
    """One photo of the detection json with its main object (the largest product, ``main_annotation_id``)."""

    image_id: int
    path: Path
    boxes: NDArray[np.float32]  # [N, 4] x1, y1, x2, y2 pixels
    crowd: NDArray[np.bool_]  # [N]
    main_box: NDArray[np.float32]  # [4]
    main_label: str
    known: bool  # the main object's class is in the gallery


@dataclass(frozen=True)
class DetectionScene:
    """A photo of another scene kind (``shelf``: rows of products; ``empty``: none) with its boxes."""

    image_id: int
    path: Path
    kind: str
    boxes: NDArray[np.float32]  # [N, 4] x1, y1, x2, y2 pixels
    crowd: NDArray[np.bool_]  # [N] mostly hidden products: neither a hit nor a miss


@dataclass(frozen=True)
class BenchmarkSplit:
    name: str
    gallery: list[ListEntry]
    queries: list[ListEntry]  # ground-truth crops of gallery classes
    open_set_queries: list[ListEntry]  # ground-truth crops of classes kept out of the gallery
    scenes: list[Scene]  # standard scenes (1-3 products, a main one)
    shelves: list[DetectionScene] = field(default_factory=list)
    empty_scenes: list[DetectionScene] = field(default_factory=list)
    query_groups: list[Groups] = field(default_factory=list)  # per query crop: family, package, occlusion
    class_groups: dict[str, Groups] = field(default_factory=dict)  # per class: family, package

    @property
    def gallery_labels(self) -> set[str]:
        return {entry.label for entry in self.gallery}


def load_split(data_dir: Path, split: str, *, limit: int | None = None) -> BenchmarkSplit:
    """Reads ``recognition/<split>_{gallery,query,openset}_list.txt`` and ``detection/<split>.json``.

    ``limit`` keeps the first ``limit`` query crops, open-set crops, and scenes of each kind (main object in the
    gallery or not), so a limited run still has both halves of the open-set benchmark.
    """
    recognition = Path(data_dir) / "recognition"
    gallery = _read_list(recognition / f"{split}_gallery_list.txt", required=True)
    queries = _read_list(recognition / f"{split}_query_list.txt", required=True)
    open_set = _read_list(recognition / f"{split}_openset_list.txt", required=False)
    labels = {entry.label for entry in gallery}
    detection_json = Path(data_dir) / "detection" / f"{split}.json"
    scenes = read_scenes(detection_json, labels)
    shelves = read_other_scenes(detection_json, "shelf")
    empty_scenes = read_other_scenes(detection_json, "empty")
    for name, items in (("gallery list", gallery), ("query list", queries), ("detection json", scenes)):
        if not items:
            raise BenchmarkDataError(f"the {split} {name} of {data_dir} is empty")
    if limit is not None:
        queries, open_set = queries[:limit], open_set[:limit]
        scenes = [scene for scene in scenes if scene.known][:limit] + [s for s in scenes if not s.known][:limit]
        scenes.sort(key=lambda scene: scene.image_id)
        shelves, empty_scenes = shelves[:limit], empty_scenes[:limit]
    classes = class_groups(data_dir)
    return BenchmarkSplit(split, gallery, queries, open_set, scenes, shelves, empty_scenes,
                          crop_groups(data_dir, queries, classes), classes)


def class_titles(data_dir: Path) -> dict[str, str]:
    """Class id (as the lists spell it) → readable title from ``classes.json``; empty when the file is absent."""
    path = Path(data_dir) / "classes.json"
    if not path.is_file():
        return {}
    return {str(entry["id"]): str(entry.get("title") or entry.get("name") or entry["id"]) for entry in _json(path)}


def read_scenes(path: Path, gallery_labels: set[str]) -> list[Scene]:
    """Standard scenes of a COCO json (images without ``scene_kind`` too): each names a main annotation carrying
    a ``class_id``."""
    document = _json(path)
    by_image = _annotations_by_image(document)
    scenes = []
    for image in document.get("images", []):
        if image.get("scene_kind", STANDARD_KIND) != STANDARD_KIND:
            continue
        annotations = by_image.get(int(image["id"]), [])
        main = next((item for item in annotations if item["id"] == image.get("main_annotation_id")), None)
        if main is None or "class_id" not in main:
            raise BenchmarkDataError(f"{path}: image {image['id']} names no main annotation with a class_id")
        image_path = Path(os.path.normpath(path.parent / image["file_name"]))
        if not image_path.is_file():
            raise BenchmarkDataError(f"{path}: image file not found: {image_path}")
        label = str(main["class_id"])
        scenes.append(
            Scene(
                image_id=int(image["id"]),
                path=image_path,
                boxes=np.array([_corners(item["bbox"]) for item in annotations], dtype=np.float32).reshape(-1, 4),
                crowd=np.array([bool(item.get("iscrowd", 0)) for item in annotations], dtype=bool),
                main_box=np.array(_corners(main["bbox"]), dtype=np.float32),
                main_label=label,
                known=label in gallery_labels,
            )
        )
    return scenes


def read_other_scenes(path: Path, kind: str) -> list[DetectionScene]:
    """The images of one other ``scene_kind`` (``shelf`` or ``empty``); none in datasets written before kinds."""
    document = _json(path)
    by_image = _annotations_by_image(document)
    scenes = []
    for image in document.get("images", []):
        if image.get("scene_kind", STANDARD_KIND) != kind:
            continue
        annotations = by_image.get(int(image["id"]), [])
        image_path = Path(os.path.normpath(path.parent / image["file_name"]))
        if not image_path.is_file():
            raise BenchmarkDataError(f"{path}: image file not found: {image_path}")
        scenes.append(DetectionScene(
            image_id=int(image["id"]),
            path=image_path,
            kind=kind,
            boxes=np.array([_corners(item["bbox"]) for item in annotations], dtype=np.float32).reshape(-1, 4),
            crowd=np.array([bool(item.get("iscrowd", 0)) for item in annotations], dtype=bool),
        ))
    return scenes


def _annotations_by_image(document: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    by_image: dict[int, list[dict[str, Any]]] = {}
    for annotation in document.get("annotations", []):
        by_image.setdefault(int(annotation["image_id"]), []).append(annotation)
    return by_image


def _corners(bbox: list[float]) -> list[float]:
    x, y, width, height = (float(value) for value in bbox)
    return [x, y, x + width, y + height]


def _read_list(path: Path, *, required: bool) -> list[ListEntry]:
    if not path.is_file():
        if required:
            raise BenchmarkDataError(f"{path} not found: generate the benchmark with `shitu data synth --out DIR`")
        return []
    try:
        # The benchmark's own lists point at ../images beside them (the `shitu data synth` layout), not at uploads.
        return read_list_file(path, path.parent, allow_outside_root=True)
    except InvalidRequest as error:
        raise BenchmarkDataError(error.message) from error


def _json(path: Path) -> Any:
    if not path.is_file():
        raise BenchmarkDataError(f"{path} not found: generate the benchmark with `shitu data synth --out DIR`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchmarkDataError(f"cannot read {path}: {error}") from error
