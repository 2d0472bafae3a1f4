"""Product cards: an object (logo, emoji, clip art) printed on an opaque "package face".

The whole card is the instance: its colour, band and margin are fixed per class (drawn from the class's own
random stream), so gallery views and scene crops of one class show the same package.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

CARD_SIDE = 256
MIN_ASPECT, MAX_ASPECT = 0.6, 1.7


@dataclass(frozen=True)
class CardDesign:
    colour: tuple[int, int, int]
    band_colour: tuple[int, int, int] | None
    band_share: float
    margin: float
    corner_share: float


def design_card(rng: np.random.Generator, logo: np.ndarray) -> CardDesign:
    """A card colour that the logo stands out from, an optional colour band, margin and rounded corners."""
    colour = _pick_colour(rng)
    for _ in range(8):
        if _contrast_share(logo, colour) > 0.5:
            break
        colour = _pick_colour(rng)
    band = _pick_colour(rng, saturated=True) if rng.random() < 0.5 else None
    return CardDesign(
        colour=colour,
        band_colour=band,
        band_share=float(rng.uniform(0.1, 0.16)),
        margin=float(rng.uniform(0.14, 0.22)),
        corner_share=float(rng.uniform(0.0, 0.08)),
    )


def render_card(logo: np.ndarray, design: CardDesign, side: int = CARD_SIDE) -> np.ndarray:
    """RGBA uint8: the card's longest side is ``side``; alpha is 255 on the card and 0 outside its corners."""
    aspect = float(np.clip(logo.shape[1] / logo.shape[0], MIN_ASPECT, MAX_ASPECT))
    width, height = (side, round(side / aspect)) if aspect >= 1 else (round(side * aspect), side)
    card = np.empty((height, width, 3), np.float32)
    card[:] = design.colour
    band_height = round(height * design.band_share) if design.band_colour else 0
    if band_height:
        card[height - band_height :] = design.band_colour
    margin = round(min(width, height) * design.margin)
    inner_width, inner_height = width - 2 * margin, height - 2 * margin - band_height
    scale = min(inner_width / logo.shape[1], inner_height / logo.shape[0])
    size = (max(1, round(logo.shape[1] * scale)), max(1, round(logo.shape[0] * scale)))
    fitted = cv2.resize(logo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    left = margin + (inner_width - size[0]) // 2
    top = margin + (inner_height - size[1]) // 2
    region = card[top : top + size[1], left : left + size[0]]
    alpha = fitted[..., 3:4].astype(np.float32) / 255.0
    region[:] = region * (1 - alpha) + fitted[..., :3].astype(np.float32) * alpha
    return np.dstack([np.clip(card + 0.5, 0, 255).astype(np.uint8), _rounded_mask(width, height, design.corner_share)])


def flatten_card(card: np.ndarray, background: int = 255) -> np.ndarray:
    """The card as an RGB photo on a plain background (its rounded corners take the background's colour)."""
    alpha = card[..., 3:4].astype(np.float32) / 255.0
    return np.clip(card[..., :3] * alpha + background * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)


def _rounded_mask(width: int, height: int, corner_share: float) -> np.ndarray:
    mask = np.full((height, width), 255, np.uint8)
    radius = round(min(width, height) * corner_share)
    if radius < 2:
        return mask
    mask[:radius, :radius] = mask[:radius, -radius:] = mask[-radius:, :radius] = mask[-radius:, -radius:] = 0
    for x, y in (
        (radius, radius),
        (width - radius - 1, radius),
        (radius, height - radius - 1),
        (width - radius - 1, height - radius - 1),
    ):
        cv2.circle(mask, (x, y), radius, 255, -1, lineType=cv2.LINE_AA)
    return mask


def _pick_colour(rng: np.random.Generator, saturated: bool | None = None) -> tuple[int, int, int]:
    if saturated is None:
        saturated = rng.random() < 0.4
    hue = rng.random()
    saturation, value = (
        (rng.uniform(0.55, 0.95), rng.uniform(0.45, 0.9))
        if saturated
        else (rng.uniform(0.0, 0.2), rng.uniform(0.85, 1.0))
    )
    red, green, blue = (round(channel * 255) for channel in colorsys.hsv_to_rgb(hue, saturation, value))
    return red, green, blue


def _contrast_share(logo: np.ndarray, colour: tuple[int, int, int]) -> float:
    """Share of the logo's visible pixels that differ clearly from the card colour."""
    visible = logo[..., 3] > 128
    if not visible.any():
        return 1.0
    distance = np.abs(logo[..., :3][visible].astype(np.int32) - np.array(colour)).sum(axis=1)
    return float((distance > 90).mean())
