"""Multipart upload fields: bounded reads and typed parsing of the small text fields."""

from __future__ import annotations

import json
from typing import Any

from fastapi import UploadFile
from starlette import formparsers

from service.box import Box
from service.errors import InvalidRequest, PayloadTooLarge

_CHUNK = 1 << 20


def _strict_decode(src: bytes | bytearray, codec: str) -> str:
    try:
        return src.decode(codec)
    except (UnicodeDecodeError, LookupError) as error:
        raise formparsers.MultiPartException(f"a form field is not valid {codec} text") from error


# Starlette decodes multipart text that is not valid UTF-8 as Latin-1, so a label sent in another encoding
# would be stored garbled. Refusing it instead is a 400 with this message (Starlette's MultiPartException).
formparsers._user_safe_decode = _strict_decode


async def read_upload(upload: UploadFile, *, max_mb: float) -> bytes:
    """Stop reading one chunk past the limit, so an oversize upload costs at most that much memory."""
    limit = int(max_mb * (1 << 20))
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(f"the upload is {upload.size} bytes, the limit is {limit} bytes", limit_bytes=limit)
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the upload is over the limit of {limit} bytes", limit_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"metadata is not valid JSON: {error.msg} at position {error.pos}"
        raise InvalidRequest(message, field="metadata") from error
    except RecursionError as error:
        raise InvalidRequest("metadata is nested too deep to read", field="metadata") from error
    except ValueError as error:  # Python's cap on the digits of an integer
        raise InvalidRequest("metadata holds a number too long to read", field="metadata") from error
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object", field="metadata")
    return value


# The upload's schema says what the bytes must be: an image whose pixels fit the limits (SHITU_LIMITS__*).
IMAGE_FORMAT = {"format": "image"}
BBOX_PATTERN = r"^\s*\[?\s*\d{1,9}\s*(,\s*\d{1,9}\s*){3}\]?\s*$"


def parse_bbox(text: str | None) -> Box | None:
    """``x1,y1,x2,y2`` or a JSON list of four integers."""
    if text is None or not text.strip():
        return None
    parts = text.strip().strip("[]").split(",")
    try:
        values = [int(part.strip()) for part in parts]
    except ValueError as error:
        raise InvalidRequest("bbox must be four integers x1,y1,x2,y2", field="bbox") from error
    if len(values) != 4:
        raise InvalidRequest("bbox must be four integers x1,y1,x2,y2", field="bbox")
    return Box(*values)
