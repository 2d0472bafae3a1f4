"""Input checks run before anything is written: a request that fails here changes nothing."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from service.box import Box
from service.errors import InvalidRequest, LabelConflict

if TYPE_CHECKING:
    from service.gallery.types import GalleryItem

MAX_LABEL_CHARS = 200
MAX_METADATA_BYTES = 16 * 1024
# A vector further than this from unit length was not L2-normalised by the embedder: scores would not be cosines.
NORM_TOLERANCE = 1e-3
MAX_METADATA_DEPTH = 16
# JSON numbers every client reads exactly (JavaScript's safe integers); larger ones are refused, not rounded.
MAX_METADATA_INTEGER = 2**53 - 1
ITEM_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MEDIA_TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
# Control characters (C0, DEL, C1: tabs, line breaks, U+0085) and the Unicode line and paragraph separators
# cannot be written to a PaddleClas list file line, so they never enter the gallery.
_LABEL_FORBIDDEN = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
FORBIDDEN_LABEL_CHARS = re.compile(f"[{_LABEL_FORBIDDEN}]")
# The same rule as a JSON-schema pattern (the API's OpenAPI): at least one visible character, none forbidden.
LABEL_SCHEMA_PATTERN = f"^[^{_LABEL_FORBIDDEN}]*[^\\s{_LABEL_FORBIDDEN}][^{_LABEL_FORBIDDEN}]*$"


@dataclass(frozen=True, slots=True)
class NewImage:
    """A checked ``add_image`` request."""

    label: str
    item_id: str | None
    metadata_text: str | None
    box: Box | None
    media_type: str
    data: bytes
    vector: NDArray[np.float32]

    def check_label_against(self, existing: GalleryItem | None, item_id: str) -> None:
        """409 when the item exists under another label: a label changes by PATCH, never by an upload."""
        if existing is not None and existing.label != self.label:
            raise LabelConflict(f"item {item_id} has label {existing.label!r}, not {self.label!r}",
                                item_id=item_id, label=existing.label, requested_label=self.label)

    def changes_metadata_of(self, existing: GalleryItem | None) -> bool:
        """Whether this upload brings metadata the item does not have yet (a new item: any metadata)."""
        return self.metadata_text is not None and (
            existing is None or json.loads(self.metadata_text) != existing.metadata)


def check_new_image(
    *,
    label: Any,
    embedding: Any,
    image_bytes: Any,
    media_type: Any,
    item_id: Any,
    metadata: Any,
    box: Any,
    dim: int,
) -> NewImage:
    return NewImage(
        label=check_label(label),
        item_id=check_item_id(item_id) if item_id is not None else None,
        metadata_text=encode_metadata(metadata) if metadata is not None else None,
        box=check_box(box),
        media_type=check_media_type(media_type),
        data=check_image_bytes(image_bytes),
        vector=check_embedding(embedding, dim),
    )


def check_label(label: Any) -> str:
    """Returns the label without surrounding whitespace."""
    if not isinstance(label, str) or not label.strip():
        raise InvalidRequest("label must be a non-empty string", field="label")
    label = label.strip()
    if len(label) > MAX_LABEL_CHARS:
        raise InvalidRequest(f"label is longer than {MAX_LABEL_CHARS} characters", field="label")
    if FORBIDDEN_LABEL_CHARS.search(label):
        raise InvalidRequest("label must not contain tabs, line breaks, control characters or U+2028/U+2029",
                             field="label")
    return label


def check_item_id(item_id: Any) -> str:
    if not isinstance(item_id, str) or not ITEM_ID_PATTERN.fullmatch(item_id):
        raise InvalidRequest("item_id must match ^[A-Za-z0-9._:-]{1,128}$", field="item_id")
    return item_id


def encode_metadata(metadata: Any) -> str:
    """Serialised JSON object, at most 16 KiB of UTF-8, nested at most 16 deep, integers within ±(2^53 - 1)."""
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be a JSON object", field="metadata")
    _check_metadata_value(metadata, depth=1)
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidRequest(f"metadata is not serialisable as JSON: {error}", field="metadata") from error
    if len(text.encode("utf-8")) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON", field="metadata")
    return text


def _check_metadata_value(value: Any, *, depth: int) -> None:
    """Walks the value without recursion limits of its own: depth is checked before descending."""
    if depth > MAX_METADATA_DEPTH:
        raise InvalidRequest(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels", field="metadata")
    if isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str):
                raise InvalidRequest("metadata keys must be strings", field="metadata")
            _check_metadata_value(child, depth=depth + 1)
    elif isinstance(value, list):
        for child in value:
            _check_metadata_value(child, depth=depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if abs(value) > MAX_METADATA_INTEGER:
            raise InvalidRequest(f"metadata integers must be within ±{MAX_METADATA_INTEGER}", field="metadata")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest("metadata numbers must be finite", field="metadata")
    else:
        raise InvalidRequest(f"metadata holds a {type(value).__name__}, not a JSON value", field="metadata")


def check_box(box: Any) -> Box | None:
    if box is None:
        return None
    values = box.as_tuple() if isinstance(box, Box) else None
    if values is None or not all(isinstance(value, Integral) and not isinstance(value, bool) for value in values):
        raise InvalidRequest("box must be a Box of four integers (x1, y1, x2, y2)", field="box")
    x1, y1, x2, y2 = (int(value) for value in values)
    if x1 < 0 or y1 < 0 or x2 <= x1 or y2 <= y1:
        raise InvalidRequest("box needs 0 <= x1 < x2 and 0 <= y1 < y2", field="box", box=[x1, y1, x2, y2])
    return Box(x1, y1, x2, y2)


def check_box_inside(box: Box, width: int, height: int) -> None:
    x1, y1, x2, y2 = box.as_tuple()
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise InvalidRequest(f"bbox {[x1, y1, x2, y2]} is not inside the {width}x{height} image "
                             "(x1 < x2 <= width, y1 < y2 <= height)", field="bbox")


def check_media_type(media_type: Any) -> str:
    if not isinstance(media_type, str) or not MEDIA_TYPE_PATTERN.fullmatch(media_type):
        raise InvalidRequest("media_type must be a lower-case type/subtype such as image/jpeg", field="media_type")
    return media_type


def check_image_bytes(image_bytes: Any) -> bytes:
    if not isinstance(image_bytes, (bytes, bytearray, memoryview)) or len(image_bytes) == 0:
        raise InvalidRequest("image bytes must be non-empty", field="image")
    return bytes(image_bytes)


def check_embedding(embedding: Any, dim: int) -> NDArray[np.float32]:
    """One L2-normalised float32 vector, given as shape (D,) or (1, D); returned as a contiguous (D,) copy."""
    if not isinstance(embedding, np.ndarray) or embedding.dtype != np.float32:
        raise InvalidRequest("embedding must be a float32 numpy array", field="embedding")
    if embedding.shape not in ((dim,), (1, dim)):
        raise InvalidRequest(
            f"embedding must have shape ({dim},), got {embedding.shape}", field="embedding", expected_dim=dim
        )
    vector = np.ascontiguousarray(embedding.reshape(dim), dtype=np.float32).copy()
    if not np.isfinite(vector).all():
        raise InvalidRequest("embedding contains NaN or infinite values", field="embedding")
    norm = float(np.linalg.norm(vector))
    if not math.isclose(norm, 1.0, abs_tol=NORM_TOLERANCE):
        raise InvalidRequest(
            f"embedding must be L2-normalised (norm {norm:.4g}, expected 1)", field="embedding", norm=norm
        )
    return vector


def check_queries(embeddings: Any, dim: int) -> NDArray[np.float32]:
    """Search queries: (N, D) float32 with finite values (a single (D,) vector is read as N = 1)."""
    if not isinstance(embeddings, np.ndarray) or embeddings.dtype != np.float32:
        raise InvalidRequest("query embeddings must be a float32 numpy array", field="embeddings")
    queries = embeddings.reshape(1, -1) if embeddings.ndim == 1 else embeddings
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise InvalidRequest(f"query embeddings must have shape (N, {dim}), got {embeddings.shape}", field="embeddings")
    if not np.isfinite(queries).all():
        raise InvalidRequest("query embeddings contain NaN or infinite values", field="embeddings")
    return np.ascontiguousarray(queries)


def check_page(offset: Any, limit: Any, max_limit: int) -> tuple[int, int]:
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidRequest("offset must be a non-negative integer", field="offset")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= max_limit:
        raise InvalidRequest(f"limit must be between 1 and {max_limit}", field="limit")
    return offset, limit


def check_top_k(top_k: Any) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise InvalidRequest("top_k must be a positive integer", field="top_k")
    return top_k
