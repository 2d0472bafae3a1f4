"""A benchmark report on disk: ``report.json`` (every number), ``report.md`` (tables) and the PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.evaluation.benchmark import BenchmarkReport, EndToEndResult
from trainer.evaluation.breakdown import GroupRecall
from trainer.evaluation.data import class_titles
from trainer.evaluation.end_to_end import hard_failures
from trainer.evaluation.gallery_threshold import GalleryThresholdPoint
from trainer.evaluation.open_set import OpenSetPoint
from trainer.evaluation.plots import plot_failures, plot_open_set

JSON_FILE = "report.json"
MARKDOWN_FILE = "report.md"
CURVE_FILE = "open_set_pr.png"
FAILURES_FILE = "failures.png"


def write_report(report: BenchmarkReport, out: Path, command: str | None = None) -> list[Path]:
    """Writes the files into ``out`` (created if needed) and returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    document = report.as_dict()
    document["command"] = command
    written = []
    end_to_end = report.end_to_end
    if end_to_end is not None:
        failures = hard_failures(end_to_end.outcomes, report.options.min_score)
        document["end_to_end"]["hard_failures"] = [failure.as_dict() for failure in failures]
        titles = class_titles(report.config.data)
        written.append(plot_open_set(end_to_end.curve, _marks(end_to_end),
                                     out / CURVE_FILE, f"open set, end to end ({report.config.split})"))
        written.append(plot_failures(failures, titles, report.options.min_score, out / FAILURES_FILE))
    (out / JSON_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / MARKDOWN_FILE).write_text(markdown(report, command), encoding="utf-8")
    return [out / JSON_FILE, out / MARKDOWN_FILE, *written]


def markdown(report: BenchmarkReport, command: str | None) -> str:
    options = report.options
    lines = [
        f"# shitu eval: `{report.config.data}`, split `{report.config.split}`",
        "",
        f"Embedder `{report.embedder_model}`, detector `{report.detector_model or 'none'}`; detection_threshold "
        f"{options.detection_threshold}, max_detections {options.max_detections}, min_score {options.min_score}, "
        f"whole_image {options.whole_image.value}" + (f"; at most {report.config.limit} per list" if
                                                       report.config.limit else "") + ".",
    ]
    if command:
        lines += ["", "Reproduce with:", "", "```", command, "```"]
    if report.recognizer is not None:
        result = report.recognizer
        lines += _table(
            "Recognizer alone (ground-truth crops against the gallery views)",
            ["queries", "gallery images", "recall@1", "recall@5", "mAP"],
            [[result.queries, result.gallery_images, result.recall1, result.recall5, result.mean_average_precision]],
        )
        if result.open_set_at_default is not None:
            point = result.open_set_at_default
            lines += ["", f"Open set on crops ({result.open_set_queries}, half of absent classes) at min_score "
                      f"{point.min_score}: precision {point.precision:.3f}, recall {point.recall:.3f}, "
                      f"false-accept rate {point.false_accept_rate:.3f}."]
        calibration = report.recognizer_calibration
        if calibration is not None:
            point = calibration.on_evaluation_split
            lines += ["", f"min_score calibrated on the {calibration.split} crops ({calibration.rule}): "
                      f"{calibration.chosen.min_score}; here precision {point.precision:.3f}, recall "
                      f"{point.recall:.3f}, F1 {point.f1:.3f}, false-accept rate {point.false_accept_rate:.3f}."]
        lines += _breakdown_tables("Recognizer", result.breakdown)
        lines += _gallery_threshold_table("Recognizer", result.gallery_thresholds)
    if report.detector is not None:
        detector = report.detector
        lines += _table(
            "Detector alone (class-agnostic COCO AP; main object hit: IoU ≥ 0.5 after PP-ShiTu's selection)",
            ["images", "AP", "AP50", "main object hit (first box)", "main object among selected"],
            [[detector.images, detector.ap, detector.ap50, detector.main_object_hit_rate,
              detector.main_object_found_rate]],
        )
        if detector.main_object_hit_by_weight:
            lines += _table(f"Main object hit by main_object_area_weight (this run: {options.main_area_weight})",
                            list(detector.main_object_hit_by_weight),
                            [list(detector.main_object_hit_by_weight.values())])
        if detector.shelf_recall is not None:
            lines += ["", f"Dense shelves ({detector.shelf_images} photos, {detector.shelf_products} visible "
                      "products): "
                      f"recall {detector.shelf_recall:.3f} at max_detections {options.max_detections} and "
                      f"detection_threshold {options.detection_threshold} (IoU ≥ 0.5), AP50 {detector.shelf_ap50:.3f}."]
        if detector.empty_with_box_rate is not None:
            lines += ["", f"Photos without a product ({detector.empty_images}): {detector.empty_with_box_rate:.3f} of "
                      "them get a box past the selection."]
    if report.end_to_end is not None:
        lines += _end_to_end_markdown(report.end_to_end, options.min_score)
    lines += ["", f"Seconds per track: {', '.join(f'{name} {value}' for name, value in report.seconds.items())}."]
    return "\n".join(lines) + "\n"


