from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from service.config import GalleryBackend, GallerySettings, IndexKind
from service.gallery import Gallery
from tests.servers import ClusterServers

DIM = 16
MODEL_ID = "embedder/test-1"


def unit_vectors(count: int, seed: int, dim: int = DIM) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def image_bytes(number: int) -> bytes:
    """Distinct fake image payloads: the gallery stores bytes, it never decodes them."""
    return b"\xff\xd8\xff" + number.to_bytes(8, "big") * 4


def add(gallery: Gallery, label: str, vector: NDArray[np.float32], number: int, **kwargs: Any) -> Any:
    return gallery.add_image(
        label=label, embedding=vector, image_bytes=image_bytes(number), media_type="image/jpeg", **kwargs
    )


def snapshot(gallery: Gallery) -> tuple[object, ...]:
    """Everything a caller can observe; equal snapshots mean a call changed nothing."""
    items, total = gallery.list_items(limit=1000)
    images = [gallery.item_images(item.item_id) for item in items]
    stats = gallery.stats()
    files = sorted(path.name for path in (gallery.settings.path / "images").iterdir())
    probe = gallery.search(unit_vectors(3, seed=99), top_k=5)
    return items, total, images, stats, files, probe


@pytest.fixture(params=[GalleryBackend.embedded, GalleryBackend.cluster], ids=["embedded", "cluster"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> GallerySettings:
    """Both back ends: the embedded one, and the cluster one on a real PostgreSQL and milvus-lite."""
    if request.param is GalleryBackend.cluster:
        servers: ClusterServers = request.getfixturevalue("cluster_servers")
        return GallerySettings(path=tmp_path / "gallery", backend=GalleryBackend.cluster, cluster=servers.settings())
    return GallerySettings(path=tmp_path / "gallery")


@pytest.fixture
def embedded_settings(tmp_path: Path) -> GallerySettings:
    return GallerySettings(path=tmp_path / "gallery")


@pytest.fixture
def hnsw_settings(tmp_path: Path) -> GallerySettings:
    return GallerySettings(path=tmp_path / "gallery", index=IndexKind.hnsw, hnsw_m=16, rebuild_deleted_fraction=0.3)


@pytest.fixture
def gallery(settings: GallerySettings) -> Iterator[Gallery]:
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as opened:
        yield opened
