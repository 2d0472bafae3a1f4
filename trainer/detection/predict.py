"""Detections of a training-time PicoDet on a dataset, post-processed like the exported model.

Post-processing follows PicoDet v1's deploy config: per level the ``nms_pre`` best anchors, boxes clipped to the
input, per-class NMS (IoU 0.6) over scores ≥ 0.025, the best 100 kept, then scaled back to original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import paddle
from numpy.typing import NDArray

from trainer.detection.augment import normalize
from trainer.detection.boxes import clip_boxes, non_maximum_suppression
from trainer.detection.coco import CocoDetectionDataset, ImageReadError
from trainer.detection.evaluate import ImageDetections, ImageTruth


@dataclass(frozen=True)
class PostProcess:
    score_threshold: float = 0.025
    nms_pre: int = 1000
    nms_iou: float = 0.6
    keep_top_k: int = 100


def select_detections(
    level_scores: list[NDArray[np.float32]], level_boxes: list[NDArray[np.float32]], input_size: int, rule: PostProcess
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]:
    """One image: per-level scores [C, A_l] and boxes [A_l, 4] → kept boxes, scores, labels (input pixels)."""
    candidate_scores, candidate_boxes = [], []
    for scores, boxes in zip(level_scores, level_boxes, strict=True):
        best = np.argsort(-scores.max(axis=0), kind="stable")[: rule.nms_pre]
        candidate_scores.append(scores[:, best])
        candidate_boxes.append(boxes[best])
    scores = np.concatenate(candidate_scores, axis=1)
    boxes = clip_boxes(np.concatenate(candidate_boxes), input_size, input_size)
    kept_boxes, kept_scores, kept_labels = [], [], []
    for label, class_scores in enumerate(scores):
        passing = np.flatnonzero(class_scores >= rule.score_threshold)
        keep = passing[non_maximum_suppression(boxes[passing], class_scores[passing], rule.nms_iou)]
        kept_boxes.append(boxes[keep])
        kept_scores.append(class_scores[keep])
        kept_labels.append(np.full(len(keep), label, dtype=np.int64))
    all_scores = np.concatenate(kept_scores)
    order = np.argsort(-all_scores, kind="stable")[: rule.keep_top_k]
    return np.concatenate(kept_boxes)[order], all_scores[order], np.concatenate(kept_labels)[order]


def predict_dataset(
    model: paddle.nn.Layer,
    dataset: CocoDetectionDataset,
    input_size: int,
    *,
    batch_size: int = 8,
    rule: PostProcess = PostProcess(),
) -> tuple[list[ImageTruth], list[ImageDetections]]:
    """Run ``model`` (eval mode, cubic resize as PP-ShiTu deploys) on every readable image of ``dataset``."""
    truths, detections = [], []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(dataset), batch_size):
            indices, tensors, scales = [], [], []
            for index in range(start, min(start + batch_size, len(dataset))):
                try:
                    pixels = dataset.load_image(index)
                except ImageReadError:
                    continue
                height, width = pixels.shape[:2]
                resized = cv2.resize(pixels, (input_size, input_size), interpolation=cv2.INTER_CUBIC)
                indices.append(index)
                tensors.append(normalize(resized))
                scales.append(np.array([input_size / width, input_size / height] * 2, dtype=np.float32))
            if not indices:
                continue
            with paddle.no_grad():
                level_scores, level_boxes = model.head.decode_levels(*model(paddle.to_tensor(np.stack(tensors))))
            level_scores = [level.numpy() for level in level_scores]
            level_boxes = [level.numpy() for level in level_boxes]
            for row, (index, scale) in enumerate(zip(indices, scales, strict=True)):
                boxes, scores, labels = select_detections(
                    [level[row] for level in level_scores], [level[row] for level in level_boxes], input_size, rule
                )
                sample = dataset.samples[index]
                detections.append(ImageDetections(sample.image_id, boxes / scale, scores, labels))
                truths.append(ImageTruth(sample.image_id, sample.boxes, sample.labels, sample.crowd))
    finally:
        if was_training:
            model.train()
    return truths, detections
