"""Sliding windows: candidate boxes for photos of several products when no detector is loaded.

Without a detector PP-ShiTu embeds the whole photo only, which finds one product filling the frame but
rarely one of several on a shelf. Square windows at a few sizes, half a window apart, give the embedder
crops close to each product; recognition-score NMS then keeps the best window per product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from service.box import Box


def sliding_windows(width: int, height: int, scales: Sequence[float]) -> list[Box]:
    """Square windows of side ``scale`` x the shorter side, half a side apart, the last ones flush with the edges."""
    shorter = min(width, height)
    boxes = []
    for scale in scales:
        size = max(1, round(scale * shorter))
        for top in _starts(height, size):
            for left in _starts(width, size):
                boxes.append(Box(left, top, left + size, top + size))
    return boxes


def _starts(length: int, size: int) -> list[int]:
    if size >= length:
        return [0]
    count = math.ceil((length - size) / (size / 2)) + 1
    return sorted({round(index * (length - size) / (count - 1)) for index in range(count)})
