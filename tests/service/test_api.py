"""The HTTP API on real exported models, real faiss and a real SQLite gallery (in-process client)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from fastapi.testclient import TestClient

from tests.service.images import astronaut, cat, coffee, encode, png_header, rocket


def _register(client: TestClient, image: bytes, **fields: Any) -> Any:
    return client.post("/gallery", files={"image": ("photo.jpg", image, "image/jpeg")},
                       data={key: str(value) for key, value in fields.items()})


def _recognize(client: TestClient, image: bytes, **fields: Any) -> Any:
    return client.post("/recognize", files={"image": ("query.jpg", image, "image/jpeg")},
                       data={key: str(value) for key, value in fields.items()})


def _gallery_size(client: TestClient) -> tuple[int, int]:
    stats = client.get("/info").json()["gallery"]
    return stats["items"], stats["images"]


def _assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def test_register_then_recognize_finds_the_product(client: TestClient) -> None:
    created = _register(client, encode(coffee()), label="espresso cup", item_id="coffee", detect="false")
    _register(client, encode(cat()), label="cat poster", item_id="cat", detect="false")
    _register(client, encode(rocket()), label="rocket toy", item_id="rocket", detect="false")

    query = coffee()[40:360, 60:560]
    # The test detector's boxes cover the photo once clipped; above its scores, only the whole image competes.
    result = _recognize(client, encode(query), whole_image="always", detection_threshold=0.99).json()

    assert created.status_code == 201 and created.json()["created_item"] is True
    whole = [found for found in result["objects"] if found["source"] == "whole_image"]
    assert whole and whole[0]["match"]["item_id"] == "coffee" and whole[0]["match"]["label"] == "espresso cup"
    assert whole[0]["match"]["score"] >= 0.5
    assert whole[0]["bbox"] == [0, 0, query.shape[1], query.shape[0]]
    assert result["image"] == {"width": query.shape[1], "height": query.shape[0]}
    assert set(result["timings_ms"]) >= {"decode_ms", "detect_ms", "embed_ms", "search_ms", "total_ms"}
    assert result["models"] == {"embedder": "efficientnet-lite0-imagenet@1", "detector": "test-detector@1"}


def _register_products(client: TestClient) -> None:
    """The three products most tests search among."""
    for image, label, item_id in ((coffee(), "espresso cup", "coffee"), (cat(), "cat poster", "cat"),
                                  (rocket(), "rocket toy", "rocket")):
        assert _register(client, encode(image), label=label, item_id=item_id, detect="false").status_code == 201


def test_candidates_are_distinct_items_best_first(client: TestClient) -> None:
    _register_products(client)
    _register(client, encode(coffee()[::-1]), label="espresso cup", item_id="coffee", detect="false")

    result = _recognize(client, encode(coffee()), top_k=3, whole_image="always", detection_threshold=0.99).json()

    whole = next(found for found in result["objects"] if found["source"] == "whole_image")
    items = [candidate["item_id"] for candidate in whole["candidates"]]
    scores = [candidate["score"] for candidate in whole["candidates"]]
    assert len(items) == len(set(items)) == 3
    assert scores == sorted(scores, reverse=True) and items[0] == "coffee"


def test_unknown_product_has_no_match_above_min_score(client: TestClient) -> None:
    _register_products(client)

    unknown = _recognize(client, encode(astronaut()), whole_image="always", min_score=0.99).json()
    without_unknown = _recognize(client, encode(astronaut()), whole_image="always", min_score=0.99,
                                 include_unknown="false").json()

    # The detector's boxes come back as unknown objects (the gallery was searched: they have candidates);
    # the whole image without a match is not an object.
    assert unknown["objects"], unknown
    assert all(found["match"] is None and found["candidates"] for found in unknown["objects"])
    assert {found["source"] for found in unknown["objects"]} == {"detector"}
    assert without_unknown["objects"] == []


def test_repeating_a_registration_is_idempotent(client: TestClient) -> None:
    image = encode(rocket()[:, ::-1])
    first = _register(client, image, label="rocket toy", item_id="rocket", detect="false")
    before = _gallery_size(client)

    again = _register(client, image, label="rocket toy", item_id="rocket", detect="false")

    assert first.status_code == 201
    assert again.status_code == 200 and again.json()["created_image"] is False
    assert again.json()["image"]["image_id"] == first.json()["image"]["image_id"]
    assert _gallery_size(client) == before


def test_a_different_label_for_an_existing_item_is_a_conflict(client: TestClient) -> None:
    _register(client, encode(cat()), label="cat poster", item_id="cat", detect="false")
    before = _gallery_size(client)

    response = _register(client, encode(cat()[::-1]), label="dog poster", item_id="cat", detect="false")

    _assert_error(response, 409, "label_conflict")
    assert _gallery_size(client) == before


def test_bad_input_is_a_clear_4xx_and_changes_nothing(client: TestClient) -> None:
    before = _gallery_size(client)
    jpeg = encode(coffee())
    cases = [
        (_register(client, b"not an image at all", label="x"), 415, "unsupported_media_type"),
        (_register(client, jpeg[: len(jpeg) // 3], label="x"), 422, "invalid_image"),
        (_register(client, png_header(50_000, 50_000), label="x"), 422, "image_too_large"),
        (_register(client, b"", label="x"), 422, "invalid_image"),
        (_register(client, b"\xff\xd8\xff" + b"\0" * (1 << 20), label="x"), 413, "payload_too_large"),
        (_register(client, jpeg, label="   "), 422, "invalid_request"),
        (_register(client, jpeg, label="x", metadata="{not json"), 422, "invalid_request"),
        (_register(client, jpeg, label="x", metadata="[1, 2]"), 422, "invalid_request"),
        (_register(client, jpeg, label="x", item_id="has space"), 422, "invalid_request"),
        (_register(client, jpeg, label="x", bbox="1,2,3"), 422, "invalid_request"),
        (_register(client, jpeg, label="x", bbox="10,10,5,50"), 422, "invalid_request"),
        (_register(client, jpeg, label="x", bbox="0,0,4000,50"), 422, "invalid_request"),
        (client.post("/gallery", data={"label": "x"}), 422, "invalid_request"),
        (_recognize(client, jpeg, top_k="many"), 422, "invalid_request"),
        (_recognize(client, jpeg, whole_image="sometimes"), 422, "invalid_request"),
        (_recognize(client, jpeg, min_score=3), 422, "invalid_request"),
    ]

    for response, status, code in cases:
        _assert_error(response, status, code)
    assert _gallery_size(client) == before


def test_unknown_ids_are_404_with_the_error_shape(client: TestClient) -> None:
    _assert_error(client.get("/gallery/items/nope"), 404, "item_not_found")
    _assert_error(client.patch("/gallery/items/nope", json={"label": "y"}), 404, "item_not_found")
    _assert_error(client.delete("/gallery/items/nope"), 404, "item_not_found")
    _assert_error(client.delete("/gallery/images/nope"), 404, "image_not_found")
    response = client.post("/gallery/items/nope/images", files={"image": ("a.jpg", encode(cat()), "image/jpeg")})
    _assert_error(response, 404, "item_not_found")
    _assert_error(client.get("/no/such/route"), 404, "not_found")


def test_item_lifecycle_list_patch_add_image_delete(client: TestClient) -> None:
    _register_products(client)
    created = _register(client, encode(astronaut()), label="astronaut figure", item_id="astro",
                        metadata='{"sku": "A-1"}', bbox="100,20,400,500").json()
    added = client.post("/gallery/items/astro/images", files={"image": ("b.png", encode(astronaut()[::2, ::2], ".png"),
                                                                         "image/png")}, data={"detect": "false"})
    patched = client.patch("/gallery/items/astro", json={"label": "astronaut toy", "metadata": {"sku": "A-2"}})
    listed = client.get("/gallery/items", params={"label": "astronaut toy"}).json()
    detail = client.get("/gallery/items/astro").json()

    assert created["image"]["bbox"] == [100, 20, 400, 500]
    assert added.status_code == 201 and added.json()["item"]["image_count"] == 2
    assert patched.json()["label"] == "astronaut toy" and patched.json()["metadata"] == {"sku": "A-2"}
    assert listed["total"] == 1 and listed["items"][0]["item_id"] == "astro"
    assert {image["media_type"] for image in detail["images"]} == {"image/jpeg", "image/png"}
    query = _recognize(client, encode(astronaut()[20:500, 100:400]), whole_image="always", min_score=0.3).json()
    assert any(found["match"] and found["match"]["label"] == "astronaut toy" for found in query["objects"])

    removed_image = client.delete(f"/gallery/images/{added.json()['image']['image_id']}")
    removed_item = client.delete("/gallery/items/astro")

    assert removed_image.json()["item_id"] == "astro"
    assert removed_item.json() == {"item_id": "astro", "images_removed": 1}
    _assert_error(client.get("/gallery/items/astro"), 404, "item_not_found")
    after = _recognize(client, encode(astronaut()[20:500, 100:400]), whole_image="always", top_k=10,
                       min_score=-1).json()
    searched = [candidate["item_id"] for found in after["objects"] for candidate in found["candidates"]]
    assert searched and "astro" not in searched


def test_an_image_file_is_served_as_uploaded_until_it_is_deleted(client: TestClient) -> None:
    photo = encode(rocket()[::3, ::3], ".png")
    image = _register(client, photo, label="rocket model", item_id="rocket-file", detect="false").json()["image"]

    served = client.get(f"/gallery/images/{image['image_id']}/file")
    client.delete(f"/gallery/images/{image['image_id']}")

    assert served.status_code == 200 and served.content == photo
    assert served.headers["content-type"] == "image/png" and served.headers["x-content-type-options"] == "nosniff"
    _assert_error(client.get(f"/gallery/images/{image['image_id']}/file"), 404, "image_not_found")
    _assert_error(client.get("/gallery/images/nope/file"), 404, "image_not_found")


def test_paging_is_stable(client: TestClient) -> None:
    for index in range(3):
        _register(client, encode(rocket()[index:, :]), label=f"paging {index}", item_id=f"page-{index}", detect="false")

    first = client.get("/gallery/items", params={"offset": 0, "limit": 2}).json()
    second = client.get("/gallery/items", params={"offset": 2, "limit": 500}).json()

    ids = [item["item_id"] for item in first["items"] + second["items"]]
    assert first["total"] == second["total"] == len(ids) == len(set(ids)) == 3
    _assert_error(client.get("/gallery/items", params={"limit": 0}), 422, "invalid_request")


def test_overload_is_429_not_a_queue(client: TestClient) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]
    state.in_flight["read"] = state.settings.limits.max_concurrent_requests  # as if that many were running

    try:
        response = _recognize(client, encode(coffee()))
        # Writes have their own slots: a full house of recognitions does not turn them away.
        write = _register(client, encode(coffee()), label="espresso cup", item_id="coffee-overload", detect="false")
    finally:
        state.in_flight["read"] = 0
    removed = client.delete("/gallery/items/coffee-overload")  # the module's gallery is shared

    _assert_error(response, 429, "overloaded")
    assert response.headers["Retry-After"] == "1"
    assert write.status_code == 201, write.text
    assert removed.status_code == 200


def test_health_ready_info_and_openapi(client: TestClient) -> None:
    info = client.get("/info").json()

    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "models_loaded": True, "index_consistent": True}
    assert info["embedding_dim"] == 512 and info["detector"]["preprocess"]["interpolation"] == "cubic"
    # our PicoDet export runs with oneDNN fully on: no pass had to be removed
    assert info["detector"]["passes_deleted"] == [] and info["embedder"]["passes_deleted"] == []
    assert info["defaults"]["min_score"] == 0.5 and info["defaults"]["max_detections"] == 5
    assert info["defaults"]["detection_threshold"] == 0.2 and info["defaults"]["nms_iou"] == 0.05
    # what start-up made of the settings: precision by CPU (bf16 is opt-in), workers, batching so far
    runtime = info["runtime"]
    assert runtime["embedder_precision"] == "fp32" and isinstance(runtime["cpu_bf16"], bool)
    assert runtime["inference_workers"] >= 1
    assert runtime["batching"]["since_start"]["embedder"]["batches"] >= 0
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recognize", "/gallery", "/gallery/items/{item_id}", "/gallery/images/{image_id}"} <= set(paths)
    assert "shitu_requests_total" in client.get("/metrics").text


def test_sliding_windows_put_a_small_product_in_a_window(client: TestClient) -> None:
    _register(client, encode(coffee()), label="espresso cup", item_id="coffee", detect="false")
    _register(client, encode(rocket()), label="rocket toy", item_id="rocket", detect="false")
    # the coffee photo shrunk into a quarter of a dull canvas: the whole image no longer looks like it
    canvas = np.full((800, 1200, 3), 90, dtype=np.uint8)
    canvas[420:720, 700:1100] = cv2.resize(coffee(), (400, 300), interpolation=cv2.INTER_AREA)

    result = _recognize(client, encode(canvas), sliding_windows="true", whole_image="always").json()

    windows = [found for found in result["objects"] if found["source"] == "window" and found["match"]]
    assert windows and windows[0]["match"]["item_id"] == "coffee", result["objects"]
    x1, y1, x2, y2 = windows[0]["bbox"]
    assert x1 < 1100 and 700 < x2 and y1 < 720 and 420 < y2  # the window overlaps the pasted photo
    _assert_error(_recognize(client, encode(canvas), sliding_windows="maybe"), 422, "invalid_request")
