"""Losses against values worked out by hand from the spec's formulas (section 2.2)."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from trainer.recognition.config import LossConfig
from trainer.recognition.losses import (
    ArcMarginHead,
    RecognitionLoss,
    label_smoothed_cross_entropy,
    triplet_angular_margin_loss,
)

ROOT_HALF = 1.0 / math.sqrt(2.0)


def test_label_smoothed_cross_entropy_matches_the_smoothed_target() -> None:
    logits = paddle.to_tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    labels = paddle.to_tensor([0, 1])
    # q = 0.9 * onehot + 0.1 / 3; loss = -sum q log p, averaged over the two rows.
    row0_norm = math.log(math.exp(2) + 2)
    row0 = (0.9 + 0.1 / 3) * (row0_norm - 2) + (0.1 / 3) * 2 * row0_norm
    row1_norm = math.log(1 + math.e + math.exp(3))
    row1 = (0.9 + 0.1 / 3) * (row1_norm - 1) + (0.1 / 3) * ((row1_norm - 0) + (row1_norm - 3))
    loss = label_smoothed_cross_entropy(logits, labels, epsilon=0.1)
    assert float(loss) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_label_smoothing_zero_is_plain_cross_entropy() -> None:
    logits = paddle.to_tensor([[1.0, 2.0], [0.5, -0.5]])
    labels = paddle.to_tensor([1, 0])
    expected = paddle.nn.functional.cross_entropy(logits, labels.reshape([-1, 1]))
    assert float(label_smoothed_cross_entropy(logits, labels, 0.0)) == pytest.approx(float(expected), rel=1e-6)


def _four_points() -> tuple[paddle.Tensor, paddle.Tensor]:
    # Class 0 at 0° and 90°, class 1 at 45° (length 3: normalization must remove it) and 180°.
    features = paddle.to_tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0], [-1.0, 0.0]])
    return features, paddle.to_tensor([0, 0, 1, 1])


def test_triplet_angular_margin_loss_by_hand() -> None:
    features, labels = _four_points()
    # Hardest positive / negative cosines per row (self is a positive with cosine 1):
    positive = [0.0, 0.0, -ROOT_HALF, -ROOT_HALF]
    negative = [ROOT_HALF, ROOT_HALF, ROOT_HALF, 0.0]
    ranking = sum(max(0.0, n - p + 0.5) for p, n in zip(positive, negative, strict=True)) / 4
    ap_term = sum(max(0.0, 0.8 - p) for p in positive) / 4
    # Row 3's hardest negative (0.0) is under 0.4, so the reference counts the constant 1 for it.
    an_term = (3 * (ROOT_HALF - 0.4) + 1.0) / 4
    expected = ranking + 0.1 * (ap_term + an_term)
    loss = triplet_angular_margin_loss(features, labels, margin=0.5, absolute_weight=0.1, ap_value=0.8, an_value=0.4)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(1.547272, abs=1e-6)  # (5r + 2) / 4 + 0.1 * (5r + 3) / 4, r = 1/sqrt(2)


def test_triplet_without_absolute_terms_is_the_ranking_hinge() -> None:
    features, labels = _four_points()
    loss = triplet_angular_margin_loss(features, labels, margin=0.2, absolute_weight=0.0)
    hinges = [ROOT_HALF + 0.2, ROOT_HALF + 0.2, 2 * ROOT_HALF + 0.2, ROOT_HALF + 0.2]
    assert float(loss) == pytest.approx(sum(hinges) / 4, rel=1e-5)


def test_triplet_gradient_pulls_positives_together() -> None:
    features, labels = _four_points()
    features.stop_gradient = False
    triplet_angular_margin_loss(features, labels).backward()
    # Row 2 (45°) is pulled towards its positive at 180° and away from class 0: its gradient points away
    # from (-1, 0) in cosine, i.e. descending the loss moves it towards negative x.
    step = -features.grad.numpy()[2]
    assert step[0] < 0


def test_triplet_needs_two_identities() -> None:
    with pytest.raises(ValueError, match="two identities"):
        triplet_angular_margin_loss(paddle.ones([4, 2]), paddle.to_tensor([3, 3, 3, 3]))


def test_arc_margin_adds_the_angle_to_the_true_class_only() -> None:
    head = ArcMarginHead(embedding_size=2, class_num=2, scale=2.0, margin=0.5)
    head.weight.set_value(paddle.to_tensor([[3.0, 0.0], [0.0, 0.5]]))  # columns normalize to the axes
    features = paddle.to_tensor([[0.5, math.sqrt(3) / 2], [2.0, 0.0]])  # 60° and 0°
    logits = head(features, paddle.to_tensor([0, 1])).numpy()
    # Row 0: true class 0 at 60° gets cos(60° + m); row 1: true class 1 at 90° gets cos(90° + m).
    expected = [
        [2 * math.cos(math.pi / 3 + 0.5), 2 * math.cos(math.pi / 6)],
        [2 * 1.0, 2 * math.cos(math.pi / 2 + 0.5)],
    ]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(head(features).numpy(), [[1.0, math.sqrt(3)], [2.0, 0.0]], rtol=1e-5, atol=1e-6)


def test_arc_margin_falls_back_to_a_linear_penalty_past_pi_minus_m() -> None:
    head = ArcMarginHead(embedding_size=2, class_num=2, scale=1.0, margin=0.5)
    head.weight.set_value(paddle.to_tensor([[1.0, 0.0], [0.0, 1.0]]))
    features = paddle.to_tensor([[-1.0, 0.01]])  # almost 180° from class 0
    logit = float(head(features, paddle.to_tensor([0])).numpy()[0, 0])
    cosine = -1.0 / math.sqrt(1.0 + 0.01**2)
    assert logit == pytest.approx(cosine - math.sin(math.pi - 0.5) * 0.5, rel=1e-5)


def test_recognition_loss_sums_weighted_components() -> None:
    features, labels = _four_points()
    logits = paddle.to_tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    parts = RecognitionLoss(LossConfig(ce_weight=0.5, triplet_weight=2.0))(features, logits, labels)
    ce = label_smoothed_cross_entropy(logits, labels, 0.1)
    triplet = triplet_angular_margin_loss(features, labels)
    assert float(parts["ce"]) == pytest.approx(0.5 * float(ce), rel=1e-6)
    assert float(parts["triplet"]) == pytest.approx(2.0 * float(triplet), rel=1e-6)
    assert float(parts["total"]) == pytest.approx(0.5 * float(ce) + 2.0 * float(triplet), rel=1e-6)
