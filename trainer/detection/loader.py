"""Shuffled, augmented, multi-scale batches of a :class:`CocoDetectionDataset`, and a PNG preview of them.

Every sample's random stream is derived from ``(seed, epoch, position)``, so an epoch is reproducible whatever the
thread order and a resumed run sees the same batches it would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.detection.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RANDOM_INTERPOLATIONS,
    Annotated,
    AugmentConfig,
    augment_sample,
    normalize,
    resize,
)
from trainer.detection.coco import CocoDetectionDataset, ImageReadError

logger = logging.getLogger(__name__)


@dataclass
class DetectionBatch:
    images: NDArray[np.float32]  # [B, 3, S, S] normalised
    boxes: list[NDArray[np.float32]]  # per image [N, 4] in input pixels
    labels: list[NDArray[np.int64]]  # per image [N]


class TrainBatchLoader:
    """Batches for one epoch at a time; ``drop_last`` as in PicoDet's reader."""

    def __init__(
        self,
        dataset: CocoDetectionDataset,
        augment: AugmentConfig,
        *,
        batch_size: int,
        sizes: list[int],
        random_interpolation: bool = True,
        seed: int = 0,
        workers: int = 2,
    ) -> None:
        if len(dataset) < batch_size:
            raise ValueError(f"the training set has {len(dataset)} images, fewer than one batch of {batch_size}")
        self.dataset = dataset
        self.augment = augment
        self.batch_size = batch_size
        self.sizes = sizes
        self.random_interpolation = random_interpolation
        self.seed = seed
        self.workers = workers
        self.unreadable: set[int] = set()

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def epoch(self, epoch: int) -> Iterator[DetectionBatch]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for batch_index in range(len(self)):
                positions = range(batch_index * self.batch_size, (batch_index + 1) * self.batch_size)
                samples = list(pool.map(lambda position: self._sample(order, epoch, position), positions))
                batch_rng = np.random.default_rng([self.seed, epoch, batch_index, 1])
                size = int(batch_rng.choice(self.sizes))
                interpolation = (
                    int(batch_rng.choice(RANDOM_INTERPOLATIONS)) if self.random_interpolation else cv2.INTER_LINEAR
                )
                resized = [resize(sample, size, interpolation) for sample in samples]
                yield DetectionBatch(
                    images=np.stack([normalize(sample.image) for sample in resized]),
                    boxes=[sample.boxes for sample in resized],
                    labels=[sample.labels for sample in resized],
                )

    def _sample(self, order: NDArray[np.int64], epoch: int, position: int) -> Annotated:
        rng = np.random.default_rng([self.seed, epoch, position])
        index = int(order[position])
        # An image that cannot be decoded is replaced by a random other one: the epoch goes on.
        while True:
            try:
                if index not in self.unreadable:
                    return augment_sample(self._annotated(index), self.augment, rng)
            except ImageReadError as error:
                self.unreadable.add(index)
                logger.warning("skipping an unreadable image (%d so far): %s", len(self.unreadable), error)
            if len(self.unreadable) >= len(self.dataset):
                raise ImageReadError("no image of the training set can be decoded")
            index = int(rng.integers(len(self.dataset)))

    def _annotated(self, index: int) -> Annotated:
        boxes, labels = self.dataset.samples[index].training_boxes
        return Annotated(self.dataset.load_image(index), boxes.copy(), labels.copy())


def write_augmentation_preview(loader: TrainBatchLoader, out_path: Path, *, count: int = 16, tile: int = 256) -> Path:
    """Draw augmented samples of the first batches with their boxes into one PNG grid (a visual check)."""
    tiles: list[NDArray[np.uint8]] = []
    for batch in loader.epoch(0):
        for image, boxes in zip(batch.images, batch.boxes, strict=True):
            tiles.append(_draw(image, boxes, tile))
        if len(tiles) >= count:
            break
    tiles = tiles[:count]
    columns = int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / columns))
    grid = np.full((rows * tile, columns * tile, 3), 255, dtype=np.uint8)
    for index, picture in enumerate(tiles):
        row, column = divmod(index, columns)
        grid[row * tile : (row + 1) * tile, column * tile : (column + 1) * tile] = picture
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out_path}")
    return out_path


def _draw(image: NDArray[np.float32], boxes: NDArray[np.float32], tile: int) -> NDArray[np.uint8]:
    std, mean = IMAGENET_STD[:, None, None], IMAGENET_MEAN[:, None, None]
    pixels = np.clip((image * std + mean) * 255.0, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    scale = tile / pixels.shape[0]
    picture = np.ascontiguousarray(cv2.resize(pixels, (tile, tile), interpolation=cv2.INTER_LINEAR))
    for x1, y1, x2, y2 in boxes * scale:
        cv2.rectangle(picture, (int(x1), int(y1)), (int(x2), int(y2)), (255, 32, 32), 2)
    return picture