def _end_to_end_markdown(result: EndToEndResult, default_min_score: float) -> list[str]:
    lines = _table(
        "End to end (detector → crops → embedder → gallery, `Recognizer.recognize`)",
        ["scenes", "main object in the gallery", "recall@1", "recall@5"],
        [[result.scenes, result.known_scenes, result.recall1, result.recall5]],
    )
    rows = [["service default", *_point_row(result.at_default)]]
    if result.calibration is not None:
        calibration = result.calibration
        rows.append([f"calibrated on {calibration.split} ({calibration.rule})", *_point_row(calibration.chosen)])
        rows.append(["that min_score here", *_point_row(calibration.on_evaluation_split)])
    for source, item in result.source_calibrations.items():
        rows.append([f"{source} answers, calibrated on {item.split}", *_point_row(item.chosen)])
    if result.at_source_calibrated is not None:
        rows.append(["per-source min_score here (others: the calibrated one)",
                     *_point_row(result.at_source_calibrated)])
    lines += _table(
        f"Open set ({result.open_set_queries} scenes, half with the main object's class absent from the gallery)",
        ["operating point", "min_score", "precision", "recall", "F1", "false-accept rate"],
        rows,
    )
    if result.calibration is None:
        lines += ["", "No threshold reaches the calibration rule."]
    lines += _breakdown_tables("End to end", result.breakdown)
    lines += _gallery_threshold_table("End to end", result.gallery_thresholds)
    lines += ["", f"![open-set precision-recall]({CURVE_FILE})", "",
              f"Hard failures at min_score {default_min_score} (green: main object, red: the answer):", "",
              f"![hard failures]({FAILURES_FILE})"]
    return lines


def _breakdown_tables(track: str, breakdown: dict[str, dict[str, GroupRecall]]) -> list[str]:
    lines: list[str] = []
    for name, values in breakdown.items():
        lines += _table(f"{track}: recall@1 per {name}", [name, "queries", "recall@1"],
                        [[value, item.queries, item.recall1] for value, item in values.items()])
    return lines


def _gallery_threshold_table(track: str, points: list[GalleryThresholdPoint]) -> list[str]:
    if not points:
        return []
    return _table(f"{track}: open set at the gallery's own suggestion (quantile of its nearest-other-item scores)",
                  ["quantile", "min_score", "precision", "recall", "F1", "false-accept rate"],
                  [[item.quantile, *_point_row(item.point)] for item in points])


def _marks(result: EndToEndResult) -> dict[str, OpenSetPoint]:
    marks = {"service default": result.at_default}
    if result.calibration is not None:
        marks[f"calibrated on {result.calibration.split}"] = result.calibration.on_evaluation_split
    return marks


def _point_row(point: OpenSetPoint) -> list[Any]:
    return [point.min_score, point.precision, point.recall, point.f1, point.false_accept_rate]


def _table(title: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
