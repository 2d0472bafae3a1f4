"""GeneralRecognitionV2 train augmentation, in the reference order, driven by an explicit random generator.

resize → horizontal flip → pad (black) → random crop → random rotation → resize → normalize. The first resize
is the deploy one (``service.inference.image.fit``): with ``keep_ratio`` + ``pad`` a tall bottle is letterboxed
in training exactly as the service will see it.
Each sample gets its own ``numpy.random.Generator``, so results do not depend on thread scheduling.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from service.inference.image import fit, normalize, resize
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
        # after the random crop and rotation the image is square already: a plain resize restores the size
        self.square = self.preprocess.model_copy(update={"keep_ratio": False, "pad": False})

    def __call__(self, pixels: RGBImage, rng: np.random.Generator) -> NDArray[np.float32]:
        config = self.config
        pixels = fit(pixels, self.preprocess)
        if rng.random() < config.flip_prob:
            pixels = cv2.flip(pixels, 1)
        if config.pad:
            pixels = cv2.copyMakeBorder(pixels, *(config.pad,) * 4, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            pixels = random_crop(pixels, config.image_size, rng)
        if config.rotation_degrees and rng.random() < config.rotation_prob:
            pixels = rotate(pixels, rng.uniform(-config.rotation_degrees, config.rotation_degrees))
        pixels, _ = resize(pixels, self.square)
        if config.erase_prob and rng.random() < config.erase_prob:
            pixels = random_erase(pixels, rng, config, self.preprocess.pad_colour)
        return normalize(pixels, self.preprocess)


class EvalTransform:
    """What the service does to a crop (``fit`` and normalize), nothing random."""

    def __init__(self, config: AugmentConfig, preprocess: Preprocess) -> None:
        self.preprocess = at_training_size(preprocess, config)

    def __call__(self, pixels: RGBImage, rng: np.random.Generator | None = None) -> NDArray[np.float32]:
        return normalize(fit(pixels, self.preprocess), self.preprocess)


def random_crop(pixels: RGBImage, size: int, rng: np.random.Generator) -> RGBImage:
    """RandCropImageV2: offsets in [0, H - size] inclusive of one extra pixel, as the reference draws them.

    ``random.randint(0, H - size + 1)`` can pick one past the last full crop, which yields a crop one pixel
    short; the resize that follows restores the size, so the quirk is kept for parity.
    """
    height, width = pixels.shape[:2]
    top = int(rng.integers(0, max(height - size, 0) + 2))
    left = int(rng.integers(0, max(width - size, 0) + 2))
    return pixels[top : top + size, left : left + size]


def random_erase(pixels: RGBImage, rng: np.random.Generator, config: AugmentConfig,
                 colour: tuple[int, int, int]) -> RGBImage:
    """PaddleClas RandomErasing (area ``erase_area`` of the image, aspect from ``erase_ratio`` to its inverse,
    filled with the mean colour: zero after normalisation). With ``erase_edge_prob`` the rectangle is pushed
    against a random side of the image: a neighbour standing in front of the product."""
    height, width = pixels.shape[:2]
    for _ in range(10):  # a few draws; none fits: no erasing
        area = rng.uniform(*config.erase_area) * height * width
        aspect = float(np.exp(rng.uniform(np.log(config.erase_ratio), -np.log(config.erase_ratio))))
        erase_height, erase_width = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
        if 0 < erase_height < height and 0 < erase_width < width:
            break
    else:
        return pixels
    top = int(rng.integers(0, height - erase_height + 1))
    left = int(rng.integers(0, width - erase_width + 1))
    if rng.random() < config.erase_edge_prob:
        side = int(rng.integers(4))
        top = 0 if side == 0 else height - erase_height if side == 1 else top
        left = 0 if side == 2 else width - erase_width if side == 3 else left
    erased = pixels.copy()
    erased[top : top + erase_height, left : left + erase_width] = colour
    return erased


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
