"""Deterministic weights by the parity fixture's rule (tests/fixtures/ppshitu_parity/README.md).

One generator per state-dict entry, seeded with ``[1, crc32(name)]``; the recognition and detector
references differ only in the spread of the BN statistics and the 1-d parameters.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FillRanges:
    shift_std: float  # running means and 1-d biases: normal(0, shift_std)
    scale: tuple[float, float]  # 1-d weights (BN scales): uniform(*scale)


RECOGNITION = FillRanges(shift_std=0.1, scale=(0.5, 1.5))
DETECTOR = FillRanges(shift_std=0.02, scale=(0.8, 1.2))


def fill_entry(name: str, shape: Sequence[int], ranges: FillRanges) -> np.ndarray:
    shape = tuple(shape)
    rng = np.random.default_rng([1, zlib.crc32(name.encode())])
    if name.endswith("_variance"):
        values = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("_mean"):
        values = rng.normal(0.0, ranges.shift_std, shape)
    elif len(shape) == 1 and name.endswith(".weight"):
        values = rng.uniform(*ranges.scale, shape)
    elif len(shape) == 1:
        values = rng.normal(0.0, ranges.shift_std, shape)
    else:
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        values = rng.normal(0.0, 1.0, shape) * np.sqrt(2.0 / fan_in)
    return values.astype(np.float32)


def fill_state(entries: Iterable[tuple[str, Sequence[int]]], ranges: FillRanges) -> dict[str, np.ndarray]:
    return {name: fill_entry(name, shape, ranges) for name, shape in entries}
