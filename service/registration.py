"""Register a product photo: check the request, pick the box, embed, store. Shared by the API and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.box import Box
from service.config import LimitsSettings
from service.errors import RequestTimeout
from service.gallery import Enrolment, Gallery
from service.gallery.validation import check_box, check_box_inside, check_item_id, check_label, encode_metadata
from service.inference.image import DecodeLimits, decode_image
from service.inference.pipeline import RecognizeOptions, Recognizer


@dataclass(frozen=True, slots=True)
class Registration:
    """One image to register; checked before any model runs, so bad requests cost nothing."""

    data: bytes
    label: str
    item_id: str | None = None
    metadata: dict[str, Any] | None = None
    box: Box | None = None
    detect: bool = True

    def checked(self) -> Registration:
        if self.item_id is not None:
            check_item_id(self.item_id)
        if self.metadata is not None:
            encode_metadata(self.metadata)
        check_box(self.box)
        return Registration(self.data, check_label(self.label), self.item_id, self.metadata, self.box, self.detect)


def register(recognizer: Recognizer, gallery: Gallery, request: Registration, *,
             limits: LimitsSettings, options: RecognizeOptions,
             may_commit: Callable[[], bool] | None = None) -> Enrolment:
    """``may_commit`` is asked right before the write (a request whose timeout fired answers no)."""
    request = request.checked()
    image = decode_image(request.data, DecodeLimits.of(limits))
    if request.box is not None:
        check_box_inside(request.box, image.original_width, image.original_height)
    box, embedding = recognizer.enrolment_embedding(
        image.pixels,
        box=image.from_original(request.box) if request.box else None,
        detect=request.detect,
        options=options,
    )
    whole = box == Box(0, 0, image.width, image.height)
    box = image.to_original(box)
    if may_commit is not None and not may_commit():
        raise RequestTimeout("the request timed out before its image was stored; nothing was stored")
    return gallery.add_image(
        label=request.label,
        embedding=embedding,
        image_bytes=request.data,
        media_type=image.media_type,
        item_id=request.item_id,
        metadata=request.metadata,
        box=None if whole else box,
    )
