"""``POST /recognize`` with a metadata filter: applied inside the search, 422 when malformed (real models)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.service.images import cat, coffee, encode, rocket


def _register(client: TestClient, image: bytes, label: str, item_id: str, metadata: dict[str, Any]) -> None:
    response = client.post("/gallery", files={"image": ("photo.jpg", image, "image/jpeg")},
                           data={"label": label, "item_id": item_id, "metadata": json.dumps(metadata),
                                 "detect": "false"})
    assert response.status_code == 201, response.text


def _whole_image_candidates(client: TestClient, image: bytes, **fields: str) -> list[str]:
    response = client.post("/recognize", files={"image": ("query.jpg", image, "image/jpeg")},
                           data={"whole_image": "always", "detection_threshold": "0.99", "top_k": "3",
                                 "min_score": "-1", **fields})
    assert response.status_code == 200, response.text
    # a whole image without any candidate is not an object (it is no detection): no candidates
    whole = [found for found in response.json()["objects"] if found["source"] == "whole_image"]
    return [candidate["item_id"] for candidate in whole[0]["candidates"]] if whole else []


def test_filter_restricts_the_candidates_to_matching_items(client: TestClient) -> None:
    _register(client, encode(coffee()), "espresso cup", "coffee", {"brand": "acme", "price": 4.5})
    _register(client, encode(cat()), "cat poster", "cat", {"brand": "bolt", "price": 12})
    _register(client, encode(rocket()), "rocket toy", "rocket", {"brand": "acme", "price": 30})

    unfiltered = _whole_image_candidates(client, encode(coffee()))
    acme = _whole_image_candidates(client, encode(coffee()), filter='{"key": "brand", "eq": "acme"}')
    cheap_or_bolt = _whole_image_candidates(
        client, encode(coffee()),
        filter='{"or": [{"key": "price", "lt": 5}, {"key": "brand", "eq": "bolt"}]}')

    assert unfiltered[0] == "coffee" and set(unfiltered) == {"coffee", "cat", "rocket"}
    assert acme[0] == "coffee" and set(acme) == {"coffee", "rocket"}
    assert set(cheap_or_bolt) == {"coffee", "cat"}
    assert _whole_image_candidates(client, encode(coffee()), filter='{"key": "brand", "eq": "none"}') == []


def test_malformed_filter_is_a_422_naming_the_field(client: TestClient) -> None:
    for text in ('{"key": "brand"}', "not json", '{"key": "price", "lt": "cheap"}'):
        response = client.post("/recognize", files={"image": ("query.jpg", encode(coffee()), "image/jpeg")},
                               data={"filter": text})

        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["details"]["field"] == "filter"
        assert "filter" in error["message"]
