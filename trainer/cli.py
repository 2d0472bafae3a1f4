"""Trainer commands of the ``shitu`` CLI: ``shitu export …``, ``shitu train …``, ``shitu data …``.

Each command imports paddle (and its own module) only when it runs, so ``shitu --help`` stays fast.
"""

from __future__ import annotations

import typer

export_app = typer.Typer(help="Export networks to Paddle Inference model directories the service loads.")
train_app = typer.Typer(help="Train the recognition model or the main-body detector.")
data_app = typer.Typer(help="Generate datasets.")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.add_typer(train_app, name="train")
    app.add_typer(data_app, name="data")
