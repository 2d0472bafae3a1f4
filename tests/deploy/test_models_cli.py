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


def _rows(output: str) -> dict[str, list[str]]:
    """``shitu models list`` off a terminal: tab-separated lines under ``# title`` lines."""
    return {line.split("\t")[0]: line.split("\t") for line in output.splitlines() if "\t" in line}


def test_list_shows_which_models_are_installed(file_server: FileServer, tmp_path: Path) -> None:
    url = file_server.serve("rec.tar", official_like_tar(params_size=1024))
    CliRunner().invoke(app, ["models", "pull", "ppshituv2-rec", "--store", str(tmp_path), "--url", url])

    # A narrow "terminal" setting must not matter off a terminal: nothing is cut to fit.
    result = CliRunner().invoke(app, ["models", "list", "--store", str(tmp_path)], env={"COLUMNS": "20"})

    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows["name"] == ["name", "kind", "size", "sha256", "installed", "description"]
    assert rows["ppshituv2-rec"][4] == str(tmp_path / "embedder" / "ppshituv2-rec")
    assert rows["ppshituv2-det"][2:5] == ["~30.1 MB", "unknown", "no"]
    assert rows["ppshituv2-det"][5] == "official main-body detector, PicoDet-LCNet_x2_5 640"
    assert rows["pplcnetv2-base-ssld"][1] == "checkpoint"


def test_list_shows_every_model_directory_of_the_store(file_server: FileServer, tmp_path: Path) -> None:
    url = file_server.serve("rec.tar", official_like_tar(params_size=1024))
    CliRunner().invoke(app, ["models", "pull", "ppshituv2-rec", "--store", str(tmp_path), "--url", url])
    (tmp_path / "detector" / "broken").mkdir(parents=True)

    result = CliRunner().invoke(app, ["models", "list", "--store", str(tmp_path)], env={"COLUMNS": "20"})

    rows = _rows(result.output)
    assert rows["embedder/ppshituv2-rec"][1:] == ["ppshituv2-rec@1.0", "PPLCNetV2_base_ShiTu"]
    assert rows["detector/broken"][1] == "unreadable" and "no manifest.json" in rows["detector/broken"][2]


def test_failed_pull_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "pull", "no-such-model", "--store", str(tmp_path)], env=WIDE)

    assert result.exit_code == 1
    assert "error: unknown model 'no-such-model'; known models: ppshituv2-rec" in result.output
