"""The body of ``shitu train rec``: config with ``--set`` overrides, resume, rich progress and logs, a summary."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trainer.recognition.checkpoints import resolve_checkpoint
from trainer.recognition.config import load_recognition_config


def run_train_recognition(config_path: Path, overrides: list[str], *, resume: bool) -> None:
    """``resume``: continue the run in the config's ``output`` from its newest checkpoint."""
    try:
        config = load_recognition_config(config_path, overrides)
    except (ValidationError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--config/--set") from error
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)], force=True)
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs every CPU feature it probes
    from trainer.recognition.train import train_recognition  # imports faiss: after the line above

    try:
        checkpoint = resolve_checkpoint(config.output) if resume else None
    except FileNotFoundError as error:
        typer.echo(f"error: nothing to resume: {error}", err=True)
        raise typer.Exit(2) from error
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("training", total=None)

        def on_step(epoch: int, step: int, steps: int) -> None:
            progress.update(task, description=f"epoch {epoch}/{config.epochs}", completed=step, total=steps)

        result = train_recognition(config, resume=checkpoint, on_step=on_step)
    best = result.progress
    summary = f"trained {best.step} steps over {best.epoch} epochs"
    if best.best_recall1 is not None:
        summary += f"; best recall@1 {best.best_recall1:.4f} at epoch {best.best_epoch}"
    typer.echo(summary)
    typer.echo(f"best checkpoint: {result.best_checkpoint}")
    typer.echo(f"exported model: {result.export_dir}")
