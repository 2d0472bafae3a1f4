"""Detection augmentations in numpy/OpenCV, boxes kept consistent with the pixels.

The train recipe follows PicoDet's reader (``picodet_640_reader.yml``): per sample RandomCrop (SSD-style IoU
constrained), RandomFlip 0.5, RandomDistort; per batch one random square size and a random interpolation
(BatchRandomResize, keep_ratio False), then ImageNet normalisation. RandomExpand (zoom out) is available for
small-object data and off by default, as in that reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from trainer.detection.boxes import pairwise_iou
from trainer.yaml_config import ConfigSection

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RANDOM_INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


class AugmentConfig(ConfigSection):
    """Per-sample augmentation switches and ranges (defaults: PaddleDetection's operators)."""

    crop: bool = True
    crop_iou_thresholds: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.3, 0.5, 0.7, 0.9])
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_aspect_ratio: tuple[float, float] = (0.5, 2.0)
    crop_attempts: int = Field(50, ge=1)
    expand_probability: float = Field(0.0, ge=0.0, le=1.0)
    expand_max_ratio: float = Field(4.0, ge=1.0)
    flip_probability: float = Field(0.5, ge=0.0, le=1.0)
    distort: bool = True
    distort_probability: float = Field(0.5, ge=0.0, le=1.0, description="chance of each colour change")
    brightness_delta: float = Field(32.0, ge=0.0, description="additive, in 0-255 pixel units")
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta_degrees: float = Field(18.0, ge=0.0)


@dataclass
class Annotated:
    """An RGB uint8 image with its boxes [N,4] (x1,y1,x2,y2 pixels) and class indices [N]."""

    image: NDArray[np.uint8]
    boxes: NDArray[np.float32]
    labels: NDArray[np.int64]


def random_crop(sample: Annotated, config: AugmentConfig, rng: np.random.Generator) -> Annotated:
    """SSD crop: a random window whose best IoU with a box reaches a random threshold; boxes keep their centre."""
    if len(sample.boxes) == 0:
        return sample
    height, width = sample.image.shape[:2]
    options: list[float | None] = [*config.crop_iou_thresholds, None]
    for option_index in rng.permutation(len(options)):
        threshold = options[option_index]
        if threshold is None:
            return sample
        for _ in range(config.crop_attempts):
            window = _crop_window(width, height, config, rng)
            if pairwise_iou(sample.boxes, window[None])[:, 0].max() < threshold:
                continue
            centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
            inside = np.all((centres > window[:2]) & (centres < window[2:]), axis=1)
            if inside.any():
                return _apply_crop(sample, window, inside)
    return sample


def _crop_window(width: int, height: int, config: AugmentConfig, rng: np.random.Generator) -> NDArray[np.float32]:
    scale = rng.uniform(*config.crop_scale)
    low, high = config.crop_aspect_ratio
    aspect = rng.uniform(max(low, scale**2), min(high, scale**-2))
    crop_width = max(1, int(width * scale * math.sqrt(aspect)))
    crop_height = max(1, int(height * scale / math.sqrt(aspect)))
    left = int(rng.integers(0, max(width - crop_width, 0) + 1))
    top = int(rng.integers(0, max(height - crop_height, 0) + 1))
    return np.array([left, top, min(left + crop_width, width), min(top + crop_height, height)], dtype=np.float32)


def _apply_crop(sample: Annotated, window: NDArray[np.float32], keep: NDArray[np.bool_]) -> Annotated:
    left, top, right, bottom = (int(value) for value in window)
    boxes = sample.boxes[keep].copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], left, right) - left
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], top, bottom) - top
    return Annotated(sample.image[top:bottom, left:right].copy(), boxes, sample.labels[keep].copy())


def random_expand(sample: Annotated, config: AugmentConfig, rng: np.random.Generator) -> Annotated:
    """Zoom out: the image at a random place on a canvas up to ``expand_max_ratio`` larger, filled with its mean."""
    if rng.uniform() >= config.expand_probability:
        return sample
    ratio = rng.uniform(1.0, config.expand_max_ratio)
    height, width = sample.image.shape[:2]
    canvas_height, canvas_width = int(height * ratio), int(width * ratio)
    top = int(rng.integers(0, canvas_height - height + 1))
    left = int(rng.integers(0, canvas_width - width + 1))
    fill = sample.image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    canvas = np.empty((canvas_height, canvas_width, 3), dtype=np.uint8)
    canvas[:] = fill
    canvas[top : top + height, left : left + width] = sample.image
    boxes = sample.boxes + np.array([left, top, left, top], dtype=np.float32)
    return Annotated(canvas, boxes, sample.labels)


def random_flip(sample: Annotated, config: AugmentConfig, rng: np.random.Generator) -> Annotated:
    if rng.uniform() >= config.flip_probability:
        return sample
    width = sample.image.shape[1]
    boxes = sample.boxes.copy()
    boxes[:, [0, 2]] = width - sample.boxes[:, [2, 0]]
    return Annotated(sample.image[:, ::-1].copy(), boxes, sample.labels)


def random_distort(image: NDArray[np.uint8], config: AugmentConfig, rng: np.random.Generator) -> NDArray[np.uint8]:
    """Brightness, contrast, saturation and hue, each with ``distort_probability``, in a random order."""
    pixels = image.astype(np.float32)
    changes = ("brightness", "contrast", "saturation", "hue")
    for change_index in rng.permutation(len(changes)):
        if rng.uniform() >= config.distort_probability:
            continue
        change = changes[change_index]
        if change == "brightness":
            pixels += rng.uniform(-config.brightness_delta, config.brightness_delta)
        elif change == "contrast":
            pixels = (pixels - pixels.mean()) * rng.uniform(*config.contrast_range) + pixels.mean()
        elif change == "saturation":
            grey = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            pixels = grey[..., None] + (pixels - grey[..., None]) * rng.uniform(*config.saturation_range)
        else:
            pixels = _shift_hue(
                np.clip(pixels, 0, 255), rng.uniform(-config.hue_delta_degrees, config.hue_delta_degrees)
            )
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _shift_hue(pixels: NDArray[np.float32], degrees: float) -> NDArray[np.float32]:
    hsv = cv2.cvtColor(pixels / 255.0, cv2.COLOR_RGB2HSV)  # float input: hue in degrees [0, 360)
    hsv[..., 0] = (hsv[..., 0] + degrees) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def augment_sample(sample: Annotated, config: AugmentConfig, rng: np.random.Generator) -> Annotated:
    """The per-sample part of the train recipe."""
    if config.expand_probability > 0:
        sample = random_expand(sample, config, rng)
    if config.crop:
        sample = random_crop(sample, config, rng)
    sample = random_flip(sample, config, rng)
    if config.distort:
        sample = Annotated(random_distort(sample.image, config, rng), sample.boxes, sample.labels)
    return sample


def resize(sample: Annotated, size: int, interpolation: int = cv2.INTER_LINEAR) -> Annotated:
    """Square resize without keeping the aspect ratio (PP-ShiTu's detector input); boxes scaled with it."""
    height, width = sample.image.shape[:2]
    image = cv2.resize(sample.image, (size, size), interpolation=interpolation)
    scale = np.array([size / width, size / height, size / width, size / height], dtype=np.float32)
    return Annotated(image, (sample.boxes * scale).astype(np.float32), sample.labels)


def normalize(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    """RGB uint8 HWC → ImageNet-normalised float32 CHW."""
    return ((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
