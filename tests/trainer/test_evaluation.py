"""``shitu eval`` on a hand-checkable benchmark with the test models (ImageNet embedder, untrained detector)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shitu.cli import app
from tests.trainer.evaluation_benchmark import ABSENT, KNOWN, write_benchmark
from trainer.evaluation.report import CURVE_FILE, FAILURES_FILE, JSON_FILE, MARKDOWN_FILE

pytestmark = pytest.mark.slow  # shitu eval over a generated benchmark


@pytest.fixture(scope="module")
def evaluated(model_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    data = write_benchmark(tmp_path_factory.mktemp("benchmark"))
    out = tmp_path_factory.mktemp("report")
    environment = {**model_environment, "SHITU_GALLERY__DETECT_ON_ENROLL": "false"}
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--split", "test", "--out", str(out)],
                                env=environment)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / JSON_FILE).read_text(encoding="utf-8"))


def _fractions(document: Any) -> list[float]:
    """Every rate, recall, precision, AP and F1 in the report."""
    names = ("recall", "precision", "rate", "ap", "f1", "mean_average_precision")
    if isinstance(document, dict):
        found = [value for key, value in document.items() if isinstance(value, float) and key.startswith(names)]
        return found + [value for item in document.values() for value in _fractions(item)]
    if isinstance(document, list):
        return [value for item in document for value in _fractions(item)]
    return []


def test_the_report_files_are_written(evaluated: tuple[Path, Any]) -> None:
    out, report = evaluated
    for name in (JSON_FILE, MARKDOWN_FILE, CURVE_FILE, FAILURES_FILE):
        assert (out / name).stat().st_size > 0, name
    assert (out / CURVE_FILE).read_bytes().startswith(b"\x89PNG")
    markdown = (out / MARKDOWN_FILE).read_text(encoding="utf-8")
    assert "## Recognizer alone" in markdown and "## Detector alone" in markdown and "## End to end" in markdown
    assert report["command"].startswith("shitu eval --data ") and report["command"] in markdown
    assert report["models"] == {"embedder": "efficientnet-lite0-imagenet@1", "detector": "test-detector@1"}


def test_every_metric_is_a_fraction(evaluated: tuple[Path, Any]) -> None:
    values = _fractions(evaluated[1])
    assert len(values) > 20
    assert all(0.0 <= value <= 1.0 for value in values)


def test_a_crop_identical_to_its_gallery_view_is_found_first(evaluated: tuple[Path, Any]) -> None:
    recognizer = evaluated[1]["recognizer"]
    assert recognizer["queries"] == len(KNOWN) and recognizer["gallery_images"] == len(KNOWN)
    assert recognizer["recall1"] == 1.0 and recognizer["mean_average_precision"] == 1.0
    # Open set on crops: every absent-class crop and as many gallery-class crops, each of which scores ~1.
    assert recognizer["open_set_queries"] == 2 * len(ABSENT)
    assert recognizer["open_set_at_default"]["recall"] == 1.0


def test_end_to_end_finds_every_gallery_product_through_the_whole_image(evaluated: tuple[Path, Any]) -> None:
    end_to_end = evaluated[1]["end_to_end"]
    assert end_to_end["scenes"] == len(KNOWN) + len(ABSENT) and end_to_end["known_scenes"] == len(KNOWN)
    assert end_to_end["recall1"] == 1.0 and end_to_end["recall5"] == 1.0
    # Half of the open-set queries are absent classes: every one of them, and as many gallery scenes.
    assert end_to_end["open_set_queries"] == 2 * len(ABSENT)
    assert all(failure["known"] is False for failure in end_to_end["hard_failures"])


def test_the_open_set_curve_is_monotone_and_the_calibration_separates_the_classes(
    evaluated: tuple[Path, Any],
) -> None:
    end_to_end = evaluated[1]["end_to_end"]
    curve = end_to_end["curve"]
    thresholds = [point["min_score"] for point in curve]
    assert thresholds == sorted(thresholds) and thresholds[0] == 0.0 and thresholds[-1] == 1.0
    for lower, higher in zip(curve, curve[1:], strict=False):
        assert higher["recall"] <= lower["recall"] and higher["matched"] <= lower["matched"]
        assert higher["false_accept_rate"] <= lower["false_accept_rate"]
    # Gallery products score ~1 against their identical view; an absent class never does.
    calibration = end_to_end["calibration"]
    assert calibration["split"] == "val" and calibration["rule"] == "best F1"
    assert calibration["chosen"]["f1"] == 1.0 and calibration["on_evaluation_split"]["f1"] == 1.0
    assert calibration["on_evaluation_split"]["false_accept_rate"] == 0.0


def test_the_detector_track_scores_every_scene(evaluated: tuple[Path, Any]) -> None:
    detector = evaluated[1]["detector"]
    assert detector["images"] == len(KNOWN) + len(ABSENT)
    assert detector["main_object_hit_rate"] <= detector["main_object_found_rate"]
    # the run's own order (the test store's detector has no weight: PP-ShiTu's order) is the sweep's first column
    by_weight = detector["main_object_hit_by_weight"]
    assert list(by_weight)[0] == "0.0" and by_weight["0.0"] == detector["main_object_hit_rate"]
    assert all(0.0 <= rate <= detector["main_object_found_rate"] for rate in by_weight.values())


def test_a_missing_split_is_an_error_without_traceback(model_environment: dict[str, str], tmp_path: Path) -> None:
    data = write_benchmark(tmp_path / "data", splits=("test",))
    environment = model_environment
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--out", str(tmp_path / "out"),
                                      "--track", "end-to-end"], env=environment)
    assert result.exit_code == 2
    assert "val_gallery_list.txt not found" in result.output and "--calibration-split" in result.output


def test_eval_reads_what_the_generator_writes(model_environment: dict[str, str], tmp_path: Path) -> None:
    """The benchmark layout is the generator's: every listed crop, view and scene is counted where it belongs."""
    from trainer.synth.assets import AssetsMissingError, default_assets_dir, require_npm_assets
    from trainer.synth.dataset import synthesize
    from trainer.synth.generator import SynthOptions

    try:
        require_npm_assets(default_assets_dir())
    except AssetsMissingError as error:
        pytest.fail(f"{error} (make test runs it)")
    options = SynthOptions(seed=0, classes=20, scenes_per_class=1, gallery_views=1, scene_size=160,
                           open_set_share=0.5)
    synthesize(tmp_path / "synth", options, default_assets_dir(), workers=1)
    environment = model_environment
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "synth"), "--out", str(tmp_path / "report"),
                                      "--calibration-split", "test"], env=environment)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / JSON_FILE).read_text(encoding="utf-8"))
    recognition, detection = tmp_path / "synth" / "recognition", tmp_path / "synth" / "detection"
    lines = {name: len((recognition / f"test_{name}_list.txt").read_text().splitlines())
             for name in ("gallery", "query", "openset")}
    coco = json.loads((detection / "test.json").read_text(encoding="utf-8"))
    classes = json.loads((tmp_path / "synth" / "classes.json").read_text(encoding="utf-8"))
    absent = {entry["id"] for entry in classes if entry["open_set"]}
    main_classes = {item["id"]: item["class_id"] for item in coco["annotations"]}
    kinds = [image["scene_kind"] for image in coco["images"]]
    standard = [image for image in coco["images"] if image["scene_kind"] == "standard"]
    known_scenes = sum(main_classes[image["main_annotation_id"]] not in absent for image in standard)
    assert report["recognizer"]["gallery_images"] == lines["gallery"]
    assert report["recognizer"]["queries"] == lines["query"]
    assert report["recognizer"]["open_set_queries"] == 2 * min(lines["query"], lines["openset"])
    # standard scenes for the main object and end to end; shelves and empty photos for the detector alone
    assert report["detector"]["images"] == report["end_to_end"]["scenes"] == len(standard)
    assert report["detector"]["shelf_images"] == kinds.count("shelf")
    assert report["detector"]["empty_images"] == kinds.count("empty")
    assert report["end_to_end"]["known_scenes"] == known_scenes


