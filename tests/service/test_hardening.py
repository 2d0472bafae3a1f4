"""What a hostile or careless client tries (issue 13's table, one test per row): every answer is a 4xx in the one
error shape, and nothing is stored by a request that was refused or answered with an error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from tests.service.conftest import service_settings
from tests.service.images import cat, coffee, encode, png_header

READER, WRITER, ADMIN = "reader-key-0123456789", "writer-key-0123456789", "admin-key-0123456789"
KEYS = [
    {"name": "reader", "sha256": key_digest(READER), "scopes": ["read"]},
    {"name": "writer", "sha256": key_digest(WRITER), "scopes": ["read", "write"]},
    {"name": "admin", "sha256": key_digest(ADMIN), "scopes": ["read", "write", "admin"]},
]


@pytest.fixture
def client(model_store_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    """A fresh gallery per test: every test here counts what was stored."""
    with TestClient(create_app(service_settings(model_store_dir, tmp_path / "gallery"))) as test_client:
        yield test_client


def _app(model_store_dir: Path, tmp_path: Path, **overrides: Any) -> TestClient:
    return TestClient(create_app(service_settings(model_store_dir, tmp_path / "gallery", **overrides)))


def _register(client: TestClient, image: bytes, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    data = {"label": "espresso cup", "detect": "false", **{key: str(value) for key, value in fields.items()}}
    return client.post("/gallery", files={"image": ("photo.jpg", image, "image/jpeg")}, data=data,
                       headers=headers or {})


def _recognize(client: TestClient, image: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post("/recognize", files={"image": ("q.jpg", image, "image/jpeg")}, headers=headers or {})


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert "object at 0x" not in body["error"]["message"] and "Traceback" not in response.text
    return body["error"]


def _stored_images(client: TestClient) -> int:
    return int(client.get("/info").json()["gallery"]["images"])


def _nested(depth: int) -> str:
    return '{"a":' + "[" * depth + "]" * depth + "}"


# 1 and 6: metadata that could not be served back, numbers and pages that overflow.
@pytest.mark.parametrize("metadata", [_nested(256), "[" * 5000, '{"n": ' + "9" * 5000 + "}",
                                      '{"n": 9007199254740993}', _nested(16)],
                         ids=["nested-256", "brackets-5000", "digits-5000", "integer-over-2^53", "nested-17"])
def test_unservable_metadata_is_refused_before_anything_is_stored(client: TestClient, metadata: str) -> None:
    _assert_error(_register(client, encode(coffee()), metadata=metadata), 422, "invalid_request")

    assert _stored_images(client) == 0
    assert client.get("/gallery/items").status_code == 200


def test_the_deepest_allowed_metadata_is_stored_and_listed(client: TestClient) -> None:
    stored = _register(client, encode(coffee()), item_id="deep", metadata=_nested(14))

    assert stored.status_code == 201, stored.text
    assert client.get("/gallery/items").json()["items"][0]["metadata"] == json.loads(_nested(14))


def test_patch_with_unreadable_json_is_a_4xx(client: TestClient) -> None:
    assert _register(client, encode(coffee()), item_id="cup").status_code == 201
    for body in ('{"metadata": ' + "[" * 5000 + "}", '{"metadata": {"n": ' + "9" * 5000 + "}}"):
        response = client.patch("/gallery/items/cup", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
    assert client.get("/gallery/items/cup").json()["metadata"] == {}


@pytest.mark.parametrize("query", ["offset=9223372036854775808", "offset=-1", "limit=0", "limit=100000"])
def test_paging_out_of_range_is_a_422_and_the_connection_lives_on(client: TestClient, query: str) -> None:
    _assert_error(client.get(f"/gallery/items?{query}"), 422, "invalid_request")
    assert client.get("/gallery/items").status_code == 200


# 2: a timeout never answers a write that happened, and a timed-out write never happens.
def test_a_write_that_began_committing_is_answered_with_its_result(client: TestClient,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]
    monkeypatch.setattr(state.settings.limits, "request_timeout_s", 0.2)
    add_image = state.gallery.add_image

    def slow_commit(**fields: Any) -> Any:
        time.sleep(0.6)  # the timeout fires while the row is being written
        return add_image(**fields)

    monkeypatch.setattr(state.gallery, "add_image", slow_commit)
    response = _register(client, encode(coffee()), item_id="slow")

    assert response.status_code == 201, response.text
    assert _stored_images(client) == 1


def test_a_write_that_timed_out_before_its_commit_stores_nothing(client: TestClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import service.registration as registration

    state = client.app.state.service  # type: ignore[attr-defined]
    monkeypatch.setattr(state.settings.limits, "request_timeout_s", 0.2)
    decode = registration.decode_image

    def slow_decode(*arguments: Any) -> Any:
        time.sleep(0.6)
        return decode(*arguments)

    monkeypatch.setattr(registration, "decode_image", slow_decode)
    response = _register(client, encode(coffee()), item_id="late")
    time.sleep(1.0)  # the worker has long finished

    _assert_error(response, 504, "timeout")
    assert _stored_images(client) == 0


# 3: keys, scopes, origins, what listens where.
def test_api_keys_and_scopes(model_store_dir: Path, tmp_path: Path) -> None:
    with _app(model_store_dir, tmp_path, auth={"keys": KEYS}) as client:
        anonymous = _register(client, encode(coffee()), item_id="cup")
        reader = _register(client, encode(coffee()), {"X-API-Key": READER}, item_id="cup")
        wrong = _register(client, encode(coffee()), {"Authorization": "Bearer not-a-key"}, item_id="cup")
        writer = _register(client, encode(coffee()), {"Authorization": f"Bearer {WRITER}"}, item_id="cup")
        deleted_anonymously = client.delete("/gallery/items/cup")
        recognized = _recognize(client, encode(coffee()), {"X-API-Key": READER})
        public_info = client.get("/info", headers={"X-API-Key": READER}).json()
        admin_info = client.get("/info", headers={"X-API-Key": ADMIN}).json()

    assert _assert_error(anonymous, 401, "unauthorized")["details"] == {"scope": "write"}
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    _assert_error(reader, 403, "forbidden")
    _assert_error(wrong, 401, "unauthorized")
    assert writer.status_code == 201 and recognized.status_code == 200
    _assert_error(deleted_anonymously, 401, "unauthorized")
    assert public_info["embedder"]["provenance"] is None and public_info["limits"] is None
    assert admin_info["embedder"]["provenance"] and admin_info["limits"]["max_upload_mb"] == 20.0


def test_beyond_loopback_without_keys_the_gallery_is_read_only(model_store_dir: Path, tmp_path: Path) -> None:
    with _app(model_store_dir, tmp_path, server={"host": "0.0.0.0"}) as client:
        write = _register(client, encode(coffee()), item_id="cup")
        read = _recognize(client, encode(coffee()))

    _assert_error(write, 401, "unauthorized")
    assert read.status_code == 200


def test_keys_file_rotation_without_restart(model_store_dir: Path, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(KEYS[1:2]), encoding="utf-8")
    rotated = "rotated-key-0123456789"
    with _app(model_store_dir, tmp_path, auth={"keys_file": str(keys_file)}) as client:
        before = _register(client, encode(coffee()), {"X-API-Key": WRITER}, item_id="one")
        keys_file.write_text(json.dumps([{"name": "writer2", "sha256": key_digest(rotated),
                                          "scopes": ["read", "write"]}]), encoding="utf-8")
        old_key = _register(client, encode(cat()), {"X-API-Key": WRITER}, item_id="two")
        new_key = _register(client, encode(cat()), {"X-API-Key": rotated}, item_id="two")

    assert before.status_code == 201 and new_key.status_code == 201
    _assert_error(old_key, 401, "unauthorized")


def test_other_origins_cannot_write_and_cors_is_opt_in(model_store_dir: Path, tmp_path: Path) -> None:
    shop = "https://console.shop.example"
    with _app(model_store_dir, tmp_path, auth={"cors_origins": [shop]}) as client:
        evil = _register(client, encode(coffee()), {"Origin": "https://evil.example"}, item_id="cup")
        stored_after_evil = _stored_images(client)
        allowed = _register(client, encode(coffee()), {"Origin": shop}, item_id="cup")
        same_origin = client.delete("/gallery/items/cup", headers={"Origin": "http://testserver"})
        preflight = client.options("/recognize", headers={"Origin": shop, "Access-Control-Request-Method": "POST"})
        foreign_preflight = client.options("/recognize", headers={"Origin": "https://evil.example",
                                                                  "Access-Control-Request-Method": "POST"})

    _assert_error(evil, 403, "forbidden")
    assert stored_after_evil == 0
    assert allowed.status_code == 201 and allowed.headers["access-control-allow-origin"] == shop
    assert same_origin.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == shop
    assert "access-control-allow-origin" not in foreign_preflight.headers


def test_docs_and_metrics_follow_the_settings(model_store_dir: Path, tmp_path: Path) -> None:
    with _app(model_store_dir, tmp_path, auth={"keys": KEYS, "docs": False, "metrics_scope": "admin"}) as client:
        docs, schema = client.get("/docs"), client.get("/openapi.json")
        metrics_reader = client.get("/metrics", headers={"X-API-Key": READER})
        metrics_admin = client.get("/metrics", headers={"X-API-Key": ADMIN})

    _assert_error(docs, 404, "not_found")
    _assert_error(schema, 404, "not_found")
    _assert_error(metrics_reader, 403, "forbidden")
    assert metrics_admin.status_code == 200 and "shitu_requests_total" in metrics_admin.text


def test_rate_limit_per_client(model_store_dir: Path, tmp_path: Path) -> None:
    with _app(model_store_dir, tmp_path, auth={"keys": KEYS},
              limits={"rate_per_client": 0.5, "rate_burst": 2}) as client:
        statuses = [client.get("/gallery/items", headers={"X-API-Key": READER}) for _ in range(3)]
        other_client = client.get("/gallery/items", headers={"X-API-Key": WRITER})

    assert [response.status_code for response in statuses[:2]] == [200, 200]
    _assert_error(statuses[2], 429, "rate_limited")
    assert int(statuses[2].headers["Retry-After"]) >= 1
    assert other_client.status_code == 200


# 4: cost bounded before decoding.
def test_a_decompression_bomb_is_refused_from_its_header(client: TestClient) -> None:
    bomb = png_header(6300, 6300)  # 39.7 MP declared by a few hundred bytes
    started = time.perf_counter()
    response = client.post("/recognize", files={"image": ("bomb.png", bomb, "image/png")})

    _assert_error(response, 422, "image_too_large")
    assert time.perf_counter() - started < 1.0


def test_a_file_far_larger_than_its_pixels_is_refused_without_decoding(client: TestClient) -> None:
    padded = encode(coffee()[:64, :64]) + b"\0" * (19 << 20)  # 19 MB that a 64x64 JPEG cannot need
    started = time.perf_counter()
    response = client.post("/recognize", files={"image": ("zeros.jpg", padded, "image/jpeg")})

    _assert_error(response, 422, "invalid_image")
    assert time.perf_counter() - started < 2.0


def test_a_big_jpeg_is_decoded_reduced_and_answered_in_original_pixels(client: TestClient) -> None:
    big = np.ascontiguousarray(np.kron(coffee(), np.ones((8, 8, 1), dtype=np.uint8)))  # 4800 x 3200
    response = _recognize(client, encode(big))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == {"width": 4800, "height": 3200}
    whole = [found for found in body["objects"] if found["source"] == "whole_image"]
    boxes = [found["bbox"] for found in body["objects"]]
    assert all(0 <= x1 < x2 <= 4800 and 0 <= y1 < y2 <= 3200 for x1, y1, x2, y2 in boxes)
    assert not whole or whole[0]["bbox"] == [0, 0, 4800, 3200]


def test_a_box_on_a_reduced_jpeg_is_stored_in_original_pixels(client: TestClient) -> None:
    big = np.ascontiguousarray(np.kron(coffee(), np.ones((8, 8, 1), dtype=np.uint8)))
    response = _register(client, encode(big), item_id="cup", bbox="800,400,2400,2000")

    assert response.status_code == 201, response.text
    assert response.json()["image"]["bbox"] == [800, 400, 2400, 2000]
    _assert_error(_register(client, encode(big), item_id="cup", bbox="800,400,4801,2000"), 422, "invalid_request")


# 5: the body limit holds from Content-Length on (the streamed case runs against the real server).
def test_a_declared_oversize_body_is_refused_before_it_is_read(client: TestClient) -> None:
    response = client.post("/recognize", content=b"x" * 1024,
                           headers={"Content-Length": str(500 << 20), "Content-Type": "multipart/form-data; b=x"})
    _assert_error(response, 413, "payload_too_large")


# 7: every status is counted, 5xx included, and a 500 says nothing of the internals.
def test_metrics_count_server_errors(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]

    def broken(**_: Any) -> Any:
        raise RuntimeError("disk on fire at /srv/secret/path")

    monkeypatch.setattr(state.gallery, "list_items", broken)
    failed = TestClient(client.app, raise_server_exceptions=False).get("/gallery/items")
    metrics = client.get("/metrics").text

    error = _assert_error(failed, 500, "internal_error")
    assert "/srv/secret" not in error["message"] and "fire" not in failed.text
    assert 'shitu_requests_total{route="/gallery/items",status="500"}' in metrics


# 8: a label is either refused or survives export and import.
@pytest.mark.parametrize("label", ["a\u2028b", "a\u2029b", "a\u0085b", "a\tb", "a\x1bb", "a\x7fb"])
def test_labels_that_cannot_live_on_a_list_line_are_refused(client: TestClient, label: str) -> None:
    _assert_error(_register(client, encode(coffee()), label=label), 422, "invalid_request")
    assert _stored_images(client) == 0


def test_a_label_that_is_not_utf8_is_refused_not_garbled(client: TestClient) -> None:
    body = (b"--b\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\ncaf\xe9\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"c.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + encode(coffee()) + b"\r\n--b--\r\n")
    response = client.post("/gallery", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})

    assert _assert_error(response, 400, "invalid_request")["message"] == "a form field is not valid utf-8 text"
    assert _stored_images(client) == 0


# 11: what answers and errors may show.
def test_errors_and_info_show_no_internals(client: TestClient) -> None:
    corrupt = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    info = client.get("/info").json()

    _assert_error(client.post("/recognize", files={"image": ("x.png", corrupt, "image/png")}), 422, "invalid_image")
    assert info["embedder"]["directory"] == "embedder/default" and info["detector"]["directory"] == "detector/default"
    assert "/" not in json.dumps(info["runtime"]).replace("/s", "")  # no path among the runtime settings


def test_trace_gets_405_with_allow(client: TestClient) -> None:
    response = client.request("TRACE", "/recognize")

    _assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


def test_the_schema_states_the_field_rules(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    form = next(value for name, value in schema["components"]["schemas"].items()
                if name.startswith("Body_add_product_image"))["properties"]

    assert form["label"]["maxLength"] == 200 and form["label"]["pattern"].startswith("^[^")
    assert form["item_id"]["pattern"] == "^[A-Za-z0-9._:-]{1,128}$"
    assert form["metadata"]["format"] == "json-object" and form["metadata"]["maxLength"] == 16384
    assert form["bbox"]["pattern"] and form["image"]["format"] == "image"
    # Multipart cannot carry null: optional fields are left out, never offered as "null".
    assert not [name for name, field in form.items() if {"type": "null"} in field.get("anyOf", [])]
