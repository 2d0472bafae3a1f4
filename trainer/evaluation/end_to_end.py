"""Track 3, end to end: register the gallery list into a fresh Gallery, then ``Recognizer.recognize`` every scene.

The answer for a scene is the returned object whose box overlaps the main object most (IoU > 0), matched or not
(the service returns unmatched detector boxes with their candidates too). Its top-1/top-5 candidate labels give
recall@1/5 over scenes whose main object is in the gallery; its top-1 score and label are the open-set query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from service.config import Settings
from service.gallery import Gallery, ListEntry
from service.importing import import_entries
from service.inference.pipeline import RecognizeOptions, Recognizer
from service.inference.types import Recognition, RecognizedObject
from trainer.detection.evaluate import coco_iou
from trainer.evaluation.data import BenchmarkDataError, Scene
from trainer.evaluation.open_set import OpenSetQuery
from trainer.evaluation.recognizer_track import read_pixels


@dataclass(frozen=True)
class SceneOutcome:
    path: str
    truth: str
    known: bool
    main_box: list[float]
    box: list[int] | None  # the chosen object's box; None when no returned object overlaps the main object
    labels: list[str]  # its distinct candidate labels, best first (at most top_k)
    score: float | None  # its top-1 score
    overlap: float  # IoU of the chosen box with the main object
    source: str | None = None  # the chosen object's candidate source

    @property
    def predicted(self) -> str | None:
        return self.labels[0] if self.labels else None

    def found_within(self, rank: int) -> bool:
        return self.truth in self.labels[:rank]

    def as_query(self) -> OpenSetQuery:
        return OpenSetQuery(truth=self.truth, known=self.known, predicted=self.predicted, score=self.score,
                            source=self.source)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def build_gallery(recognizer: Recognizer, entries: list[ListEntry], directory: Path, settings: Settings,
                  options: RecognizeOptions, advance: Callable[[], None] = lambda: None) -> Gallery:
    """A gallery in ``directory`` filled through the service's registration path (``shitu gallery import``)."""
    embedder = recognizer.embedder
    gallery_settings = settings.gallery.model_copy(update={"path": directory, "demo": None})
    gallery = Gallery.open(gallery_settings, embedding_dim=embedder.embedding_dim, model_id=embedder.manifest.model_id)
    report = import_entries(recognizer, gallery, entries, limits=settings.limits, options=options,
                            detect=settings.gallery.detect_on_enroll, advance=advance)
    if report.failed:
        gallery.close()
        path, message = report.failed[0]
        raise BenchmarkDataError(f"{len(report.failed)} gallery images could not be registered, e.g. {path}: {message}")
    return gallery


def recognize_scenes(recognizer: Recognizer, gallery: Gallery, scenes: list[Scene], settings: Settings,
                     options: RecognizeOptions, advance: Callable[[], None] = lambda: None) -> list[SceneOutcome]:
    outcomes = []
    for scene in scenes:
        recognition = recognizer.recognize(read_pixels(scene.path.read_bytes(), settings.limits), options,
                                           gallery.search)
        outcomes.append(scene_outcome(scene, recognition))
        advance()
    return outcomes


def scene_outcome(scene: Scene, recognition: Recognition) -> SceneOutcome:
    chosen, overlap = _best_overlap(recognition.objects, scene.main_box)
    return SceneOutcome(
        path=str(scene.path),
        truth=scene.main_label,
        known=scene.known,
        main_box=[float(value) for value in scene.main_box],
        box=list(chosen.box.as_tuple()) if chosen else None,
        labels=[match.label for match in chosen.candidates] if chosen else [],
        score=chosen.candidates[0].score if chosen else None,
        overlap=overlap,
        source=chosen.source.value if chosen else None,
    )


def recall_at(outcomes: list[SceneOutcome], rank: int) -> float:
    known = [outcome for outcome in outcomes if outcome.known]
    return sum(outcome.found_within(rank) for outcome in known) / len(known) if known else 0.0


def _best_overlap(objects: list[RecognizedObject], main_box: np.ndarray) -> tuple[RecognizedObject | None, float]:
    candidates = [item for item in objects if item.candidates]
    if not candidates:
        return None, 0.0
    boxes = np.array([item.box.as_tuple() for item in candidates], dtype=np.float32)
    overlaps = coco_iou(boxes, main_box[None], np.zeros(1, dtype=bool))[:, 0]
    best = int(np.argmax(overlaps))  # the first of equal overlaps: the service lists matched objects first
    return (candidates[best], float(overlaps[best])) if overlaps[best] > 0 else (None, 0.0)


def hard_failures(outcomes: list[SceneOutcome], min_score: float, count: int = 16) -> list[SceneOutcome]:
    """The worst mistakes at ``min_score``, most confident first: a wrong label for a gallery class, a match for
    an absent class; then gallery-class scenes where nothing overlapped the main object."""
    wrong = [item for item in outcomes if item.known and item.predicted is not None and item.predicted != item.truth]
    accepted = [item for item in outcomes if not item.known and item.score is not None and item.score >= min_score]
    missed = [item for item in outcomes if item.known and item.predicted is None]
    confident = sorted(wrong + accepted, key=lambda item: item.score or 0.0, reverse=True)
    return (confident + missed)[:count]
