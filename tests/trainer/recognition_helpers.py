"""Shared by the recognition tests: a tiny dataset, loading an export the way the service does, its preprocessing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from service.config import RuntimeSettings
from service.inference.image import normalize, resize
from service.inference.manifest import Preprocess
from service.inference.models import load_embedder


def service_embeddings(model_dir: Path, images: list[np.ndarray], *, onednn: bool, batch_size: int) -> np.ndarray:
    """L2-normalized features of RGB images from the service's own embedder loader, on 2 CPU threads."""
    embedder = load_embedder(model_dir, RuntimeSettings(cpu_threads=2, onednn=onednn), max_batch_size=batch_size)
    assert embedder.session.input_names == ("x",)
    return embedder.embed(images)


def to_batch(images: list[np.ndarray], preprocess: Preprocess) -> np.ndarray:
    """RGB uint8 images → the model's input batch, with the service's resize and normalisation."""
    return np.stack([normalize(resize(image, preprocess)[0], preprocess) for image in images])


def unit_rows(features: np.ndarray) -> np.ndarray:
    return features / np.linalg.norm(features, axis=1, keepdims=True)


COLOURS = ((230, 40, 40), (40, 200, 40), (40, 40, 230), (230, 230, 40))
CLASSES, PER_CLASS, SIDE = 8, 6, 64


def _draw(kind: int, colour: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    image = np.full((SIDE, SIDE, 3), 30, np.uint8) + rng.integers(0, 25, (SIDE, SIDE, 3), dtype=np.uint8)
    cx, cy = (int(value) for value in 32 + rng.integers(-6, 7, size=2))
    if kind == 0:
        cv2.circle(image, (cx, cy), 16, colour, -1)
    else:
        cv2.rectangle(image, (cx - 14, cy - 14), (cx + 14, cy + 14), colour, -1)
    return image


def make_shapes_dataset(root: Path) -> Path:
    """8 classes (4 colours x circle/square) x 6 jittered 64 px images, a train list and a query = gallery list."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    train, evaluation = [], []
    for label in range(CLASSES):
        for index in range(PER_CLASS):
            name = f"images/class{label}_{index}.png"
            cv2.imwrite(str(root / name), _draw(label % 2, COLOURS[label // 2], rng)[:, :, ::-1])
            train.append(f"{name} {label}")
            evaluation.append(f"{name}\t{label}\t{label}_{index}")
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "eval.txt").write_text("\n".join(evaluation) + "\n")
    return root
