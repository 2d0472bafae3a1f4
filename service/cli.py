"""The ``shitu`` command: serve, manage the gallery and the model store, and the trainer's commands."""

from __future__ import annotations

import typer

from trainer.cli import register as register_trainer_commands

app = typer.Typer(help="PP-ShiTuV2 product recognition: service, gallery, models and trainer.", no_args_is_help=True)
gallery_app = typer.Typer(help="Import and export the gallery in PaddleClas list format.")
models_app = typer.Typer(help="List and pull known models into the model store.")
app.add_typer(gallery_app, name="gallery")
app.add_typer(models_app, name="models")
register_trainer_commands(app)


def main() -> None:
    app()
