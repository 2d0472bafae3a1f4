"""The shipped default models in ``model_store/``, measured on a freshly generated benchmark.

CI-sized: ``shitu data synth`` with the npm assets on seed 1 (the embedders were trained on train splits only;
val and test classes are never trained on, whatever the seed, because a class's split is a hash of its key),
then ``shitu eval``'s recognizer track through the service's own loaders, and the demo close-ups through the
whole pipeline. Two benchmarks: packaged products (cans, bottles, boxes, pouches, labels: what the second and
third embedders were trained for; the third is the default), against the first embedder (``embedder/v1``) in
the same run, and the flat cards the first one was trained on, which the later ones must not lose. The
thresholds sit a little under what was measured; the README quotes the larger benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from service.box import Box
from service.config import ModelSettings, RuntimeSettings, Settings
from service.gallery import Gallery
from service.gallery.listfile import read_list_file
from service.inference.manifest import load_manifest
from service.inference.models import load_recognizer
from service.inference.pipeline import RecognizeOptions, Recognizer
from service.inference.types import RecognizedObject
from tests.generated_data import generate_benchmark
from trainer.evaluation.benchmark import BenchmarkConfig, Track, run_benchmark
from trainer.evaluation.end_to_end import build_gallery
from trainer.synth.assets import default_assets_dir
from trainer.synth.demo import build_demo
from trainer.synth.generator import SynthOptions

pytestmark = pytest.mark.slow  # a synth dataset, a training run and the shipped models (minutes)

STORE = Path(__file__).resolve().parents[1] / "model_store"
DEFAULT_EMBEDDER = STORE / "embedder" / "default"
FIRST_EMBEDDER = "embedder/v1"  # the first version (flat cards, 160 px squashed), kept for comparison
# The recognizer track needs the standard scenes only (shelf and empty scenes have their own random streams).
BENCHMARK = SynthOptions(seed=1, classes=400, scenes_per_class=2, shelf_share=0, empty_share=0)
PACKAGING = SynthOptions(seed=1, classes=300, scenes_per_class=1, products="package", shelf_share=0, empty_share=0)
# Measured with the second version on the card benchmark (80 test classes, 268 crops; same seed and assets, same
# bytes): recall@1 0.899 (the first embedder 0.922; the ImageNet backbone alone 0.437); at its min_score 0.38
# (best F1 on the packaging val classes), open-set precision 0.783 and recall 0.750 (the first, at its 0.49: 1.0
# and 0.639).
RECALL1_FLOOR = 0.88  # issue 15: the new versions keep >= 0.88 on flat cards (the third passes it too)
IMAGENET_MARGIN = 0.35
OPEN_SET_PRECISION_FLOOR = 0.72
OPEN_SET_RECALL_FLOOR = 0.70
# Measured with the second version on the packaging benchmark (105 crops of test classes; same seed and assets):
# recall@1 0.895, the first embedder 0.800 in the same run.
PACKAGING_RECALL1_FLOOR = 0.85
PACKAGING_MARGIN_OVER_FIRST = 0.05
DemoService = tuple[Recognizer, RecognizeOptions, Gallery, Path]  # the recognizer, its defaults, the demo gallery


def _recognizer_report(data: Path, store: Path, embedder: str = "embedder/default") -> dict[str, Any]:
    """``shitu eval --track recognizer`` on the test split, with ``embedder`` of ``store``."""
    settings = Settings(models=ModelSettings(store=store, embedder=embedder, detector=None),
                        runtime=RuntimeSettings(cpu_threads=2))
    return run_benchmark(BenchmarkConfig(data, "test", tracks=(Track.recognizer,)), settings).as_dict()


@pytest.fixture(scope="module")
def benchmark_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_benchmark(tmp_path_factory, "benchmark", BENCHMARK)


@pytest.fixture(scope="module")
def report(benchmark_data: Path) -> dict[str, Any]:
    return _recognizer_report(benchmark_data, STORE)


@pytest.fixture(scope="module")
def packaging_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_benchmark(tmp_path_factory, "packaging", PACKAGING)


def test_the_default_embedder_recognises_packaged_products_it_never_saw(packaging_data: Path) -> None:
    """Shop photos of cans, bottles, boxes, pouches and labels against their catalogue views: far better than
    the first embedder, which saw only flat cards, squashed square."""
    default = _recognizer_report(packaging_data, STORE)["recognizer"]
    first = _recognizer_report(packaging_data, STORE, FIRST_EMBEDDER)["recognizer"]
    assert default["queries"] > 100
    assert default["recall1"] >= PACKAGING_RECALL1_FLOOR, default
    assert default["recall1"] >= first["recall1"] + PACKAGING_MARGIN_OVER_FIRST, (default, first)


def test_the_default_embedder_recognises_products_it_never_saw(report: dict[str, Any]) -> None:
    recognizer = report["recognizer"]
    assert recognizer["queries"] > 200
    assert recognizer["recall1"] >= RECALL1_FLOOR, recognizer


def test_training_is_what_makes_it_work(report: dict[str, Any], benchmark_data: Path, model_store_dir: Path) -> None:
    """The same backbone with its ImageNet weights only (the test store's embedder) is far behind."""
    imagenet = _recognizer_report(benchmark_data, model_store_dir)["recognizer"]
    assert report["recognizer"]["recall1"] >= imagenet["recall1"] + IMAGENET_MARGIN, (report["recognizer"], imagenet)


def test_the_calibrated_min_score_accepts_known_products_and_refuses_absent_ones(report: dict[str, Any]) -> None:
    """Crops of gallery products and of products absent from the gallery, half and half, at the manifest's min_score."""
    at_default = report["recognizer"]["open_set_at_default"]
    assert at_default["min_score"] == load_manifest(DEFAULT_EMBEDDER).embedder.match_threshold
    assert report["recognizer"]["open_set_queries"] > 100
    assert at_default["precision"] >= OPEN_SET_PRECISION_FLOOR, at_default
    assert at_default["recall"] >= OPEN_SET_RECALL_FLOOR, at_default


def test_the_manifest_says_how_the_model_was_made_and_what_it_scored() -> None:
    manifest = load_manifest(DEFAULT_EMBEDDER)
    provenance = manifest.provenance
    assert manifest.preprocess.size == (176, 176) and manifest.embedding_dim == 512
    assert manifest.preprocess.keep_ratio and manifest.preprocess.pad  # letterboxed: a bottle keeps its label
    assert {"training", "train_list", "classes", "epochs", "metrics", "data", "recipe"} <= provenance.keys()
    evaluation = provenance["evaluation"]
    assert evaluation["split"] == "test" and evaluation["calibration"]["split"] == "val"
    assert manifest.embedder is not None
    assert manifest.embedder.match_threshold == evaluation["calibration"]["min_score"]
    assert evaluation["recognizer"]["recall1"] >= 0.85


def test_the_default_model_is_small() -> None:
    files = [path for path in DEFAULT_EMBEDDER.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) < 20 * 2**20


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoService]:
    """What `make run` shows a new user: the shipped default and the demo gallery."""
    demo = tmp_path_factory.mktemp("demo") / "demo"
    build_demo(demo, default_assets_dir())
    settings = Settings(models=ModelSettings(store=STORE, detector=None), runtime=RuntimeSettings(cpu_threads=2))
    recognizer = load_recognizer(settings.models, settings.runtime, settings.pipeline)
    options = recognizer.default_options(settings.pipeline)
    entries = read_list_file(demo / "gallery_list.txt", demo)
    gallery = build_gallery(recognizer, entries, tmp_path_factory.mktemp("gallery"), settings, options)
    yield recognizer, options, gallery, demo
    gallery.close()


