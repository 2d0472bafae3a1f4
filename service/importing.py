"""Bulk registration from PaddleClas gallery list files (``relative/path<TAB>label``)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.box import Box
from service.config import LimitsSettings
from service.errors import PayloadTooLarge, ServiceError
from service.gallery import EmbedFunction, Gallery, ListEntry
from service.inference.embedder import Embedder
from service.inference.image import DecodeLimits, crop, decode_image
from service.inference.pipeline import RecognizeOptions, Recognizer
from service.registration import Registration, register

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    added: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def item_id_for_label(label: str) -> str:
    """One item per label, with an id that is stable across runs, so importing twice changes nothing."""
    return "label-" + hashlib.sha1(label.encode("utf-8")).hexdigest()[:16]


def import_entries(recognizer: Recognizer, gallery: Gallery, entries: list[ListEntry], *, limits: LimitsSettings,
                   options: RecognizeOptions, detect: bool, advance: Callable[[], None] = lambda: None) -> ImportReport:
    """Register every listed image; a bad image is reported and skipped, never aborts the import."""
    report = ImportReport()
    max_bytes = int(limits.max_upload_mb * (1 << 20))
    for entry in entries:
        try:
            data = _read_bounded(Path(entry.path), max_bytes)
            request = Registration(data=data, label=entry.label, item_id=item_id_for_label(entry.label), detect=detect)
            enrolment = register(recognizer, gallery, request, limits=limits, options=options)
        except (OSError, ServiceError) as error:
            message = getattr(error, "message", None) or str(error)
            logger.warning("skipped %s: %s", entry.path, message)
            report.failed.append((str(entry.path), message))
        else:
            if enrolment.created_image:
                report.added += 1
            else:
                report.unchanged += 1
        advance()
    return report


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refused before reading when it is larger than an upload may be."""
    size = path.stat().st_size
    if size > max_bytes:
        raise PayloadTooLarge(f"{size} bytes is over the upload limit of {max_bytes} bytes "
                              "(SHITU_LIMITS__MAX_UPLOAD_MB)", limit_bytes=max_bytes)
    return path.read_bytes()


def stored_image_embedder(embedder: Embedder, limits: LimitsSettings) -> EmbedFunction:
    """For ``reembed_gallery``: the stored bytes and box of each image → its embedding with a new model."""

    def embed(pairs: list[tuple[bytes, Box | None]]) -> NDArray[np.float32]:
        crops = []
        for data, box in pairs:
            image = decode_image(data, DecodeLimits.of(limits))
            crops.append(crop(image.pixels, image.from_original(box)) if box else image.pixels)
        return embedder.embed(crops)

    return embed
