"""Retrieval metrics (recall@k, mAP) with faiss, as PaddleClas evaluates recognition models (spec 2.6).

Features are L2-normalized, so inner product = cosine. When query and gallery are the same list, pairs
with the same unique id (the image itself) are excluded: their similarity is set to 0 and they never count
as a hit, exactly like the reference. Queries without any valid positive are left out of the averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
from numpy.typing import NDArray

QUERY_BLOCK = 64


@dataclass(frozen=True, slots=True)
class RetrievalMetrics:
    recall: dict[int, float]  # k -> fraction of queries with a positive in the top k
    mean_average_precision: float
    queries: int  # queries with at least one valid positive

    def as_dict(self) -> dict[str, float]:
        values = {f"recall{k}": value for k, value in self.recall.items()}
        values["mAP"] = self.mean_average_precision
        return values


def l2_normalize(features: NDArray[np.floating]) -> NDArray[np.float32]:
    features = np.ascontiguousarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def retrieval_metrics(
    query_features: NDArray[np.floating],
    query_labels: Sequence[int] | NDArray[np.int64],
    gallery_features: NDArray[np.floating],
    gallery_labels: Sequence[int] | NDArray[np.int64],
    *,
    query_ids: Sequence[str] | None = None,
    gallery_ids: Sequence[str] | None = None,
    topk: Sequence[int] = (1, 5),
) -> RetrievalMetrics:
    """Recall@k for each k in ``topk`` and mAP over the full gallery ranking.

    ``query_ids`` / ``gallery_ids`` (the optional third list column) mark identical images to exclude.
    """
    if (query_ids is None) != (gallery_ids is None):
        raise ValueError("give unique ids for both query and gallery, or for neither")
    query_labels = np.asarray(query_labels)
    gallery_labels = np.asarray(gallery_labels)
    index = faiss.IndexFlatIP(gallery_features.shape[1])
    index.add(l2_normalize(gallery_features))
    queries = l2_normalize(query_features)
    hits = {k: 0 for k in topk}
    precision_sum, counted = 0.0, 0
    for start in range(0, len(queries), QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        similarity, order = index.search(queries[block], index.ntotal)
        relevant, similarity = _relevance(
            order, similarity, query_labels[block], gallery_labels, query_ids, gallery_ids, start
        )
        # Zeroed self-pairs move to where a similarity of 0 ranks; the sort is stable for equal scores.
        rerank = np.argsort(-similarity, axis=1, kind="stable")
        relevant = np.take_along_axis(relevant, rerank, axis=1)
        valid = relevant.any(axis=1)
        counted += int(valid.sum())
        for k in topk:
            hits[k] += int(relevant[valid, :k].any(axis=1).sum())
        precision_sum += float(_average_precision(relevant[valid]).sum())
    if counted == 0:
        raise ValueError("no query has a positive in the gallery: the metrics are undefined")
    return RetrievalMetrics(
        recall={k: hits[k] / counted for k in topk},
        mean_average_precision=precision_sum / counted,
        queries=counted,
    )


def _relevance(
    order: NDArray[np.int64],
    similarity: NDArray[np.float32],
    query_labels: NDArray[np.int64],
    gallery_labels: NDArray[np.int64],
    query_ids: Sequence[str] | None,
    gallery_ids: Sequence[str] | None,
    offset: int,
) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    relevant = gallery_labels[order] == query_labels[:, None]
    if query_ids is None or gallery_ids is None:
        return relevant, similarity
    gallery_id_array = np.asarray(gallery_ids, dtype=object)
    block_ids = np.asarray(query_ids[offset : offset + len(order)], dtype=object)
    excluded = (gallery_id_array[order] == block_ids[:, None]) & relevant
    return relevant & ~excluded, np.where(excluded, np.float32(0.0), similarity)


def _average_precision(relevant: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Per row: sum over relevant ranks k of precision@k, divided by the number of relevant items."""
    cumulative = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision_at_hits = np.where(relevant, cumulative / ranks, 0.0)
    return precision_at_hits.sum(axis=1) / np.maximum(relevant.sum(axis=1), 1)
