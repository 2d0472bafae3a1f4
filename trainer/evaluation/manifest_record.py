"""``shitu eval --record``: the calibrated min_score and the headline scores go into the embedder's manifest.

A shipped model then says what it scored and on what, and the service uses the calibrated threshold by
default (``pipeline.min_score`` unset takes the manifest's ``match_threshold``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.inference.manifest import MANIFEST_FILE, ModelKind, load_manifest
from trainer.evaluation.benchmark import BenchmarkConfig, BenchmarkReport, Track


class RecordError(ValueError):
    """The report cannot be recorded: no calibration, or not our own embedder manifest."""


def check_recordable(config: BenchmarkConfig, embedder_dir: Path) -> None:
    """Refuses, before anything runs, what could not be recorded."""
    if Track.end_to_end not in config.tracks or config.calibration_split == config.split:
        raise RecordError("--record needs the end-to-end track with a calibration split other than the evaluated one")
    if not (embedder_dir / MANIFEST_FILE).is_file():
        raise RecordError(f"{embedder_dir} has no {MANIFEST_FILE} of ours to record into")


def record_in_manifest(report: BenchmarkReport, embedder_dir: Path, command: str) -> float:
    """Writes ``embedder.match_threshold`` and ``provenance.evaluation``; returns the threshold."""
    check_recordable(report.config, embedder_dir)
    end_to_end = report.end_to_end
    if end_to_end is None or end_to_end.calibration is None:
        raise RecordError("no min_score could be calibrated (no threshold gives a positive F1)")
    manifest = load_manifest(embedder_dir)
    if manifest.kind is not ModelKind.embedder or manifest.embedder is None:
        raise RecordError(f"{embedder_dir} is not an embedder")
    if manifest.model_id != report.embedder_model:
        raise RecordError(f"the report is of {report.embedder_model}, {embedder_dir} holds {manifest.model_id}")
    threshold = end_to_end.calibration.chosen.min_score
    manifest.embedder.match_threshold = threshold
    manifest.provenance["evaluation"] = evaluation_summary(report, command)
    manifest.write(embedder_dir)
    return threshold


def evaluation_summary(report: BenchmarkReport, command: str) -> dict[str, Any]:
    document = report.as_dict()
    summary: dict[str, Any] = {
        "command": command,
        "split": document["split"],
        "detector": document["models"]["detector"],
    }
    if document["recognizer"]:
        recognizer = document["recognizer"]
        summary["recognizer"] = {key: recognizer[key] for key in ("queries", "recall1", "recall5",
                                                                   "mean_average_precision")}
    end_to_end = document["end_to_end"]
    summary["end_to_end"] = {key: end_to_end[key] for key in ("known_scenes", "recall1", "recall5")}
    calibration = end_to_end["calibration"]
    summary["calibration"] = {
        "split": calibration["split"],
        "rule": calibration["rule"],
        "min_score": calibration["chosen"]["min_score"],
        "on_evaluated_split": {key: calibration["on_evaluation_split"][key]
                               for key in ("precision", "recall", "false_accept_rate")},
    }
    if document["detector"]:
        detector = document["detector"]
        summary["detector_track"] = {key: detector[key] for key in ("images", "ap50", "ap", "main_object_hit_rate")}
    return summary
