from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.config import GallerySettings, IndexKind
from service.gallery import Gallery
from service.gallery.index import VectorIndex

from .conftest import DIM, MODEL_ID, add, unit_vectors

COUNT = 60


def _wait_for_rebuild(gallery: Gallery, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while gallery.stats().rebuilding:
        assert time.monotonic() < deadline, "the HNSW rebuild did not finish"
        time.sleep(0.01)


def _fill(gallery: Gallery, vectors: np.ndarray) -> list[str]:
    return [add(gallery, f"label {n}", vectors[n], n, item_id=f"item-{n}").image.image_id for n in range(len(vectors))]


def _assert_finds_each_live_image(gallery: Gallery, vectors: np.ndarray, image_ids: list[str | None]) -> None:
    results = gallery.search(vectors, top_k=5)
    deleted = {n for n, image_id in enumerate(image_ids) if image_id is None}
    for number, matches in enumerate(results):
        assert not {m.item_id for m in matches} & {f"item-{n}" for n in deleted}
        if number not in deleted:
            assert matches[0].image_id == image_ids[number]
            assert matches[0].score == pytest.approx(1.0, abs=1e-5)


def test_masked_deletions_are_never_returned(hnsw_settings: GallerySettings) -> None:
    vectors = unit_vectors(COUNT, seed=40)
    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        image_ids: list[str | None] = list(_fill(gallery, vectors))
        for number in range(0, 15, 2):
            gallery.delete_image(image_ids[number])  # type: ignore[arg-type]
            image_ids[number] = None

        stats = gallery.stats()
        assert (stats.index_kind, stats.index_size, stats.masked_deletions, stats.images) == ("hnsw", 60, 8, 52)
        _assert_finds_each_live_image(gallery, vectors, image_ids)
        assert gallery.check()


def test_rebuild_drops_masked_vectors_and_keeps_results(hnsw_settings: GallerySettings) -> None:
    vectors = unit_vectors(COUNT, seed=41)
    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        image_ids: list[str | None] = list(_fill(gallery, vectors))
        for number in range(0, 19):  # 19 / 60 > 0.3: the last deletion starts a rebuild
            gallery.delete_item(f"item-{number}")
            image_ids[number] = None
        _wait_for_rebuild(gallery)

        stats = gallery.stats()
        assert (stats.index_size, stats.masked_deletions, stats.images) == (41, 0, 41)
        _assert_finds_each_live_image(gallery, vectors, image_ids)
        assert gallery.check()


def test_writes_during_a_rebuild_are_replayed(hnsw_settings: GallerySettings, monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = unit_vectors(COUNT + 5, seed=42)
    release = threading.Event()
    real_build = VectorIndex.build

    def build_then_wait(*args: object) -> VectorIndex:
        built = real_build(*args)  # type: ignore[arg-type]
        release.wait(10)
        return built

    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        image_ids: list[str | None] = list(_fill(gallery, vectors[:COUNT]))
        monkeypatch.setattr(VectorIndex, "build", staticmethod(build_then_wait))
        for number in range(19):
            gallery.delete_item(f"item-{number}")
            image_ids[number] = None
        assert gallery.stats().rebuilding
        # while the new graph is being built from the old snapshot: add five, delete two
        for number in range(COUNT, COUNT + 5):
            image_ids.append(
                add(gallery, f"label {number}", vectors[number], number, item_id=f"item-{number}").image.image_id
            )
        for number in (30, COUNT + 1):
            gallery.delete_item(f"item-{number}")
            image_ids[number] = None
        _assert_finds_each_live_image(gallery, vectors, image_ids)
        release.set()
        _wait_for_rebuild(gallery)

        stats = gallery.stats()
        assert (stats.index_size, stats.masked_deletions, stats.images) == (
            45,
            1,
            44,
        )  # snapshot 41 + 4 new live rows; item-30 masked
        _assert_finds_each_live_image(gallery, vectors, image_ids)
        assert gallery.check()


def test_reopen_loads_the_snapshot_and_masks_deletions(hnsw_settings: GallerySettings) -> None:
    vectors = unit_vectors(20, seed=43)
    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        image_ids: list[str | None] = list(_fill(gallery, vectors))
        gallery.delete_item("item-3")
        image_ids[3] = None

    assert (hnsw_settings.path / "index.hnsw").is_file()
    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        assert (gallery.stats().index_size, gallery.stats().masked_deletions) == (20, 1)
        _assert_finds_each_live_image(gallery, vectors, image_ids)
        assert gallery.check()


def test_a_stale_snapshot_is_reconciled_with_the_store(hnsw_settings: GallerySettings) -> None:
    vectors = unit_vectors(24, seed=44)
    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        image_ids: list[str | None] = list(_fill(gallery, vectors[:20]))
    old_snapshot = (hnsw_settings.path / "index.hnsw").read_bytes()
    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        for number in range(20, 24):
            image_ids.append(add(gallery, "new", vectors[number], number, item_id=f"item-{number}").image.image_id)
        for number in (1, 2, 21):
            gallery.delete_item(f"item-{number}")
            image_ids[number] = None
    # as after a crash: the snapshot on disk predates the last writes
    (hnsw_settings.path / "index.hnsw").write_bytes(old_snapshot)

    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        assert (gallery.stats().index_size, gallery.stats().masked_deletions) == (23, 2)
        _assert_finds_each_live_image(gallery, vectors, image_ids)
        assert gallery.check(thorough=True)
    assert (hnsw_settings.path / "index.hnsw").read_bytes() != old_snapshot  # the reconciled graph was saved


@pytest.mark.parametrize("kind", ["foreign", "corrupt"])
def test_a_foreign_or_corrupt_snapshot_is_rebuilt(hnsw_settings: GallerySettings, tmp_path: Path, kind: str) -> None:
    other = hnsw_settings.model_copy(update={"path": tmp_path / "other"})
    with Gallery.open(other, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        _fill(gallery, unit_vectors(5, seed=45))
    vectors = unit_vectors(10, seed=46)
    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        image_ids: list[str | None] = list(_fill(gallery, vectors))
    snapshot = hnsw_settings.path / "index.hnsw"
    if kind == "foreign":
        snapshot.write_bytes((other.path / "index.hnsw").read_bytes())
    else:
        snapshot.write_bytes(snapshot.read_bytes()[:200])

    with Gallery.open(hnsw_settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        assert (gallery.stats().index_size, gallery.stats().masked_deletions) == (10, 0)
        _assert_finds_each_live_image(gallery, vectors, image_ids)


def test_auto_is_exact_while_small_and_switches_to_hnsw_past_the_threshold(tmp_path: Path) -> None:
    settings = GallerySettings(path=tmp_path / "auto", index=IndexKind.auto, exact_max_images=30, hnsw_m=16)
    vectors = unit_vectors(40, seed=47)
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        image_ids: list[str | None] = list(_fill(gallery, vectors[:29]))
        assert gallery.stats().index_kind == "flat"
        image_ids += _fill_from(gallery, vectors, 29, 40)  # the 30th image starts the switch
        _wait_for_rebuild(gallery)
        assert gallery.stats().index_kind == "hnsw"
        gallery.delete_item("item-5")  # a delete after the switch is visible to the next search
        image_ids[5] = None
        _assert_finds_each_live_image(gallery, vectors, image_ids)
        assert gallery.check(thorough=True)

    assert (settings.path / "index.hnsw").is_file()
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:  # from the snapshot
        assert (gallery.stats().index_kind, gallery.stats().masked_deletions) == ("hnsw", 1)
        _assert_finds_each_live_image(gallery, vectors, image_ids)
    small = settings.model_copy(update={"exact_max_images": 1000})
    with Gallery.open(small, embedding_dim=DIM, model_id=MODEL_ID) as gallery:  # below the threshold again: exact
        assert (gallery.stats().index_kind, gallery.stats().index_size) == ("flat", 39)
        _assert_finds_each_live_image(gallery, vectors, image_ids)


def _fill_from(gallery: Gallery, vectors: np.ndarray, start: int, stop: int) -> list[str | None]:
    return [add(gallery, f"label {n}", vectors[n], n, item_id=f"item-{n}").image.image_id for n in range(start, stop)]
