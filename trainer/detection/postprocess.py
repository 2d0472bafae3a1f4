"""PicoDet's post-processing, defined once: the exported graph (``export.py``), the evaluation of a training-time
model (``predict.py``) and the docs (``docs/trainer-detector.md``, checked by a test) take it from here.

PaddleDetection's legacy ``PicoHead.post_process`` with the PicoDet v1 deploy settings: on each level the
``nms_pre`` anchors with the best class score, boxes **not clipped**, then ``multiclass_nms3`` per class (scores
over ``score_threshold``, the ``nms_top_k`` best, greedy NMS at ``iou_threshold`` without the +1 pixel), and the
``keep_top_k`` best rows of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from trainer.detection.boxes import non_maximum_suppression


@dataclass(frozen=True)
class NmsSettings:
    nms_pre: int = 1000
    score_threshold: float = 0.025
    nms_top_k: int = 1000
    keep_top_k: int = 100
    iou_threshold: float = 0.6


PICODET_NMS = NmsSettings()  # PicoDet v1's deploy values: what exports and evaluations use unless told otherwise


def select_detections(
    level_scores: list[NDArray[np.float32]], level_boxes: list[NDArray[np.float32]], nms: NmsSettings
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]:
    """One image, in numpy: per-level scores [C, A_l] and boxes [A_l, 4] → kept boxes, scores, labels, best first."""
    candidate_scores, candidate_boxes = [], []
    for scores, boxes in zip(level_scores, level_boxes, strict=True):
        best = np.argsort(-scores.max(axis=0), kind="stable")[: nms.nms_pre]
        candidate_scores.append(scores[:, best])
        candidate_boxes.append(boxes[best])
    scores = np.concatenate(candidate_scores, axis=1)
    boxes = np.concatenate(candidate_boxes)
    kept_boxes, kept_scores, kept_labels = [], [], []
    for label, class_scores in enumerate(scores):
        passing = np.flatnonzero(class_scores > nms.score_threshold)
        passing = passing[np.argsort(-class_scores[passing], kind="stable")][: nms.nms_top_k]
        keep = passing[non_maximum_suppression(boxes[passing], class_scores[passing], nms.iou_threshold)]
        kept_boxes.append(boxes[keep])
        kept_scores.append(class_scores[keep])
        kept_labels.append(np.full(len(keep), label, dtype=np.int64))
    all_scores = np.concatenate(kept_scores)
    order = np.argsort(-all_scores, kind="stable")[: nms.keep_top_k]
    return np.concatenate(kept_boxes)[order], all_scores[order], np.concatenate(kept_labels)[order]
