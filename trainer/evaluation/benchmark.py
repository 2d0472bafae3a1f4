"""Run the benchmark tracks with the models and settings the service would use, and collect one report."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.config import Settings
from service.gallery import Gallery
from service.inference.models import load_recognizer
from service.inference.pipeline import RecognizeOptions, Recognizer
from trainer.evaluation.breakdown import GroupRecall, recall_by_group
from trainer.evaluation.data import BenchmarkDataError, BenchmarkSplit, load_split
from trainer.evaluation.detector_track import (
    DetectionsByPath,
    DetectorResult,
    detect_photos,
    evaluate_detector,
    split_photos,
)
from trainer.evaluation.end_to_end import SceneOutcome, build_gallery, recall_at, recognize_scenes
from trainer.evaluation.gallery_threshold import GalleryThresholdPoint, gallery_scores, gallery_threshold_points
from trainer.evaluation.open_set import OpenSetPoint, OpenSetQuery, balanced, calibrate, open_set_curve, point_at
from trainer.evaluation.recognizer_track import RecognizerResult, evaluate_recognizer

# (task description, total steps) → a function to call after each step.
ProgressHook = Callable[[str, int], Callable[[], None]]


def no_progress(_description: str, _total: int) -> Callable[[], None]:
    return lambda: None


class Track(str, Enum):
    recognizer = "recognizer"
    detector = "detector"
    end_to_end = "end-to-end"


@dataclass(frozen=True)
class BenchmarkConfig:
    data: Path
    split: str = "test"
    calibration_split: str = "val"  # where the shipped min_score is chosen; the split itself is optimistic
    tracks: tuple[Track, ...] = tuple(Track)
    limit: int | None = None
    precision_target: float | None = None  # None: calibrate to the best F1


@dataclass(frozen=True)
class Calibration:
    split: str
    rule: str
    chosen: OpenSetPoint  # on the calibration split
    on_evaluation_split: OpenSetPoint  # the same min_score on the evaluated split


@dataclass(frozen=True)
class EndToEndResult:
    scenes: int
    known_scenes: int
    recall1: float
    recall5: float
    open_set_queries: int  # half of them with the main object's class absent from the gallery
    at_default: OpenSetPoint  # at the service's min_score (settings, else the embedder manifest)
    calibration: Calibration | None
    curve: list[OpenSetPoint]
    outcomes: list[SceneOutcome]
    # min_score per candidate source of the answers (detector box, whole image, window), calibrated on the
    # calibration split's answers of that source; and all of them together on the evaluated split
    source_calibrations: dict[str, Calibration] = field(default_factory=dict)
    at_source_calibrated: OpenSetPoint | None = None
    # recall@1 of the scenes whose main object is in the gallery, per family and package kind of that object
    breakdown: dict[str, dict[str, GroupRecall]] = field(default_factory=dict)
    gallery_thresholds: list[GalleryThresholdPoint] = field(default_factory=list)  # per quantile, this split


@dataclass
class BenchmarkReport:
    config: BenchmarkConfig
    embedder_model: str
    detector_model: str | None
    options: RecognizeOptions
    recognizer: RecognizerResult | None = None
    recognizer_calibration: Calibration | None = None  # min_score for whole photos of one product (crops)
    detector: DetectorResult | None = None
    end_to_end: EndToEndResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Everything but the per-scene outcomes, JSON-ready."""
        end_to_end = None
        if self.end_to_end is not None:
            end_to_end = {key: value for key, value in asdict(self.end_to_end).items() if key != "outcomes"}
        return {
            "data": str(self.config.data),
            "split": self.config.split,
            "limit": self.config.limit,
            "models": {"embedder": self.embedder_model, "detector": self.detector_model},
            "options": {key: getattr(value, "value", value) for key, value in asdict(self.options).items()},
            "recognizer": self.recognizer.as_dict() if self.recognizer else None,
            "recognizer_calibration": asdict(self.recognizer_calibration) if self.recognizer_calibration else None,
            "detector": self.detector.as_dict() if self.detector else None,
            "end_to_end": end_to_end,
            "seconds": self.seconds,
        }


