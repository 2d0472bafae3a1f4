"""Deterministic detector weights by the parity fixture's rule (../shared/fixtures/ppshitu_parity/README.md)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

PROJECT_NAME = "head.distribution_project.project"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def fill_entry(name: str, shape: Sequence[int]) -> np.ndarray:
    """One state-dict entry, drawn from its own generator seeded with ``[1, crc32(name)]`` (detector ranges)."""
    shape = tuple(shape)
    if name == PROJECT_NAME:
        return np.arange(shape[0], dtype=np.float32)
    rng = np.random.default_rng([1, zlib.crc32(name.encode())])
    if name.endswith("_variance"):
        values = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("_mean"):
        values = rng.normal(0.0, 0.02, shape)
    elif len(shape) == 1 and name.endswith(".weight"):
        values = rng.uniform(0.8, 1.2, shape)
    elif len(shape) == 1:
        values = rng.normal(0.0, 0.02, shape)
    else:
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        values = rng.normal(0.0, 1.0, shape) * np.sqrt(2.0 / fan_in)
    return values.astype(np.float32)


def fill_state(entries: Iterable[tuple[str, Sequence[int]]]) -> dict[str, np.ndarray]:
    return {name: fill_entry(name, shape) for name, shape in entries}


def detector_input(path: Path, size: int) -> np.ndarray:
    """The fixture's detector preprocessing: BGR PNG → RGB → cubic resize → ImageNet normalisation → [1,3,S,S]."""
    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    return np.ascontiguousarray(((resized - MEAN) / STD).transpose(2, 0, 1)[np.newaxis])
