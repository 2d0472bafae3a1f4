"""``shitu eval``: the typer command (registered in ``trainer/cli.py``); heavy imports happen when it runs."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer


def evaluate_command(
    data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="a `shitu data synth` directory"),
    split: str = typer.Option("test", "--split", help="split to evaluate: val | test"),
    out: Path = typer.Option(..., "--out", help="report directory: report.json, report.md, PNG plots"),
    embedder: Path | None = typer.Option(None, "--embedder", exists=True, file_okay=False,
                                         help="embedder directory (default: SHITU_MODELS__EMBEDDER)"),
    detector: Path | None = typer.Option(None, "--detector", exists=True, file_okay=False,
                                         help="detector directory (default: SHITU_MODELS__DETECTOR)"),
    limit: int | None = typer.Option(None, "--limit", min=1,
                                     help="at most N query crops, N open-set crops and N scenes of each kind"),
    tracks: list[str] = typer.Option(["recognizer", "detector", "end-to-end"], "--track",
                                     help="recognizer | detector | end-to-end (repeatable)"),
    calibration_split: str = typer.Option("val", "--calibration-split",
                                          help="split where min_score is calibrated (the evaluated one: optimistic)"),
    precision_target: float | None = typer.Option(None, "--precision-target", min=0.0, max=1.0,
                                                  help="calibrate to this open-set precision instead of the best F1"),
    record: bool = typer.Option(False, "--record",
                                help="write the calibrated min_score and these scores into the embedder's manifest, "
                                     "and the detector track's into the detector's (that track alone: only those)"),
    record_detector: bool = typer.Option(False, "--record-detector",
                                         help="first calibrate the detector's score_threshold (best box F1) and "
                                              "main-object order on --split and write them and --max-detections "
                                              "into its manifest"),
    max_detections: int = typer.Option(30, "--max-detections", min=1, max=100,
                                       help="with --record-detector: boxes kept per photo (a shelf holds up to 30)"),
) -> None:
    """Measure the service pipeline on a generated benchmark: recognizer, detector, end to end, open set."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from service.config import get_settings
    from trainer.evaluation.benchmark import BenchmarkConfig, Track, run_benchmark
    from trainer.evaluation.data import BenchmarkDataError
    from trainer.evaluation.report import write_report

    try:
        chosen = tuple(Track(name) for name in dict.fromkeys(tracks))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--track") from error
    settings = get_settings()
    models = {"embedder": str(embedder.resolve()) if embedder else None,
              "detector": str(detector.resolve()) if detector else None}
    settings.models = settings.models.model_copy(update={key: value for key, value in models.items() if value})
    config = BenchmarkConfig(data, split, calibration_split, chosen, limit, precision_target)
    command = _command_line(data, split, out, embedder, detector, limit, tracks, calibration_split, precision_target)
    detections = None
    if record_detector:
        detections = _calibrate_detector(config, settings, max_detections,
                                         f"{command} --record-detector --max-detections {max_detections}")
    if record:
        _refuse_unrecordable(config, settings.models.embedder_dir, settings.models.detector_dir)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:

        def progress(description: str, total: int) -> Callable[[], None]:
            task = bar.add_task(description, total=total)
            return lambda: bar.advance(task)

        try:
            report = run_benchmark(config, settings, progress, detections)
        except BenchmarkDataError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
    files = write_report(report, out, command)
    for line in summary(report.as_dict()):
        typer.echo(line)
    typer.echo(f"wrote {', '.join(str(path) for path in files)}")
    if record:
        _record(report, settings.models.embedder_dir, command, settings.models.detector_dir)


def _calibrate_detector(config: Any, settings: Any, max_detections: int, command: str) -> Any:
    """Returns the split's detections for the detector track (the same photos, the same weights).

    ``command`` is the line as typed (relative paths, every option), recorded for whoever reproduces it.
    """
    from service.inference.models import load_detector
    from trainer.evaluation.data import BenchmarkDataError, load_split
    from trainer.evaluation.detector_calibration import calibrate_detector, record_detector_calibration
    from trainer.evaluation.detector_track import detect_photos

    detector_dir = settings.models.detector_dir
    if detector_dir is None:
        raise typer.BadParameter("--record-detector needs a detector (--detector)", param_hint="--record-detector")
    try:
        split = load_split(config.data, config.split, limit=config.limit)
    except BenchmarkDataError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    detections = detect_photos(load_detector(detector_dir, settings.runtime), split, settings.limits)
    calibration = calibrate_detector(detections, split, max_detections)
    try:
        record_detector_calibration(detector_dir, calibration, command)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"detector: score_threshold {calibration.score_threshold} at max_detections {max_detections} "
               f"(box P {calibration.precision:.3f} R {calibration.recall:.3f} F1 {calibration.f1:.3f} on "
               f"{calibration.photos} {config.split} photos), main_object_area_weight {calibration.main_area_weight} "
               f"(main-object hit {calibration.main_object_hit_rate:.3f}, by score alone "
               f"{calibration.main_object_hit_rate_by_score:.3f}) recorded in {detector_dir / 'manifest.json'}")
    return detections


@contextlib.contextmanager
def _exit_on_record_error() -> Iterator[None]:
    from trainer.evaluation.manifest_record import RecordError

    try:
        yield
    except RecordError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