def run_benchmark(config: BenchmarkConfig, settings: Settings, progress: ProgressHook = no_progress,
                  detections: DetectionsByPath | None = None) -> BenchmarkReport:
    """Loads the models the settings name and runs the chosen tracks on ``config.split``.

    ``detections``: the split's photos already detected by the same detector (``shitu eval --record-detector``
    calibrated on them); the detector track then reads them instead of detecting every photo again.
    """
    # Data first: a missing or broken split fails before any model loads.
    split = load_split(config.data, config.split, limit=config.limit)
    calibration_data = None
    if Track.end_to_end in config.tracks:
        calibration_data = _calibration_data(config)
    elif Track.recognizer in config.tracks:
        # The recognizer alone reports its calibrated min_score when the calibration split is there.
        with contextlib.suppress(BenchmarkDataError):
            calibration_data = _calibration_data(config)
    recognizer = load_recognizer(settings.models, settings.runtime, settings.pipeline)
    options = recognizer.default_options(settings.pipeline)
    detector = recognizer.detector
    report = BenchmarkReport(config, recognizer.embedder.manifest.model_id,
                             detector.manifest.model_id if detector else None, options)
    if Track.recognizer in config.tracks:
        clock = time.perf_counter()
        advance = progress("recognizer: crops", len(split.gallery) + len(split.queries) + len(split.open_set_queries))
        report.recognizer = evaluate_recognizer(recognizer.embedder, split, settings.limits, options.min_score, advance)
        report.recognizer_calibration = _recognizer_calibration(recognizer, report.recognizer, calibration_data,
                                                                config, settings, options, progress)
        report.seconds["recognizer"] = round(time.perf_counter() - clock, 2)
    if Track.detector in config.tracks and detector is not None:
        clock = time.perf_counter()
        if detections is None:
            advance = progress("detector: scenes", len(split_photos(split)))
            detections = detect_photos(detector, split, settings.limits, advance)
        report.detector = evaluate_detector(detections, split, options)
        report.seconds["detector"] = round(time.perf_counter() - clock, 2)
    if Track.end_to_end in config.tracks:
        clock = time.perf_counter()
        report.end_to_end = _end_to_end(recognizer, split, calibration_data, config, settings, options, progress)
        report.seconds["end_to_end"] = round(time.perf_counter() - clock, 2)
    return report


def _calibration_data(config: BenchmarkConfig) -> BenchmarkSplit | None:
    """The split min_score is calibrated on; None when it is the evaluated split itself."""
    if config.calibration_split == config.split:
        return None
    try:
        return load_split(config.data, config.calibration_split, limit=config.limit)
    except BenchmarkDataError as error:
        hint = f"calibrating min_score on {config.calibration_split!r} (--calibration-split)"
        raise BenchmarkDataError(f"{error}; needed for {hint}") from error


def _recognizer_calibration(recognizer: Recognizer, result: RecognizerResult, calibration_data: BenchmarkSplit | None,
                            config: BenchmarkConfig, settings: Settings, options: RecognizeOptions,
                            progress: ProgressHook) -> Calibration | None:
    """min_score from the calibration split's crops: what a service without a detector sees (one product a photo)."""
    if not result.open_set or (calibration_data is None and config.calibration_split != config.split):
        return None
    calibration_queries = result.open_set
    if calibration_data is not None:
        total = len(calibration_data.gallery) + len(calibration_data.queries) + len(calibration_data.open_set_queries)
        advance = progress(f"recognizer ({calibration_data.name}): crops", total)
        calibration_queries = evaluate_recognizer(recognizer.embedder, calibration_data, settings.limits,
                                                  options.min_score, advance).open_set
    return _calibration(open_set_curve(calibration_queries), result.open_set, config)


def _calibration(curve: list[OpenSetPoint], queries: list[OpenSetQuery], config: BenchmarkConfig) -> Calibration | None:
    chosen = calibrate(curve, config.precision_target)
    if chosen is None:
        return None
    rule = "best F1" if config.precision_target is None else f"precision >= {config.precision_target}"
    return Calibration(config.calibration_split, rule, chosen, point_at(queries, chosen.min_score))


