"""The gallery's own min_score suggestion: nearest-other-item scores, their quantile, /info and the switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import GallerySettings
from service.gallery import Gallery
from service.gallery.threshold import (
    ITEMS_SEARCHED,
    ThresholdEstimator,
    estimate,
    nearest_other_scores,
    nearest_other_scores_of_vectors,
)
from tests.service.conftest import service_settings
from tests.service.images import encode


def _unit(rows: list[list[float]]) -> np.ndarray:
    vectors = np.asarray(rows, np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _gallery(tmp_path: Path, vectors: np.ndarray, items: list[str], index: str = "flat") -> Gallery:
    gallery = Gallery.open(GallerySettings(path=tmp_path / "g", index=index), embedding_dim=vectors.shape[1],
                           model_id="test@0")
    for number, (vector, item_id) in enumerate(zip(vectors, items, strict=True)):
        gallery.add_image(label=item_id, item_id=item_id, embedding=vector, image_bytes=_product(number),
                          media_type="image/jpeg")
    return gallery


def test_an_images_own_item_does_not_count(tmp_path: Path) -> None:
    # item a has two near-identical images; b is close to a; c is far from both
    vectors = _unit([[1, 0, 0], [1, 0.01, 0], [0.8, 0.6, 0], [0, 0, 1]])
    items = ["a", "a", "b", "c"]
    exact = nearest_other_scores_of_vectors(vectors, items)
    assert exact[0] == pytest.approx(0.8, abs=1e-3)  # not 1.0: the other image is its own item's
    assert exact[2] == pytest.approx(max(vectors[2] @ vectors[0], vectors[2] @ vectors[1]), abs=1e-6)
    assert exact[3] == pytest.approx(0.0, abs=1e-6)
    with _gallery(tmp_path, vectors, items) as gallery:
        sampled_items, sampled = gallery.sampled_embeddings(10)
        assert sampled_items == items and np.array_equal(sampled, vectors)
        searched = nearest_other_scores(sampled_items, gallery.search(sampled, ITEMS_SEARCHED))
    np.testing.assert_allclose(searched, exact, atol=1e-6)  # a flat index: the search is the exact computation


def test_the_suggestion_is_a_quantile_of_an_even_sample_and_needs_enough_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng.standard_normal((50, 16)).tolist())
    items = [f"item-{number}" for number in range(50)]
    exact = nearest_other_scores_of_vectors(vectors, items)
    with _gallery(tmp_path, vectors, items) as gallery:
        count = gallery.stats().items
        found = estimate(gallery, count, quantile=0.9, max_images=1000, min_items=10)
        assert found.suggested_min_score == pytest.approx(np.quantile(exact, 0.9), abs=1e-3)
        assert found.images_sampled == 50 and found.items == 50
        assert estimate(gallery, count, quantile=0.9, max_images=1000, min_items=51).suggested_min_score is None
        sampled = estimate(gallery, count, quantile=0.9, max_images=20, min_items=10)
        assert sampled.images_sampled == 20
        picked, _ = gallery.sampled_embeddings(5)
    assert picked == [items[position] for position in (0, 12, 24, 37, 49)]  # evenly spaced, first to last


def test_an_hnsw_gallery_gives_the_same_estimate_from_its_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng.standard_normal((300, 16)).tolist())
    items = [f"item-{number // 2}" for number in range(300)]  # two images an item
    exact = nearest_other_scores_of_vectors(vectors, items)
    with _gallery(tmp_path, vectors, items, index="hnsw") as gallery:
        found = estimate(gallery, gallery.stats().items, quantile=0.5, max_images=2000, min_items=10)
    assert found.images_sampled == 300 and found.suggested_min_score == pytest.approx(np.median(exact), abs=0.01)


def _product(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    mosaic = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return encode(cv2.resize(mosaic, (120, 120), interpolation=cv2.INTER_NEAREST))


def _fill(client: TestClient, count: int) -> None:
    _fill_more(client, 0, count)


@pytest.fixture
def gallery_client(model_store_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = service_settings(model_store_dir, tmp_path / "gallery", pipeline={"min_score_source": "gallery"})
    settings.gallery = settings.gallery.model_copy(update={"threshold_min_items": 4, "threshold_refresh_s": 0})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_info_shows_the_suggestion_and_the_default_follows_it(gallery_client: TestClient) -> None:
    empty = gallery_client.get("/info").json()
    assert empty["gallery_threshold"]["suggested_min_score"] is None
    assert empty["gallery_threshold"]["in_use"] is False and empty["defaults"]["min_score"] == 0.5  # the manifest's

    _fill(gallery_client, 6)
    info = gallery_client.get("/info").json()
    threshold = info["gallery_threshold"]
    assert threshold["items"] == 6 and threshold["images_sampled"] == 6 and threshold["in_use"] is True
    assert threshold["min_score_source"] == "gallery"
    assert info["defaults"]["min_score"] == threshold["suggested_min_score"]
    assert -1.0 <= threshold["median_nearest_other"] <= threshold["suggested_min_score"] <= 1.0


def test_recognize_applies_the_suggestion_unless_the_request_sets_min_score(gallery_client: TestClient) -> None:
    _fill(gallery_client, 6)
    suggested = gallery_client.get("/info").json()["gallery_threshold"]["suggested_min_score"]
    query = {"image": ("q.jpg", _product(0), "image/jpeg")}
    answer = gallery_client.post("/recognize", files=query, data={"whole_image": "always"}).json()
    best = max(answer["objects"], key=lambda found: found["candidates"][0]["score"])
    assert best["candidates"][0]["item_id"] == "p0"
    assert best["candidates"][0]["score"] > suggested and best["match"] is not None  # above any look-alike
    strict = gallery_client.post("/recognize", files=query, data={"whole_image": "always", "min_score": "1.0"})
    assert all(found["match"] is None for found in strict.json()["objects"] if found["candidates"][0]["score"] < 1)


def test_the_manifest_source_keeps_the_manifest_threshold(client: TestClient) -> None:
    _fill(client, 12)
    info = client.get("/info").json()
    assert info["gallery_threshold"]["suggested_min_score"] is not None  # shown, not used
    assert info["gallery_threshold"]["in_use"] is False and info["defaults"]["min_score"] == 0.5


def test_the_estimate_is_recomputed_only_when_the_gallery_changed_and_the_refresh_time_passed(
        client: TestClient) -> None:
    gallery = client.app.state.service.gallery  # type: ignore[attr-defined]  # the app's own state
    now = [0.0]
    estimator = ThresholdEstimator(gallery, GallerySettings(threshold_min_items=4, threshold_refresh_s=30),
                                   clock=lambda: now[0])
    _fill(client, 5)
    first = estimator.current()
    assert first.items == 5
    _fill_more(client, 5, 6)
    assert estimator.current() is first  # within the refresh time: the cached estimate
    now[0] = 31.0
    second = estimator.current()
    assert second.items == 6
    now[0] = 62.0
    assert estimator.current() is second  # the gallery did not change: nothing recomputed


def test_the_estimate_reads_only_its_sample_from_the_store(client: TestClient, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    gallery = client.app.state.service.gallery  # type: ignore[attr-defined]  # the app's own state
    _fill(client, 12)
    estimator = ThresholdEstimator(gallery, GallerySettings(threshold_min_items=4, threshold_max_images=5))

    def read_everything() -> None:
        raise AssertionError("the estimate must not read the whole gallery")

    monkeypatch.setattr(gallery, "embeddings", read_everything)
    monkeypatch.setattr(gallery.backend, "stored_images", read_everything)
    estimate_now = estimator.current()
    assert estimate_now.suggested_min_score is not None and estimate_now.items == 12
    assert estimate_now.images_sampled == 5


def _fill_more(client: TestClient, start: int, stop: int) -> None:
    for number in range(start, stop):
        response = client.post("/gallery", files={"image": ("p.jpg", _product(number), "image/jpeg")},
                               data={"label": f"product {number}", "item_id": f"p{number}", "detect": "false"})
        assert response.status_code == 201, response.text
