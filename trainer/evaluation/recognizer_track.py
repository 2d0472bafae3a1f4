"""Track 1, the recognizer alone: ground-truth crops against the gallery views, embedded by the service Embedder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from service.config import LimitsSettings
from service.gallery import ListEntry
from service.inference.embedder import Embedder
from service.inference.image import DecodeLimits, decode_image
from trainer.evaluation.breakdown import GroupRecall, recall_by_group
from trainer.evaluation.data import BenchmarkSplit
from trainer.evaluation.gallery_threshold import GalleryThresholdPoint, gallery_scores, gallery_threshold_points
from trainer.evaluation.open_set import OpenSetPoint, OpenSetQuery, balanced, point_at
from trainer.recognition.metrics import retrieval_metrics

# Images decoded and embedded at a time: bounds memory on large splits (the Embedder batches inside).
CHUNK = 64


@dataclass(frozen=True)
class RecognizerResult:
    queries: int
    gallery_images: int
    recall1: float
    recall5: float
    mean_average_precision: float
    open_set_queries: int  # query crops and crops of absent classes, half and half (0 without an open-set list)
    open_set_at_default: OpenSetPoint | None  # at the service's min_score
    open_set: list[OpenSetQuery] = field(default_factory=list, repr=False)  # those queries themselves
    # recall@1 per family, package kind and occlusion (clear | occluded), where the dataset records them
    breakdown: dict[str, dict[str, GroupRecall]] = field(default_factory=dict)
    # the open-set point at the gallery's own suggestion, per quantile (service.gallery.threshold)
    gallery_thresholds: list[GalleryThresholdPoint] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if key != "open_set"}


def evaluate_recognizer(embedder: Embedder, split: BenchmarkSplit, limits: LimitsSettings, min_score: float,
                        advance: Callable[[], None] = lambda: None) -> RecognizerResult:
    """Recall@1/5 and mAP of the query crops; the gallery is embedded whole, as registered without a detector.

    The open-set point counts crops of absent classes (``<split>_openset_list.txt``) against as many query crops.
    """
    gallery_features = embed_entries(embedder, split.gallery, limits, advance)
    query_features = embed_entries(embedder, split.queries, limits, advance)
    label_ids: dict[str, int] = {}
    gallery_labels = [label_ids.setdefault(entry.label, len(label_ids)) for entry in split.gallery]
    query_labels = [label_ids.setdefault(entry.label, len(label_ids)) for entry in split.queries]
    metrics = retrieval_metrics(query_features, query_labels, gallery_features, gallery_labels, topk=(1, 5))
    absent_features = embed_entries(embedder, split.open_set_queries, limits, advance)
    known = _top1_queries(query_features, split.queries, gallery_features, split.gallery, known=True)
    queries = balanced(
        known + _top1_queries(absent_features, split.open_set_queries, gallery_features, split.gallery, known=False)
    )
    breakdown = recall_by_group(split.query_groups, [query.predicted == query.truth for query in known]) \
        if split.query_groups else {}
    return RecognizerResult(
        queries=metrics.queries,
        gallery_images=len(split.gallery),
        recall1=metrics.recall[1],
        recall5=metrics.recall[5],
        mean_average_precision=metrics.mean_average_precision,
        open_set_queries=len(queries),
        open_set_at_default=point_at(queries, min_score) if queries else None,
        open_set=queries,
        breakdown=breakdown,
        gallery_thresholds=gallery_threshold_points(
            gallery_scores(gallery_features, [entry.label for entry in split.gallery]), queries),
    )


def _top1_queries(features: NDArray[np.float32], entries: list[ListEntry], gallery_features: NDArray[np.float32],
                  gallery: list[ListEntry], *, known: bool) -> list[OpenSetQuery]:
    similarity = features @ gallery_features.T  # rows are unit vectors: cosine, as the gallery index scores
    best = similarity.argmax(axis=1)
    return [OpenSetQuery(truth=entry.label, known=known, predicted=gallery[int(index)].label,
                         score=float(similarity[row, index]))
            for row, (entry, index) in enumerate(zip(entries, best, strict=True))]


def embed_entries(embedder: Embedder, entries: list[ListEntry], limits: LimitsSettings,
                  advance: Callable[[], None] = lambda: None) -> NDArray[np.float32]:
    features = [np.zeros((0, embedder.embedding_dim), dtype=np.float32)]
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start : start + CHUNK]
        pixels = [read_pixels(entry.path.read_bytes(), limits) for entry in chunk]
        features.append(embedder.embed(pixels))
        for _ in chunk:
            advance()
    return np.concatenate(features)


def read_pixels(data: bytes, limits: LimitsSettings) -> NDArray[np.uint8]:
    return decode_image(data, DecodeLimits.of(limits)).pixels
