"""The ``shitu`` command: serve, manage the gallery and the model store, and the trainer's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from trainer.cli import register as register_trainer_commands

app = typer.Typer(help="PP-ShiTuV2 product recognition: service, gallery, models and trainer.", no_args_is_help=True)
gallery_app = typer.Typer(help="Import and export the gallery in PaddleClas list format.")
models_app = typer.Typer(help="List and pull known models into the model store.")
app.add_typer(gallery_app, name="gallery")
app.add_typer(models_app, name="models")
register_trainer_commands(app)

_STORE_OPTION = typer.Option(None, "--store", help="model store directory (default: SHITU_MODELS__STORE)")


@models_app.command("list")
def list_models(store: Path | None = _STORE_OPTION) -> None:
    """Show the known models, their sizes and whether they are installed."""
    from rich.console import Console

    from service.config import get_settings
    from service.registry.known import KNOWN_MODELS
    from service.registry.terminal import models_table

    Console().print(models_table(KNOWN_MODELS.values(), store or get_settings().models.store))


@models_app.command("pull")
def pull_model(
    name: str = typer.Argument(..., help="a name from `shitu models list`"),
    store: Path | None = _STORE_OPTION,
    url: str | None = typer.Option(None, help="download from this URL instead (a mirror)"),
    force: bool = typer.Option(False, "--force", help="replace an installed copy"),
) -> None:
    """Download a known model, verify it and install it into the model store (resumes interrupted downloads)."""
    from rich.console import Console

    from service.config import get_settings
    from service.registry.terminal import pull_command

    code = pull_command(name, store or get_settings().models.store, url, force, Console(stderr=False))
    raise typer.Exit(code)


def main() -> None:
    app()
