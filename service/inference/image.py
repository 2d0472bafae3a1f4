"""Bytes → RGB pixels with every guard a public endpoint needs, and pixels → model tensors."""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from service.box import Box
from service.config import LimitsSettings
from service.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from service.inference.manifest import Interpolation, Preprocess

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}
_INTERPOLATIONS = {
    Interpolation.nearest: cv2.INTER_NEAREST,
    Interpolation.linear: cv2.INTER_LINEAR,
    Interpolation.cubic: cv2.INTER_CUBIC,
    Interpolation.area: cv2.INTER_AREA,
}
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"))

RGBImage = NDArray[np.uint8]

# Pillow only reads headers here; the pixel limit is ours (settings), checked before cv2 decodes anything.
Image.MAX_IMAGE_PIXELS = None
# Requests run on their own threads, side by side: OpenCV's own thread pool on top would only oversubscribe the
# cores the inference threads use.
cv2.setNumThreads(1)


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """What one upload may cost to decode (from ``LimitsSettings``)."""

    max_pixels: int  # of the decoded image
    max_side_px: int  # declared, checked before decoding
    reduce_to_side_px: int | None = None  # JPEG DCT scaling keeps the longer side at least this; None: full decode

    @classmethod
    def of(cls, limits: LimitsSettings) -> DecodeLimits:
        return cls(limits.max_image_pixels, limits.max_image_side_px, limits.decode_max_side_px)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """The pixels, maybe decoded at 1/2, 1/4 or 1/8 of the original; boxes go out in original pixels."""

    pixels: RGBImage  # H x W x 3, RGB
    media_type: str
    original_width: int
    original_height: int

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def reduced(self) -> bool:
        return (self.width, self.height) != (self.original_width, self.original_height)

    def to_original(self, box: Box) -> Box:
        """A box of the decoded pixels in original pixels (exclusive ends, inside the original image)."""
        if not self.reduced:
            return box
        sx, sy = self.original_width / self.width, self.original_height / self.height
        x1, y1, x2, y2 = box.as_tuple()
        width, height = self.original_width, self.original_height
        return Box(min(int(x1 * sx), width), min(int(y1 * sy), height),
                   min(int(math.ceil(x2 * sx)), width), min(int(math.ceil(y2 * sy)), height))

    def from_original(self, box: Box) -> Box:
        """A box in original pixels on the decoded pixels (the smallest box that covers it)."""
        if not self.reduced:
            return box
        sx, sy = self.width / self.original_width, self.height / self.original_height
        x1, y1, x2, y2 = box.as_tuple()
        return Box(int(x1 * sx), int(y1 * sy), max(min(int(math.ceil(x2 * sx)), self.width), int(x1 * sx) + 1),
                   max(min(int(math.ceil(y2 * sy)), self.height), int(y1 * sy) + 1))


def sniff_format(data: bytes) -> str | None:
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


# A file this much larger than its raw pixels is not an image of that size: refuse it before decoding.
_SLACK_BYTES = 4 << 20
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_image(data: bytes, limits: DecodeLimits) -> DecodedImage:
    """Check the container and its declared size before decoding, so bombs cost neither time nor memory."""
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedMediaType("not a JPEG, PNG, WebP or BMP image")
    width, height = _declared_size(data, kind)
    if width <= 0 or height <= 0:
        raise InvalidImage(f"the image declares a size of {width}x{height} pixels")
    reduction = _jpeg_reduction(width, height, limits.reduce_to_side_px) if kind == "JPEG" else 1
    decoded_pixels = math.ceil(width / reduction) * math.ceil(height / reduction)
    if decoded_pixels > limits.max_pixels or max(width, height) > limits.max_side_px:
        raise ImageTooLarge(
            f"{width}x{height} pixels is over the limit ({limits.max_pixels} decoded pixels, "
            f"{limits.max_side_px} px a side)", width=width, height=height,
        )
    if len(data) > 4 * 3 * width * height + _SLACK_BYTES:
        raise InvalidImage(f"{len(data)} bytes is far more than a {width}x{height} image holds", width=width,
                           height=height)
    if kind == "JPEG" and _jpeg_truncated(data):
        raise InvalidImage("the JPEG data is truncated (no end-of-image marker after the last scan)")
    flag = _REDUCED_FLAGS.get(reduction, cv2.IMREAD_COLOR)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    if bgr is None or bgr.size == 0:
        raise InvalidImage(f"the {kind} data is corrupt or truncated and cannot be decoded")
    # cvtColor writes the RGB copy in one SIMD pass (a reversed-stride numpy copy is about 3x slower on big photos).
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # IMREAD_*COLOR* always gives 3 channels
    return DecodedImage(pixels=cast(RGBImage, rgb), media_type=MEDIA_TYPES[kind],
                        original_width=width, original_height=height)


