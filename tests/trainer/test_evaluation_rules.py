"""The benchmark's rules by hand: open-set counting and calibration, the main-object hit, the chosen answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.box import Box
from service.config import PipelineSettings
from service.gallery import GalleryMatch
from service.inference.pipeline import RecognizeOptions
from service.inference.types import Detection, ObjectSource, Recognition, RecognizedObject
from tests.trainer.evaluation_benchmark import ABSENT, KNOWN, write_benchmark
from trainer.evaluation.data import BenchmarkDataError, Scene, load_split
from trainer.evaluation.detector_track import main_object_hits
from trainer.evaluation.end_to_end import hard_failures, recall_at, scene_outcome
from trainer.evaluation.open_set import OpenSetQuery, balanced, calibrate, open_set_curve, point_at

QUERIES = [
    OpenSetQuery("a", known=True, predicted="a", score=0.9),
    OpenSetQuery("b", known=True, predicted="c", score=0.8),  # a wrong label: a false match when accepted
    OpenSetQuery("x", known=False, predicted="a", score=0.7),
    OpenSetQuery("y", known=False, predicted=None, score=None),  # nothing returned: never matched
]


def test_open_set_points_by_hand() -> None:
    strict = point_at(QUERIES, 0.85)
    assert (strict.matched, strict.precision, strict.recall, strict.false_accept_rate) == (1, 1.0, 0.5, 0.0)
    middle = point_at(QUERIES, 0.75)
    assert (middle.matched, middle.precision, middle.recall) == (2, 0.5, 0.5)
    loose = point_at(QUERIES, 0.6)
    assert loose.matched == 3 and loose.precision == pytest.approx(1 / 3) and loose.false_accept_rate == 0.5
    assert loose.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    nothing = point_at(QUERIES, 0.95)
    assert (nothing.matched, nothing.precision, nothing.recall, nothing.f1) == (0, 1.0, 0.0, 0.0)


def test_the_curve_only_loses_matches_as_the_threshold_rises() -> None:
    rng = np.random.default_rng(3)
    queries = [OpenSetQuery(str(i % 5), known=bool(i % 2), predicted=str(rng.integers(5)), score=float(score))
               for i, score in enumerate(rng.uniform(0, 1, 200))]
    curve = open_set_curve(queries)
    assert [point.min_score for point in curve][:3] == [0.0, 0.005, 0.01] and curve[-1].min_score == 1.0
    for lower, higher in zip(curve, curve[1:], strict=False):
        assert higher.matched <= lower.matched and higher.recall <= lower.recall
        assert higher.false_accept_rate <= lower.false_accept_rate


def test_calibration_best_f1_and_precision_target() -> None:
    curve = open_set_curve(QUERIES, thresholds=[0.6, 0.75, 0.85, 0.95])
    assert calibrate(curve).min_score == 0.85  # F1 2/3 beats 1/2 and 0.4
    assert calibrate(curve, precision_target=0.5).min_score == 0.75  # the most recall at precision ≥ 0.5
    assert calibrate(curve, precision_target=1.0).min_score == 0.85
    # 0.95 has precision 1 only because nothing is matched: it never qualifies.
    assert calibrate(open_set_curve(QUERIES, thresholds=[0.95]), precision_target=1.0) is None
    plateau = open_set_curve(QUERIES, thresholds=[0.81, 0.82, 0.83, 0.84, 0.85])
    assert calibrate(plateau).min_score == 0.83  # equal F1: the middle of the plateau


def test_balanced_takes_as_many_gallery_queries_as_absent_ones() -> None:
    chosen = balanced(QUERIES + [OpenSetQuery("d", known=True, predicted="d", score=0.99)])
    assert [query.truth for query in chosen] == ["a", "b", "x", "y"]


def _detection(box: tuple[int, int, int, int], score: float) -> Detection:
    return Detection(Box(*box), score, 0, "foreground")


def test_main_object_hit_follows_pp_shitu_selection() -> None:
    options = RecognizeOptions.resolve(PipelineSettings(detection_threshold=0.3, max_detections=2, min_score=0.5))
    main = np.array([100, 100, 200, 200], dtype=np.float32)
    on_main, elsewhere = _detection((105, 95, 200, 210), 0.6), _detection((0, 0, 50, 50), 0.9)
    assert main_object_hits([elsewhere, on_main], main, options) == (False, True)
    assert main_object_hits([on_main, elsewhere], main, options) == (False, True)  # best score first, not order
    assert main_object_hits([elsewhere, _detection((105, 95, 200, 210), 0.95)], main, options) == (True, True)
    assert main_object_hits([elsewhere, _detection((105, 95, 200, 210), 0.2)], main, options) == (False, False)
    # The best max_detections come first, the threshold after: a third box is never looked at.
    crowded = [elsewhere, _detection((0, 0, 40, 40), 0.8), on_main]
    assert main_object_hits(crowded, main, options) == (False, False)
    half = _detection((100, 100, 150, 200), 0.7)  # IoU exactly 0.5
    assert main_object_hits([half], main, options) == (True, True)


def _object(box: tuple[int, int, int, int], labels: list[str], score: float, matched: bool) -> RecognizedObject:
    candidates = [GalleryMatch(f"item-{label}", label, f"image-{label}", score - 0.1 * rank)
                  for rank, label in enumerate(labels)]
    return RecognizedObject(Box(*box), ObjectSource.detector, 0.9, candidates[0] if matched else None, candidates)


def _scene(label: str, known: bool, box: tuple[int, int, int, int] = (100, 100, 200, 200)) -> Scene:
    return Scene(1, Path("scene.jpg"), np.array([box], np.float32), np.zeros(1, bool), np.array(box, np.float32),
                 label, known)


def test_the_answer_is_the_object_overlapping_the_main_object_most() -> None:
    recognition = Recognition(400, 400, [
        _object((0, 0, 400, 400), ["b", "a"], 0.9, matched=True),  # the whole frame: overlaps, but less
        _object((110, 100, 200, 200), ["c", "a", "d"], 0.4, matched=False),  # unmatched objects count too
        _object((300, 300, 400, 400), ["a"], 0.95, matched=True),  # no overlap at all
    ])
    outcome = scene_outcome(_scene("a", known=True), recognition)
    assert outcome.box == [110, 100, 200, 200] and outcome.overlap == pytest.approx(0.9)
    assert outcome.labels == ["c", "a", "d"] and outcome.score == pytest.approx(0.4)
    assert not outcome.found_within(1) and outcome.found_within(2)
    lonely = scene_outcome(_scene("a", known=True, box=(0, 0, 10, 10)),
                           Recognition(400, 400, [_object((300, 300, 400, 400), ["a"], 0.95, matched=True)]))
    assert lonely.box is None and lonely.predicted is None and lonely.score is None


def test_recall_counts_gallery_scenes_and_failures_put_confident_mistakes_first() -> None:
    recognition = Recognition(400, 400, [_object((100, 100, 200, 200), ["a", "b"], 0.8, matched=True)])
    right, wrong = scene_outcome(_scene("a", True), recognition), scene_outcome(_scene("b", True), recognition)
    accepted = scene_outcome(_scene("z", False), recognition)
    missed = scene_outcome(_scene("a", True), Recognition(400, 400, []))
    outcomes = [right, wrong, accepted, missed]
    assert recall_at(outcomes, 1) == pytest.approx(1 / 3) and recall_at(outcomes, 5) == pytest.approx(2 / 3)
    assert hard_failures(outcomes, min_score=0.5) == [wrong, accepted, missed]
    assert hard_failures(outcomes, min_score=0.9) == [wrong, missed]  # an absent class under min_score is right


def test_limit_keeps_both_halves_of_the_open_set(tmp_path: Path) -> None:
    data = write_benchmark(tmp_path, splits=("test",))
    full = load_split(data, "test")
    assert len(full.scenes) == len(KNOWN) + len(ABSENT) and full.gallery_labels == {str(i) for i in KNOWN}
    limited = load_split(data, "test", limit=1)
    assert [(scene.main_label, scene.known) for scene in limited.scenes] == [("0", True), ("4", False)]
    assert len(limited.queries) == 1 and len(limited.open_set_queries) == 1 and len(limited.gallery) == len(KNOWN)
    with pytest.raises(BenchmarkDataError, match="val_gallery_list.txt not found"):
        load_split(data, "val")

