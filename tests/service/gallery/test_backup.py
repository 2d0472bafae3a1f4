"""``shitu gallery backup|restore``: a consistent copy taken while a service writes, verified on restore."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from tests.service.conftest import service_settings
from tests.service.images import encode


def _image(seed: int) -> bytes:
    return encode(np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8), ".png")


def test_backup_while_writing_then_restore_serves_the_same_gallery(model_store_dir: Path, tmp_path: Path) -> None:
    gallery, backup, restored = tmp_path / "gallery", tmp_path / "backup", tmp_path / "restored"
    env = {"SHITU_MODELS__STORE": str(model_store_dir), "SHITU_GALLERY__PATH": str(gallery)}
    stop = threading.Event()
    written: list[int] = []
    with TestClient(create_app(service_settings(model_store_dir, gallery))) as client:
        for seed in range(6):
            assert client.post("/gallery", files={"image": ("p.png", _image(seed), "image/png")},
                               data={"label": f"item {seed % 3}", "detect": "false"}).status_code == 201

        def writer() -> None:
            seed = 100
            while not stop.is_set():
                response = client.post("/gallery", files={"image": ("p.png", _image(seed), "image/png")},
                                       data={"label": "late", "detect": "false"})
                if response.status_code == 201:
                    written.append(seed)
                if seed % 3 == 0:
                    client.delete(f"/gallery/images/{response.json()['image']['image_id']}")
                seed += 1

        thread = threading.Thread(target=writer)
        thread.start()
        result = CliRunner().invoke(app, ["gallery", "backup", str(backup)], env=env)
        stop.set()
        thread.join()

    assert result.exit_code == 0, result.output
    assert written, "the backup ran while the service wrote"
    restore = CliRunner().invoke(app, ["gallery", "restore", str(backup)],
                                 env={**env, "SHITU_GALLERY__PATH": str(restored)})
    assert restore.exit_code == 0, restore.output
    with TestClient(create_app(service_settings(model_store_dir, restored))) as client:
        ready = client.get("/ready").json()
        stats = client.get("/info").json()["gallery"]
        found = client.post("/recognize", files={"image": ("q.png", _image(1), "image/png")},
                            data={"whole_image": "always", "detection_threshold": "0.99"}).json()

    assert ready["index_consistent"] is True and stats["images"] >= 6
    assert f"{stats['items']} items, {stats['images']} images" in restore.output
    whole = next(found_object for found_object in found["objects"] if found_object["source"] == "whole_image")
    assert whole["match"]["label"] == "item 1" and whole["match"]["score"] > 0.99


def test_a_damaged_backup_is_refused_and_nothing_is_installed(model_store_dir: Path, tmp_path: Path) -> None:
    gallery, backup = tmp_path / "gallery", tmp_path / "backup"
    env = {"SHITU_MODELS__STORE": str(model_store_dir), "SHITU_GALLERY__PATH": str(gallery)}
    with TestClient(create_app(service_settings(model_store_dir, gallery))) as client:
        client.post("/gallery", files={"image": ("p.png", _image(0), "image/png")},
                    data={"label": "one", "detect": "false"})
    assert CliRunner().invoke(app, ["gallery", "backup", str(backup)], env=env).exit_code == 0
    image = next((backup / "images").iterdir())
    image.write_bytes(image.read_bytes()[:-10] + b"0123456789")

    refused = CliRunner().invoke(app, ["gallery", "restore", str(backup)],
                                 env={**env, "SHITU_GALLERY__PATH": str(tmp_path / "restored")})

    assert refused.exit_code != 0 and "missing or damaged" in str(refused.exception)
    assert not (tmp_path / "restored" / "gallery.db").exists()


@pytest.mark.parametrize("target", ["gallery", "backup"])
def test_backup_and_restore_never_overwrite(model_store_dir: Path, tmp_path: Path, target: str) -> None:
    gallery, backup = tmp_path / "gallery", tmp_path / "backup"
    env = {"SHITU_MODELS__STORE": str(model_store_dir), "SHITU_GALLERY__PATH": str(gallery)}
    with TestClient(create_app(service_settings(model_store_dir, gallery))):
        pass
    assert CliRunner().invoke(app, ["gallery", "backup", str(backup)], env=env).exit_code == 0
    if target == "backup":
        again = CliRunner().invoke(app, ["gallery", "backup", str(backup)], env=env)
        assert again.exit_code != 0 and "not empty" in str(again.exception)
    else:
        again = CliRunner().invoke(app, ["gallery", "restore", str(backup)], env=env)
        assert again.exit_code != 0 and "already holds a gallery" in str(again.exception)
