"""``shitu eval --record-detector``'s sweeps: the score threshold by box F1, then the main-object order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.box import Box
from service.inference.types import Detection
from trainer.evaluation.data import BenchmarkSplit, Scene
from trainer.evaluation.detector_calibration import calibrate_selection

LARGE, SMALL = (10, 10, 110, 110), (150, 10, 180, 40)


def _scene(index: int, boxes: list[tuple[int, int, int, int]]) -> Scene:
    array = np.array(boxes, dtype=np.float32)
    return Scene(image_id=index, path=Path(f"{index}.jpg"), boxes=array, crowd=np.zeros(len(boxes), dtype=bool),
                 main_box=array[0], main_label="main", known=True)


def _found(box: tuple[int, int, int, int], score: float) -> Detection:
    return Detection(box=Box(*box), score=score, class_id=0, label="product")


def _split(scenes: list[Scene]) -> BenchmarkSplit:
    return BenchmarkSplit(name="val", gallery=[], queries=[], open_set_queries=[], scenes=scenes)


def test_a_large_main_product_outscored_by_a_small_one_gets_an_area_weight() -> None:
    split = _split([_scene(index, [LARGE, SMALL]) for index in range(4)])
    # two photos where the small product scores a little higher than the large (main) one, two where it does not
    detections = [[_found(LARGE, 0.80), _found(SMALL, 0.85)], [_found(LARGE, 0.78), _found(SMALL, 0.90)],
                  [_found(LARGE, 0.9), _found(SMALL, 0.7)], [_found(LARGE, 0.95), _found(SMALL, 0.8)]]

    calibration = calibrate_selection(split, detections, max_detections=5)

    assert calibration.score_threshold <= 0.7 and calibration.f1 == 1.0  # every box right: all of them kept
    assert calibration.main_object_hit_rate_by_score == 0.5
    assert calibration.main_object_hit_rate == 1.0
    # the smallest weight that does it: 0.9 x (900 / 10000)^w < 0.78 needs w > 0.06
    assert calibration.main_area_weight == 0.125


def test_scores_that_already_put_the_main_product_first_keep_the_order_by_score() -> None:
    split = _split([_scene(index, [LARGE, SMALL]) for index in range(3)])
    detections = [[_found(LARGE, 0.9), _found(SMALL, 0.6)] for _ in range(3)]

    calibration = calibrate_selection(split, detections, max_detections=5)

    assert calibration.main_area_weight == 0.0
    assert calibration.main_object_hit_rate == calibration.main_object_hit_rate_by_score == 1.0
