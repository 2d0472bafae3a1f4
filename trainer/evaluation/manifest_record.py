"""``shitu eval --record``: the calibrated min_score and the headline scores go into the embedder's manifest.

A shipped model then says what it scored and on what, and the service uses the calibrated threshold by
default (``pipeline.min_score`` unset takes the manifest's ``match_threshold``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from service.inference.manifest import MANIFEST_FILE, ModelKind, load_manifest
from service.inference.types import ObjectSource
from trainer.evaluation.benchmark import BenchmarkConfig, BenchmarkReport, Calibration, Track


class RecordError(ValueError):
    """The report cannot be recorded: no calibration, or not our own embedder manifest."""


def check_recordable(config: BenchmarkConfig, embedder_dir: Path, detector_dir: Path | None) -> None:
    """Refuses, before anything runs, what could not be recorded.

    With the recognizer or end-to-end track, the embedder's calibration (on a split other than the evaluated one);
    with the detector track alone, the detector's scores only.
    """
    if not records_embedder(config):
        if Track.detector in config.tracks and detector_dir is not None:
            _check_ours(detector_dir)
            return
        raise RecordError("--record needs the recognizer or end-to-end track, or the detector track and a detector")
    if config.calibration_split == config.split:
        raise RecordError("--record needs a calibration split other than the evaluated one")
    _check_ours(embedder_dir)


def records_embedder(config: BenchmarkConfig) -> bool:
    """Whether ``--record`` writes the embedder's calibration (its tracks ran), not only the detector's scores."""
    return bool({Track.recognizer, Track.end_to_end} & set(config.tracks))


def _check_ours(model_dir: Path) -> None:
    if not (model_dir / MANIFEST_FILE).is_file():
        raise RecordError(f"{model_dir} has no {MANIFEST_FILE} of ours to record into")


def chosen_calibration(report: BenchmarkReport) -> tuple[str, Calibration]:
    """The threshold of the mode the service runs in: scenes through the detector, else whole photos (crops)."""
    end_to_end = report.end_to_end
    # A detector or sliding windows make several candidates a photo: the scenes set the threshold.
    several = report.detector_model is not None or report.options.sliding_windows
    if several and end_to_end is not None and end_to_end.calibration is not None:
        return "end-to-end", end_to_end.calibration
    if not several and report.recognizer_calibration is not None:
        return "recognizer", report.recognizer_calibration
    needed = "end-to-end" if several else "recognizer"
    raise RecordError(f"no min_score was calibrated on the {needed} track (run it; no threshold may give F1 > 0)")


def record_in_manifest(report: BenchmarkReport, embedder_dir: Path, command: str) -> str:
    """Writes the calibration into the embedder's manifest; returns what was recorded, in words.

    With per-source thresholds (end to end): ``embedder.source_match_thresholds``, each source's calibration under
    ``provenance.source_calibration`` (a later run replaces only the sources it calibrated: windows come from a
    run without a detector) and the last run under ``provenance.end_to_end_evaluation``; ``match_threshold`` (the
    crops' one, for a source not calibrated) stays. Otherwise ``embedder.match_threshold`` and
    ``provenance.evaluation``.
    """
    check_recordable(report.config, embedder_dir, None)
    track, calibration = chosen_calibration(report)
    manifest = load_manifest(embedder_dir)
    if manifest.kind is not ModelKind.embedder or manifest.embedder is None:
        raise RecordError(f"{embedder_dir} is not an embedder")
    if manifest.model_id != report.embedder_model:
        raise RecordError(f"the report is of {report.embedder_model}, {embedder_dir} holds {manifest.model_id}")
    by_source = report.end_to_end.source_calibrations if track == "end-to-end" and report.end_to_end else {}
    summary = evaluation_summary(report, command, track, calibration)
    if by_source:
        calibrations = manifest.provenance.setdefault("source_calibration", {})
        for source, item in by_source.items():
            manifest.embedder.source_match_thresholds[ObjectSource(source)] = item.chosen.min_score
            evaluated = asdict(item.on_evaluation_split)
            calibrations[source] = {
                "command": command, "split": item.split, "rule": item.rule, "min_score": item.chosen.min_score,
                "detector": report.detector_model, "sliding_windows": report.options.sliding_windows,
                "on_evaluated_split": {key: evaluated[key] for key in ("precision", "recall", "false_accept_rate")},
            }
        manifest.provenance["end_to_end_evaluation"] = summary
        recorded = ", ".join(f"{source} {item.chosen.min_score}" for source, item in by_source.items())
        words = f"min_score per source ({recorded})"
    else:
        manifest.embedder.match_threshold = calibration.chosen.min_score
        manifest.provenance["evaluation"] = summary
        words = f"match_threshold {calibration.chosen.min_score}"
    manifest.write(embedder_dir)
    return words


def evaluation_summary(report: BenchmarkReport, command: str, track: str, calibration: Calibration) -> dict[str, Any]:
    document = report.as_dict()
    summary: dict[str, Any] = {"command": command, "split": document["split"], "detector": report.detector_model}
    if document["recognizer"]:
        recognizer = document["recognizer"]
        summary["recognizer"] = {key: recognizer[key] for key in ("queries", "recall1", "recall5",
                                                                   "mean_average_precision")}
    if document["end_to_end"]:
        end_to_end = document["end_to_end"]
        summary["end_to_end"] = {key: end_to_end[key] for key in ("known_scenes", "recall1", "recall5")}
    if document["detector"]:
        detector = document["detector"]
        summary["detector_track"] = {key: detector[key] for key in ("images", "ap50", "ap", "main_object_hit_rate")}
    evaluated = asdict(calibration.on_evaluation_split)
    summary["calibration"] = {
        "track": track,
        "split": calibration.split,
        "rule": calibration.rule,
        "min_score": calibration.chosen.min_score,
        "on_evaluated_split": {key: evaluated[key] for key in ("precision", "recall", "false_accept_rate")},
    }
    end_to_end = report.end_to_end
    if track == "end-to-end" and end_to_end is not None and end_to_end.source_calibrations:
        point = asdict(end_to_end.at_source_calibrated) if end_to_end.at_source_calibrated else {}
        summary["calibration"]["by_source"] = {
            source: item.chosen.min_score for source, item in end_to_end.source_calibrations.items()}
        summary["calibration"]["by_source_on_evaluated_split"] = {
            key: point[key] for key in ("precision", "recall", "false_accept_rate") if key in point}
    return summary


def record_detector_scores(report: BenchmarkReport, detector_dir: Path, command: str) -> None:
    """The detector track's numbers (and the end-to-end ones it made) under ``provenance.benchmarks[<data>]``.

    Keyed by the data set as typed (``data/det``, ``data/detpack``): a run on another data set adds its own entry
    and replaces only an earlier run's on the same one.
    """
    _check_ours(detector_dir)
    manifest = load_manifest(detector_dir)
    if manifest.kind is not ModelKind.detector or manifest.model_id != report.detector_model:
        raise RecordError(f"the report's detector is {report.detector_model}, {detector_dir} holds {manifest.model_id}")
    document = report.as_dict()
    evaluation: dict[str, Any] = {"command": command, "split": document["split"], "embedder": report.embedder_model,
                                  "detector_track": document["detector"]}
    if document["end_to_end"]:
        evaluation["end_to_end"] = {key: document["end_to_end"][key] for key in ("known_scenes", "recall1", "recall5")}
    manifest.provenance.setdefault("benchmarks", {})[document["data"]] = evaluation
    manifest.write(detector_dir)
