"""Retrieval metrics on hand-made 2-D cases whose rankings are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.recognition.metrics import retrieval_metrics


def _at(*degrees: float) -> np.ndarray:
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


# Four images, labels A B A B, at 0°, 10°, 30° and 110°; each has a unique id (third list column).
FEATURES = _at(0, 10, 30, 110)
LABELS = [0, 1, 0, 1]
IDS = ["a0", "b0", "a1", "b1"]


def test_query_equals_gallery_excludes_each_image_itself() -> None:
    metrics = retrieval_metrics(FEATURES, LABELS, FEATURES, LABELS, query_ids=IDS, gallery_ids=IDS, topk=(1, 2, 5))
    # Rankings after the self-pair is set to similarity 0 (not removed):
    #   q0°:   10°(B) .985, 30°(A) .866, self 0, 110°(B) -.342  -> first positive at rank 2, AP 1/2
    #   q10°:  0°(A) .985, 30°(A) .940, self 0, 110°(B) -.174   -> rank 4, AP 1/4
    #   q30°:  10°(B) .940, 0°(A) .866, 110°(B) .174, self 0    -> rank 2, AP 1/2
    #   q110°: 30°(A) .174, self 0, 10°(B) -.174, 0°(A) -.342   -> rank 3 (the zeroed self still takes rank 2), AP 1/3
    assert metrics.queries == 4
    assert metrics.recall[1] == 0.0
    assert metrics.recall[2] == pytest.approx(2 / 4)
    assert metrics.recall[5] == 1.0
    assert metrics.mean_average_precision == pytest.approx((1 / 2 + 1 / 4 + 1 / 2 + 1 / 3) / 4)
    assert metrics.as_dict() == {"recall1": 0.0, "recall2": 0.5, "recall5": 1.0, "mAP": metrics.mean_average_precision}


def test_without_unique_ids_every_query_finds_itself() -> None:
    metrics = retrieval_metrics(FEATURES, LABELS, FEATURES, LABELS)
    assert metrics.recall[1] == 1.0
    # Positives at ranks (1, 3) for q0°, q30° and q110°: AP (1 + 2/3) / 2; q10° has them at (1, 4): AP 3/4.
    assert metrics.mean_average_precision == pytest.approx((3 * (1 + 2 / 3) / 2 + 3 / 4) / 4)


def test_separate_gallery_and_queries_without_positives() -> None:
    gallery = _at(0, 45, 90, 180)
    gallery_labels = [0, 1, 2, 0]
    queries = _at(40, 100, 270)
    query_labels = [0, 2, 7]  # label 7 has no gallery image: left out of both averages
    metrics = retrieval_metrics(queries, query_labels, gallery, gallery_labels, topk=(1, 5))
    # q40°: 45°(1), 0°(0), 90°(2), 180°(0) -> positives at ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 1/2
    # q100°: 90°(2) first -> AP 1, recall@1 hit
    assert metrics.queries == 2
    assert metrics.recall[1] == pytest.approx(1 / 2)
    assert metrics.recall[5] == 1.0
    assert metrics.mean_average_precision == pytest.approx((1 / 2 + 1) / 2)


def test_unnormalized_features_are_compared_by_cosine() -> None:
    scaled = FEATURES * np.array([[1.0], [50.0], [0.1], [3.0]], dtype=np.float32)
    normal = retrieval_metrics(FEATURES, LABELS, FEATURES, LABELS, query_ids=IDS, gallery_ids=IDS)
    other = retrieval_metrics(scaled, LABELS, scaled, LABELS, query_ids=IDS, gallery_ids=IDS)
    assert other.mean_average_precision == pytest.approx(normal.mean_average_precision)


def test_more_queries_than_one_block() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(50), 3)
    features = np.eye(50, dtype=np.float32)[labels] + 0.01 * rng.standard_normal((150, 50)).astype(np.float32)
    ids = [str(index) for index in range(150)]
    metrics = retrieval_metrics(features, labels, features, labels, query_ids=ids, gallery_ids=ids)
    assert metrics.queries == 150
    assert metrics.recall[1] == 1.0
    assert metrics.mean_average_precision == pytest.approx(1.0)


def test_ids_must_be_given_for_both_sides() -> None:
    with pytest.raises(ValueError, match="both"):
        retrieval_metrics(FEATURES, LABELS, FEATURES, LABELS, query_ids=IDS)


def test_no_positive_anywhere_is_an_error() -> None:
    with pytest.raises(ValueError, match="no query"):
        retrieval_metrics(_at(0), [1], _at(0), [2])
