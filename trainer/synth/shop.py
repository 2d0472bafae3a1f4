"""Packaged products in the two kinds of pictures a shop has: catalogue views and photos taken in the shop.

A catalogue view is what a retailer shoots for its site: the package upright and frontal, centred on a light
background with a soft shadow under it. A shop photo puts packages in a pose on a background, under a coloured
light with a gradient, with shadows, partly hidden by other products in front of them or by bars (shelf edges,
price strips), then noise, blur and JPEG (``trainer.synth.scenes``). Each target reports the share of its own
silhouette that stayed hidden, so the evaluation can tell occluded crops from clear ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.synth.difficulty import Difficulty
from trainer.synth.scenes import (
    CROWDING_EXPONENT,
    DISTRACTOR_SCALE,
    XYWH,
    crop_background,
    drop_shadow,
    finish,
    light_object,
    mask_box,
    object_homography,
    occlude,
    paste,
)

RGBA = NDArray[np.uint8]
# A neighbour in front hides this share of the target's width or height (from one side).
NEIGHBOUR_COVER = (0.2, 0.5)
CATALOGUE_MARGIN = (0.06, 0.12)  # free border around the package, as a share of the picture side


@dataclass(frozen=True)
class ShopPhoto:
    image: NDArray[np.uint8]  # RGB, before JPEG
    boxes: list[XYWH]  # the tight box of each target's silhouette (hidden parts included)
    areas: list[int]
    occluded: list[float]  # share of each target's silhouette hidden by neighbours or bars
    jpeg_quality: int


def catalogue_view(package: RGBA, rng: np.random.Generator, plain: bool) -> NDArray[np.uint8]:
    """The package centred on a light square, with a soft contact shadow; ``plain``: pure white, no tilt."""
    height, width = package.shape[:2]
    margin = CATALOGUE_MARGIN[0] if plain else rng.uniform(*CATALOGUE_MARGIN)
    side = round(max(height, width) / (1 - 2 * margin))
    tone = 255.0 if plain else rng.uniform(232, 252)
    canvas = np.full((side, side, 3), tone, np.float32)
    if not plain:  # a studio sweep: a little darker towards the top
        canvas *= np.linspace(0.94, 1.0, side, dtype=np.float32)[:, None, None]
    left, top = (side - width) // 2, (side - height) // 2
    shadow = np.zeros((side, side), np.float32)
    base = top + height
    cv2.ellipse(shadow, (side // 2, min(side - 2, base)), (max(2, width // 2), max(2, height // 30 + 2)), 0, 0, 360,
                1.0, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(2.0, width * 0.05))
    canvas *= (1 - 0.35 * shadow)[..., None]
    alpha = package[..., 3:4].astype(np.float32) / 255.0
    region = canvas[top : top + height, left : left + width]
    region[:] = region * (1 - alpha) + package[..., :3].astype(np.float32) * alpha
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def compose_shop_photo(background: NDArray[np.uint8], targets: list[RGBA], neighbours: list[RGBA],
                       distractors: list[RGBA], rng: np.random.Generator, difficulty: Difficulty,
                       size: int) -> ShopPhoto:
    """Targets posed on the background; each may get a neighbour pasted over one side (``neighbours[i]``, with
    ``occlusion_probability``) and a bar, under one coloured light."""
    canvas = crop_background(background, rng, size)
    light_angle = rng.uniform(0, 2 * np.pi)
    for rgba in distractors:
        side = rng.uniform(*DISTRACTOR_SCALE) * size
        paste(canvas, rgba, object_homography(rgba.shape[:2], rng, 180.0, 0.0, side, size, []),
              drop_shadow(rng, difficulty, light_angle, side))
    boxes: list[XYWH] = []
    alphas: list[NDArray[np.float32]] = []
    crowding = len(targets) ** -CROWDING_EXPONENT
    for rgba in targets:
        side = rng.uniform(*difficulty.scale) * size * crowding
        homography = object_homography(rgba.shape[:2], rng, difficulty.rotation_deg, difficulty.perspective, side,
                                       size, boxes)
        alpha = paste(canvas, light_object(rgba, rng, difficulty.photometric), homography,
                      drop_shadow(rng, difficulty, light_angle, side))
        box = mask_box(alpha)
        if box is None:
            raise ValueError("a target fell outside the scene")
        for earlier in alphas:  # a later target lies on top of the earlier ones
            earlier *= 1 - alpha
        boxes.append(box)
        alphas.append(alpha.copy())
    own = [alpha.copy() for alpha in alphas]
    for index, box in enumerate(boxes):
        if rng.random() < difficulty.occlusion_probability:
            cover = _neighbour_in_front(canvas, neighbours[index], box, rng, difficulty, light_angle)
            for alpha in alphas:
                alpha *= 1 - cover
        if rng.random() < difficulty.occlusion_probability * 0.5:
            before = canvas.copy()
            occlude(canvas, box, rng, difficulty.occlusion_extent)
            bar = (np.abs(canvas - before).sum(axis=2) > 0).astype(np.float32)
            for alpha in alphas:
                alpha *= 1 - bar
    lit = _light_colour(canvas, rng, difficulty.photometric)
    image = finish(lit, rng, difficulty)
    quality = int(rng.integers(difficulty.jpeg_quality[0], difficulty.jpeg_quality[1] + 1))
    areas = [int((alpha >= 0.5).sum()) for alpha in own]
    occluded = [round(1.0 - float((visible >= 0.5).sum()) / max(area, 1), 3) for visible, area in zip(alphas, areas,
                                                                                                         strict=True)]
    return ShopPhoto(image, boxes, areas, occluded, quality)


def _neighbour_in_front(canvas: NDArray[np.float32], neighbour: RGBA, box: XYWH, rng: np.random.Generator,
                        difficulty: Difficulty, light_angle: float) -> NDArray[np.float32]:
    """Another product standing in front, over one side of the target; returns its alpha on the canvas."""
    x, y, width, height = box
    scale = rng.uniform(0.8, 1.2) * height / neighbour.shape[0]
    new_width, new_height = neighbour.shape[1] * scale, neighbour.shape[0] * scale
    cover = rng.uniform(*NEIGHBOUR_COVER)
    side = int(rng.integers(4))  # left, right, bottom, top
    if side == 0:
        left, top = x - new_width + cover * width, y + rng.uniform(-0.1, 0.2) * height
    elif side == 1:
        left, top = x + width - cover * width, y + rng.uniform(-0.1, 0.2) * height
    elif side == 2:
        left, top = x + rng.uniform(-0.3, 0.5) * width, y + height - cover * height
    else:
        left, top = x + rng.uniform(-0.3, 0.5) * width, y - new_height + cover * height
    homography = np.array([[scale, 0, left], [0, scale, top], [0, 0, 1]], np.float64)
    return paste(canvas, light_object(neighbour, rng, difficulty.photometric), homography,
                 drop_shadow(rng, difficulty, light_angle, max(new_width, new_height)))


def _light_colour(canvas: NDArray[np.float32], rng: np.random.Generator, strength: float) -> NDArray[np.float32]:
    """Shop lighting: warm or cool, brighter on one side of the photo."""
    if strength <= 0:
        return canvas
    temperature = rng.uniform(-1, 1) * 0.12 * strength
    tint = np.array([1 + temperature, 1.0, 1 - temperature], np.float32)
    size = canvas.shape[0]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.linspace(-0.5, 0.5, size, dtype=np.float32)[None, :] * np.cos(angle)
            + np.linspace(-0.5, 0.5, size, dtype=np.float32)[:, None] * np.sin(angle))
    gradient = 1 + rng.uniform(0.1, 0.45) * strength * ramp
    return canvas * tint * gradient[..., None]
