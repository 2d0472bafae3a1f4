"""Real photos (scikit-image's samples) encoded the ways clients send them."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray
from skimage import data as samples


def encode(rgb: NDArray[np.uint8], suffix: str = ".jpg") -> bytes:
    ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return buffer.tobytes()


def coffee() -> NDArray[np.uint8]:
    return samples.coffee()


def cat() -> NDArray[np.uint8]:
    return samples.chelsea()


def rocket() -> NDArray[np.uint8]:
    return samples.rocket()


def astronaut() -> NDArray[np.uint8]:
    return samples.astronaut()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but carries almost no data (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body
