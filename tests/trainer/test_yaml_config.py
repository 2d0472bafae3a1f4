"""One config base for both trainers: the same loader, ``--set`` parser, path rule and ``--resume`` meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shitu.cli import app
from tests.trainer.detection_synthetic import make_synthetic_coco
from trainer.detection.config import load_detection_config
from trainer.recognition.config import load_recognition_config
from trainer.yaml_config import parse_overrides

REPO = Path(__file__).resolve().parents[2]
DETECTION = "data: {train_annotations: shapes/train.json}\ntrain: {output_dir: runs/det}\n"
RECOGNITION = "data: {root: shapes, train_list: train.txt}\noutput: runs/rec\n"


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_one_override_parser_reads_values_as_yaml() -> None:
    assert parse_overrides(["train.epochs=3", "data.single_class=null", "sizes=[64, 96]", "name=a=b"]) == {
        "train.epochs": 3, "data.single_class": None, "sizes": [64, 96], "name": "a=b"}
    for malformed in ("epochs", "=3"):
        with pytest.raises(ValueError, match="section.key=value"):
            parse_overrides([malformed])


def test_both_trainers_keep_relative_paths_relative_to_the_working_directory(tmp_path: Path) -> None:
    detection = load_detection_config(_write(tmp_path, "det.yaml", DETECTION), ["data.val_annotations=val.json"])
    recognition = load_recognition_config(_write(tmp_path, "rec.yaml", RECOGNITION), ["data.train_list=t.txt"])

    assert (detection.data.train_annotations, detection.data.val_annotations) == (Path("shapes/train.json"),
                                                                                  Path("val.json"))
    assert (recognition.data.root, recognition.output) == (Path("shapes"), Path("runs/rec"))


@pytest.mark.parametrize(("name", "body", "load", "value_key"), [
    ("det.yaml", DETECTION, load_detection_config, "train.output_dir"),
    ("rec.yaml", RECOGNITION, load_recognition_config, "output"),
])
def test_both_trainers_reject_unknown_keys_and_overrides_through_a_value(tmp_path: Path, name: str, body: str,
                                                                         load: Any, value_key: str) -> None:
    path = _write(tmp_path, name, body)
    with pytest.raises(ValueError, match="extra"):
        load(path, ["data.no_such_key=1"])
    with pytest.raises(ValueError, match="not a section"):
        load(path, [f"{value_key}.deeper=1"])


@pytest.mark.parametrize("kind", ["det", "rec"])
def test_resume_means_the_newest_checkpoint_of_the_configs_output_for_both(tmp_path: Path, kind: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the configs' relative output directories are under tmp_path, and empty
    if kind == "det":
        make_synthetic_coco(tmp_path / "shapes", count=4, size=64)
        arguments = ["--config", str(REPO / "trainer/configs/detection_tiny.yaml"),
                     "--set", "data.train_annotations=shapes/annotations.json", "--set", "train.output_dir=runs/det"]
    else:
        (tmp_path / "shapes").mkdir()
        (tmp_path / "shapes" / "train.txt").write_text("", encoding="utf-8")
        arguments = ["--config", str(_write(tmp_path, "rec.yaml", RECOGNITION))]

    result = CliRunner().invoke(app, ["train", kind, *arguments, "--resume"])

    assert result.exit_code == 2, result.output
    assert "nothing to resume" in result.output
