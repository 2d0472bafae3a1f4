"""GeneralRecognitionV2 train augmentation, in the reference order, driven by an explicit random generator.

resize → horizontal flip → pad (black) → random crop → random rotation → resize → normalize.
Each sample gets its own ``numpy.random.Generator``, so results do not depend on thread scheduling.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from service.inference.image import normalize, resize
from service.inference.manifest import Preprocess
from trainer.recognition.config import AugmentConfig

RGBImage = NDArray[np.uint8]


def at_training_size(preprocess: Preprocess, config: AugmentConfig) -> Preprocess:
    """The model's deploy preprocessing (resize + normalization) at the configured training size."""
    return preprocess.model_copy(update={"size": (config.image_size, config.image_size)})


class TrainAugment:
    def __init__(self, config: AugmentConfig, preprocess: Preprocess) -> None:
        self.config = config
        self.preprocess = at_training_size(preprocess, config)

    def __call__(self, pixels: RGBImage, rng: np.random.Generator) -> NDArray[np.float32]:
        config = self.config
        pixels, _ = resize(pixels, self.preprocess)
        if rng.random() < config.flip_prob:
            pixels = cv2.flip(pixels, 1)
        if config.pad:
            pixels = cv2.copyMakeBorder(pixels, *(config.pad,) * 4, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            pixels = random_crop(pixels, config.image_size, rng)
        if config.rotation_degrees and rng.random() < config.rotation_prob:
            pixels = rotate(pixels, rng.uniform(-config.rotation_degrees, config.rotation_degrees))
        pixels, _ = resize(pixels, self.preprocess)
        return normalize(pixels, self.preprocess)


class EvalTransform:
    """What the service does to a crop: direct resize and normalize, nothing random."""

    def __init__(self, config: AugmentConfig, preprocess: Preprocess) -> None:
        self.preprocess = at_training_size(preprocess, config)

    def __call__(self, pixels: RGBImage, rng: np.random.Generator | None = None) -> NDArray[np.float32]:
        pixels, _ = resize(pixels, self.preprocess)
        return normalize(pixels, self.preprocess)


def random_crop(pixels: RGBImage, size: int, rng: np.random.Generator) -> RGBImage:
    """RandCropImageV2: offsets in [0, H - size] inclusive of one extra pixel, as the reference draws them.

    ``random.randint(0, H - size + 1)`` can pick one past the last full crop, which yields a crop one pixel
    short; the resize that follows restores the size, so the quirk is kept for parity.
    """
    height, width = pixels.shape[:2]
    top = int(rng.integers(0, max(height - size, 0) + 2))
    left = int(rng.integers(0, max(width - size, 0) + 2))
    return pixels[top : top + size, left : left + size]


def rotate(pixels: RGBImage, degrees: float) -> RGBImage:
    """Counter-clockwise for positive angles about the image centre, same size, bilinear, black corners."""
    height, width = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), degrees, 1.0)
    return cv2.warpAffine(
        np.ascontiguousarray(pixels),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
