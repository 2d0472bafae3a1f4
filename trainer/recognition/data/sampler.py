"""PK sampler: every batch holds P identities x K images, so each image has K - 1 positives in its batch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray


class PKSampler:
    """Batches of ``batch_size`` dataset indices, ``images_per_id`` per identity (PaddleClas ``PKSampler``).

    Identities are drawn without replacement, uniformly unless ``id_weights`` says otherwise; an identity's
    images are drawn without replacement when it has at least K of them, otherwise with replacement.
    An epoch has ``ceil(len(labels) / batch_size)`` batches and every batch is full.
    """

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        images_per_id: int = 4,
        *,
        id_weights: NDArray[np.float64] | None = None,
        seed: int = 0,
    ) -> None:
        if batch_size % images_per_id:
            raise ValueError(f"batch_size {batch_size} is not a multiple of images_per_id {images_per_id}")
        self.batch_size = batch_size
        self.images_per_id = images_per_id
        self.num_images = len(labels)
        label_array = np.asarray(labels, dtype=np.int64)
        self.identities = np.unique(label_array)
        self.indices_of = {int(label): np.flatnonzero(label_array == label) for label in self.identities}
        ids_per_batch = batch_size // images_per_id
        if ids_per_batch > len(self.identities):
            raise ValueError(
                f"a batch needs {ids_per_batch} identities ({batch_size} / {images_per_id}) "
                f"but the data has only {len(self.identities)}; lower batch_size"
            )
        self.probabilities = _normalized(id_weights, len(self.identities))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return math.ceil(self.num_images / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(len(self)):
            yield self.sample_batch()

    def sample_batch(self) -> list[int]:
        ids_per_batch = self.batch_size // self.images_per_id
        chosen = self.rng.choice(self.identities, size=ids_per_batch, replace=False, p=self.probabilities)
        batch: list[int] = []
        for identity in chosen:
            pool = self.indices_of[int(identity)]
            replace = len(pool) < self.images_per_id
            batch.extend(int(index) for index in self.rng.choice(pool, size=self.images_per_id, replace=replace))
        return batch

    def state_dict(self) -> dict[str, object]:
        return {"bit_generator": self.rng.bit_generator.state}

    def set_state_dict(self, state: dict[str, object]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]  # type: ignore[assignment]  # saved by state_dict


def identity_weights(count: int, ranges: Sequence[tuple[int, int]], ratio: float) -> NDArray[np.float64] | None:
    """Weights for ``count`` identities: ``ratio`` inside the inclusive index ranges, 1 elsewhere."""
    if not ranges:
        return None
    weights = np.ones(count, dtype=np.float64)
    for first, last in ranges:
        if not 0 <= first <= last < count:
            raise ValueError(f"up-weighting range [{first}, {last}] is outside the {count} identities")
        weights[first : last + 1] = ratio
    return weights


def _normalized(weights: NDArray[np.float64] | None, count: int) -> NDArray[np.float64] | None:
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (count,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"id_weights must be {count} non-negative numbers with a positive sum")
    return weights / weights.sum()
