"""Composing a photo: products warped onto a background, with shadows, lighting, occlusion, blur and JPEG.

Every random draw comes from the ``numpy.random.Generator`` passed in, so a scene is a pure function of its
inputs. A product's box is the tight bounding box of its own warped alpha mask (alpha >= 0.5), not of the
rotated rectangle, so detector labels are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.difficulty import Difficulty

XYWH = tuple[int, int, int, int]  # a COCO box: x, y, width, height in pixels (the service's Box is x1, y1, x2, y2)
PLACEMENT_TRIES = 12
# Products shrink when they share a scene (x0.78 for two, x0.68 for three) so that they rarely hide each other.
CROWDING_EXPONENT = 0.35
# A placement is good when it covers at most this share of an earlier product's box (or of its own).
MAX_COVERAGE = 0.15
DISTRACTOR_SCALE = (0.08, 0.3)


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # RGB uint8, before JPEG
    boxes: list[XYWH]  # one per target, in the order given
    areas: list[int]  # mask pixels per target
    jpeg_quality: int


def compose_scene(
    background: np.ndarray,
    targets: list[np.ndarray],
    distractors: list[np.ndarray],
    rng: np.random.Generator,
    difficulty: Difficulty,
    size: int,
) -> Scene:
    canvas = crop_background(background, rng, size)
    light_angle = rng.uniform(0, 2 * np.pi)
    for rgba in distractors:
        side = rng.uniform(*DISTRACTOR_SCALE) * size
        homography = object_homography(rgba.shape[:2], rng, 180.0, 0.0, side, size, [])
        paste(canvas, rgba, homography, drop_shadow(rng, difficulty, light_angle, side))
    boxes: list[XYWH] = []
    areas: list[int] = []
    crowding = len(targets) ** -CROWDING_EXPONENT
    for rgba in targets:
        lit = light_object(rgba, rng, difficulty.photometric)
        side = rng.uniform(*difficulty.scale) * size * crowding
        homography = object_homography(
            rgba.shape[:2], rng, difficulty.rotation_deg, difficulty.perspective, side, size, boxes
        )
        alpha = paste(canvas, lit, homography, drop_shadow(rng, difficulty, light_angle, side))
        box = mask_box(alpha)
        if box is None:
            raise ValueError("a target fell outside the scene")
        boxes.append(box)
        areas.append(int((alpha >= 0.5).sum()))
    for box in boxes:
        if rng.random() < difficulty.occlusion_probability:
            occlude(canvas, box, rng, difficulty.occlusion_extent)
    image = finish(canvas, rng, difficulty)
    quality = int(rng.integers(difficulty.jpeg_quality[0], difficulty.jpeg_quality[1] + 1))
    return Scene(image, boxes, areas, quality)


def crop_background(background: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square of 60-100% of the short side, resized to ``size``; float32 RGB."""
    short = min(background.shape[:2])
    side = max(8, round(short * rng.uniform(0.6, 1.0)))
    top = int(rng.integers(0, background.shape[0] - side + 1))
    left = int(rng.integers(0, background.shape[1] - side + 1))
    patch = background[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation).astype(np.float32)


def object_homography(
    shape: tuple[int, int],
    rng: np.random.Generator,
    rotation_deg: float,
    perspective: float,
    longest_side: float,
    scene_size: int,
    avoid: list[XYWH],
) -> np.ndarray:
    """Perspective jitter of the corners, a rotation, a scale to ``longest_side`` and a place inside the scene."""
    height, width = shape
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    moved = corners + rng.uniform(-perspective, perspective, (4, 2)) * [width, height]
    warp = cv2.getPerspectiveTransform(corners, moved.astype(np.float32)).astype(np.float64)
    angle = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg))
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    warp = rotation @ warp
    projected = _project(warp, corners)
    extent = projected.max(axis=0) - projected.min(axis=0)
    scale = min(longest_side / extent.max(), (scene_size - 2) / extent.max())
    warp = np.diag([scale, scale, 1.0]) @ warp
    projected = _project(warp, corners)
    low, high = projected.min(axis=0), projected.max(axis=0)
    best, best_overlap = np.zeros(2), np.inf  # the first try always replaces it
    for _ in range(PLACEMENT_TRIES):
        offset = rng.uniform(0, np.maximum(scene_size - (high - low) - 1, 0)) - low
        box = (*(low + offset), *(high - low))
        overlap = max((_coverage(box, other) for other in avoid), default=0.0)
        if overlap < best_overlap:
            best, best_overlap = offset, overlap
        if overlap <= MAX_COVERAGE:
            break
    return np.array([[1, 0, best[0]], [0, 1, best[1]], [0, 0, 1]]) @ warp


