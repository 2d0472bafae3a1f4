from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.config import GallerySettings, IndexKind
from service.gallery import Gallery

from .conftest import DIM, MODEL_ID, add, unit_vectors


@pytest.fixture
def settings(embedded_settings: GallerySettings) -> GallerySettings:
    """The embedded back end only: this module tests its SQLite, faiss and directory specifics."""
    return embedded_settings

WRITERS = 3
ADDS_PER_WRITER = 25
SEARCHERS = 3


@pytest.mark.parametrize("kind", [IndexKind.flat, IndexKind.hnsw])
def test_concurrent_writers_and_searchers(settings: GallerySettings, kind: IndexKind) -> None:
    settings = settings.model_copy(update={"index": kind, "rebuild_deleted_fraction": 0.1})
    vectors = unit_vectors(WRITERS * ADDS_PER_WRITER, seed=50)
    writers_done = threading.Event()

    def write(writer: int) -> set[str]:
        kept = set()
        for step in range(ADDS_PER_WRITER):
            number = writer * ADDS_PER_WRITER + step
            enrolment = add(gallery, f"w{writer}", vectors[number], number, item_id=f"w{writer}-{step // 2}")
            # an acknowledged write is visible to the very next search
            [[best]] = gallery.search(vectors[number : number + 1], top_k=1)
            assert best.image_id == enrolment.image.image_id
            if step % 3 == 2:
                gallery.delete_image(enrolment.image.image_id)
            else:
                kept.add(enrolment.image.image_id)
        return kept

    def search() -> int:
        searches = 0
        while not writers_done.is_set() or searches == 0:
            for matches in gallery.search(vectors[searches % 8 :: 8], top_k=4):
                assert len({m.item_id for m in matches}) == len(matches)
                assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
                assert all(m.label == m.item_id.split("-")[0] for m in matches)
            searches += 1
        return searches

    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        with ThreadPoolExecutor(WRITERS + SEARCHERS) as pool:
            searchers = [pool.submit(search) for _ in range(SEARCHERS)]
            writers = [pool.submit(write, writer) for writer in range(WRITERS)]
            kept = set().union(*(future.result(timeout=120) for future in writers))
            writers_done.set()
            assert all(future.result(timeout=60) > 0 for future in searchers)

        while gallery.stats().rebuilding:
            threading.Event().wait(0.01)
        stored = {
            image.image_id for item in gallery.list_items(limit=1000)[0] for image in gallery.item_images(item.item_id)
        }
        assert stored == kept
        assert gallery.check()
