"""The PP-ShiTu pipeline: detect → candidate boxes (+ whole image) → one embedder batch → gallery → NMS."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from service.box import Box
from service.config import PipelineSettings, WholeImage
from service.errors import InvalidRequest
from service.gallery import GalleryMatch
from service.inference.detector import Detector
from service.inference.embedder import Embedder
from service.inference.image import DecodeLimits, RGBImage, crop, decode_image
from service.inference.manifest import DetectorDefaults, EmbedderDefaults
from service.inference.selection import select_detections, suppress
from service.inference.types import Detection, ObjectSource, Recognition, RecognizedObject
from service.inference.windows import sliding_windows

Search = Callable[[NDArray[np.float32], int], list[list[GalleryMatch]]]


@dataclass(frozen=True, slots=True)
class RecognizeOptions:
    """One request's knobs: :class:`PipelineSettings` (the one holder of the defaults) resolved against the
    models' manifests, then a request's overrides. No defaults of its own."""

    detection_threshold: float
    max_detections: int
    main_area_weight: float  # the detector manifest's main-object order (selection.select_detections)
    min_score: float
    whole_image: WholeImage
    top_k: int
    nms_iou: float
    max_objects: int
    include_unknown: bool
    sliding_windows: bool
    window_scales: tuple[float, ...]
    # The embedder manifest's calibrated min_score per candidate source; an explicit min_score (settings or
    # request) replaces them all.
    source_min_scores: tuple[tuple[ObjectSource, float], ...]

    @classmethod
    def resolve(cls, settings: PipelineSettings, detector: DetectorDefaults | None = None,
                embedder: EmbedderDefaults | None = None) -> RecognizeOptions:
        """Settings override the manifests; a missing manifest section means PP-ShiTu's values."""
        detector = detector or DetectorDefaults()
        embedder = embedder or EmbedderDefaults()
        by_source = () if settings.min_score is not None else tuple(embedder.source_match_thresholds.items())
        return cls(
            detection_threshold=_first(settings.detection_threshold, detector.score_threshold),
            max_detections=int(_first(settings.max_detections, detector.max_detections)),
            main_area_weight=detector.main_object_area_weight,
            min_score=_first(settings.min_score, embedder.match_threshold),
            whole_image=settings.whole_image,
            top_k=settings.top_k,
            nms_iou=settings.nms_iou,
            max_objects=settings.max_objects,
            include_unknown=settings.include_unknown,
            sliding_windows=settings.sliding_windows,
            window_scales=settings.window_scales,
            source_min_scores=by_source,
        )

    def min_score_for(self, source: ObjectSource) -> float:
        return next((score for known, score in self.source_min_scores if known is source), self.min_score)

    def with_min_score(self, min_score: float) -> RecognizeOptions:
        """One threshold for every source (what a request's or the settings' min_score means)."""
        return replace(self, min_score=min_score, source_min_scores=())


@dataclass(frozen=True, slots=True)
class Candidate:
    box: Box
    source: ObjectSource
    score: float


