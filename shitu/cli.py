"""``shitu``: serve, gallery and models (:mod:`service.cli`) beside export, train, data and eval (:mod:`trainer.cli`).

The service does not import the trainer, so this module composes the two and hands the service what only the
trainer can do: rendering the demo gallery for ``shitu serve --demo``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from service import cli as service_cli
from trainer import cli as trainer_cli

app = typer.Typer(help="PP-ShiTuV2 product recognition: service, gallery, models and trainer.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
service_cli.register(app)
trainer_cli.register(app)


@app.callback()
def _compose(context: typer.Context) -> None:
    context.obj = _build_demo


def _build_demo(directory: Path) -> None:
    from trainer.synth.demo import build_demo

    build_demo(directory)


def main() -> None:
    service_cli.run(app)
