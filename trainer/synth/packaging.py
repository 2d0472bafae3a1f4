"""Products as they are sold: the class's card artwork on a can, a bottle, a box, a pouch or a flat label.

One kind per class (from its name, like the card design). ``render_package`` draws the package for one pose:
``turn`` rotates a cylinder about its axis or a box about the vertical (0: the catalogue's frontal view), so
catalogue views and shop photos of one class show the same package from other sides. Everything is a pure
function of its inputs: the shapes, shading and highlights are geometry, not noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.synth.splits import stable_hash

RGBA = NDArray[np.uint8]
PACKAGE_SIDE = 256  # longest side of a rendered package, as a card's


class PackageKind(str, Enum):
    can = "can"  # metal cylinder: the artwork wrapped round it, metal rims top and bottom
    bottle = "bottle"  # glass or plastic cylinder with shoulder, neck and cap; the artwork is a wrap-round label
    box = "box"  # cardboard box seen at an angle: the artwork on the front, the card's colour on the side and top
    pouch = "pouch"  # soft bag: pillow warp, glossy streak, crimped seals top and bottom
    label = "label"  # a flat label or sticker: the card itself


PACKAGE_KINDS = tuple(PackageKind)
_KIND_STREAM = "package-kind:"


@dataclass(frozen=True)
class PackageDesign:
    kind: PackageKind
    body_colour: tuple[int, int, int]  # bottle glass or plastic, can metal tint
    cap_colour: tuple[int, int, int]
    depth: float  # box depth as a share of its width
    elongation: float  # a bottle's body above its label, as a share of the label's height (plus one)


def package_kind(name: str) -> PackageKind:
    """The kind is fixed per class, from its name only (a seed changes photos, not products)."""
    return PACKAGE_KINDS[stable_hash(_KIND_STREAM + name) % len(PACKAGE_KINDS)]


def design_package(kind: PackageKind, rng: np.random.Generator) -> PackageDesign:
    glass = ((70, 120, 60), (120, 70, 30), (200, 215, 220), (235, 235, 230), (40, 60, 110))
    body = glass[int(rng.integers(len(glass)))] if kind is PackageKind.bottle else (205, 208, 212)
    cap = tuple(int(value) for value in rng.integers(20, 236, 3))
    return PackageDesign(kind, body, (cap[0], cap[1], cap[2]), float(rng.uniform(0.3, 0.6)),
                         float(rng.uniform(1.0, 1.35)))


def render_package(card: RGBA, design: PackageDesign, turn: float = 0.0, light: float = 0.6,
                   side: int = PACKAGE_SIDE) -> RGBA:
    """RGBA of the package, longest side ``side``; ``turn`` in [-1, 1] (a share of the kind's largest turn)."""
    kind = design.kind
    if kind is PackageKind.label:
        package = card
    elif kind is PackageKind.box:
        package = _box(card, design, turn, light)
    elif kind is PackageKind.pouch:
        package = _pouch(card, turn, light)
    else:
        package = _cylinder(card, design, turn, light)
    scale = side / max(package.shape[:2])
    size = (max(1, round(package.shape[1] * scale)), max(1, round(package.shape[0] * scale)))
    return np.ascontiguousarray(cv2.resize(package, size, interpolation=cv2.INTER_AREA if scale < 1 else
                                           cv2.INTER_LINEAR))


# --- cylinders: cans and bottles ----------------------------------------------------------------------------

def _cylinder(card: RGBA, design: PackageDesign, turn: float, light: float) -> RGBA:
    """Per row a radius profile (rims, shoulder, neck, cap); per column the angle on the cylinder, which picks the
    label column (``arcsin``: squeezed towards the edges), the diffuse shade and the specular stripe.

    The label keeps the card's proportions: its width is an arc of the cylinder, so a wide card wraps further
    round (up to the whole circumference) and a turn brings the rest of it into view.
    """
    bottle = design.kind is PackageKind.bottle
    label_height = card.shape[0]
    # A can or a bottle stands taller than wide: the diameter follows the label's height, not its width.
    width = max(8, round(min(card.shape[1] / 1.4, label_height / (1.5 if bottle else 1.25))))
    half_angle = min(np.pi, card.shape[1] / width)  # arc length card width at radius width / 2
    top = round(width * (0.9 if bottle else 0.1) + (label_height * (design.elongation - 1) if bottle else 0))
    bottom = round(width * (0.2 if bottle else 0.1))
    height = top + label_height + bottom
    rows = np.arange(height, dtype=np.float32)
    radius = _profile(rows, top, label_height, width, bottle)  # share of the full radius per row
    columns = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1  # -1 … 1 across the body
    across = columns[None, :] / np.maximum(radius[:, None], 1e-3)
    inside = np.abs(across) <= 1
    angle = np.arcsin(np.clip(across, -1, 1))
    # Seen from a little above: points nearer the camera sit lower, so the label's edges curve.
    sag = width * 0.06 * np.cos(angle)
    label_row = (rows[:, None] - top - sag) / label_height
    label_angle = angle + turn * np.deg2rad(60)
    on_label = inside & (label_row >= 0) & (label_row < 1) & (np.abs(label_angle) <= half_angle)
    map_x = (label_angle / half_angle * 0.5 + 0.5) * (card.shape[1] - 1)
    map_y = label_row * (card.shape[0] - 1)
    artwork = cv2.remap(_opaque(card), map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    colour = np.empty((height, width, 3), np.float32)
    colour[:] = _wrap_colour(card)
    colour[on_label] = artwork[on_label][:, :3]
    colour = _cylinder_body(colour, rows, top, label_height, bottle, design, on_label, inside)
    shade = 0.62 + 0.38 * np.cos(angle - light * 0.9)
    highlight = np.exp(-(((angle - 0.35 - light * 0.25) / 0.13) ** 2)) * (0.55 if bottle else 0.7)
    colour = colour * shade[..., None] + 255 * highlight[..., None]
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)  # anti-aliased silhouette
    return np.dstack([np.clip(colour + 0.5, 0, 255).astype(np.uint8), alpha])


def _profile(rows: NDArray[np.float32], top: int, label_height: int, width: int, bottle: bool
             ) -> NDArray[np.float32]:
    radius = np.ones_like(rows)
    end = top + label_height
    if not bottle:  # a can: the lid's and the base's rims are a little narrower
        radius[(rows < top * 0.6) | (rows > end + (rows.max() - end) * 0.4)] = 0.94
        return radius
    cap_end, neck_end, shoulder_end = width * 0.2, width * 0.45, width * 0.9
    shoulder = np.clip((rows - neck_end) / (shoulder_end - neck_end), 0, 1)
    radius = np.where(rows < shoulder_end, 0.34 + 0.66 * np.sin(shoulder * np.pi / 2) ** 1.5, radius)
    radius = np.where(rows < neck_end, 0.34, radius)
    radius = np.where(rows < cap_end, 0.4, radius)
    return radius.astype(np.float32)


def _cylinder_body(colour: NDArray[np.float32], rows: NDArray[np.float32], top: int, label_height: int,
                   bottle: bool, design: PackageDesign, on_label: NDArray[np.bool_],
                   inside: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Outside the label: glass or metal; a bottle's cap."""
    end = top + label_height
    band = (rows[:, None] < top) | (rows[:, None] >= end)
    body = band & inside & ~on_label
    colour[body] = design.body_colour
    if bottle:
        cap = (rows[:, None] < colour.shape[1] * 0.2) & inside
        colour[cap] = design.cap_colour
    else:  # grooves on the can's rims
        grooves = (np.sin(rows * 1.3) * 18)[:, None] * band
        colour += grooves[..., None] * body[..., None]
    return colour


def _wrap_colour(card: RGBA) -> NDArray[np.float32]:
    """The card's own colour (its margin, at the top left) continues round the back of the wrap."""
    row, column = max(1, card.shape[0] // 20), card.shape[1] // 2
    return card[row, column, :3].astype(np.float32)


def _opaque(card: RGBA) -> RGBA:
    """Rounded corners filled with the card's colour: wrapped on a can they are no holes."""
    filled = card.copy()
    filled[..., :3] = np.where(card[..., 3:4] > 0, card[..., :3], _wrap_colour(card).astype(np.uint8))
    filled[..., 3] = 255
    return filled


# --- boxes --------------------------------------------------------------------------------------------------

def _box(card: RGBA, design: PackageDesign, turn: float, light: float) -> RGBA:
    """A box of the card's width and height and ``depth``, turned about the vertical and seen a little from
    above, in a weak perspective: the front face, one side face and the top."""
    height, width = card.shape[:2]
    depth = width * design.depth
    yaw = np.deg2rad(12 + 28 * abs(turn)) * (1 if turn >= 0 else -1)
    pitch = np.deg2rad(14)
    corners = _box_corners(width, height, depth)
    projected = _project_box(corners, yaw, pitch)
    projected -= projected.min(axis=0) - 2
    canvas_size = np.ceil(projected.max(axis=0) + 2).astype(int)
    canvas = np.zeros((canvas_size[1], canvas_size[0], 4), np.float32)
    side_texture = _side_panel(card, round(depth), right=yaw > 0)
    top_texture = _top_panel(card, round(depth))
    faces = [("front", (0, 1, 2, 3), _opaque(card), 1.0 - 0.1 * abs(np.sin(yaw))),
             ("side", (1, 5, 6, 2) if yaw > 0 else (4, 0, 3, 7), side_texture, 0.62 + 0.2 * (light - 0.5)),
             ("top", (4, 5, 1, 0), top_texture, 1.12)]
    for _name, indices, texture, shade in faces:
        _paint_face(canvas, texture, projected[list(indices)], shade)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _box_corners(width: float, height: float, depth: float) -> NDArray[np.float64]:
    """Front face 0-3 (top left, top right, bottom right, bottom left), then the back face 4-7."""
    front = [(-width / 2, -height / 2, 0), (width / 2, -height / 2, 0), (width / 2, height / 2, 0),
             (-width / 2, height / 2, 0)]
    back = [(x, y, depth) for x, y, _ in front]
    return np.array(front + back, np.float64)


def _project_box(corners: NDArray[np.float64], yaw: float, pitch: float) -> NDArray[np.float64]:
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    points = corners @ (tilt @ turn).T
    distance = 6.0 * np.abs(corners).max()  # weak perspective: far sides a little smaller
    factor = distance / (distance + points[:, 2])
    return points[:, :2] * factor[:, None]


def _side_panel(card: RGBA, depth: int, right: bool) -> RGBA:
    """The card's edge strip on that side stretched to the side's width: its colour and band continue round the
    corner."""
    width = max(2, card.shape[1] // 12)
    strip = _opaque(card)[:, -width:] if right else _opaque(card)[:, :width]
    return cv2.resize(strip, (max(2, depth), card.shape[0]), interpolation=cv2.INTER_LINEAR)


def _top_panel(card: RGBA, depth: int) -> RGBA:
    strip = _opaque(card)[: max(2, card.shape[0] // 12)]
    return cv2.resize(strip, (card.shape[1], max(2, depth)), interpolation=cv2.INTER_LINEAR)


def _paint_face(canvas: NDArray[np.float32], texture: RGBA, quad: NDArray[np.float64], shade: float) -> None:
    """Warps ``texture`` onto ``quad`` of the canvas (painter's order: later faces lie on top)."""
    height, width = texture.shape[:2]
    source = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    homography = cv2.getPerspectiveTransform(source, quad.astype(np.float32))
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpPerspective(texture.astype(np.float32), homography, size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = warped[..., 3:4] / 255.0
    canvas[..., :3] = canvas[..., :3] * (1 - alpha) + warped[..., :3] * shade * alpha
    canvas[..., 3:4] = np.maximum(canvas[..., 3:4], warped[..., 3:4])


# --- pouches ------------------------------------------------------------------------------------------------

def _pouch(card: RGBA, turn: float, light: float) -> RGBA:
    """A pillow: edges pulled in towards the crimped seals, the face bulging (shade across it), a gloss streak."""
    height, width = card.shape[:2]
    seal = max(4, round(height * 0.07))
    out_height = height + 2 * seal
    rows = (np.arange(out_height, dtype=np.float32) - seal + 0.5) / height  # 0 … 1 on the face
    columns = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
    along = np.clip(rows, 0, 1)
    pinch = 1 + 0.12 * (1 - np.sin(np.pi * along)) + 0.03 * np.sin(turn * 3 + along * 7)
    source_x = ((columns[None, :] * pinch[:, None]) * 0.5 + 0.5) * (width - 1)
    source_y = np.repeat((rows * (height - 1))[:, None], width, axis=1)
    face = cv2.remap(_opaque(card), source_x.astype(np.float32), np.clip(source_y, 0, height - 1).astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    bulge = np.cos(columns[None, :] * pinch[:, None] * np.pi / 2) * np.sin(np.pi * along)[:, None]
    shade = 0.7 + 0.3 * bulge + 0.08 * (columns[None, :] * (light - 0.5))
    streak_centre = 0.25 * turn + 0.2
    diagonal = columns[None, :] + (rows[:, None] - 0.5) * 0.6 - streak_centre
    gloss = np.exp(-((diagonal / 0.07) ** 2)) * 0.45 * np.sin(np.pi * along)[:, None]
    colour = face[..., :3] * shade[..., None] + 255 * gloss[..., None]
    seals = (rows < 0) | (rows > 1)
    colour[seals] = _wrap_colour(card) * 1.08
    crimp = (np.sin(np.arange(width) * 1.6) * 22)[None, :] * seals[:, None]
    colour += crimp[..., None]
    alpha = np.where(np.abs(columns[None, :] * pinch[:, None]) <= 1, 255, 0).astype(np.uint8)
    alpha[seals] = 255
    zigzag = (np.arange(width) % 6 < 3)
    alpha[0, zigzag] = alpha[-1, zigzag] = 0
    return np.dstack([np.clip(colour + 0.5, 0, 255).astype(np.uint8), alpha])
