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
from service.errors import ServiceError
from service.gallery import EmbedFunction, Gallery, ListEntry
from service.inference.embedder import Embedder
from service.inference.image import crop, decode_image
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
    for entry in entries:
        try:
            data = Path(entry.path).read_bytes()
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


def stored_image_embedder(embedder: Embedder, limits: LimitsSettings) -> EmbedFunction:
    """For ``reembed_gallery``: the stored bytes and box of each image → its embedding with a new model."""

    def embed(pairs: list[tuple[bytes, Box | None]]) -> NDArray[np.float32]:
        crops = []
        for data, box in pairs:
            pixels = decode_image(data, limits.decode).pixels
            crops.append(crop(pixels, box) if box else pixels)
        return embedder.embed(crops)

    return embed
