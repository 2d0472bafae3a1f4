"""The shipped main-body detector in ``model_store/detector/default``, measured on freshly generated scenes.

CI-sized: ``shitu data synth`` on seed 1 with all three scene kinds (the detector was trained on seed 0's train
split with its own classes and backgrounds; the test split's are never trained on), then ``shitu eval``'s
detector track through the service's own loader. The thresholds sit a little under what was measured here;
the README quotes the full held-out test split. Then the photos of scikit-image with boxes drawn by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from service.config import ModelSettings, RuntimeSettings, Settings
from service.gallery.listfile import read_list_file
from service.inference.manifest import load_manifest
from service.inference.models import load_detector, load_recognizer
from service.inference.selection import select_detections
from service.inference.types import ObjectSource
from tests.generated_data import generate_benchmark
from trainer.detection.evaluate import coco_iou
from trainer.evaluation.benchmark import BenchmarkConfig, Track, run_benchmark
from trainer.evaluation.end_to_end import build_gallery
from trainer.synth.assets import default_assets_dir
from trainer.synth.demo import build_demo
from trainer.synth.generator import SynthOptions

STORE = Path(__file__).resolve().parents[1] / "model_store"
DEFAULT_DETECTOR = STORE / "detector" / "default"
BENCHMARK = SynthOptions(seed=1, classes=150, scenes_per_class=1, scene_size=320, shelf_share=0.5, empty_share=0.3)
# Measured on this benchmark with version 4 (30 test scenes, 15 shelves with 197 visible products, 9 empty photos;
# same seed and assets, same bytes): AP50 0.933, main-object hit 0.767, shelf recall 0.939, empty photos with a box
# 0.000, end-to-end recall@1 0.846 (26 scenes). Version 3 measured 0.928 / 0.700 / 0.919 / 0.111 / 0.808, version 2
# 0.934 / 0.733 / 0.817 / 0.000 / 0.846. The floors sit a little under.
FLOORS = {"ap50": 0.90, "main_object_hit_rate": 0.72, "shelf_recall": 0.90}
EMPTY_WITH_BOX_CEILING = 0.12
END_TO_END_RECALL1_FLOOR = 0.80
# Main object of each photo, drawn by hand (x1, y1, x2, y2 in pixels).
PHOTOS = {
    "coffee": (lambda: skimage.data.coffee(), (75, 15, 480, 390)),  # the cup on its saucer
    "astronaut": (lambda: skimage.data.astronaut(), (20, 15, 370, 512)),  # the astronaut
    "rocket": (lambda: skimage.data.rocket(), (298, 125, 345, 410)),  # the rocket on its pad
    "chelsea": (lambda: skimage.data.chelsea(), (0, 0, 451, 300)),  # the cat
    "motorcycle": (lambda: skimage.data.stereo_motorcycle()[0], (90, 60, 685, 450)),  # the motorcycle
}
# Trained on product cards and packages, the shipped detector (version 4) finds the coffee cup on its saucer (top box
# (54, 1, 485, 400), 0.57, IoU 0.88) and the cat, and misses these (measured top box, score, IoU with the hand box):
# for the astronaut a narrow box at the left edge (9, 0, 98, 269), 0.54, IoU 0.11; for the rocket no box above the
# threshold 0.525; for the motorcycle a box on the garage shelf (119, 0, 184, 115), 0.60, IoU 0.02 (version 3 missed
# the same three). The target is not met for them; strict xfail: the test fails the day a detector finds
# them, and then it must be removed.
MISSED_PHOTOS = {"astronaut", "rocket", "motorcycle"}


@pytest.fixture(scope="module")
def benchmark_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_benchmark(tmp_path_factory, "detector-benchmark", BENCHMARK)


@pytest.fixture(scope="module")
def report(benchmark_data: Path) -> dict:
    """``shitu eval --track detector --track end-to-end`` on the test split with the shipped models."""
    settings = Settings(models=ModelSettings(store=STORE), runtime=RuntimeSettings(cpu_threads=2))
    tracks = (Track.detector, Track.end_to_end)
    return run_benchmark(BenchmarkConfig(benchmark_data, "test", tracks=tracks), settings).as_dict()


def test_the_shipped_detector_finds_products_it_never_saw(report: dict) -> None:
    detector = report["detector"]
    assert detector["images"] >= 25 and detector["shelf_images"] >= 10 and detector["empty_images"] >= 5
    for name, floor in FLOORS.items():
        assert detector[name] >= floor, (name, detector)
    assert detector["empty_with_box_rate"] <= EMPTY_WITH_BOX_CEILING, detector


def test_with_the_detector_the_main_product_is_recognised(report: dict) -> None:
    assert report["models"]["detector"] == load_manifest(DEFAULT_DETECTOR).model_id
    assert report["end_to_end"]["recall1"] >= END_TO_END_RECALL1_FLOOR, report["end_to_end"]


def test_the_manifest_records_data_recipe_scores_and_calibrated_selection() -> None:
    manifest = load_manifest(DEFAULT_DETECTOR)
    assert manifest.architecture == "picodet_efficientnet_lite0" and manifest.preprocess.size == (320, 320)
    provenance = manifest.provenance
    assert {"data", "recipe", "validation", "benchmarks", "detector_calibration"} <= provenance.keys()
    # held-out scores per data set (`shitu eval --record`): the card scenes and the packaging ones
    assert {"data/det", "data/detpack"} <= provenance["benchmarks"].keys()
    assert all(item["split"] == "test" for item in provenance["benchmarks"].values())
    calibration = provenance["detector_calibration"]
    assert manifest.detector is not None and calibration["split"] == "val"
    assert manifest.detector.score_threshold == calibration["score_threshold"]
    assert manifest.detector.max_detections == calibration["max_detections"] >= 25  # a shelf holds up to 30
    # the main-object order: a weight only where it put the main product first more often than the score alone
    assert manifest.detector.main_object_area_weight == calibration["main_area_weight"]
    assert calibration["main_object_hit_rate"] >= calibration["main_object_hit_rate_by_score"]
    files = [path for path in DEFAULT_DETECTOR.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) < 20 * 2**20


@pytest.fixture(scope="module")
def shipped_detector():  # noqa: ANN201 - the service's Detector
    return load_detector(DEFAULT_DETECTOR, RuntimeSettings(cpu_threads=2, warmup=False))


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="not found by the shipped detector (see above)"))
    if name in MISSED_PHOTOS else name for name in PHOTOS
])
def test_scikit_image_photos_get_their_main_object_as_the_top_box(name: str, shipped_detector) -> None:  # noqa: ANN001
    load, truth = PHOTOS[name]
    manifest = shipped_detector.manifest
    selected = select_detections(shipped_detector.detect(np.ascontiguousarray(load())),
                                 max_detections=manifest.detector.max_detections,
                                 threshold=manifest.detector.score_threshold,
                                 main_area_weight=manifest.detector.main_object_area_weight)
    assert selected, f"{name}: no box"
    top = np.array([selected[0].box.as_tuple()], dtype=np.float32)
    overlap = float(coco_iou(top, np.array([truth], dtype=np.float32), np.zeros(1, dtype=bool))[0, 0])
    assert overlap >= 0.5, (name, selected[0].box, overlap)


def test_every_product_of_the_demo_photos_is_found_and_recognised(tmp_path: Path) -> None:
    """What `make run` shows: each product of the demo photos gets a detector box whose best candidate is that
    product, and nearly all are matched above the detector boxes' min_score."""
    demo = tmp_path / "demo"
    build_demo(demo, default_assets_dir())
    settings = Settings(models=ModelSettings(store=STORE), runtime=RuntimeSettings(cpu_threads=2))
    recognizer = load_recognizer(settings.models, settings.runtime, settings.pipeline)
    options = recognizer.default_options(settings.pipeline)
    gallery = build_gallery(recognizer, read_list_file(demo / "gallery_list.txt", demo), tmp_path / "gallery",
                            settings, options)
    found = []  # (photo, label, boxed with the right best candidate, matched above min_score)
    try:
        for query in json.loads((demo / "queries.json").read_text()):
            pixels = np.ascontiguousarray(cv2.imread(str(demo / query["file"]))[:, :, ::-1])
            objects = [item for item in recognizer.recognize(pixels, options, gallery.search).objects
                       if item.source is ObjectSource.detector and item.candidates]
            boxes = np.array([item.box.as_tuple() for item in objects], dtype=np.float32).reshape(-1, 4)
            for product in query["objects"]:
                x, y, width, height = product["box"]
                truth = np.array([[x, y, x + width, y + height]], dtype=np.float32)
                overlaps = coco_iou(boxes, truth, np.zeros(1, dtype=bool))[:, 0] if len(boxes) else np.zeros(0)
                best = objects[int(np.argmax(overlaps))] if len(boxes) and overlaps.max() >= 0.5 else None
                boxed = best is not None and best.candidates[0].label == product["label"]
                matched = boxed and best is not None and best.match is not None
                found.append((query["file"], product["label"], boxed, matched))
    finally:
        gallery.close()
    # Measured with detector version 4 and embedder version 3: all 8 boxed with the right best candidate, all 8
    # matched (the lowest, Watermelon in query_1.jpg, 0.707 and Spotify there 0.760 against the boxes' min_score
    # 0.555; with detector version 3 Spotify scored 0.667 against 0.59, with embedder version 2 0.439 against 0.455).
    assert len(found) >= 8 and all(boxed for _, _, boxed, _ in found), found
    assert sum(matched for _, _, _, matched in found) == len(found), found
    assert sum(1 for file, *_ in found if file.endswith("query_1.jpg")) == 3
