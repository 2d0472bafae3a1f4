"""PicoDet v1 training losses: Varifocal (or Quality Focal) classification, Distribution Focal and GIoU boxes.

Normalisation follows PaddleDetection's ``OTAVFLHead``: the classification loss is divided by the number of
positives (at least one per image); box losses are weighted by each positive's predicted score (detached) and
divided by the sum of those weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import paddle
import paddle.nn.functional as F
from numpy.typing import NDArray

from trainer.detection.assigner import SimOTAAssigner

# DFL targets stay strictly below the last bin so that both neighbouring bins exist.
_DISTANCE_MARGIN = 0.1
_EPSILON = 1e-10


def varifocal_loss(
    logits: paddle.Tensor, target: paddle.Tensor, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True
) -> paddle.Tensor:
    """Element-wise VFL: positives (target > 0) weighted by their IoU target, negatives by α·σ(x)^γ."""
    probability = F.sigmoid(logits)
    positive = (target > 0).astype(logits.dtype)
    positive_weight = target if iou_weighted else paddle.ones_like(target)
    weight = positive_weight * positive + alpha * (probability - target).abs().pow(gamma) * (1 - positive)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight


def quality_focal_loss(logits: paddle.Tensor, target: paddle.Tensor, beta: float = 2.0) -> paddle.Tensor:
    """Element-wise QFL (GFL): BCE against the soft IoU target scaled by |target − σ(x)|^β."""
    weight = (target - F.sigmoid(logits)).abs().pow(beta)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight


def distribution_focal_loss(logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
    """[N, R+1] bin logits, [N] fractional targets in [0, R) → [N]: CE to the two neighbouring bins, linearly mixed."""
    left = paddle.floor(target).astype("int64")
    right = left + 1
    weight_left = right.astype(target.dtype) - target
    weight_right = target - left.astype(target.dtype)
    log_probability = F.log_softmax(logits, axis=-1)
    left_term = -paddle.take_along_axis(log_probability, left.unsqueeze(-1), axis=-1).squeeze(-1)
    right_term = -paddle.take_along_axis(log_probability, right.unsqueeze(-1), axis=-1).squeeze(-1)
    return left_term * weight_left + right_term * weight_right


def giou_loss(predicted: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
    """1 − GIoU of aligned box pairs [N, 4] (x1, y1, x2, y2) → [N]."""
    top_left = paddle.maximum(predicted[:, :2], target[:, :2])
    bottom_right = paddle.minimum(predicted[:, 2:], target[:, 2:])
    overlap = (bottom_right - top_left).clip(min=0).prod(axis=1)
    area_predicted = (predicted[:, 2:] - predicted[:, :2]).clip(min=0).prod(axis=1)
    area_target = (target[:, 2:] - target[:, :2]).clip(min=0).prod(axis=1)
    union = area_predicted + area_target - overlap + _EPSILON
    enclose = paddle.maximum(predicted[:, 2:], target[:, 2:]) - paddle.minimum(predicted[:, :2], target[:, :2])
    enclose_area = enclose.clip(min=0).prod(axis=1) + _EPSILON
    return 1.0 - (overlap / union - (enclose_area - union) / enclose_area)


@dataclass(frozen=True)
class LossWeights:
    classification: float = 1.0
    distribution: float = 0.25
    giou: float = 2.0


def anchor_priors(level_shapes: Sequence[tuple[int, int]], strides: Sequence[int], cell_offset: float) -> NDArray:
    """[A, 4] rows (cx, cy, stride, stride) for every cell, stride 8 first, row-major (the head's order)."""
    rows = []
    for (height, width), stride in zip(level_shapes, strides, strict=True):
        grid_y, grid_x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        centers = (np.stack([grid_x.ravel(), grid_y.ravel()], axis=1) + cell_offset) * stride
        rows.append(np.concatenate([centers, np.full((height * width, 2), stride)], axis=1))
    return np.concatenate(rows).astype(np.float32)


class PicoDetLoss:
    """Assigns targets with SimOTA and sums the three weighted losses for a batch of raw head outputs."""

    def __init__(
        self,
        strides: Sequence[int],
        reg_max: int = 7,
        *,
        cell_offset: float = 0.5,
        assigner: SimOTAAssigner | None = None,
        weights: LossWeights = LossWeights(),
        classification: Literal["varifocal", "quality_focal"] = "varifocal",
    ) -> None:
        self.strides = tuple(strides)
        self.reg_max = reg_max
        self.cell_offset = cell_offset
        self.assigner = assigner or SimOTAAssigner()
        self.weights = weights
        self.classification = classification
        self.project = paddle.arange(reg_max + 1, dtype="float32")

    def __call__(
        self,
        class_logits: Sequence[paddle.Tensor],
        box_bins: Sequence[paddle.Tensor],
        gt_boxes: Sequence[NDArray[np.float32]],
        gt_labels: Sequence[NDArray[np.int64]],
    ) -> dict[str, paddle.Tensor]:
        batch, num_classes = class_logits[0].shape[:2]
        logits = paddle.concat([level.flatten(start_axis=2).transpose([0, 2, 1]) for level in class_logits], axis=1)
        bins = paddle.concat(
            [level.reshape([batch, 4, self.reg_max + 1, -1]).transpose([0, 3, 1, 2]) for level in box_bins], axis=1
        )  # [N, A, 4, R+1]
        priors = anchor_priors([tuple(level.shape[2:]) for level in class_logits], self.strides, self.cell_offset)
        centers = paddle.to_tensor(priors[:, :2])
        strides = paddle.to_tensor(priors[:, 2:3])
        distances = (F.softmax(bins, axis=-1) * self.project).sum(axis=-1) * strides  # [N, A, 4] pixels
        boxes = paddle.concat([centers - distances[..., :2], centers + distances[..., 2:]], axis=-1)

        target, positive_index, positive_boxes, num_positive = self._targets(
            logits, boxes, priors, gt_boxes, gt_labels, num_classes
        )
        element_loss = (
            varifocal_loss(logits, target) if self.classification == "varifocal" else quality_focal_loss(logits, target)
        )
        loss_classification = element_loss.sum() / num_positive * self.weights.classification
        if positive_index.size == 0:
            zero = (bins.sum() + boxes.sum()) * 0.0
            loss_giou, loss_distribution = zero, zero
        else:
            loss_giou, loss_distribution = self._box_losses(
                logits, bins, boxes, priors, positive_index, positive_boxes, batch
            )
        total = loss_classification + loss_giou + loss_distribution
        return {
            "loss": total,
            "loss_classification": loss_classification,
            "loss_giou": loss_giou,
            "loss_distribution": loss_distribution,
        }

    def _targets(
        self,
        logits: paddle.Tensor,
        boxes: paddle.Tensor,
        priors: NDArray,
        gt_boxes: Sequence[NDArray[np.float32]],
        gt_labels: Sequence[NDArray[np.int64]],
        num_classes: int,
    ) -> tuple[paddle.Tensor, NDArray[np.int64], NDArray[np.float32], float]:
        """Dense IoU targets [N, A, C], flat indices of positives (image·A + anchor), their boxes, the divisor."""
        scores = F.sigmoid(logits).numpy()
        predicted = boxes.numpy()
        batch, num_anchors = scores.shape[:2]
        target = np.zeros((batch, num_anchors, num_classes), dtype=np.float32)
        positive_index, positive_boxes, num_positive = [], [], 0
        for image in range(batch):
            assignment = self.assigner.assign(
                scores[image], priors, predicted[image], gt_boxes[image], gt_labels[image]
            )
            anchors = np.flatnonzero(assignment.positive)
            matched = assignment.matched_gt[anchors]
            target[image, anchors, gt_labels[image][matched]] = assignment.matched_iou[anchors]
            positive_index.append(image * num_anchors + anchors)
            positive_boxes.append(gt_boxes[image][matched])
            num_positive += max(len(anchors), 1)
        return (
            paddle.to_tensor(target),
            np.concatenate(positive_index).astype(np.int64),
            np.concatenate(positive_boxes).astype(np.float32).reshape(-1, 4),
            float(num_positive),
        )

    def _box_losses(
        self,
        logits: paddle.Tensor,
        bins: paddle.Tensor,
        boxes: paddle.Tensor,
        priors: NDArray,
        positive_index: NDArray[np.int64],
        positive_boxes: NDArray[np.float32],
        batch: int,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        index = paddle.to_tensor(positive_index)
        num_anchors = priors.shape[0]
        score_weight = F.sigmoid(logits.detach()).max(axis=-1).flatten().gather(index)  # [P]
        predicted = boxes.reshape([-1, 4]).gather(index)
        target_boxes = paddle.to_tensor(positive_boxes)
        anchor = priors[positive_index % num_anchors]
        stride = anchor[:, 2:3]
        target_distances = (
            np.concatenate([anchor[:, :2] - positive_boxes[:, :2], positive_boxes[:, 2:] - anchor[:, :2]], axis=1)
            / stride
        )
        target_distances = np.clip(target_distances, 0, self.reg_max - _DISTANCE_MARGIN).astype(np.float32)
        positive_bins = bins.reshape([batch * num_anchors, 4, self.reg_max + 1]).gather(index)
        distribution = distribution_focal_loss(
            positive_bins.reshape([-1, self.reg_max + 1]), paddle.to_tensor(target_distances.reshape(-1))
        ).reshape([-1, 4])
        normaliser = paddle.clip(score_weight.sum(), min=1.0)
        loss_giou = (giou_loss(predicted, target_boxes) * score_weight).sum() / normaliser * self.weights.giou
        # PaddleDetection averages the four sides (avg_factor 4) before the common normaliser.
        loss_distribution = (
            (distribution * score_weight.unsqueeze(-1)).sum() / 4.0 / normaliser * self.weights.distribution
        )
        return loss_giou, loss_distribution