def _refuse_unrecordable(config: Any, embedder_dir: Path, detector_dir: Path | None) -> None:
    from trainer.evaluation.manifest_record import check_recordable

    with _exit_on_record_error():
        check_recordable(config, embedder_dir, detector_dir)


def _record(report: Any, embedder_dir: Path, command: str, detector_dir: Path | None) -> None:
    from trainer.evaluation.manifest_record import record_detector_scores, record_in_manifest, records_embedder

    with _exit_on_record_error():
        if records_embedder(report.config):
            recorded = record_in_manifest(report, embedder_dir, command)
            typer.echo(f"recorded {recorded} and the scores in {embedder_dir / 'manifest.json'}")
        if detector_dir is not None and report.detector is not None:
            record_detector_scores(report, detector_dir, command)
            typer.echo(f"recorded the detector's scores in {detector_dir / 'manifest.json'}")


def summary(document: dict[str, Any]) -> list[str]:
    """One line per track with its headline numbers."""
    lines = []
    if document["recognizer"]:
        result = document["recognizer"]
        line = (f"recognizer: recall@1 {result['recall1']:.3f}, recall@5 {result['recall5']:.3f}, "
                f"mAP {result['mean_average_precision']:.3f} ({result['queries']} crops)")
        if document["recognizer_calibration"]:
            calibration = document["recognizer_calibration"]
            point = calibration["on_evaluation_split"]
            line += (f"; crops calibrated min_score {calibration['chosen']['min_score']}: "
                     f"P {point['precision']:.3f} R {point['recall']:.3f}")
        lines.append(line)
        lines += _breakdown_lines("recognizer", result.get("breakdown", {}))
        lines += _gallery_threshold_lines("recognizer", result.get("gallery_thresholds", []))
    if document["detector"]:
        result = document["detector"]
        line = (f"detector: AP50 {result['ap50']:.3f}, AP {result['ap']:.3f}, main-object hit "
                f"{result['main_object_hit_rate']:.3f} ({result['images']} scenes)")
        if result.get("main_object_hit_by_weight"):
            line += " (by main_object_area_weight: " + ", ".join(
                f"{weight} {rate:.3f}" for weight, rate in result["main_object_hit_by_weight"].items()) + ")"
        if result.get("shelf_recall") is not None:
            line += f"; shelves: recall {result['shelf_recall']:.3f} ({result['shelf_products']} products)"
        if result.get("empty_with_box_rate") is not None:
            line += f"; empty photos with a box {result['empty_with_box_rate']:.3f}"
        lines.append(line)
    if document["end_to_end"]:
        result = document["end_to_end"]
        line = (f"end to end: recall@1 {result['recall1']:.3f}, recall@5 {result['recall5']:.3f} "
                f"({result['known_scenes']} scenes); open set at min_score {result['at_default']['min_score']}: "
                f"P {result['at_default']['precision']:.3f} R {result['at_default']['recall']:.3f}")
        if result["calibration"]:
            chosen = result["calibration"]["on_evaluation_split"]
            line += (f"; calibrated min_score {chosen['min_score']}: P {chosen['precision']:.3f} "
                     f"R {chosen['recall']:.3f}")
        if result.get("at_source_calibrated"):
            sources = ", ".join(f"{source} {item['chosen']['min_score']}"
                                for source, item in result["source_calibrations"].items())
            point = result["at_source_calibrated"]
            line += (f"; per source ({sources}): P {point['precision']:.3f} R {point['recall']:.3f} "
                     f"false accepts {point['false_accept_rate']:.3f}")
        lines.append(line)
        lines += _breakdown_lines("end to end", result.get("breakdown", {}))
        lines += _gallery_threshold_lines("end to end", result.get("gallery_thresholds", []))
    return lines


def _gallery_threshold_lines(track: str, points: list[dict[str, Any]]) -> list[str]:
    """``recognizer, gallery's own min_score: q0.9 0.62 F1 0.91, …`` (one line)."""
    if not points:
        return []
    return [f"  {track} at the gallery's own min_score: " + ", ".join(
        f"q{item['quantile']} {item['min_score']} F1 {item['point']['f1']:.3f}" for item in points)]


def _breakdown_lines(track: str, breakdown: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """``recognizer recall@1 per package: box 0.950 (40), can 0.900 (30)``, one line per group."""
    return [f"  {track} recall@1 per {name}: " + ", ".join(f"{value} {item['recall1']:.3f} ({item['queries']})"
                                                        for value, item in values.items())
            for name, values in breakdown.items()]


def _command_line(data: Path, split: str, out: Path, embedder: Path | None, detector: Path | None, limit: int | None,
                  tracks: list[str], calibration_split: str, precision_target: float | None) -> str:
    words = ["shitu", "eval", "--data", str(data), "--split", split]
    words += ["--embedder", str(embedder)] if embedder else []
    words += ["--detector", str(detector)] if detector else []
    words += ["--limit", str(limit)] if limit else []
    if set(tracks) != {"recognizer", "detector", "end-to-end"}:
        words += [word for track in tracks for word in ("--track", track)]
    words += ["--calibration-split", calibration_split] if calibration_split != "val" else []
    words += ["--precision-target", str(precision_target)] if precision_target is not None else []
    return " ".join(shlex.quote(word) for word in [*words, "--out", str(out)])