class Recognizer:
    """Runs the pipeline on decoded RGB images. One instance per worker thread (models are not thread-safe)."""

    def __init__(self, embedder: Embedder, detector: Detector | None) -> None:
        self.embedder = embedder
        self.detector = detector

    def clone(self) -> Recognizer:
        return Recognizer(self.embedder.clone(), self.detector.clone() if self.detector else None)

    def default_options(self, settings: PipelineSettings) -> RecognizeOptions:
        """Settings override the manifests; the manifests hold each model's own thresholds."""
        # Without a detector its two numbers are never used; PP-ShiTu's values only fill the fields.
        detector = self.detector.manifest.detector if self.detector else None
        return RecognizeOptions.resolve(settings, detector, self.embedder.manifest.embedder)

    def recognize(self, image: RGBImage, options: RecognizeOptions, search: Search) -> Recognition:
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        candidates = self._candidates(image, options)
        timings["detect_ms"] = _elapsed_ms(clock)
        candidates = [candidate for candidate in candidates if candidate.box.width > 0 and candidate.box.height > 0]

        clock = time.perf_counter()
        embeddings = self.embedder.embed([crop(image, candidate.box) for candidate in candidates])
        timings["embed_ms"] = _elapsed_ms(clock)

        clock = time.perf_counter()
        matches = search(embeddings, options.top_k) if len(candidates) else []
        timings["search_ms"] = _elapsed_ms(clock)

        objects = _results(candidates, matches, options)
        return Recognition(width=image.shape[1], height=image.shape[0], objects=objects, timings_ms=timings)

    def enrolment_embedding(self, image: RGBImage, *, box: Box | None, detect: bool,
                            options: RecognizeOptions) -> tuple[Box, NDArray[np.float32]]:
        """The box a gallery image is embedded from (given, else the first detection in the main-object order, else
        the whole image)."""
        if box is None:
            box = Box(0, 0, image.shape[1], image.shape[0])
            if detect and self.detector is not None:
                chosen = _selected(self.detector, image, options)[:1]
                if chosen and chosen[0].box.width > 0 and chosen[0].box.height > 0:
                    box = chosen[0].box
        elif not (0 <= box.x1 < box.x2 <= image.shape[1] and 0 <= box.y1 < box.y2 <= image.shape[0]):
            raise InvalidRequest(
                f"bbox {list(box.as_tuple())} is not inside the {image.shape[1]}x{image.shape[0]} image "
                "(x1 < x2 <= width, y1 < y2 <= height)"
            )
        return box, self.embedder.embed([crop(image, box)])[0]

    def _candidates(self, image: RGBImage, options: RecognizeOptions) -> list[Candidate]:
        height, width = image.shape[:2]
        found: list[Candidate] = []
        if self.detector is not None:
            found = [Candidate(d.box, ObjectSource.detector, d.score) for d in _selected(self.detector, image, options)]
        elif options.whole_image is WholeImage.never and not options.sliding_windows:
            raise InvalidRequest("whole_image=never needs a detector or sliding_windows, and this service has no "
                                 "detector")
        if options.sliding_windows:
            found += [Candidate(box, ObjectSource.window, 1.0) for box in sliding_windows(width, height,
                                                                                         options.window_scales)]
        whole = options.whole_image is WholeImage.always or (options.whole_image is WholeImage.fallback and not found)
        if whole or (self.detector is None and not options.sliding_windows):
            found.append(Candidate(Box(0, 0, width, height), ObjectSource.whole_image, 1.0))
        return found


def _selected(detector: Detector, image: RGBImage, options: RecognizeOptions) -> list[Detection]:
    """The detector's boxes PP-ShiTu keeps, main object first."""
    return select_detections(detector.detect(image), max_detections=options.max_detections,
                             threshold=options.detection_threshold, main_area_weight=options.main_area_weight)


def recognize_bytes(recognizer: Recognizer, data: bytes, options: RecognizeOptions, search: Search, *,
                    limits: DecodeLimits) -> Recognition:
    """Decode (with the size guards) and recognize; boxes in original pixels; decode time joins the timings."""
    clock = time.perf_counter()
    image = decode_image(data, limits)
    decode_ms = _elapsed_ms(clock)
    result = recognizer.recognize(image.pixels, options, search)
    if image.reduced:
        objects = [replace(found, box=image.to_original(found.box)) for found in result.objects]
        result = replace(result, width=image.original_width, height=image.original_height, objects=objects)
    return replace(result, timings_ms={"decode_ms": decode_ms, **result.timings_ms})


def _results(candidates: list[Candidate], matches: list[list[GalleryMatch]],
             options: RecognizeOptions) -> list[RecognizedObject]:
    known = [index for index, row in enumerate(matches)
             if row and row[0].score >= options.min_score_for(candidates[index].source)]
    kept_known = [known[i] for i in suppress([candidates[i].box for i in known],
                                             [matches[i][0].score for i in known], iou_threshold=options.nms_iou)]
    objects = [_recognized(candidates[i], matches[i], matched=True) for i in kept_known]
    if options.include_unknown:
        # Unmatched detector boxes are still products on the shelf; the whole image alone is not an object.
        unknown = [i for i in range(len(candidates))
                   if i not in known and candidates[i].source is ObjectSource.detector]
        kept_unknown = suppress([candidates[i].box for i in unknown], [candidates[i].score for i in unknown],
                                iou_threshold=options.nms_iou, kept=[objects_box.box for objects_box in objects])
        objects += [_recognized(candidates[unknown[i]], matches[unknown[i]], matched=False) for i in kept_unknown]
    return objects[: options.max_objects]


def _recognized(candidate: Candidate, row: list[GalleryMatch], *, matched: bool) -> RecognizedObject:
    return RecognizedObject(box=candidate.box, source=candidate.source, detection_score=candidate.score,
                            match=row[0] if matched else None, candidates=row)


def _first(*values: float | int | None) -> float:
    return next(float(value) for value in values if value is not None)


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)
