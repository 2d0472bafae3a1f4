from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from tests.deploy.archives import official_like_tar
from tests.deploy.file_server import FileServer

WIDE = {"COLUMNS": "250"}


def test_pull_installs_an_official_model_and_says_how_to_load_it(file_server: FileServer, tmp_path: Path) -> None:
    url = file_server.serve("det.tar", official_like_tar(params_size=1024))

    result = CliRunner().invoke(
        app, ["models", "pull", "ppshituv2-det", "--store", str(tmp_path), "--url", url], env=WIDE
    )

    assert result.exit_code == 0, result.output
    assert "not verified (the registry has no checksum for it)" in result.output
    assert "load it with SHITU_MODELS__DETECTOR=detector/ppshituv2-det" in result.output
    assert (tmp_path / "detector" / "ppshituv2-det" / "manifest.json").is_file()


def test_list_shows_which_models_are_installed(file_server: FileServer, tmp_path: Path) -> None:
    url = file_server.serve("rec.tar", official_like_tar(params_size=1024))
    CliRunner().invoke(app, ["models", "pull", "ppshituv2-rec", "--store", str(tmp_path), "--url", url])

    result = CliRunner().invoke(app, ["models", "list", "--store", str(tmp_path)], env=WIDE)

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 2}
    assert str(tmp_path / "embedder" / "ppshituv2-rec") in rows["ppshituv2-rec"]
    assert "│ no " in rows["ppshituv2-det"] and "~30.1 MB" in rows["ppshituv2-det"]
    assert "checkpoint" in rows["pplcnetv2-base-ssld"]


def test_list_shows_every_model_directory_of_the_store(file_server: FileServer, tmp_path: Path) -> None:
    url = file_server.serve("rec.tar", official_like_tar(params_size=1024))
    CliRunner().invoke(app, ["models", "pull", "ppshituv2-rec", "--store", str(tmp_path), "--url", url])
    (tmp_path / "detector" / "broken").mkdir(parents=True)

    result = CliRunner().invoke(app, ["models", "list", "--store", str(tmp_path)], env=WIDE)

    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") == 4}
    assert (
        "ppshituv2-rec@1.0" in rows["embedder/ppshituv2-rec"]
        and "PPLCNetV2_base_ShiTu" in rows["embedder/ppshituv2-rec"]
    )
    assert "unreadable" in rows["detector/broken"] and "no manifest.json" in rows["detector/broken"]


def test_failed_pull_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "pull", "no-such-model", "--store", str(tmp_path)], env=WIDE)

    assert result.exit_code == 1
    assert "error: unknown model 'no-such-model'; known models: ppshituv2-rec" in result.output
