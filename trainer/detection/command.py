"""The body of ``shitu train det``: config with ``--set`` overrides, optional augmentation preview, logs, summary."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.logging import RichHandler

from trainer.detection.coco import DetectionDataError
from trainer.detection.config import TrainDetectionConfig, load_detection_config


def run_train_detection(config_path: Path, overrides: list[str], *, resume: bool, preview: Path | None) -> None:
    """``resume``: continue the run in the config's ``train.output_dir`` from its newest checkpoint."""
    try:
        config = load_detection_config(config_path, overrides)
    except (ValidationError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--config/--set") from error
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)], force=True)
    try:
        if preview is not None:
            _write_preview(config, preview)
            return
        from trainer.detection.train import train_detector

        result = train_detector(config, resume=resume, progress=True)
    except (DetectionDataError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    summary = f"trained {result.steps} steps"
    if result.evaluations:
        last = result.evaluations[-1]
        summary += f"; last validation AP {last['ap']:.4f} AP50 {last['ap50']:.4f}; best AP {result.best_ap:.4f}"
    typer.echo(summary)
    typer.echo(f"checkpoints: {result.checkpoint_dir}")
    if result.manifest is not None:
        typer.echo(f"exported model: {result.manifest.model_id} in {config.export_dir}")


def _write_preview(config: TrainDetectionConfig, out_path: Path) -> None:
    from trainer.detection.loader import write_augmentation_preview
    from trainer.detection.train import open_datasets, train_loader

    train_set, _ = open_datasets(config)
    written = write_augmentation_preview(train_loader(config, train_set), out_path)
    typer.echo(f"wrote augmented samples with their boxes to {written}")
