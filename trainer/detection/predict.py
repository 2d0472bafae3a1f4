"""Detections of a training-time PicoDet on a dataset, post-processed like the exported model.

The post-processing is the export's, in numpy (``postprocess.py``: the one definition of its numbers, no clipping
before NMS), then the boxes are scaled back to original pixels and clipped to the image, as the service does.
"""

from __future__ import annotations

import cv2
import numpy as np
import paddle

from trainer.detection.augment import normalize
from trainer.detection.boxes import clip_boxes
from trainer.detection.coco import CocoDetectionDataset, ImageReadError
from trainer.detection.evaluate import ImageDetections, ImageTruth
from trainer.detection.postprocess import PICODET_NMS, NmsSettings, select_detections


def predict_dataset(
    model: paddle.nn.Layer,
    dataset: CocoDetectionDataset,
    input_size: int,
    *,
    batch_size: int = 8,
    nms: NmsSettings = PICODET_NMS,
) -> tuple[list[ImageTruth], list[ImageDetections]]:
    """Run ``model`` (eval mode, cubic resize as PP-ShiTu deploys) on every readable image of ``dataset``."""
    truths, detections = [], []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(dataset), batch_size):
            indices, tensors, scales, sizes = [], [], [], []
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
                sizes.append((width, height))
            if not indices:
                continue
            with paddle.no_grad():
                level_scores, level_boxes = model.head.decode_levels(*model(paddle.to_tensor(np.stack(tensors))))
            level_scores = [level.numpy() for level in level_scores]
            level_boxes = [level.numpy() for level in level_boxes]
            for row, (index, scale, (width, height)) in enumerate(zip(indices, scales, sizes, strict=True)):
                boxes, scores, labels = select_detections(
                    [level[row] for level in level_scores], [level[row] for level in level_boxes], nms
                )
                sample = dataset.samples[index]
                boxes = clip_boxes(boxes / scale, width, height)  # after NMS, where the service clips
                detections.append(ImageDetections(sample.image_id, boxes, scores, labels))
                truths.append(ImageTruth(sample.image_id, sample.boxes, sample.labels, sample.crowd))
    finally:
        if was_training:
            model.train()
    return truths, detections