def paste(canvas: np.ndarray, rgba: np.ndarray, homography: np.ndarray, shadow: tuple | None) -> np.ndarray:
    """Warps ``rgba`` into ``canvas`` (in place, premultiplied alpha) and returns the warped alpha in [0, 1]."""
    height, width = canvas.shape[:2]
    rgba, homography = _prescale(rgba, homography)
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    premultiplied = rgba[..., :3].astype(np.float32) * alpha[..., None]
    flags = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped_alpha = cv2.warpPerspective(alpha, homography, (width, height), **flags)
    warped_colour = cv2.warpPerspective(premultiplied, homography, (width, height), **flags)
    if shadow is not None:
        shift, sigma, strength = shadow
        translation = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], dtype=np.float32)
        moved = cv2.warpAffine(warped_alpha, translation, (width, height))
        canvas *= (1.0 - strength * cv2.GaussianBlur(moved, (0, 0), sigma))[..., None]
    canvas *= (1.0 - warped_alpha)[..., None]
    canvas += warped_colour
    return warped_alpha


def mask_box(alpha: np.ndarray, threshold: float = 0.5) -> XYWH | None:
    rows = np.flatnonzero((alpha >= threshold).any(axis=1))
    columns = np.flatnonzero((alpha >= threshold).any(axis=0))
    if rows.size == 0:
        return None
    return int(columns[0]), int(rows[0]), int(columns[-1] - columns[0] + 1), int(rows[-1] - rows[0] + 1)


