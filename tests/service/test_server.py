"""The real server: ``python -m service serve`` under uvicorn on a free port, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.service.images import cat, coffee, encode, rocket

pytestmark = pytest.mark.slow  # real uvicorn processes, restarts and a SIGKILL

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(store: Path, gallery: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    environment = {
        **os.environ,
        "SHITU_MODELS__STORE": str(store),
        "SHITU_MODELS__DETECTOR": "detector/default",
        "SHITU_GALLERY__PATH": str(gallery),
        "SHITU_RUNTIME__CPU_THREADS": "1",
        "SHITU_SERVER__LOG_LEVEL": "warning",
        **env,
    }
    process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=REPO,
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("server not ready in time")


def _register(url: str, image: bytes, **fields: str) -> httpx.Response:
    return httpx.post(f"{url}/gallery", files={"image": ("p.png", image, "image/png")}, data=fields, timeout=60.0)


def test_register_recognize_delete_and_restart_keep_the_gallery(model_store_dir: Path, tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    with running_server(model_store_dir, gallery) as (url, _):
        for item_id, photo in (("coffee", coffee()), ("cat", cat()), ("rocket", rocket())):
            response = _register(url, encode(photo, ".png"), label=item_id, item_id=item_id, detect="false")
            assert response.status_code == 201
        deleted = httpx.delete(f"{url}/gallery/items/rocket", timeout=30.0)
        before = httpx.get(f"{url}/gallery/items", timeout=30.0).json()

    with running_server(model_store_dir, gallery) as (url, _):
        after = httpx.get(f"{url}/gallery/items", timeout=30.0).json()
        found = httpx.post(f"{url}/recognize", files={"image": ("q.jpg", encode(cat()[30:280, 60:400]), "image/jpeg")},
                           data={"whole_image": "always"}, timeout=60.0).json()

    assert deleted.status_code == 200
    assert after == before and {item["item_id"] for item in after["items"]} == {"coffee", "cat"}
    labels = [found_object["match"]["label"] for found_object in found["objects"] if found_object["match"]]
    assert labels and labels[0] == "cat"


def test_sigkill_during_concurrent_writes_loses_no_acknowledged_image(model_store_dir: Path, tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
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

    with running_server(model_store_dir, gallery, SHITU_LIMITS__MAX_CONCURRENT_REQUESTS="16") as (url, process):
        threads = [threading.Thread(target=client, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60.0
        while len(acknowledged) < 24 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert len(acknowledged) >= 24
    with running_server(model_store_dir, gallery) as (url, _):
        stored: dict[str, set[str]] = {}
        for item_id in {item for item, _ in acknowledged}:
            detail = httpx.get(f"{url}/gallery/items/{item_id}", timeout=30.0).json()
            stored[item_id] = {image["image_id"] for image in detail["images"]}
        ready = httpx.get(f"{url}/ready", timeout=30.0).json()
        info = httpx.get(f"{url}/info", timeout=30.0).json()["gallery"]

    missing = [(item, image) for item, image in acknowledged if image not in stored.get(item, set())]
    assert missing == []
    assert ready["index_consistent"] is True and info["index_size"] == info["images"] >= len(acknowledged)


def test_slow_headers_and_streamed_oversize_bodies_are_cut_off(model_store_dir: Path, tmp_path: Path) -> None:
    """Over real sockets: a client dribbling its headers is disconnected after the header timeout, and a
    chunked upload (no Content-Length) is answered 413 as soon as it passes the limit, not after it ends."""
    sent_chunks = 0

    def body() -> Iterator[bytes]:
        nonlocal sent_chunks
        yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n\r\n"
        for _ in range(64):
            sent_chunks += 1
            yield b"\0" * (1 << 20)

    with running_server(model_store_dir, tmp_path / "gallery", SHITU_LIMITS__HEADER_TIMEOUT_S="1",
                        SHITU_LIMITS__MAX_UPLOAD_MB="4") as (url, _):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            closed = slow.recv(1) == b""
            waited = time.monotonic() - started
        try:
            response = httpx.post(f"{url}/recognize", content=body(), timeout=60.0,
                                  headers={"Content-Type": "multipart/form-data; boundary=b"})
            status, code = response.status_code, response.json()["error"]["code"]
        except httpx.TransportError:  # the server may close before the client stops sending
            status, code = 413, "payload_too_large"
        healthy = httpx.get(f"{url}/health", timeout=10.0).status_code

    assert closed and waited < 5.0
    assert (status, code) == (413, "payload_too_large") and sent_chunks < 64
    assert healthy == 200