def _end_to_end(recognizer: Recognizer, split: BenchmarkSplit, calibration_data: BenchmarkSplit | None,
                config: BenchmarkConfig, settings: Settings, options: RecognizeOptions,
                progress: ProgressHook) -> EndToEndResult:
    outcomes, nearest_other = _recognize_split(recognizer, split, settings, options, progress)
    queries = balanced([outcome.as_query() for outcome in outcomes])
    curve = open_set_curve(queries)
    calibration_curve = curve
    if calibration_data is not None:
        calibration_outcomes, _ = _recognize_split(recognizer, calibration_data, settings, options, progress)
        calibration_curve = open_set_curve(balanced([outcome.as_query() for outcome in calibration_outcomes]))
    calibration = _calibration(calibration_curve, queries, config)
    calibration_queries = queries if calibration_data is None else balanced(
        [outcome.as_query() for outcome in calibration_outcomes])
    by_source = _source_calibrations(calibration_queries, queries, config)
    at_source_calibrated = None
    if by_source and calibration is not None:
        thresholds = {source: item.chosen.min_score for source, item in by_source.items()}
        at_source_calibrated = point_at(queries, calibration.chosen.min_score, thresholds)
    known = sum(outcome.known for outcome in outcomes)
    found = [outcome for outcome in outcomes if outcome.known]
    breakdown = recall_by_group([split.class_groups.get(outcome.truth, {}) for outcome in found],
                                [outcome.found_within(1) for outcome in found])
    return EndToEndResult(
        scenes=len(outcomes),
        known_scenes=known,
        recall1=recall_at(outcomes, 1),
        recall5=recall_at(outcomes, 5),
        open_set_queries=len(queries),
        at_default=point_at(queries, options.min_score),
        calibration=calibration,
        curve=curve,
        outcomes=outcomes,
        source_calibrations=by_source,
        at_source_calibrated=at_source_calibrated,
        breakdown=breakdown,
        gallery_thresholds=gallery_threshold_points(nearest_other, queries),
    )


SOURCE_CALIBRATION_MIN_QUERIES = 20  # fewer answers of one source: it keeps the overall min_score


def _source_calibrations(calibration_queries: list[OpenSetQuery], queries: list[OpenSetQuery],
                         config: BenchmarkConfig) -> dict[str, Calibration]:
    """One min_score per candidate source, each from the balanced answers of that source."""
    found: dict[str, Calibration] = {}
    for source in sorted({query.source for query in calibration_queries if query.source}):
        own = balanced([query for query in calibration_queries if query.source == source])
        if len(own) < SOURCE_CALIBRATION_MIN_QUERIES:
            continue
        evaluated = [query for query in queries if query.source == source]
        calibration = _calibration(open_set_curve(own), evaluated, config)
        if calibration is not None:
            found[source] = calibration
    return found


def _recognize_split(recognizer: Recognizer, split: BenchmarkSplit, settings: Settings, options: RecognizeOptions,
                     progress: ProgressHook) -> tuple[list[SceneOutcome], NDArray[np.float32]]:
    """The scenes' outcomes and the registered gallery's nearest-other-item scores (its own threshold)."""
    with tempfile.TemporaryDirectory(prefix="shitu-eval-gallery-") as directory:
        advance = progress(f"end to end ({split.name}): gallery", len(split.gallery))
        gallery = build_gallery(recognizer, split.gallery, Path(directory), settings, options, advance)
        try:
            advance = progress(f"end to end ({split.name}): scenes", len(split.scenes))
            outcomes = recognize_scenes(recognizer, gallery, split.scenes, settings, options, advance)
            return outcomes, gallery_scores(*gallery_embeddings(gallery))
        finally:
            gallery.close()


def gallery_embeddings(gallery: Gallery) -> tuple[NDArray[np.float32], list[str]]:
    item_ids, vectors = gallery.embeddings()
    return vectors, item_ids
