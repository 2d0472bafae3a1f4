"""Retrieval evaluation during training: the query/gallery split of the config, embedded by the current model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle
from numpy.typing import NDArray

from service.inference.manifest import Preprocess
from trainer.frozen_trunk import FrozenTrunk, network_input
from trainer.models.recognition import RecognitionModel
from trainer.recognition.config import DataConfig
from trainer.recognition.data.augment import EvalTransform
from trainer.recognition.data.dataset import BatchLoader, RecognitionDataset
from trainer.recognition.data.labels import LabelEntry, read_label_list
from trainer.recognition.metrics import retrieval_metrics

EVAL_BATCH = 64


@dataclass(frozen=True)
class EvaluationSplit:
    query: RecognitionDataset
    gallery: RecognitionDataset  # the same object as ``query`` for a query = gallery list

    @property
    def shared(self) -> bool:
        return self.query is self.gallery


def build_evaluation(data: DataConfig, preprocess: Preprocess) -> EvaluationSplit | None:
    """``data.eval_list`` (query = gallery, unique id in column 3) or ``query_list`` + ``gallery_list``."""
    transform = EvalTransform(data.augment, preprocess)
    if data.eval_list is not None:
        entries = read_label_list(data.root / data.eval_list, data.root)
        if any(entry.unique_id is None for entry in entries):
            raise ValueError(f"{data.eval_list}: query = gallery needs a unique id in column 3 of every line")
        shared = RecognitionDataset(entries, transform)
        return EvaluationSplit(shared, shared)
    if data.query_list is None or data.gallery_list is None:
        return None
    gallery = RecognitionDataset(read_label_list(data.root / data.gallery_list, data.root), transform)
    query_entries = read_label_list(data.root / data.query_list, data.root)
    return EvaluationSplit(
        RecognitionDataset(query_entries, transform, _extend(gallery.class_ids, query_entries)), gallery
    )


def evaluate(
    model: RecognitionModel, split: EvaluationSplit, workers: int = 0, trunk: FrozenTrunk | None = None
) -> dict[str, float]:
    """recall1, recall5 and mAP of ``model`` (left in eval mode) on ``split``; ``trunk`` runs its frozen stages."""
    model.eval()
    gallery_features, gallery_labels, gallery_indices = _embed(model, split.gallery, workers, trunk)
    if split.shared:
        ids = [split.gallery.entries[index].unique_id or "" for index in gallery_indices]
        metrics = retrieval_metrics(
            gallery_features, gallery_labels, gallery_features, gallery_labels, query_ids=ids, gallery_ids=ids
        )
    else:
        query_features, query_labels, _ = _embed(model, split.query, workers, trunk)
        metrics = retrieval_metrics(query_features, query_labels, gallery_features, gallery_labels)
    return metrics.as_dict()


def _embed(
    model: RecognitionModel, dataset: RecognitionDataset, workers: int, trunk: FrozenTrunk | None
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
    loader = BatchLoader(dataset, workers)
    features, labels, indices = [], [], []
    with paddle.no_grad():
        for batch in loader.evaluation_batches(EVAL_BATCH):
            features.append(model.embed(*network_input(trunk, batch.images)).numpy())
            labels.append(batch.labels)
            indices.append(batch.indices)
    loader.close()
    return np.concatenate(features), np.concatenate(labels), np.concatenate(indices)


def _extend(class_ids: dict[str, int], entries: list[LabelEntry]) -> dict[str, int]:
    # Query labels absent from the gallery get ids of their own: those queries simply have no positive.
    extended = dict(class_ids)
    for entry in entries:
        extended.setdefault(entry.label, len(extended))
    return extended
