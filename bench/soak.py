"""Soak: a real ``shitu serve`` on loopback under mixed recognize and gallery-write load for a long while.

Reports every status the clients got (5xx must be 0), checks that every acknowledged write is stored (and every
acknowledged delete gone), again after a restart, and compares the server's resident memory at the end with
its value after the warm-up (the baseline of the same run). Clients pace themselves: the point is hours of
traffic of every kind, not the peak rate (bench/pipeline_latency.py measures speed).

    python bench/soak.py --duration-s 1800 --out-md docs/soak.md
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory
from skimage import data as samples

REPO = Path(__file__).resolve().parents[1]
PHOTOS = [samples.coffee(), samples.chelsea(), samples.rocket(), samples.astronaut()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return buffer.tobytes()


@contextmanager
def server(gallery: Path, port: int, store: Path, detector: str, *, checkout: Path = REPO,
           environment: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m service serve`` of ``checkout`` (another one: a baseline) until it answers ``/ready``."""
    variables = {**os.environ, "PYTHONPATH": str(checkout), "SHITU_MODELS__STORE": str(store),
                 "SHITU_MODELS__DETECTOR": detector, "SHITU_GALLERY__PATH": str(gallery),
                 "SHITU_RUNTIME__CPU_THREADS": "1", "SHITU_SERVER__LOG_LEVEL": "warning", **(environment or {})}
    process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=checkout,
                               env=variables, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 600) -> float:
    """Seconds until ``/ready`` answered 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


class Load:
    def __init__(self, url: str, stop: threading.Event) -> None:
        self.url = url
        self.stop = stop
        self.statuses: Counter[str] = Counter()
        self.stored: dict[str, set[str]] = {}
        self.deleted: set[str] = set()
        self.lock = threading.Lock()

    def _count(self, kind: str, status: int) -> None:
        with self.lock:
            self.statuses[f"{kind} {status}"] += 1

    def recognizer(self, seed: int, pause_s: float) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=120) as client:
            while not self.stop.is_set():
                photo = PHOTOS[rng.randrange(len(PHOTOS))]
                height, width = photo.shape[:2]
                x, y = rng.randrange(width // 3), rng.randrange(height // 3)
                query = _jpeg(photo[y : y + height // 2 + rng.randrange(height // 2), x : x + width // 2])
                response = client.post(f"{self.url}/recognize", files={"image": ("q.jpg", query, "image/jpeg")})
                self._count("recognize", response.status_code)
                time.sleep(pause_s)

    def writer(self, seed: int, pause_s: float) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(timeout=120) as client:
            serial = 0
            while not self.stop.is_set():
                item_id = f"soak-{seed}-{serial % 50}"
                image = _jpeg(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
                response = client.post(f"{self.url}/gallery", files={"image": ("p.jpg", image, "image/jpeg")},
                                       data={"label": item_id, "item_id": item_id, "detect": "false"})
                self._count("register", response.status_code)
                if response.status_code in (200, 201):
                    with self.lock:
                        self.stored.setdefault(item_id, set()).add(response.json()["image"]["image_id"])
                serial += 1
                if serial % 5 == 0 and self.stored.get(item_id):
                    with self.lock:
                        image_id = sorted(self.stored[item_id])[0]
                    deleted = client.delete(f"{self.url}/gallery/images/{image_id}")
                    self._count("delete", deleted.status_code)
                    if deleted.status_code == 200:
                        with self.lock:
                            self.stored[item_id].discard(image_id)
                            self.deleted.add(image_id)
                if serial % 7 == 0:
                    self._count("list", client.get(f"{self.url}/gallery/items", params={"limit": 20}).status_code)
                time.sleep(pause_s)

    def verify(self, url: str) -> dict[str, int]:
        """Every acknowledged image is there, every acknowledged delete is gone."""
        missing = resurrected = 0
        with httpx.Client(timeout=60) as client:
            for item_id, images in self.stored.items():
                detail = client.get(f"{url}/gallery/items/{item_id}").json()
                present = {image["image_id"] for image in detail.get("images", [])}
                missing += len(images - present)
                resurrected += len(present & self.deleted)
        return {"acknowledged_images": sum(len(images) for images in self.stored.values()),
                "acknowledged_deletes": len(self.deleted), "missing": missing, "resurrected": resurrected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--warmup-s", type=float, default=300.0, help="RSS baseline taken after this")
    parser.add_argument("--recognizers", type=int, default=3)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--pause-s", type=float, default=0.2, help="each client's pause between requests")
    parser.add_argument("--store", type=Path, default=REPO / "model_store")
    parser.add_argument("--detector", default="", help="detector directory in the store (default: none)")
    parser.add_argument("--out-md", type=Path, default=None)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        gallery, port = Path(work) / "gallery", _free_port()
        url = f"http://127.0.0.1:{port}"
        stop = threading.Event()
        samples_mb: list[tuple[float, float]] = []
        with server(gallery, port, arguments.store, arguments.detector) as process:
            load = Load(url, stop)
            threads = [threading.Thread(target=load.recognizer, args=(seed, arguments.pause_s))
                       for seed in range(arguments.recognizers)]
            threads += [threading.Thread(target=load.writer, args=(seed, arguments.pause_s))
                        for seed in range(arguments.writers)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            while (elapsed := time.monotonic() - started) < arguments.duration_s:
                samples_mb.append((round(elapsed, 1), round(rss_mb(process.pid), 1)))
                time.sleep(10.0)
            stop.set()
            for thread in threads:
                thread.join(timeout=300)
            samples_mb.append((round(time.monotonic() - started, 1), round(rss_mb(process.pid), 1)))
            live = load.verify(url)
        with server(gallery, port, arguments.store, arguments.detector):
            restarted = load.verify(url)

    baseline = next((mb for elapsed, mb in samples_mb if elapsed >= arguments.warmup_s), samples_mb[0][1])
    final = samples_mb[-1][1]
    server_errors = sum(count for key, count in load.statuses.items() if key.split()[1].startswith("5"))
    record = {
        "machine": machine_record(threads=1),
        "settings": vars(arguments) | {"store": str(arguments.store), "out_md": str(arguments.out_md)},
        "statuses": dict(sorted(load.statuses.items())),
        "requests": sum(load.statuses.values()),
        "server_errors": server_errors,
        "verify_live": live,
        "verify_after_restart": restarted,
        "rss_mb_after_warmup": baseline,
        "rss_mb_final": final,
        "rss_growth_ratio": round(final / baseline, 4),
        "rss_samples_mb": samples_mb,
    }
    path = write_result("soak", record)
    table = "\n".join([
        f"Soak of {arguments.duration_s / 60:.0f} minutes, {record['requests']} requests "
        f"({arguments.recognizers} recognizers, {arguments.writers} writers, {arguments.pause_s} s pauses), "
        f"{record['machine']['cpu']}, {record['machine']['date']}:",
        "",
        "| measure | value |",
        "| --- | --- |",
        *(f"| `{key}` | {count} |" for key, count in record["statuses"].items()),
        f"| 5xx | {server_errors} |",
        f"| acknowledged images / missing (live, after restart) | {live['acknowledged_images']} / "
        f"{live['missing']}, {restarted['missing']} |",
        f"| acknowledged deletes / back again | {live['acknowledged_deletes']} / {live['resurrected']}, "
        f"{restarted['resurrected']} |",
        f"| server RSS after warm-up → end | {baseline:.0f} MB → {final:.0f} MB (×{record['rss_growth_ratio']:.3f}) |",
    ])
    print(table)
    print(f"wrote {path}")
    if arguments.out_md:
        arguments.out_md.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
