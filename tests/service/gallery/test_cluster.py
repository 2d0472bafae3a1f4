"""The cluster back end's own guarantees: a failure between PostgreSQL and Milvus leaves neither half, an
interrupted write is repaired at the next start, and two galleries on one cluster see each other's writes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.config import GalleryBackend, GallerySettings
from service.errors import GalleryError
from service.gallery import Gallery
from service.gallery.cluster.milvus import MilvusIndex
from service.gallery.filters import parse_filter
from tests.servers import ClusterServers

from .conftest import DIM, MODEL_ID, add, snapshot, unit_vectors


class Killed(BaseException):
    """Stands for the process dying mid-write: nothing after it runs, not even the undo."""


@pytest.fixture
def settings(cluster_servers: ClusterServers, tmp_path: Path) -> GallerySettings:
    cluster = cluster_servers.settings()
    return GallerySettings(path=tmp_path / "gallery", backend=GalleryBackend.cluster, cluster=cluster)


def _fail_once(monkeypatch: pytest.MonkeyPatch, name: str, error: BaseException) -> None:
    original = getattr(MilvusIndex, name)
    calls = {"n": 0}

    def failing(self: MilvusIndex, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return original(self, *args)

    monkeypatch.setattr(MilvusIndex, name, failing)


def test_milvus_failure_during_an_add_leaves_neither_half(gallery: Gallery, monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = unit_vectors(2, seed=40)
    add(gallery, "kept", vectors[0], 0, item_id="kept", metadata={"a": 1})
    before = snapshot(gallery)
    _fail_once(monkeypatch, "upsert", RuntimeError("milvus is down"))

    with pytest.raises(GalleryError, match="nothing was stored") as raised:
        add(gallery, "new", vectors[1], 1, item_id="new")
    assert raised.value.status == 503 and raised.value.details["retry_after_s"] > 0
    _fail_once(monkeypatch, "upsert", RuntimeError("milvus is down"))
    with pytest.raises(GalleryError, match="Milvus"):  # an existing item, new image and new metadata
        add(gallery, "kept", vectors[1], 1, item_id="kept", metadata={"a": 2})

    assert snapshot(gallery) == before
    assert gallery.check(thorough=True) and not gallery.stats().rebuilding  # nothing left pending


def test_milvus_failure_during_a_delete_is_hidden_then_repaired(
    gallery: Gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = unit_vectors(2, seed=41)
    add(gallery, "gone", vectors[0], 0, item_id="gone")
    add(gallery, "stays", vectors[1], 1, item_id="stays")
    _fail_once(monkeypatch, "delete", RuntimeError("milvus is down"))

    assert gallery.delete_item("gone") == 1

    assert [m.item_id for m in gallery.search(vectors[:1], top_k=5)[0]] == ["stays"]
    assert gallery.stats().index_size == 2 and gallery.stats().rebuilding  # the Milvus row waits for the repair
    assert gallery.backend.repair() == 1  # type: ignore[attr-defined]  # the cluster back end's own method
    assert gallery.stats().index_size == 1 and gallery.check(thorough=True)


def test_a_write_killed_between_the_stores_is_repaired_at_the_next_start(
    settings: GallerySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = unit_vectors(3, seed=42)
    gallery = Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID)
    add(gallery, "first", vectors[0], 0, item_id="first")
    _fail_once(monkeypatch, "upsert", Killed())
    with pytest.raises(Killed):  # committed in PostgreSQL with its pending mark, never reached Milvus
        add(gallery, "second", vectors[1], 1, item_id="second", metadata={"brand": "acme"})
    _fail_once(monkeypatch, "delete", Killed())
    with pytest.raises(Killed):
        gallery.delete_item("first")
    gallery.close()
    monkeypatch.undo()

    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as reopened:
        assert reopened.check(thorough=True) and not reopened.stats().rebuilding
        assert reopened.stats().index_size == reopened.stats().images == 1
        [[match]] = reopened.search(vectors[1:2], top_k=5, metadata_filter=parse_filter({"key": "brand", "eq": "acme"}))
        assert match.item_id == "second"


@pytest.fixture
def two_replicas(settings: GallerySettings) -> Iterator[tuple[Gallery, Gallery]]:
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as one:
        with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as two:
            yield one, two


def test_two_galleries_on_one_cluster_see_each_others_writes(two_replicas: tuple[Gallery, Gallery]) -> None:
    one, two = two_replicas
    vectors = unit_vectors(3, seed=43)

    added = add(one, "tea", vectors[0], 0, item_id="tea", metadata={"brand": "acme"})
    [[found]] = two.search(vectors[:1], top_k=1, metadata_filter=parse_filter({"key": "brand", "eq": "acme"}))
    two.update_item("tea", label="green tea", metadata={"brand": "bolt"})
    [[relabelled]] = one.search(vectors[:1], top_k=1)
    filtered = one.search(vectors[:1], top_k=1, metadata_filter=parse_filter({"key": "brand", "eq": "acme"}))
    two.delete_image(added.image.image_id)

    assert found.image_id == added.image.image_id
    assert relabelled.label == "green tea" and filtered == [[]]
    assert one.search(vectors[:1], top_k=1) == [[]] and one.get_item("tea").image_count == 0


def test_concurrent_writers_on_two_replicas_keep_the_stores_equal(two_replicas: tuple[Gallery, Gallery]) -> None:
    vectors = unit_vectors(24, seed=44)
    errors: list[BaseException] = []

    def write(gallery: Gallery, offset: int) -> None:
        try:
            for number in range(offset, 24, 2):
                # both replicas enrol into the same three items at once: the item lock serialises them
                add(gallery, f"item {number % 3}", vectors[number], number, item_id=f"item-{number % 3}",
                    metadata={"n": number})
                if number % 4 == 0:
                    gallery.delete_image(gallery.item_images(f"item-{number % 3}")[0].image_id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(gallery, offset)) for offset, gallery in enumerate(two_replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    one, two = two_replicas
    assert not errors
    assert one.check(thorough=True) and two.check(thorough=True)
    assert one.stats().images == two.stats().index_size == 24 - 6
    assert snapshot(one) == snapshot(two)
