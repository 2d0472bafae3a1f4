"""Two real ``python -m service serve`` processes on one cluster gallery: a real PostgreSQL server and Milvus's
gRPC API served by milvus-lite in a process of its own (the client calls of a Milvus standalone or cluster),
the image files on one shared directory."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.servers import MilvusServer, PostgresServer
from tests.service.images import cat, coffee, encode
from tests.service.test_server import running_server

pytestmark = pytest.mark.slow  # three service processes, a SIGKILL


@pytest.fixture
def cluster_environment(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    milvus = MilvusServer.start(tmp_path / "milvus")
    yield {
        "SHITU_GALLERY__BACKEND": "cluster",
        "SHITU_GALLERY__CLUSTER__MILVUS_URI": milvus.uri,
        "SHITU_GALLERY__CLUSTER__POSTGRES_DSN": postgres_server.dsn,
        "SHITU_GALLERY__CLUSTER__NAME": f"replicas_{uuid.uuid4().hex[:8]}",
        "SHITU_LIMITS__MAX_CONCURRENT_WRITES": "8",
    }
    milvus.stop()


def _register(url: str, image: bytes, **fields: str) -> httpx.Response:
    return httpx.post(f"{url}/gallery", files={"image": ("p.png", image, "image/png")}, data=fields, timeout=60.0)


def _best_item(url: str, image: bytes) -> str | None:
    response = httpx.post(f"{url}/recognize", files={"image": ("q.png", image, "image/png")},
                          data={"whole_image": "always", "detection_threshold": "0.99"}, timeout=60.0)
    assert response.status_code == 200, response.text
    whole = [found for found in response.json()["objects"] if found["source"] == "whole_image"]
    return whole[0]["match"]["item_id"] if whole and whole[0]["match"] else None


def _write_until_killed(url: str, worker: int, acknowledged: list[tuple[str, str]], lock: threading.Lock,
                        stop: threading.Event) -> None:
    rng = np.random.default_rng(worker)
    while not stop.is_set():
        image = encode(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), ".png")
        item_id = f"w{worker}-{int(rng.integers(0, 3))}"
        try:
            response = _register(url, image, label=item_id, item_id=item_id, detect="false")
        except httpx.TransportError:
            return
        if response.status_code == 201:
            with lock:
                acknowledged.append((item_id, response.json()["image"]["image_id"]))


def test_two_replicas_share_a_gallery_and_a_killed_one_loses_no_acknowledged_image(
    model_store_dir: Path, tmp_path: Path, cluster_environment: dict[str, str]
) -> None:
    shared = tmp_path / "shared-volume"
    acknowledged: list[tuple[str, str]] = []
    lock, stop = threading.Lock(), threading.Event()
    with running_server(model_store_dir, shared, **cluster_environment) as (one, process), \
            running_server(model_store_dir, shared, **cluster_environment) as (two, _):
        for url, photo, item_id in ((one, coffee(), "coffee"), (two, cat(), "cat")):
            response = _register(url, encode(photo, ".png"), label=item_id, item_id=item_id, detect="false")
            assert response.status_code == 201
        found_on_two, found_on_one = _best_item(two, encode(coffee(), ".png")), _best_item(one, encode(cat(), ".png"))
        assert httpx.delete(f"{two}/gallery/items/coffee", timeout=30.0).status_code == 200
        after_delete_on_one = _best_item(one, encode(coffee(), ".png"))

        threads = [threading.Thread(target=_write_until_killed, args=(one, worker, acknowledged, lock, stop))
                   for worker in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 90.0
        while len(acknowledged) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        stored: dict[str, set[str]] = {}
        for item_id in {item for item, _ in acknowledged}:
            detail = httpx.get(f"{two}/gallery/items/{item_id}", timeout=30.0).json()
            stored[item_id] = {image["image_id"] for image in detail["images"]}
        files = [httpx.get(f"{two}/gallery/images/{image}/file", timeout=30.0).status_code for _, image in acknowledged]

    with running_server(model_store_dir, shared, **cluster_environment) as (three, _):  # its start repairs
        ready = httpx.get(f"{three}/ready", timeout=30.0).json()
        info = httpx.get(f"{three}/info", timeout=30.0).json()["gallery"]

    assert (found_on_two, found_on_one) == ("coffee", "cat") and after_delete_on_one != "coffee"
    assert len(acknowledged) >= 16
    assert [(item, image) for item, image in acknowledged if image not in stored.get(item, set())] == []
    assert set(files) == {200}
    assert ready["index_consistent"] is True
    assert info["backend"] == "cluster" and info["index_size"] == info["images"] >= len(acknowledged) + 1