def _jpeg_reduction(width: int, height: int, target_side: int | None) -> int:
    """The largest of 8, 4, 2 that keeps the longer side at least ``target_side`` (1: decode in full)."""
    if target_side is None:
        return 1
    return next((factor for factor in (8, 4, 2) if max(width, height) / factor >= target_side), 1)


def _declared_size(data: bytes, kind: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as header:
            return header.size
    except Exception as error:  # Pillow raises many kinds (SyntaxError, OSError, struct.error) for bad headers
        # Pillow's messages name its objects (<_io.BytesIO object at 0x…>): say what is wrong, not where.
        raise InvalidImage(f"the {kind} header is corrupt or unreadable") from error


def _jpeg_truncated(data: bytes) -> bool:
    # Entropy-coded data never contains 0xFFDA/0xFFD9 (0xFF is stuffed), so the image is whole only if an
    # end-of-image marker follows the last start-of-scan; an EXIF thumbnail's markers come earlier. Searching for
    # a scan after the last end-of-image reads only the file's tail (a backward search for the last scan would
    # read the whole entropy-coded body: milliseconds on a 12 MP photo).
    end_of_image = data.rfind(b"\xff\xd9")
    if end_of_image < 0 or data.find(b"\xff\xda", 0, end_of_image) < 0:
        return True
    return data.find(b"\xff\xda", end_of_image) >= 0


def resize(pixels: RGBImage, preprocess: Preprocess) -> tuple[RGBImage, tuple[float, float]]:
    """Resize as the model's preprocessing says; returns the image and the (y, x) scale factors."""
    target_width, target_height = preprocess.size
    height, width = pixels.shape[:2]
    scale_y, scale_x = target_height / height, target_width / width
    if preprocess.keep_ratio:
        scale_y = scale_x = min(scale_x, scale_y)
    interpolation = _INTERPOLATIONS[preprocess.interpolation]
    if preprocess.keep_ratio:
        resized = cv2.resize(pixels, None, fx=scale_x, fy=scale_y, interpolation=interpolation)
    else:
        resized = cv2.resize(pixels, (target_width, target_height), interpolation=interpolation)
    return cast(RGBImage, resized), (scale_y, scale_x)


def fit(pixels: RGBImage, preprocess: Preprocess) -> RGBImage:
    """An embedder's input: ``resize``, then with ``pad`` the aspect-kept image centred on a ``size`` canvas of
    the mean colour. The one definition the service and the trainer share."""
    resized, _ = resize(pixels, preprocess)
    if not preprocess.pad:
        return resized
    target_width, target_height = preprocess.size
    height, width = resized.shape[:2]
    # keep_ratio rounds: the longer side may miss the size by a pixel
    height, width = min(height, target_height), min(width, target_width)
    canvas = np.empty((target_height, target_width, 3), np.uint8)
    canvas[:] = preprocess.pad_colour
    top, left = (target_height - height) // 2, (target_width - width) // 2
    canvas[top : top + height, left : left + width] = resized[:height, :width]
    return canvas


def normalize(pixels: RGBImage, preprocess: Preprocess) -> NDArray[np.float32]:
    """HWC uint8 → CHW float32: ``(x * scale - mean) / std`` in the channel order the model wants."""
    tables = _normalization_tables(preprocess.scale, preprocess.mean, preprocess.std)
    planes = cv2.split(pixels)
    if preprocess.channel_order == "BGR":
        planes = planes[::-1]
    tensor = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
    for channel, plane in enumerate(planes):
        # A uint8 has 256 values: looking each one up in the channel's precomputed table writes CHW directly, the
        # same float32 arithmetic as computing it (bit-identical) at about 1/7 of the CPU time.
        cv2.LUT(plane, tables[channel], dst=tensor[channel])
    return tensor


@functools.lru_cache(maxsize=16)
def _normalization_tables(scale: float, mean: tuple[float, float, float],
                          std: tuple[float, float, float]) -> NDArray[np.float32]:
    values = np.arange(256, dtype=np.float32) * np.float32(scale)
    mean_column, std_column = np.asarray(mean, np.float32)[:, np.newaxis], np.asarray(std, np.float32)[:, np.newaxis]
    tables = (values[np.newaxis, :] - mean_column) / std_column
    tables.flags.writeable = False
    return tables


def crop(pixels: RGBImage, box: Box) -> RGBImage:
    return pixels[box.y1 : box.y2, box.x1 : box.x2]
