"""PP-ShiTuV2 metric-learning losses (spec 2.2) and the ArcMargin head option.

Total loss = ce_weight * CE(logits, label smoothing) + triplet_weight * TripletAngularMargin(BNNeck features).
"""

from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F
from paddle import Tensor, nn

from trainer.recognition.config import LossConfig


def label_smoothed_cross_entropy(logits: Tensor, labels: Tensor, epsilon: float = 0.1) -> Tensor:
    """Mean over the batch of ``-sum_c q_c log softmax(z)_c`` with ``q = (1 - eps) onehot + eps / C``."""
    log_probs = F.log_softmax(logits.astype("float32"), axis=-1)
    target_log_prob = paddle.take_along_axis(log_probs, labels.reshape([-1, 1]).astype("int64"), axis=1)
    per_sample = -(1.0 - epsilon) * target_log_prob.squeeze(1) - epsilon * log_probs.mean(axis=-1)
    return per_sample.mean()


def triplet_angular_margin_loss(
    features: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.5,
    absolute_weight: float = 0.1,
    ap_value: float = 0.8,
    an_value: float = 0.4,
) -> Tensor:
    """Hardest-positive / hardest-negative cosine triplet loss with absolute terms, as PaddleClas computes it.

    The hardest positive includes the anchor itself (cosine 1), and the negative absolute term counts
    1 rather than 0 when the hardest negative is under ``an_value``: both are the reference's behaviour.
    """
    normalized = F.normalize(features.astype("float32"), axis=1)
    similarity = paddle.matmul(normalized, normalized, transpose_y=True)
    labels = labels.reshape([-1])
    same = labels.unsqueeze(1) == labels.unsqueeze(0)
    if bool(same.all()):
        raise ValueError("a triplet batch needs at least two identities")
    # Cosines lie in [-1, 1], so +-2 can never be picked as the hardest pair.
    hardest_positive = paddle.where(same, similarity, paddle.full_like(similarity, 2.0)).min(axis=1)
    hardest_negative = paddle.where(same, paddle.full_like(similarity, -2.0), similarity).max(axis=1)
    ranking = F.relu(hardest_negative - hardest_positive + margin).mean()
    if not absolute_weight:
        return ranking
    positive_term = F.relu(ap_value - hardest_positive).mean()
    negative_gap = hardest_negative - an_value
    negative_term = paddle.where(negative_gap > 0, negative_gap, paddle.ones_like(negative_gap)).mean()
    return ranking + absolute_weight * (positive_term + negative_term)


class ArcMarginHead(nn.Layer):
    """Additive angular margin (ArcFace): ``s * cos(theta_y + m)`` for the true class, ``s * cos(theta)`` else.

    Features and class weights are L2-normalized; without labels (inference) it returns ``s * cos(theta)``.
    """

    def __init__(self, embedding_size: int, class_num: int, scale: float = 30.0, margin: float = 0.15) -> None:
        super().__init__()
        self.scale = scale
        self.margin = margin
        self.weight = self.create_parameter(
            [embedding_size, class_num], default_initializer=nn.initializer.XavierNormal()
        )

    def forward(self, features: Tensor, labels: Tensor | None = None) -> Tensor:
        cosine = paddle.matmul(F.normalize(features, axis=1), F.normalize(self.weight, axis=0))
        if labels is None:
            return self.scale * cosine
        sine = paddle.sqrt(paddle.clip(1.0 - cosine * cosine, min=1e-12))
        with_margin = cosine * math.cos(self.margin) - sine * math.sin(self.margin)
        # Past theta = pi - m, cos(theta + m) stops decreasing; use the linear fallback there so the logit
        # stays monotonic in theta.
        fallback = cosine - math.sin(math.pi - self.margin) * self.margin
        with_margin = paddle.where(cosine > math.cos(math.pi - self.margin), with_margin, fallback)
        one_hot = F.one_hot(labels.reshape([-1]).astype("int64"), cosine.shape[1]).astype(cosine.dtype)
        return self.scale * (one_hot * with_margin + (1.0 - one_hot) * cosine)


class RecognitionLoss:
    """The weighted sum of both losses; ``components`` keeps each one for the logs."""

    def __init__(self, config: LossConfig) -> None:
        self.config = config

    def __call__(self, features: Tensor, logits: Tensor | None, labels: Tensor) -> dict[str, Tensor]:
        config = self.config
        components: dict[str, Tensor] = {}
        if config.ce_weight and logits is not None:
            components["ce"] = config.ce_weight * label_smoothed_cross_entropy(logits, labels, config.label_smoothing)
        if config.triplet_weight:
            components["triplet"] = config.triplet_weight * triplet_angular_margin_loss(
                features,
                labels,
                margin=config.triplet_margin,
                absolute_weight=config.absolute_weight,
                ap_value=config.ap_value,
                an_value=config.an_value,
            )
        if not components:
            raise ValueError("both loss weights are 0: nothing to train")
        components["total"] = paddle.add_n(list(components.values()))
        return components
