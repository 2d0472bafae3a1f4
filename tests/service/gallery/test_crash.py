from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import GallerySettings, IndexKind
from service.gallery import Gallery

from .conftest import DIM, MODEL_ID
from .crash_writer import ITEMS, vector_for


@pytest.fixture
def settings(embedded_settings: GallerySettings) -> GallerySettings:
    """The embedded back end only: this module tests its SQLite, faiss and directory specifics."""
    return embedded_settings

REPO = Path(__file__).resolve().parents[3]
ACKNOWLEDGED_BEFORE_KILL = 40


@pytest.mark.parametrize("kind", [IndexKind.flat, IndexKind.hnsw])
def test_acknowledged_images_survive_sigkill(settings: GallerySettings, kind: IndexKind) -> None:
    settings = settings.model_copy(update={"index": kind})
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.service.gallery.crash_writer", str(settings.path), kind.value],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    lines = []
    try:
        while len(lines) < ACKNOWLEDGED_BEFORE_KILL:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"the writer stopped early: {child.stderr.read()}")
            lines.append(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    # lines flushed before the kill were acknowledged too; a torn last line was not
    lines += child.stdout.read().splitlines(keepends=True)
    child.stdout.close()
    child.stderr.close()
    acknowledged = dict(line.split() for line in lines if line.endswith("\n"))

    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        assert gallery.check(thorough=True) and gallery.check()
        assert gallery.stats().images >= len(acknowledged)
        for image_id, number in acknowledged.items():
            image = gallery.get_image(image_id)
            assert image.item_id == f"item-{int(number) % ITEMS}"
            [[best]] = gallery.search(vector_for(int(number))[None], top_k=1)
            assert best.image_id == image_id and best.score == pytest.approx(1.0, abs=1e-5)
        stored_files = {gallery.image_path(image.image_id).name for image, _ in gallery.images_with_labels()}
        assert {path.name for path in (settings.path / "images").iterdir()} == stored_files
