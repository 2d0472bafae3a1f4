"""``shitu gallery import/export`` with PaddleClas list files, on real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.service.images import cat, coffee, encode, rocket


@pytest.fixture
def environment(model_environment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**model_environment, "SHITU_GALLERY__PATH": str(tmp_path / "gallery")}


def test_import_twice_then_export_round_trips_labels(environment: dict[str, str], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "drinks").mkdir(parents=True)
    lines = []
    for name, photo, label in (("a.jpg", coffee(), "乐虎 coffee"), ("b.jpg", cat(), "cat food"),
                               ("c.jpg", rocket(), "cat food")):
        (photos / "drinks" / name).write_bytes(encode(photo))
        lines.append(f"drinks/{name}\t{label}")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    list_file = photos / "gallery_list.txt"
    list_file.write_text("\n".join([*lines, "broken.jpg\tbroken"]) + "\n", encoding="utf-8")
    runner = CliRunner()

    first = runner.invoke(app, ["gallery", "import", str(list_file), "--whole-image"], env=environment)
    second = runner.invoke(app, ["gallery", "import", str(list_file), "--whole-image"], env=environment)
    exported = runner.invoke(app, ["gallery", "export", str(tmp_path / "out")], env=environment)

    assert first.exit_code == 1 and "added 3, unchanged 0, failed 1" in first.output
    assert "broken.jpg" in first.output
    assert "added 0, unchanged 3, failed 1" in second.output
    assert exported.exit_code == 0, exported.output
    rows = (tmp_path / "out" / "gallery_list.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(row.split("\t")[1] for row in rows) == ["cat food", "cat food", "乐虎 coffee"]
    assert all((tmp_path / "out" / row.split("\t")[0]).is_file() for row in rows)


def test_a_new_embedder_needs_reembed_then_the_gallery_opens(environment: dict[str, str], tmp_path: Path,
                                                             model_store_dir: Path) -> None:
    import json
    import shutil

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(encode(coffee()))
    (photos / "list.txt").write_text("a.jpg\tcoffee\n", encoding="utf-8")
    upgraded = tmp_path / "upgraded"
    shutil.copytree(model_store_dir / "embedder" / "default", upgraded)
    manifest = json.loads((upgraded / "manifest.json").read_text())
    (upgraded / "manifest.json").write_text(json.dumps({**manifest, "version": "2"}))
    runner = CliRunner()
    runner.invoke(app, ["gallery", "import", str(photos / "list.txt"), "--whole-image"], env=environment)
    with_upgrade = {**environment, "SHITU_MODELS__EMBEDDER": str(upgraded)}

    refused = runner.invoke(app, ["gallery", "import", str(photos / "list.txt"), "--whole-image"], env=with_upgrade)
    redone = runner.invoke(app, ["gallery", "reembed"], env=with_upgrade)
    after = runner.invoke(app, ["gallery", "import", str(photos / "list.txt"), "--whole-image"], env=with_upgrade)

    assert refused.exit_code != 0 and "reembed" in str(refused.exception)
    assert redone.exit_code == 0 and "re-embedded 1 images with efficientnet-lite0-imagenet@2" in redone.output
    assert after.exit_code == 0 and "added 0, unchanged 1, failed 0" in after.output


def test_import_says_its_mode_and_detect_crops_the_best_detection(environment: dict[str, str],
                                                                  tmp_path: Path) -> None:
    """Whole images by default (PaddleClas's gallery builder); ``--detect`` embeds the best detection's crop."""
    import json
    import sqlite3

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(encode(coffee()))
    (photos / "list.txt").write_text("a.jpg\tcoffee\n", encoding="utf-8")
    runner = CliRunner()
    whole = runner.invoke(app, ["gallery", "import", str(photos / "list.txt")], env=environment)
    detected_env = {**environment, "SHITU_GALLERY__PATH": str(tmp_path / "gallery-detect")}
    detected = runner.invoke(app, ["gallery", "import", str(photos / "list.txt"), "--detect"], env=detected_env)

    assert whole.exit_code == 0 and "embedding whole images, as PaddleClas" in whole.output
    assert detected.exit_code == 0 and "embedding the best detection" in detected.output
    boxes = []
    for gallery in (tmp_path / "gallery", tmp_path / "gallery-detect"):
        with sqlite3.connect(gallery / "gallery.db") as connection:
            (box,) = connection.execute("SELECT box FROM images").fetchone()
            boxes.append(None if box is None else json.loads(box))
    assert boxes[0] is None  # the store's "whole image"
    assert boxes[1] is not None and boxes[1][2] - boxes[1][0] < coffee().shape[1]


def test_import_is_confined_to_its_root_unless_told(environment: dict[str, str], tmp_path: Path) -> None:
    photos, outside = tmp_path / "photos", tmp_path / "elsewhere"
    photos.mkdir()
    outside.mkdir()
    (outside / "b.jpg").write_bytes(encode(cat()))
    for line in (f"{outside / 'b.jpg'}\tcat", "../elsewhere/b.jpg\tcat", "/etc/passwd\tx"):
        (photos / "list.txt").write_text(line + "\n", encoding="utf-8")
        refused = CliRunner().invoke(app, ["gallery", "import", str(photos / "list.txt")], env=environment)
        assert refused.exit_code != 0 and "outside the root" in str(refused.exception or refused.output)

    (photos / "list.txt").write_text("../elsewhere/b.jpg\tcat\n", encoding="utf-8")
    allowed = CliRunner().invoke(app, ["gallery", "import", str(photos / "list.txt"), "--allow-outside-root"],
                                 env=environment)
    assert allowed.exit_code == 0 and "added 1" in allowed.output


def test_import_skips_a_file_over_the_upload_limit(environment: dict[str, str], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "big.jpg").write_bytes(encode(coffee()) + b"\0" * (2 << 20))
    (photos / "ok.jpg").write_bytes(encode(cat()))
    (photos / "list.txt").write_text("big.jpg\tcoffee\nok.jpg\tcat\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["gallery", "import", str(photos / "list.txt")],
                                env={**environment, "SHITU_LIMITS__MAX_UPLOAD_MB": "1"})

    assert result.exit_code == 1 and "added 1, unchanged 0, failed 1" in result.output
    assert "big.jpg" in result.output and "over the upload limit" in result.output


def test_every_label_the_api_accepts_survives_export_and_import(environment: dict[str, str], tmp_path: Path,
                                                                model_store_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.service.conftest import service_settings

    labels = ["乐虎 250 ml", "Crème brûlée", "👩‍🔬 kit", "עברית\u200f", "a\u00a0b", "x" * 200, "#1 bestseller",
              "tab-free; \\backslash", "combining e\u0301"]
    gallery = tmp_path / "gallery"
    with TestClient(create_app(service_settings(model_store_dir, gallery))) as client:
        for index, label in enumerate(labels):
            image = encode(np.full((32, 32, 3), index * 20, dtype=np.uint8))
            response = client.post("/gallery", files={"image": ("p.jpg", image, "image/jpeg")},
                                   data={"label": label, "detect": "false"})
            assert response.status_code == 201, (label, response.text)
    env = {**environment, "SHITU_GALLERY__PATH": str(gallery)}
    exported = CliRunner().invoke(app, ["gallery", "export", str(tmp_path / "out")], env=env)
    imported = CliRunner().invoke(app, ["gallery", "import", str(tmp_path / "out" / "gallery_list.txt")],
                                  env={**env, "SHITU_GALLERY__PATH": str(tmp_path / "again")})

    assert exported.exit_code == 0 and imported.exit_code == 0, imported.output
    with TestClient(create_app(service_settings(model_store_dir, tmp_path / "again"))) as client:
        page = client.get("/gallery/items", params={"limit": 100}).json()
    assert sorted(item["label"] for item in page["items"]) == sorted(labels)