def light_object(rgba: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and a lighting gradient on the object only."""
    if strength <= 0:
        return rgba
    colour = rgba[..., :3].astype(np.float32)
    brightness = 1 + rng.uniform(-0.4, 0.3) * strength
    contrast = 1 + rng.uniform(-0.3, 0.2) * strength
    mean = colour.mean(axis=(0, 1))
    angle = rng.uniform(0, 2 * np.pi)
    across = np.linspace(0, np.cos(angle), rgba.shape[1], dtype=np.float32)[None, :]
    down = np.linspace(0, np.sin(angle), rgba.shape[0], dtype=np.float32)[:, None]
    ramp = across + down - 0.5
    gradient = 1 + rng.uniform(0, 0.4) * strength * ramp
    colour = ((colour - mean) * contrast + mean) * brightness * gradient[..., None]
    return np.dstack([np.clip(colour, 0, 255).astype(np.uint8), rgba[..., 3]])


def occlude(canvas: np.ndarray, box: XYWH, rng: np.random.Generator, extent: tuple[float, float]) -> None:
    """A solid bar (a shelf edge, a hand, a price strip) across part of the object."""
    x, y, width, height = box
    vertical = rng.random() < 0.5
    span = width if vertical else height
    thickness = max(2, round(span * rng.uniform(*extent)))
    start = round((x if vertical else y) + rng.uniform(-thickness / 2, span - thickness / 2))
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    if vertical:
        canvas[max(0, y - height // 4) : y + height + height // 4, max(0, start) : max(0, start + thickness)] = colour
    else:
        canvas[max(0, start) : max(0, start + thickness), max(0, x - width // 4) : x + width + width // 4] = colour


def finish(canvas: np.ndarray, rng: np.random.Generator, difficulty: Difficulty) -> np.ndarray:
    """Whole-photo effects: a colour cast, sensor noise and, sometimes, blur."""
    strength = difficulty.photometric
    image = canvas
    if strength > 0:
        image = image * (1 + rng.uniform(-0.1, 0.1, 3).astype(np.float32) * strength)
        image = image + rng.standard_normal(image.shape, dtype=np.float32) * (rng.uniform(0, 6) * strength)
    if rng.random() < difficulty.blur_probability:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(*difficulty.blur_sigma))
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def crop(image: np.ndarray, box: XYWH) -> np.ndarray:
    x, y, width, height = box
    return image[y : y + height, x : x + width]


def drop_shadow(rng: np.random.Generator, difficulty: Difficulty, angle: float, side: float) -> tuple | None:
    if rng.random() >= difficulty.shadow_probability:
        return None
    distance = rng.uniform(0.02, 0.06) * side
    return (distance * np.cos(angle), distance * np.sin(angle)), max(1.0, 0.03 * side), rng.uniform(0.25, 0.55)


def _prescale(rgba: np.ndarray, homography: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrinks the object with area averaging first, so a strong downscale in the warp does not alias."""
    height, width = rgba.shape[:2]
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    scale = np.sqrt(cv2.contourArea(_project(homography, corners).astype(np.float32)) / (width * height))
    if scale >= 0.7:
        return rgba, homography
    size = (max(2, round(rgba.shape[1] * scale)), max(2, round(rgba.shape[0] * scale)))
    small = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    back = np.diag([rgba.shape[1] / size[0], rgba.shape[0] / size[1], 1.0])
    return small, homography @ back


def _project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(points[None].astype(np.float64), homography)[0]


def _coverage(first: tuple, second: tuple) -> float:
    """The larger share of either box that their intersection covers."""
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    width = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    intersection = width * height
    return intersection / max(min(aw * ah, bw * bh), 1e-9)


# Dense shelves: rows of products side by side. A product hidden beyond this share by its neighbours is an
# ignore region (COCO iscrowd) rather than a target nobody could find.
SHELF_ROWS = (1, 4)
SHELF_GAP = (-0.18, 0.04)  # gap between neighbours as a share of the product width; negative: overlapping
SHELF_MIN_VISIBLE = 0.5
# Package shapes: a card is stretched to a tall box, a flat tin or left as it is (width / height factor).
PACKAGE_STRETCH = (0.55, 1.0, 1.6)


@dataclass(frozen=True)
class ShelfScene:
    image: np.ndarray
    boxes: list[XYWH]  # visible part of each placed product
    areas: list[int]
    hidden: list[bool]  # less than SHELF_MIN_VISIBLE of the product shows: an ignore region
    products: list[int]  # index into the ``products`` argument for each box
    jpeg_quality: int


def compose_shelf(
    background: np.ndarray,
    products: list[np.ndarray],
    distractors: list[np.ndarray],
    rng: np.random.Generator,
    difficulty: Difficulty,
    size: int,
    count: tuple[int, int],
) -> ShelfScene:
    """Rows of ``count`` products (fewer when they do not fit), touching or partly hiding each other."""
    canvas = crop_background(background, rng, size)
    for rgba in distractors:
        side = rng.uniform(*DISTRACTOR_SCALE) * size
        paste(canvas, rgba, object_homography(rgba.shape[:2], rng, 180.0, 0.0, side, size, []), None)
    wanted = int(rng.integers(count[0], count[1] + 1))
    rows = int(rng.integers(SHELF_ROWS[0], SHELF_ROWS[1] + 1))
    rows = max(1, min(rows, round(np.sqrt(wanted)) + 1))
    row_height = size / rows
    per_row = -(-wanted // rows)
    alphas: list[np.ndarray] = []
    picks: list[int] = []
    for row in range(rows):
        height = row_height * rng.uniform(0.72, 0.95)
        # shrink the products of a crowded row so that about ``per_row`` of them fit across the photo
        height = min(height, size / max(per_row, 1) / 0.8)
        x = rng.uniform(0, 0.06) * size
        top = row * row_height + (row_height - height) * rng.uniform(0.3, 1.0)
        while len(picks) < wanted:
            pick = int(rng.integers(len(products)))
            stretch = PACKAGE_STRETCH[int(rng.integers(len(PACKAGE_STRETCH)))]
            rgba = products[pick]
            aspect = rgba.shape[1] / rgba.shape[0] * stretch
            item_height = height * rng.uniform(0.85, 1.0)
            width = item_height * aspect
            if x + width > size - 1:
                break
            lit = light_object(rgba, rng, difficulty.photometric)
            homography = _shelf_homography(rgba.shape[:2], x, top + height - item_height, width, item_height, rng,
                                           difficulty.perspective * 0.3)
            alphas.append(paste(canvas, lit, homography, None))
            picks.append(pick)
            x += width * (1 + rng.uniform(*SHELF_GAP))
    boxes, areas, hidden, kept = [], [], [], []
    covered = np.zeros((size, size), np.float32)
    visible_alphas = []
    for alpha in reversed(alphas):  # later products lie on top of earlier ones
        visible_alphas.append(alpha * (1.0 - covered))
        covered = np.maximum(covered, alpha)
    for index, (alpha, visible) in enumerate(zip(alphas, reversed(visible_alphas), strict=True)):
        box = mask_box(visible)
        if box is None:
            continue
        own, shown = int((alpha >= 0.5).sum()), int((visible >= 0.5).sum())
        boxes.append(box)
        areas.append(shown)
        hidden.append(shown < SHELF_MIN_VISIBLE * max(own, 1))
        kept.append(picks[index])
    for box, is_hidden in zip(boxes, hidden, strict=True):
        if not is_hidden and rng.random() < difficulty.occlusion_probability * 0.5:
            occlude(canvas, box, rng, (0.05, 0.15))
    image = finish(canvas, rng, difficulty)
    quality = int(rng.integers(difficulty.jpeg_quality[0], difficulty.jpeg_quality[1] + 1))
    return ShelfScene(image, boxes, areas, hidden, kept, quality)


def compose_empty(
    background: np.ndarray, distractors: list[np.ndarray], rng: np.random.Generator, difficulty: Difficulty, size: int
) -> np.ndarray:
    """A photo without any product: background and clutter only (the detector must stay silent)."""
    canvas = crop_background(background, rng, size)
    light_angle = rng.uniform(0, 2 * np.pi)
    for rgba in distractors:
        side = rng.uniform(*DISTRACTOR_SCALE) * size
        homography = object_homography(rgba.shape[:2], rng, 180.0, 0.0, side, size, [])
        paste(canvas, rgba, homography, drop_shadow(rng, difficulty, light_angle, side))
    return finish(canvas, rng, difficulty)


def _shelf_homography(
    shape: tuple[int, int], left: float, top: float, width: float, height: float, rng: np.random.Generator,
    perspective: float,
) -> np.ndarray:
    """Maps the card onto the rectangle (left, top, width, height) with a little corner jitter."""
    source_height, source_width = shape
    corners = np.array([[0, 0], [source_width, 0], [source_width, source_height], [0, source_height]], np.float32)
    target = np.array([[left, top], [left + width, top], [left + width, top + height], [left, top + height]])
    target = target + rng.uniform(-perspective, perspective, (4, 2)) * [width, height]
    return cv2.getPerspectiveTransform(corners, target.astype(np.float32)).astype(np.float64)