def _recognize(service: DemoService, file: str,
               **options: object) -> list[RecognizedObject]:
    recognizer, defaults, gallery, demo = service
    pixels = np.ascontiguousarray(cv2.imread(str(demo / file))[:, :, ::-1])
    return recognizer.recognize(pixels, replace(defaults, **options), gallery.search).objects


def test_the_demo_close_ups_are_recognised(demo_service: DemoService) -> None:
    queries = json.loads((demo_service[3] / "queries.json").read_text())
    closeups = [closeup for query in queries for closeup in query["closeups"]]
    found = []
    for closeup in closeups:
        objects = _recognize(demo_service, closeup["file"])
        found.append(bool(objects) and objects[0].match is not None and objects[0].match.label == closeup["label"])
    assert len(closeups) >= 8
    assert sum(found) >= len(closeups) - 1, list(zip([closeup["label"] for closeup in closeups], found, strict=True))


def test_sliding_windows_find_several_products_in_a_demo_photo(demo_service: DemoService) -> None:
    """Without a detector the whole photo finds almost none of its 1-3 products; windows find most (7 of 8 here)."""
    queries = json.loads((demo_service[3] / "queries.json").read_text())

    def found(**options: object) -> int:
        hits = 0
        for query in queries:
            objects = [item for item in _recognize(demo_service, query["file"], **options) if item.match is not None]
            for product in query["objects"]:
                x, y, width, height = product["box"]
                hits += any(item.match.label == product["label"] and _overlaps(item.box, (x, y, x + width, y + height))
                            for item in objects)
        return hits

    products = sum(len(query["objects"]) for query in queries)
    with_windows, whole_only = found(sliding_windows=True), found()
    assert with_windows >= 0.75 * products and with_windows >= whole_only + 3, (with_windows, whole_only, products)


def _overlaps(box: Box, other: tuple[int, int, int, int]) -> bool:
    return box.x1 < other[2] and other[0] < box.x2 and box.y1 < other[3] and other[1] < box.y2
