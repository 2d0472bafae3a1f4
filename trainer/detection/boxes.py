"""Box geometry in numpy, corners ``(x1, y1, x2, y2)`` in pixels, no +1 convention (as COCO and PicoDet)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Boxes = NDArray[np.float32]

_EPSILON = 1e-9


def box_area(boxes: NDArray[np.floating]) -> NDArray[np.floating]:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def pairwise_iou(first: NDArray[np.floating], second: NDArray[np.floating]) -> NDArray[np.float64]:
    """IoU of every box in ``first`` [N,4] with every box in ``second`` [M,4] → [N,M]."""
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    overlap = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = box_area(first)[:, None] + box_area(second)[None, :] - overlap
    return overlap / np.maximum(union, _EPSILON)


def pairwise_giou(first: NDArray[np.floating], second: NDArray[np.floating]) -> NDArray[np.float64]:
    """Generalised IoU (IoU minus the empty fraction of the enclosing box) for every pair → [N,M] in [-1, 1]."""
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    overlap = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = np.maximum(box_area(first)[:, None] + box_area(second)[None, :] - overlap, _EPSILON)
    enclose = np.prod(
        np.maximum(first[:, None, 2:], second[None, :, 2:]) - np.minimum(first[:, None, :2], second[None, :, :2]),
        axis=2,
    )
    enclose = np.maximum(enclose, _EPSILON)
    return overlap / union - (enclose - union) / enclose


def clip_boxes(boxes: Boxes, width: float, height: float) -> Boxes:
    clipped = boxes.copy()
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, width)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, height)
    return clipped


def non_maximum_suppression(boxes: NDArray[np.floating], scores: NDArray[np.floating], iou_threshold: float) -> NDArray:
    """Greedy NMS; returns the kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best = int(order[0])
        kept.append(best)
        if order.size == 1:
            break
        overlaps = pairwise_iou(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)
