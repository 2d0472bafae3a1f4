"""Images of a label list, decoded to RGB and transformed; unreadable images are skipped and counted."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.recognition.data.labels import LabelEntry, class_index

logger = logging.getLogger(__name__)

Transform = Callable[[NDArray[np.uint8], np.random.Generator], NDArray[np.float32]]


class UnreadableImage(ValueError):
    pass


def read_rgb(path: object) -> NDArray[np.uint8]:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise UnreadableImage(f"{path}: {error}") from error
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise UnreadableImage(f"{path}: not a decodable image")
    return np.ascontiguousarray(bgr[:, :, ::-1])


@dataclass(frozen=True, slots=True)
class Batch:
    images: NDArray[np.float32]  # B x 3 x H x W
    labels: NDArray[np.int64]  # B
    indices: NDArray[np.int64]  # dataset positions of the rows that loaded


class RecognitionDataset:
    """Entries whose file is missing are dropped when the dataset is built (``missing`` counts them).

    A file that fails to decode while training is replaced by another image of the same identity, so a PK
    batch keeps its shape; ``skipped`` counts those failures and the file is not tried again.
    """

    def __init__(
        self, entries: Sequence[LabelEntry], transform: Transform, class_ids: dict[str, int] | None = None
    ) -> None:
        present = [entry for entry in entries if entry.path.is_file()]
        self.missing = len(entries) - len(present)
        if self.missing:
            logger.warning("%d of %d listed images do not exist and are left out", self.missing, len(entries))
        if not present:
            raise ValueError("none of the listed images exists")
        self.entries = present
        self.class_ids = class_ids if class_ids is not None else class_index([entry.label for entry in present])
        self.labels = np.array([self.class_ids[entry.label] for entry in present], dtype=np.int64)
        self.transform = transform
        self.unreadable: set[int] = set()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def skipped(self) -> int:
        return len(self.unreadable)

    def load(self, index: int, rng: np.random.Generator) -> NDArray[np.float32]:
        """The transformed image at ``index``, or at a readable image of the same identity if it is corrupt."""
        candidates = [index, *rng.permutation(np.flatnonzero(self.labels == self.labels[index]))]
        for candidate in candidates:
            candidate = int(candidate)
            if candidate in self.unreadable:
                continue
            try:
                return self.transform(read_rgb(self.entries[candidate].path), rng)
            except UnreadableImage as error:
                self.unreadable.add(candidate)
                logger.warning("skipping an unreadable image (%d so far): %s", self.skipped, error)
        raise UnreadableImage(f"no readable image left for class {self.entries[index].label!r}")


class BatchLoader:
    """Loads index batches with ``workers`` threads (OpenCV releases the GIL); one seed per sample keeps it
    deterministic whatever the thread scheduling."""

    def __init__(self, dataset: RecognitionDataset, workers: int = 0) -> None:
        self.dataset = dataset
        self.pool = ThreadPoolExecutor(workers) if workers > 0 else None

    def load(self, indices: Sequence[int], rng: np.random.Generator) -> Batch:
        seeds = rng.integers(0, 2**63 - 1, size=len(indices))
        jobs = [(int(index), np.random.default_rng(int(seed))) for index, seed in zip(indices, seeds, strict=True)]
        mapper = self.pool.map if self.pool is not None else map
        images = list(mapper(lambda job: self.dataset.load(*job), jobs))
        order = np.asarray(indices, dtype=np.int64)
        return Batch(np.stack(images), self.dataset.labels[order], order)

    def evaluation_batches(self, batch_size: int) -> Iterator[Batch]:
        """Every readable image once, in list order; unreadable ones are left out (and counted), not replaced."""
        for start in range(0, len(self.dataset), batch_size):
            indices = range(start, min(start + batch_size, len(self.dataset)))
            mapper = self.pool.map if self.pool is not None else map
            images = list(mapper(self._load_exact, indices))
            kept = [index for index, image in zip(indices, images, strict=True) if image is not None]
            if kept:
                stacked = np.stack([image for image in images if image is not None])
                yield Batch(stacked, self.dataset.labels[kept], np.asarray(kept, dtype=np.int64))

    def _load_exact(self, index: int) -> NDArray[np.float32] | None:
        try:
            return self.dataset.transform(read_rgb(self.dataset.entries[index].path), np.random.default_rng(index))
        except UnreadableImage as error:
            self.dataset.unreadable.add(index)
            logger.warning("leaving an unreadable image out of the evaluation: %s", error)
            return None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
