"""The recognition pipeline on real models: candidate rules, whole-image modes, enrolment boxes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.box import Box
from service.config import GallerySettings, PipelineSettings, RuntimeSettings, WholeImage
from service.errors import InvalidRequest
from service.gallery import Gallery
from service.inference.models import load_detector, load_embedder
from service.inference.pipeline import RecognizeOptions, Recognizer
from service.inference.selection import overlap
from service.inference.types import ObjectSource
from tests.service.images import cat, coffee, encode, rocket

RUNTIME = RuntimeSettings(cpu_threads=1)


@pytest.fixture(scope="module")
def recognizer(model_store_dir: Path) -> Recognizer:
    embedder = load_embedder(model_store_dir / "embedder" / "default", RUNTIME, max_batch_size=4)
    return Recognizer(embedder, load_detector(model_store_dir / "detector" / "default", RUNTIME))


@pytest.fixture
def gallery(tmp_path: Path, recognizer: Recognizer) -> Iterator[Gallery]:
    embedder = recognizer.embedder
    opened = Gallery.open(GallerySettings(path=tmp_path / "g"), embedding_dim=512, model_id=embedder.manifest.model_id)
    for label, photo in (("coffee", coffee()), ("cat", cat()), ("rocket", rocket())):
        opened.add_image(label=label, embedding=embedder.embed([photo])[0], image_bytes=encode(photo),
                         media_type="image/jpeg", item_id=label)
    yield opened
    opened.close()


def _options(recognizer: Recognizer, **changes: Any) -> RecognizeOptions:
    return replace(recognizer.default_options(PipelineSettings()), **changes)


def test_defaults_come_from_the_manifests(recognizer: Recognizer) -> None:
    options = recognizer.default_options(PipelineSettings())
    overridden = recognizer.default_options(PipelineSettings(min_score=0.3, max_detections=2))

    assert (options.detection_threshold, options.max_detections, options.min_score) == (0.2, 5, 0.5)
    assert (overridden.min_score, overridden.max_detections) == (0.3, 2)


def test_whole_image_modes(recognizer: Recognizer, gallery: Gallery) -> None:
    image = coffee()

    # No result NMS here: a detector box that covers most of the photo could otherwise outscore the whole image.
    always = recognizer.recognize(image, _options(recognizer, whole_image=WholeImage.always, nms_iou=1.0),
                                  gallery.search)
    never = recognizer.recognize(image, _options(recognizer, whole_image=WholeImage.never, nms_iou=1.0),
                                 gallery.search)
    quiet_detector = _options(recognizer, whole_image=WholeImage.fallback, detection_threshold=0.999)
    fallback = recognizer.recognize(image, quiet_detector, gallery.search)

    assert any(found.source is ObjectSource.whole_image for found in always.objects)
    assert all(found.source is ObjectSource.detector for found in never.objects) and never.objects
    assert [found.source for found in fallback.objects] == [ObjectSource.whole_image]
    assert fallback.objects[0].match is not None and fallback.objects[0].match.item_id == "coffee"


def test_detector_boxes_are_capped_and_results_do_not_overlap(recognizer: Recognizer, gallery: Gallery) -> None:
    options = _options(recognizer, max_detections=1, min_score=-1.0, nms_iou=0.05)

    result = recognizer.recognize(rocket(), options, gallery.search)

    detector_objects = [found for found in result.objects if found.source is ObjectSource.detector]
    assert len(detector_objects) <= 1 and all(found.match is not None for found in result.objects)
    boxes = [found.box for found in result.objects]
    assert all(overlap(a, b) <= 0.05 for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_without_a_detector_the_whole_image_is_the_only_candidate(recognizer: Recognizer, gallery: Gallery) -> None:
    whole_only = Recognizer(recognizer.embedder, None)

    result = whole_only.recognize(cat(), _options(recognizer), gallery.search)

    assert [(found.source, found.match.item_id if found.match else None) for found in result.objects] == [
        (ObjectSource.whole_image, "cat")
    ]
    with pytest.raises(InvalidRequest, match="needs a detector"):
        whole_only.recognize(cat(), _options(recognizer, whole_image=WholeImage.never), gallery.search)


def test_enrolment_uses_the_given_box_else_the_best_detection(recognizer: Recognizer) -> None:
    image = rocket()
    options = _options(recognizer)

    given, given_embedding = recognizer.enrolment_embedding(image, box=Box(10, 20, 110, 220), detect=True,
                                                            options=options)
    detected, _ = recognizer.enrolment_embedding(image, box=None, detect=True, options=options)
    whole, _ = recognizer.enrolment_embedding(image, box=None, detect=False, options=options)

    assert given == Box(10, 20, 110, 220)
    np.testing.assert_allclose(given_embedding, recognizer.embedder.embed([image[20:220, 10:110]])[0], atol=1e-5)
    best = max(recognizer.detector.detect(image), key=lambda detection: detection.score)  # type: ignore[union-attr]
    assert detected == best.box
    assert whole == Box(0, 0, image.shape[1], image.shape[0])
    with pytest.raises(InvalidRequest, match="not inside"):
        recognizer.enrolment_embedding(image, box=Box(0, 0, image.shape[1] + 1, 10), detect=False, options=options)
