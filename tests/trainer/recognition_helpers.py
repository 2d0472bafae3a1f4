"""Shared by the recognition tests: load an export the way the service does, and preprocess like it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.config import RuntimeSettings
from service.inference.image import normalize, resize
from service.inference.manifest import Preprocess
from service.inference.models import load_embedder


def service_embeddings(model_dir: Path, images: list[np.ndarray], *, onednn: bool, batch_size: int) -> np.ndarray:
    """L2-normalized features of RGB images from the service's own embedder loader, on 2 CPU threads."""
    embedder = load_embedder(model_dir, RuntimeSettings(cpu_threads=2, onednn=onednn), max_batch_size=batch_size)
    assert embedder.model.input_names == ("x",)
    return embedder.embed(images)


def to_batch(images: list[np.ndarray], preprocess: Preprocess) -> np.ndarray:
    """RGB uint8 images → the model's input batch, with the service's resize and normalisation."""
    return np.stack([normalize(resize(image, preprocess)[0], preprocess) for image in images])


def unit_rows(features: np.ndarray) -> np.ndarray:
    return features / np.linalg.norm(features, axis=1, keepdims=True)
