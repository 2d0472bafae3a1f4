"""Deterministic detector weights by the parity fixture's rule (tests/fixtures/ppshitu_parity/README.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from tests import parity_weights

PROJECT_NAME = "head.distribution_project.project"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def fill_state(entries: Iterable[tuple[str, Sequence[int]]]) -> dict[str, np.ndarray]:
    """The detector reference's weights; the distribution projection is the fixed 0..reg_max ramp."""
    state = parity_weights.fill_state(entries, parity_weights.DETECTOR)
    if PROJECT_NAME in state:
        state[PROJECT_NAME] = np.arange(state[PROJECT_NAME].shape[0], dtype=np.float32)
    return state


def detector_input(path: Path, size: int) -> np.ndarray:
    """The fixture's detector preprocessing: BGR PNG → RGB → cubic resize → ImageNet normalisation → [1,3,S,S]."""
    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    return np.ascontiguousarray(((resized - MEAN) / STD).transpose(2, 0, 1)[np.newaxis])
