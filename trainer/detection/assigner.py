"""SimOTA label assignment (YOLOX, as PicoDet v1 configures it) in numpy: assignment is not differentiated.

For one image: priors whose centre lies inside a ground-truth box or within ``center_radius`` strides of its centre
are candidates. Cost = ``cls_weight`` · varifocal cost (BCE of the predicted score against the IoU target, focal
weighted) + ``iou_weight`` · (1 − GIoU), plus a prohibitive cost unless the prior is both inside the box and near
its centre. Each box takes its ``k`` cheapest candidates, ``k`` = ⌊sum of its ``candidate_topk`` best IoUs⌋ (≥ 1);
a prior claimed by several boxes keeps the cheapest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from trainer.detection.boxes import pairwise_giou, pairwise_iou

_OUTSIDE_COST = 1e8
_LOG_FLOOR = -100.0  # as Paddle's binary_cross_entropy clamps log(p)


@dataclass(frozen=True)
class Assignment:
    """Per prior: the matched box index (−1 = background) and the IoU of its prediction with that box."""

    matched_gt: NDArray[np.int64]  # [P]
    matched_iou: NDArray[np.float32]  # [P], 0 for background

    @property
    def positive(self) -> NDArray[np.bool_]:
        return self.matched_gt >= 0

    @property
    def num_positive(self) -> int:
        return int(self.positive.sum())


def varifocal_cost(
    scores: NDArray[np.floating], target: NDArray[np.floating], alpha: float = 0.75, gamma: float = 2.0
) -> NDArray[np.float64]:
    """Varifocal loss on probabilities, summed over classes: [..., C] → [...]."""
    scores = np.asarray(scores, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    weight = np.where(target > 0, target, alpha * np.abs(scores - target) ** gamma)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(scores), _LOG_FLOOR)
        log_not_p = np.maximum(np.log(1.0 - scores), _LOG_FLOOR)
    bce = -(target * log_p + (1.0 - target) * log_not_p)
    return (bce * weight).sum(axis=-1)


class SimOTAAssigner:
    def __init__(
        self,
        center_radius: float = 2.5,
        candidate_topk: int = 10,
        iou_weight: float = 6.0,
        cls_weight: float = 1.0,
    ) -> None:
        self.center_radius = center_radius
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight

    def assign(
        self,
        scores: NDArray[np.floating],
        priors: NDArray[np.floating],
        predicted_boxes: NDArray[np.floating],
        gt_boxes: NDArray[np.floating],
        gt_labels: NDArray[np.integer],
    ) -> Assignment:
        """``scores`` [P,C] probabilities; ``priors`` [P,4] (cx, cy, stride_x, stride_y); boxes as x1,y1,x2,y2."""
        num_priors = len(priors)
        background = Assignment(np.full(num_priors, -1, dtype=np.int64), np.zeros(num_priors, dtype=np.float32))
        if len(gt_boxes) == 0 or num_priors == 0:
            return background
        in_box, in_center = self._geometry(np.asarray(priors, np.float64), np.asarray(gt_boxes, np.float64))
        candidates = np.flatnonzero((in_box | in_center).any(axis=1))
        if candidates.size == 0:
            return background
        ious = pairwise_iou(predicted_boxes[candidates], gt_boxes)  # [V, G]
        cost = self._cost(scores[candidates], predicted_boxes[candidates], gt_boxes, gt_labels, ious)
        cost = cost + _OUTSIDE_COST * ~(in_box[candidates] & in_center[candidates])
        matched = self._dynamic_k_matching(cost, ious)
        matched_gt = background.matched_gt.copy()
        matched_iou = background.matched_iou.copy()
        positive = matched >= 0
        matched_gt[candidates[positive]] = matched[positive]
        matched_iou[candidates[positive]] = ious[np.flatnonzero(positive), matched[positive]]
        return Assignment(matched_gt, matched_iou)

    def _geometry(
        self, priors: NDArray[np.float64], gt_boxes: NDArray[np.float64]
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """[P, G] masks: prior centre strictly inside the box; strictly inside the centre square of the box."""
        centers, strides = priors[:, None, :2], priors[:, None, 2:]
        inside = np.minimum(centers - gt_boxes[None, :, :2], gt_boxes[None, :, 2:] - centers).min(axis=2)
        in_box: NDArray[np.bool_] = np.asarray(inside > 0)
        gt_centers = (gt_boxes[None, :, :2] + gt_boxes[None, :, 2:]) / 2
        radius = self.center_radius * strides
        in_center: NDArray[np.bool_] = np.asarray((np.abs(centers - gt_centers) < radius).all(axis=2))
        return in_box, in_center

    def _cost(
        self,
        scores: NDArray[np.floating],
        predicted_boxes: NDArray[np.floating],
        gt_boxes: NDArray[np.floating],
        gt_labels: NDArray[np.integer],
        ious: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        num_valid, num_classes = scores.shape
        target = np.zeros((num_valid, len(gt_boxes), num_classes))
        target[:, np.arange(len(gt_boxes)), gt_labels] = ious
        classification = varifocal_cost(np.broadcast_to(scores[:, None, :], target.shape), target)
        regression = 1.0 - pairwise_giou(predicted_boxes, gt_boxes)
        return self.cls_weight * classification + self.iou_weight * regression

    def _dynamic_k_matching(self, cost: NDArray[np.float64], ious: NDArray[np.float64]) -> NDArray[np.int64]:
        """Per candidate: the matched box index, −1 when none."""
        num_valid, num_gt = cost.shape
        top = min(self.candidate_topk, num_valid)
        top_ious = -np.sort(-ious, axis=0)[:top]
        dynamic_k = np.maximum(top_ious.sum(axis=0).astype(np.int64), 1)
        matching = np.zeros((num_valid, num_gt), dtype=bool)
        for gt_index in range(num_gt):
            cheapest = np.argsort(cost[:, gt_index], kind="stable")[: dynamic_k[gt_index]]
            matching[cheapest, gt_index] = True
        contested = matching.sum(axis=1) > 1
        if contested.any():
            best = np.argmin(cost[contested], axis=1)
            matching[contested] = False
            matching[np.flatnonzero(contested), best] = True
        return np.where(matching.any(axis=1), matching.argmax(axis=1), -1).astype(np.int64)
