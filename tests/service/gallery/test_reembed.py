from __future__ import annotations

import hashlib

import numpy as np
import pytest
from numpy.typing import NDArray

from service.box import Box
from service.config import GallerySettings, IndexKind
from service.errors import GalleryError
from service.gallery import Gallery, reembed_gallery

from .conftest import DIM, MODEL_ID, add, image_bytes, unit_vectors


@pytest.fixture
def settings(embedded_settings: GallerySettings) -> GallerySettings:
    """The embedded back end only: this module tests its SQLite, faiss and directory specifics."""
    return embedded_settings

NEW_DIM = 8
NEW_MODEL = "embedder/new-2"


def content_embedding(data: bytes, box: Box | None) -> NDArray[np.float32]:
    """A deterministic stand-in for a second embedder: the vector follows from the bytes and the box."""
    seed = int.from_bytes(hashlib.sha256(data + repr(box).encode()).digest()[:4], "big")
    return unit_vectors(1, seed=seed, dim=NEW_DIM)[0]


def embed_all(inputs: list[tuple[bytes, Box | None]]) -> NDArray[np.float32]:
    return np.stack([content_embedding(data, box) for data, box in inputs])


@pytest.fixture
def old_gallery(settings: GallerySettings) -> list[str]:
    vectors = unit_vectors(5, seed=80)
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        box = {2: Box(1, 1, 9, 9)}
        return [
            add(gallery, f"l{n % 2}", vectors[n], n, item_id=f"i{n % 2}", box=box.get(n)).image.image_id
            for n in range(5)
        ]


def test_reembed_replaces_every_embedding_and_keeps_ids(settings: GallerySettings, old_gallery: list[str]) -> None:
    calls: list[tuple[int, int]] = []

    count = reembed_gallery(
        settings,
        embedding_dim=NEW_DIM,
        model_id=NEW_MODEL,
        embed=embed_all,
        batch_size=2,
        progress=lambda *c: calls.append(c),
    )

    assert count == 5 and calls == [(2, 5), (4, 5), (5, 5)]
    with Gallery.open(settings, embedding_dim=NEW_DIM, model_id=NEW_MODEL) as gallery:
        assert gallery.check() and gallery.stats().model_id == NEW_MODEL
        for number, image_id in enumerate(old_gallery):
            image = gallery.get_image(image_id)
            assert image.model_id == NEW_MODEL
            query = content_embedding(image_bytes(number), image.box)[None]
            [[best]] = gallery.search(query, top_k=1)
            assert best.image_id == image_id and best.score == pytest.approx(1.0, abs=1e-5)


def test_interrupted_reembed_is_refused_then_resumed(settings: GallerySettings, old_gallery: list[str]) -> None:
    batches = []

    def fail_on_second_batch(inputs: list[tuple[bytes, Box | None]]) -> NDArray[np.float32]:
        batches.append(len(inputs))
        if len(batches) == 2:
            raise RuntimeError("embedder crashed")
        return embed_all(inputs)

    with pytest.raises(RuntimeError):
        reembed_gallery(settings, embedding_dim=NEW_DIM, model_id=NEW_MODEL, embed=fail_on_second_batch, batch_size=2)
    for dim, model_id in ((DIM, MODEL_ID), (NEW_DIM, NEW_MODEL)):
        with pytest.raises(GalleryError, match="reembed"):
            Gallery.open(settings, embedding_dim=dim, model_id=model_id)

    assert reembed_gallery(settings, embedding_dim=NEW_DIM, model_id=NEW_MODEL, embed=embed_all) == 3
    with Gallery.open(settings, embedding_dim=NEW_DIM, model_id=NEW_MODEL) as gallery:
        assert gallery.check() and gallery.stats().images == 5


@pytest.mark.parametrize(
    "bad_output",
    [np.zeros((5, NEW_DIM), dtype=np.float32), np.ones((4, NEW_DIM), dtype=np.float32) / np.sqrt(NEW_DIM)],
    ids=["zero vectors", "too few rows"],
)
def test_unusable_embedder_output_changes_nothing(
    settings: GallerySettings, old_gallery: list[str], bad_output: NDArray[np.float32]
) -> None:
    with pytest.raises(GalleryError, match="embedder returned"):
        reembed_gallery(settings, embedding_dim=NEW_DIM, model_id=NEW_MODEL, embed=lambda inputs: bad_output)

    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        assert gallery.check() and {gallery.get_image(i).model_id for i in old_gallery} == {MODEL_ID}


def test_reembed_needs_an_existing_gallery(settings: GallerySettings) -> None:
    with pytest.raises(GalleryError, match="no gallery"):
        reembed_gallery(settings, embedding_dim=NEW_DIM, model_id=NEW_MODEL, embed=embed_all)


def test_reembed_removes_the_hnsw_snapshot(settings: GallerySettings) -> None:
    hnsw = settings.model_copy(update={"index": IndexKind.hnsw})
    with Gallery.open(hnsw, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        add(gallery, "x", unit_vectors(1, seed=81)[0], 0)
    assert (settings.path / "index.hnsw").is_file()

    reembed_gallery(hnsw, embedding_dim=NEW_DIM, model_id=NEW_MODEL, embed=embed_all)

    assert not (settings.path / "index.hnsw").exists()
    with Gallery.open(hnsw, embedding_dim=NEW_DIM, model_id=NEW_MODEL) as gallery:
        [[best]] = gallery.search(content_embedding(image_bytes(0), None)[None], top_k=1)
        assert best.score == pytest.approx(1.0, abs=1e-5)
