"""Detector losses and SimOTA against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from trainer.detection.assigner import SimOTAAssigner, varifocal_cost
from trainer.detection.losses import (
    PicoDetLoss,
    anchor_priors,
    distribution_focal_loss,
    giou_loss,
    quality_focal_loss,
    varifocal_loss,
)

LN2, LN3, LN4, LN5 = math.log(2), math.log(3), math.log(4), math.log(5)


def _tensor(values: list) -> paddle.Tensor:
    return paddle.to_tensor(np.asarray(values, dtype=np.float32))


def test_varifocal_loss_weights_positives_by_iou_and_negatives_by_focal_term() -> None:
    logits = _tensor([[0.0, 0.0, LN3]])
    target = _tensor([[0.5, 0.0, 0.0]])
    loss = varifocal_loss(logits, target).numpy()[0]
    # positive: IoU 0.5 × BCE(σ=0.5) = 0.5·ln2; negatives: 0.75·σ²·BCE, σ=0.5 → 0.1875·ln2, σ=0.75 → 0.421875·ln4
    np.testing.assert_allclose(loss, [0.5 * LN2, 0.1875 * LN2, 0.421875 * LN4], rtol=1e-5)
    unweighted = varifocal_loss(logits, target, iou_weighted=False).numpy()[0]
    np.testing.assert_allclose(unweighted[0], LN2, rtol=1e-5)


def test_quality_focal_loss_scales_bce_by_distance_to_the_soft_target() -> None:
    loss = quality_focal_loss(_tensor([LN3, 0.0]), _tensor([0.5, 0.0])).numpy()
    positive = (0.5 * math.log(1 / 0.75) + 0.5 * LN4) * 0.25**2
    negative = LN2 * 0.5**2
    np.testing.assert_allclose(loss, [positive, negative], rtol=1e-5)


def test_distribution_focal_loss_mixes_the_two_neighbouring_bins() -> None:
    logits = _tensor([[0.0, LN3, 0.0], [0.0, 0.0, 0.0]])
    loss = distribution_focal_loss(logits, _tensor([0.25, 1.0])).numpy()
    # softmax [1/5, 3/5, 1/5]: 0.75·ln5 + 0.25·(ln5 − ln3); a whole target puts all weight on its own bin
    np.testing.assert_allclose(loss, [LN5 - 0.25 * LN3, math.log(3)], rtol=1e-5)


def test_giou_loss_of_overlapping_identical_and_disjoint_boxes() -> None:
    predicted = _tensor([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1]])
    target = _tensor([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3]])
    np.testing.assert_allclose(giou_loss(predicted, target).numpy(), [1 - (1 / 7 - 2 / 9), 0.0, 1 + 7 / 9], atol=1e-6)


def test_varifocal_cost_on_probabilities_matches_the_loss_on_logits() -> None:
    probabilities = np.array([[0.5, 0.75]])
    target = np.array([[0.5, 0.0]])
    logits = _tensor(np.log(probabilities / (1 - probabilities)).tolist())
    expected = varifocal_loss(logits, _tensor(target.tolist())).numpy().sum()
    np.testing.assert_allclose(varifocal_cost(probabilities, target), [expected], rtol=1e-5)


def test_simota_takes_the_dynamic_k_cheapest_priors_inside_box_and_centre() -> None:
    priors = np.array([[4, 4, 8, 8], [12, 12, 8, 8], [20, 20, 8, 8], [28, 28, 8, 8], [44, 44, 8, 8]], np.float32)
    predicted = np.array([[0, 0, 32, 32], [0, 0, 32, 16], [0, 0, 16, 16], [16, 16, 32, 32], [0, 0, 32, 32]], np.float32)
    scores = np.full((5, 1), 0.5, np.float32)
    assignment = SimOTAAssigner().assign(
        scores, priors, predicted, np.array([[0, 0, 32, 32]], np.float32), np.array([0])
    )
    # IoUs 1, .5, .25, .25 → k = ⌊2.0⌋ = 2; costs ln2·IoU + 6·(1 − IoU): 0.69, 3.35, 4.67, 4.67.
    # The last prior is neither inside the box nor within 2.5 strides of its centre: never a candidate.
    np.testing.assert_array_equal(assignment.matched_gt, [0, 0, -1, -1, -1])
    np.testing.assert_allclose(assignment.matched_iou, [1.0, 0.5, 0, 0, 0], atol=1e-6)
    assert assignment.num_positive == 2


def test_simota_gives_a_contested_prior_to_the_cheaper_box() -> None:
    gt_boxes = np.array([[0, 0, 32, 32], [8, 8, 40, 40]], np.float32)
    assignment = SimOTAAssigner().assign(
        np.full((2, 1), 0.5, np.float32),
        np.array([[20, 20, 8, 8], [100, 100, 8, 8]], np.float32),
        np.array([[8, 8, 40, 40], [90, 90, 110, 110]], np.float32),
        gt_boxes,
        np.array([0, 0]),
    )
    # Both boxes want prior 0 (k = 1 each); against A it costs ln2·0.39 + 6·(1 − 0.31), against B ln2 + 0.
    np.testing.assert_array_equal(assignment.matched_gt, [1, -1])
    np.testing.assert_allclose(assignment.matched_iou[0], 1.0, atol=1e-6)


def test_simota_without_boxes_assigns_background() -> None:
    assignment = SimOTAAssigner().assign(
        np.full((3, 1), 0.5, np.float32), np.ones((3, 4), np.float32), np.ones((3, 4), np.float32),
        np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
    )  # fmt: skip
    assert assignment.num_positive == 0


def test_anchor_priors_follow_the_head_order() -> None:
    priors = anchor_priors([(2, 3), (1, 2)], (8, 16), 0.5)
    np.testing.assert_array_equal(priors[:4], [[4, 4, 8, 8], [12, 4, 8, 8], [20, 4, 8, 8], [4, 12, 8, 8]])
    np.testing.assert_array_equal(priors[6:], [[8, 8, 16, 16], [24, 8, 16, 16]])


@pytest.fixture()
def head_outputs() -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
    generator = np.random.default_rng(0)
    shapes = [(4, 4), (2, 2), (1, 1)]
    logits = [paddle.to_tensor(generator.normal(-2, 1, (2, 1, h, w)).astype(np.float32)) for h, w in shapes]
    bins = [paddle.to_tensor(generator.normal(0, 1, (2, 32, h, w)).astype(np.float32)) for h, w in shapes]
    for tensor in logits + bins:
        tensor.stop_gradient = False
    return logits, bins


def test_picodet_loss_combines_weighted_terms_and_backpropagates(head_outputs: tuple) -> None:
    logits, bins = head_outputs
    criterion = PicoDetLoss((8, 16, 32), 7)
    gt_boxes = [np.array([[2, 2, 20, 24]], np.float32), np.zeros((0, 4), np.float32)]
    gt_labels = [np.array([0]), np.zeros(0, np.int64)]
    losses = criterion(logits, bins, gt_boxes, gt_labels)
    parts = losses["loss_classification"] + losses["loss_giou"] + losses["loss_distribution"]
    np.testing.assert_allclose(float(losses["loss"]), float(parts), rtol=1e-6)
    assert float(losses["loss_giou"]) > 0 and float(losses["loss_distribution"]) > 0
    losses["loss"].backward()
    # every anchor is classified; only positives' bins (here all on the finest level) get a box gradient
    assert all(np.abs(level.grad.numpy()).sum() > 0 for level in logits)
    assert np.abs(bins[0].grad.numpy()).sum() > 0


def test_picodet_loss_without_objects_is_pure_classification(head_outputs: tuple) -> None:
    logits, bins = head_outputs
    empty = [np.zeros((0, 4), np.float32)] * 2
    losses = PicoDetLoss((8, 16, 32), 7)(logits, bins, empty, [np.zeros(0, np.int64)] * 2)
    assert float(losses["loss_giou"]) == 0.0 and float(losses["loss_distribution"]) == 0.0
    flat = np.concatenate([level.numpy().ravel() for level in logits])
    probability = 1 / (1 + np.exp(-flat))
    # no positives: VFL of every anchor against 0, divided by max(positives, 1) per image = 2
    expected = (0.75 * probability**2 * -np.log(1 - probability)).sum() / 2
    np.testing.assert_allclose(float(losses["loss_classification"]), expected, rtol=1e-4)