def _benchmark_and_a_copy_of(model: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A benchmark and a copy of ``model`` whose manifest ``--record`` may write."""
    copy = tmp_path / model.parent.name
    shutil.copytree(model, copy)
    return write_benchmark(tmp_path / "data"), copy


def test_record_writes_the_calibrated_threshold_and_scores_into_the_manifest(
    model_environment: dict[str, str], model_store_dir: Path, tmp_path: Path
) -> None:
    data, embedder = _benchmark_and_a_copy_of(model_store_dir / "embedder" / "default", tmp_path)
    before = (embedder / "manifest.json").read_text(encoding="utf-8")
    arguments = ["eval", "--data", str(data), "--embedder", str(embedder), "--track", "recognizer", "--track",
                 "end-to-end", "--record"]

    refused = CliRunner().invoke(app, [*arguments, "--calibration-split", "test", "--out", str(tmp_path / "a")],
                                 env=model_environment)
    assert refused.exit_code == 2 and "calibration split other than the evaluated one" in refused.output
    assert (embedder / "manifest.json").read_text(encoding="utf-8") == before

    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "b")], env=model_environment)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "b" / JSON_FILE).read_text(encoding="utf-8"))
    manifest = json.loads((embedder / "manifest.json").read_text(encoding="utf-8"))
    chosen = report["end_to_end"]["calibration"]["chosen"]["min_score"]
    assert manifest["embedder"]["match_threshold"] == chosen != json.loads(before)["embedder"]["match_threshold"]
    evaluation = manifest["provenance"]["evaluation"]
    assert evaluation["command"] == report["command"] and evaluation["split"] == "test"
    assert evaluation["recognizer"]["recall1"] == report["recognizer"]["recall1"] == 1.0
    assert evaluation["end_to_end"]["recall1"] == report["end_to_end"]["recall1"]
    assert evaluation["calibration"]["min_score"] == chosen and evaluation["detector"] == "test-detector@1"
    assert manifest["provenance"]["training"] == json.loads(before)["provenance"]["training"]  # kept
    assert evaluation["calibration"]["track"] == "end-to-end"  # a detector runs: scenes set the threshold

    # Without a detector the service sees whole photos of one product: the crops' calibration is recorded.
    whole_photos = {**model_environment, "SHITU_MODELS__DETECTOR": ""}
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "c")], env=whole_photos)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "c" / JSON_FILE).read_text(encoding="utf-8"))
    manifest = json.loads((embedder / "manifest.json").read_text(encoding="utf-8"))
    chosen = report["recognizer_calibration"]["chosen"]["min_score"]
    assert manifest["embedder"]["match_threshold"] == chosen
    assert manifest["provenance"]["evaluation"]["calibration"] | {"min_score": chosen} == {
        "track": "recognizer", "split": "val", "rule": "best F1", "min_score": chosen,
        "on_evaluated_split": manifest["provenance"]["evaluation"]["calibration"]["on_evaluated_split"],
    }
    assert manifest["provenance"]["evaluation"]["detector"] is None


def test_the_recognizer_alone_needs_no_calibration_split(model_environment: dict[str, str], tmp_path: Path) -> None:
    data = write_benchmark(tmp_path / "data", splits=("test",))
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--out", str(tmp_path / "out"),
                                      "--track", "recognizer"], env=model_environment)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / JSON_FILE).read_text(encoding="utf-8"))
    assert report["recognizer"]["recall1"] == 1.0 and report["recognizer_calibration"] is None


def test_record_detector_writes_its_selection_and_the_command_as_typed(
    model_environment: dict[str, str], model_store_dir: Path, tmp_path: Path
) -> None:
    data, detector = _benchmark_and_a_copy_of(model_store_dir / "detector" / "default", tmp_path)
    arguments = ["eval", "--data", str(data), "--split", "val", "--detector", str(detector), "--track", "detector",
                 "--record-detector", "--max-detections", "7", "--out", str(tmp_path / "out")]

    result = CliRunner().invoke(app, arguments, env=model_environment)

    assert result.exit_code == 0, result.output
    manifest = json.loads((detector / "manifest.json").read_text(encoding="utf-8"))
    calibration = manifest["provenance"]["detector_calibration"]
    assert manifest["detector"]["max_detections"] == calibration["max_detections"] == 7
    assert manifest["detector"]["score_threshold"] == calibration["score_threshold"]
    report = json.loads((tmp_path / "out" / JSON_FILE).read_text(encoding="utf-8"))
    assert calibration["command"] == f"{report['command']} --record-detector --max-detections 7"

    # The detector track read the calibration's detections; detecting every photo again gives the same numbers.
    detect_again = [*arguments[:arguments.index("--record-detector")], "--out", str(tmp_path / "again")]
    again = CliRunner().invoke(app, detect_again, env=model_environment)
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again" / JSON_FILE).read_text(encoding="utf-8"))["detector"] == report["detector"]


def test_record_with_the_detector_track_alone_keeps_the_scores_per_data_set(
    model_environment: dict[str, str], model_store_dir: Path, tmp_path: Path
) -> None:
    data, detector = _benchmark_and_a_copy_of(model_store_dir / "detector" / "default", tmp_path)
    embedder = model_store_dir / "embedder" / "default"
    embedder_before = (embedder / "manifest.json").read_text(encoding="utf-8")
    other = tmp_path / "other"
    shutil.copytree(data, other)
    for benchmark, out in ((data, "a"), (other, "b"), (data, "c")):
        arguments = ["eval", "--data", str(benchmark), "--detector", str(detector), "--track", "detector",
                     "--record", "--out", str(tmp_path / out)]
        result = CliRunner().invoke(app, arguments, env=model_environment)
        assert result.exit_code == 0, result.output
        assert "recorded the detector's scores" in result.output and "min_score" not in result.output

    benchmarks = json.loads((detector / "manifest.json").read_text(encoding="utf-8"))["provenance"]["benchmarks"]
    assert benchmarks.keys() == {str(data), str(other)}  # the third run replaced the first's entry
    last = json.loads((tmp_path / "c" / JSON_FILE).read_text(encoding="utf-8"))
    assert benchmarks[str(data)]["command"] == last["command"]
    assert benchmarks[str(data)]["detector_track"] == last["detector"]
    assert (embedder / "manifest.json").read_text(encoding="utf-8") == embedder_before  # no embedder track ran


def test_record_without_a_track_it_can_write_is_refused(model_environment: dict[str, str], tmp_path: Path) -> None:
    data = write_benchmark(tmp_path / "data")
    environment = {**model_environment, "SHITU_MODELS__DETECTOR": ""}
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--track", "detector", "--record", "--out",
                                      str(tmp_path / "out")], env=environment)
    assert result.exit_code == 2 and "or the detector track and a detector" in result.output
    assert not (tmp_path / "out").exists()
