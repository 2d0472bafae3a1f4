"""``shitu`` composes the service's commands with the trainer's; ``python -m service`` has only its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from service.cli import app as service_app
from shitu.cli import app as shitu_app


def _commands(app: object) -> set[str]:
    return set(get_command(app).commands)  # type: ignore[arg-type, attr-defined]


def test_shitu_holds_the_service_and_the_trainer_commands() -> None:
    assert _commands(service_app) == {"serve", "gallery", "models", "keys"}
    assert _commands(shitu_app) == {"serve", "gallery", "models", "keys", "export", "train", "data", "eval"}


def test_serve_demo_without_the_trainer_says_how_to_render_the_demo(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHITU_GALLERY__PATH", str(tmp_path / "gallery"))
    monkeypatch.setenv("COLUMNS", "300")  # the whole message on one line of the error box

    result = CliRunner().invoke(service_app, ["serve", "--demo"])

    assert result.exit_code == 2
    assert "shitu data demo --out" in result.output and not (tmp_path / "demo").exists()
