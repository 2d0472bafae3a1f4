"""PK sampler: every batch holds P identities x K images, so each image has K - 1 positives in its batch.

With ``hard_share`` some of the P identities are look-alikes of the others (nearest by the classifier's weights):
metric learning needs hard negatives in the same batch, and random batches of thousands of classes rarely hold
Norway and Iceland together.
"""

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
        neighbours: NDArray[np.int64] | None = None,
        hard_share: float = 0.0,
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
        if neighbours is not None and neighbours.shape[0] != len(self.identities):
            raise ValueError(f"neighbours has {neighbours.shape[0]} rows for {len(self.identities)} identities")
        self.neighbours = neighbours
        self.hard_share = hard_share if neighbours is not None else 0.0

    def __len__(self) -> int:
        return math.ceil(self.num_images / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(len(self)):
            yield self.sample_batch()

    def sample_batch(self) -> list[int]:
        ids_per_batch = self.batch_size // self.images_per_id
        hard = round(ids_per_batch * self.hard_share)
        positions = self.rng.choice(len(self.identities), size=ids_per_batch - hard, replace=False,
                                    p=self.probabilities)
        if hard:
            positions = self._with_look_alikes(positions, hard)
        batch: list[int] = []
        for identity in self.identities[positions]:
            pool = self.indices_of[int(identity)]
            replace = len(pool) < self.images_per_id
            batch.extend(int(index) for index in self.rng.choice(pool, size=self.images_per_id, replace=replace))
        return batch

    def _with_look_alikes(self, positions: NDArray[np.int64], count: int) -> NDArray[np.int64]:
        """``count`` more identities, each a near neighbour of one of the randomly drawn ones (hard negatives),
        the anchors in turn: every anchor gets a look-alike before any gets a second."""
        assert self.neighbours is not None  # hard_share is 0 without them
        chosen = [int(position) for position in positions]
        taken = set(chosen)
        anchors = list(chosen)
        for number in range(count):
            anchor = anchors[number % len(anchors)]
            free = [int(other) for other in self.neighbours[anchor] if int(other) not in taken]
            if free:
                pick = free[int(self.rng.integers(len(free)))]
            else:  # every look-alike of that anchor is in already: any other identity
                rest = np.setdiff1d(np.arange(len(self.identities)), np.fromiter(taken, np.int64))
                pick = int(rest[int(self.rng.integers(len(rest)))])
            chosen.append(pick)
            taken.add(pick)
        return np.asarray(chosen, dtype=np.int64)

    def state_dict(self) -> dict[str, object]:
        return {"bit_generator": self.rng.bit_generator.state}

    def set_state_dict(self, state: dict[str, object]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]  # type: ignore[assignment]  # saved by state_dict


def nearest_identities(class_weights: NDArray[np.float32], count: int) -> NDArray[np.int64]:
    """[C, count]: for each class the ``count`` classes whose classifier weights (columns of ``class_weights``,
    D x C) point the most alike: the look-alikes the model confuses it with now (the proxies of a metric-learning
    head), cheaper than embedding the data again."""
    weights = class_weights / np.maximum(np.linalg.norm(class_weights, axis=0, keepdims=True), 1e-12)
    similarity = weights.T @ weights
    np.fill_diagonal(similarity, -np.inf)
    count = min(count, similarity.shape[0] - 1)
    nearest = np.argpartition(-similarity, count - 1, axis=1)[:, :count] if count > 0 else np.zeros((0, 0))
    return np.asarray(nearest, dtype=np.int64)


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
