"""Faults injected at the storage and index boundaries: a failed write leaves nothing behind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import GallerySettings
from service.errors import GalleryError
from service.gallery import Gallery
from service.gallery.search import SearchIndex
from service.gallery.store import GalleryStore

from .conftest import DIM, MODEL_ID, add, snapshot, unit_vectors


@pytest.fixture
def settings(embedded_settings: GallerySettings) -> GallerySettings:
    """The embedded back end only: this module tests its SQLite, faiss and directory specifics."""
    return embedded_settings

REPO = Path(__file__).resolve().parents[3]


def test_failed_commit_leaves_no_row_index_entry_or_file(gallery: Gallery, monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = unit_vectors(2, seed=70)
    add(gallery, "kept", vectors[0], 0, item_id="kept")
    before = snapshot(gallery)

    def disk_full(*args: object, **kwargs: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(GalleryStore, "insert_image", staticmethod(disk_full))
    with pytest.raises(sqlite3.OperationalError):
        add(gallery, "new", vectors[1], 1, item_id="new")

    assert snapshot(gallery) == before
    assert gallery.check()


def test_failed_index_insert_undoes_the_committed_rows(gallery: Gallery, monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = unit_vectors(2, seed=71)
    add(gallery, "kept", vectors[0], 0, item_id="kept")
    before = snapshot(gallery)

    def out_of_memory(*args: object) -> None:
        raise MemoryError("faiss could not grow the index")

    monkeypatch.setattr(SearchIndex, "add", out_of_memory)
    with pytest.raises(GalleryError, match="index"):
        add(gallery, "new", vectors[1], 1, item_id="new")
    with pytest.raises(GalleryError, match="index"):
        add(gallery, "kept", vectors[1], 1, item_id="kept", metadata={"changed": True})
    monkeypatch.undo()

    assert snapshot(gallery) == before
    assert gallery.check(thorough=True)


def test_corrupt_database_is_refused_with_a_gallery_error(settings: GallerySettings) -> None:
    settings.path.mkdir(parents=True)
    (settings.path / "gallery.db").write_bytes(b"this is not a database" * 100)

    with pytest.raises(GalleryError, match="cannot open the gallery database"):
        Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID)
    # the directory lock was released with the failure
    (settings.path / "gallery.db").unlink()
    Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID).close()


def test_gallery_core_imports_neither_web_framework_nor_paddle() -> None:
    code = (
        "import sys, service.gallery; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette', 'paddle'}); "
        "sys.exit(', '.join(loaded) or None)"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr


def test_check_detects_a_store_changed_behind_the_gallery(gallery: Gallery, settings: GallerySettings) -> None:
    vectors = unit_vectors(3, seed=72)
    for number in range(3):
        add(gallery, "x", vectors[number], number, item_id="x")
    assert gallery.check() and gallery.check(thorough=True)

    with sqlite3.connect(settings.path / "gallery.db") as outside:
        outside.execute("DELETE FROM images WHERE row_id = (SELECT MAX(row_id) FROM images)")

    assert not gallery.check()
    assert not gallery.check(thorough=True)
