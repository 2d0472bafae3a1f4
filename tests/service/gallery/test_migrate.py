"""``shitu gallery migrate``: embedded -> cluster -> embedded with the same ids, times, embeddings and results."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.box import Box
from service.cli import app
from service.config import GalleryBackend, GallerySettings
from service.errors import GalleryError
from service.gallery import Gallery
from service.gallery.filters import parse_filter
from service.gallery.migrate import migrate_gallery
from tests.servers import ClusterServers

from .conftest import DIM, MODEL_ID, add, unit_vectors

QUERIES = unit_vectors(6, seed=51)


def _observed(gallery: Gallery) -> tuple[object, ...]:
    items, total = gallery.list_items(limit=1000)
    images = [gallery.item_images(item.item_id) for item in items]
    files = {image.image_id: gallery.image_path(image.image_id).read_bytes() for row in images for image in row}
    acme = parse_filter({"key": "brand", "eq": "acme"})
    rows = [row for search in (gallery.search(QUERIES, top_k=3), gallery.search(QUERIES, 3, acme)) for row in search]
    matches = [[(m.item_id, m.label, m.image_id) for m in row] for row in rows]
    # faiss and Milvus sum the same float32 products in another order: scores agree to about 1e-7
    return items, total, images, files, matches, [m.score for row in rows for m in row]


def _assert_same(observed: tuple[object, ...], expected: tuple[object, ...]) -> None:
    assert observed[:-1] == expected[:-1]
    assert observed[-1] == pytest.approx(expected[-1], abs=1e-5)


def _fill(settings: GallerySettings) -> tuple[object, ...]:
    vectors = unit_vectors(9, seed=50)
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        for number in range(9):
            add(gallery, f"label {number % 4}", vectors[number], number, item_id=f"item-{number % 4}",
                metadata={"brand": "acme" if number % 2 else "bolt", "n": number}, box=Box(0, 0, 10 + number, 20))
        gallery.update_item("item-3", label="renamed")
        gallery.delete_image(gallery.item_images("item-2")[0].image_id)
        return _observed(gallery)


def test_embedded_to_cluster_and_back_keeps_everything(cluster_servers: ClusterServers, tmp_path: Path) -> None:
    embedded = GallerySettings(path=tmp_path / "embedded")
    cluster = GallerySettings(path=tmp_path / "shared", backend=GalleryBackend.cluster,
                              cluster=cluster_servers.settings())
    back = GallerySettings(path=tmp_path / "embedded-again")
    expected = _fill(embedded)

    there = migrate_gallery(embedded, cluster)
    again = migrate_gallery(embedded, cluster)  # resumable: a second run finds everything there
    home = migrate_gallery(cluster, back)

    assert (there.moved, there.already_there, there.items, there.images) == (8, 0, 4, 8)
    assert (again.moved, again.already_there) == (0, 8)
    assert home.moved == 8
    for settings in (cluster, back, embedded):
        with Gallery.open_stored(settings) as gallery:
            _assert_same(_observed(gallery), expected)
            assert gallery.check(thorough=True)


def test_migrating_onto_itself_is_refused(tmp_path: Path) -> None:
    settings = GallerySettings(path=tmp_path / "g")
    Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID).close()

    with pytest.raises(GalleryError, match="same gallery"):
        migrate_gallery(settings, GallerySettings(path=tmp_path / "g" / ".." / "g"))


def test_the_cli_moves_the_configured_gallery(cluster_servers: ClusterServers, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = GallerySettings(path=tmp_path / "embedded")
    expected = _fill(embedded)
    cluster = cluster_servers.settings()
    monkeypatch.setenv("SHITU_GALLERY__PATH", str(embedded.path))
    monkeypatch.setenv("SHITU_GALLERY__CLUSTER__POSTGRES_DSN", cluster.postgres_dsn)
    monkeypatch.setenv("SHITU_GALLERY__CLUSTER__MILVUS_URI", cluster.milvus_uri)
    monkeypatch.setenv("SHITU_GALLERY__CLUSTER__NAME", cluster.name)

    result = CliRunner().invoke(app, ["gallery", "migrate", "--to", "cluster", "--target-path", str(tmp_path / "s")])
    monkeypatch.setenv("SHITU_GALLERY__BACKEND", "cluster")
    refused = CliRunner().invoke(app, ["gallery", "backup", str(tmp_path / "backup")])

    assert result.exit_code == 0, result.output
    assert "moved 8 images" in result.output
    target = GallerySettings(path=tmp_path / "s", backend=GalleryBackend.cluster, cluster=cluster)
    with Gallery.open_stored(target) as gallery:
        _assert_same(_observed(gallery), expected)
    assert refused.exit_code == 2 and "embedded gallery" in refused.output
