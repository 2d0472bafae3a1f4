"""``POST /recognize`` over HTTP with the detector: latency at 1 client, throughput at 1-64 clients, against a
baseline checkout (today's main: one worker, one request at a time, PaddleClas's order of work per photo) in the
same run. Both servers load the same model store and demo gallery and are driven in alternating turns, so both see
the same machine load.

    python bench/http_throughput.py --baseline-ref a6d8205 --clients 1,4,16,64 --duration-s 15
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import tarfile
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory
from soak import REPO, _free_port, server

BACKOFF_S = 0.1  # a client told 429 waits this long before it tries again (both servers alike)


def baseline_checkout(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (no .git), from this repository's history: ``git archive`` changes no worktree."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tree:
        tree.extractall(into, filter="data")
    return into


def demo_photos(demo: Path) -> dict[str, list[bytes]]:
    """The demo's five shelf photos as sent (512 px) and as a phone sends them (12 MP JPEG, mild sensor noise)."""
    scenes = [cv2.imread(str(path)) for path in sorted((demo / "queries").glob("query_?.jpg"))]
    rng = np.random.default_rng(0)
    big = []
    for scene in scenes:
        large = cv2.resize(scene, (4000, 3000), interpolation=cv2.INTER_CUBIC)
        noisy = np.clip(large.astype(np.int16) + rng.normal(0, 3, large.shape), 0, 255).astype(np.uint8)
        big.append(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())
    return {"512px": [cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes() for scene in scenes],
            "12MP": big}


@dataclass
class Level:
    """What the clients of one turn got."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, latency_ms: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                self.latencies_ms.append(latency_ms)


def drive(url: str, photos: list[bytes], clients: int, duration_s: float) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``duration_s``; recognitions per second count 200s only."""
    level = Level()
    stop = time.monotonic() + duration_s

    def client(seed: int) -> None:
        with httpx.Client(timeout=120) as http:
            turn = seed
            while time.monotonic() < stop:
                photo = photos[turn % len(photos)]
                turn += 1
                started = time.perf_counter()
                response = http.post(f"{url}/recognize", files={"image": ("photo.jpg", photo, "image/jpeg")})
                level.record(response.status_code, (time.perf_counter() - started) * 1000.0)
                if response.status_code == 429:
                    time.sleep(BACKOFF_S)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies = sorted(level.latencies_ms)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "recognitions_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1) if latencies else None,
        "statuses": {str(status): count for status, count in sorted(level.statuses.items())},
        "server_errors": sum(count for status, count in level.statuses.items() if status >= 500),
    }


def parse_variants(text: str) -> dict[str, dict[str, str]]:
    """``name:VAR=value,VAR=value;name2:...`` → extra servers of this checkout with those settings."""
    variants: dict[str, dict[str, str]] = {}
    for part in filter(None, text.split(";")):
        name, _, assignments = part.partition(":")
        variants[name] = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
    return variants


def run(baseline: Path, demo: Path, clients: list[int], duration_s: float, photo_sets: list[str],
        variants: dict[str, dict[str, str]]) -> dict[str, Any]:
    photos = demo_photos(demo)
    store = REPO / "model_store"
    sides: dict[str, tuple[Path, dict[str, str]]] = {"baseline": (baseline, {}), "new": (REPO, {}),
                                                     **{name: (REPO, extra) for name, extra in variants.items()}}
    results: dict[str, Any] = {"photo_sets": {}, "variants": variants}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        urls: dict[str, str] = {}
        for side, (checkout, extra) in sides.items():
            port = _free_port()
            # Each side with its own defaults (workers, queue, batching) at 2 math threads per predictor, the
            # default of both on this machine; only the gallery and the logging are set.
            variables = {"SHITU_GALLERY__DEMO": str(demo / "gallery_list.txt"), "SHITU_RUNTIME__CPU_THREADS": "2",
                         **extra}
            stack.enter_context(server(Path(scratch) / side, port, store, "detector/default", checkout=checkout,
                                       environment=variables))
            urls[side] = f"http://127.0.0.1:{port}"
        results["info"] = {side: httpx.get(f"{url}/info", timeout=30).json().get("runtime") for side, url in
                           urls.items()}
        names = list(sides)
        for name in photo_sets:
            table: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for turn, count in enumerate(clients):
                for side in (names if turn % 2 == 0 else names[::-1]):  # neither always goes first
                    drive(urls[side], photos[name], min(count, 2), 2.0)  # warm the connection pool and caches
                    table[side].append(drive(urls[side], photos[name], count, duration_s))
                    print(name, side, table[side][-1], flush=True)
            results["photo_sets"][name] = table
        results["batching_after"] = httpx.get(f"{urls['new']}/info", timeout=30).json()["runtime"]["batching"]
    return results


def ratios(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per photo set and side: throughput per client count and the 1-client p50, over the baseline's."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, table in results["photo_sets"].items():
        for side, levels in table.items():
            if side == "baseline":
                continue
            entry = out.setdefault(name, {}).setdefault(side, {})
            for old, new in zip(table["baseline"], levels, strict=True):
                entry[f"throughput_{old['clients']}"] = round(new["recognitions_per_s"] / old["recognitions_per_s"],
                                                              3) if old["recognitions_per_s"] else 0.0
            entry["p50_1_client"] = round(levels[0]["p50_ms"] / table["baseline"][0]["p50_ms"], 3)
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = ["| photos | server | clients | recognitions/s | × baseline | p50 / p99 ms | statuses |",
             "|" + " --- |" * 7]
    for name, table in results["photo_sets"].items():
        for side, levels in table.items():
            for old, level in zip(table["baseline"], levels, strict=True):
                ratio = level["recognitions_per_s"] / old["recognitions_per_s"] if old["recognitions_per_s"] else 0.0
                lines.append(f"| {name} | {side} | {level['clients']} | {level['recognitions_per_s']} | "
                             f"{ratio:.2f} | {level['p50_ms']} / {level['p99_ms']} | {_statuses(level)} |")
    return "\n".join(lines)


def _statuses(level: dict[str, Any]) -> str:
    return ", ".join(f"{status}: {count}" for status, count in level["statuses"].items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="a6d8205", help="git ref of today's code")
    parser.add_argument("--baseline-dir", type=Path, default=None, help="an existing checkout instead of the ref")
    parser.add_argument("--demo", type=Path, required=True, help="`shitu data demo --out DIR` output")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--photos", default="512px,12MP")
    parser.add_argument("--variants", default="", help="extra servers of this checkout: "
                        "'2x1:SHITU_RUNTIME__CPU_THREADS=1,SHITU_LIMITS__INFERENCE_WORKERS=2;...'")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        baseline = arguments.baseline_dir or baseline_checkout(arguments.baseline_ref, Path(scratch) / "baseline")
        results = run(baseline, arguments.demo, [int(n) for n in arguments.clients.split(",")], arguments.duration_s,
                      arguments.photos.split(","), parse_variants(arguments.variants))
    record = {**machine_record(threads=2), "benchmark": "http_throughput", "baseline": arguments.baseline_ref,
              **results, "new_over_baseline": ratios(results)}
    print(markdown(results))
    print(f"wrote {write_result('http_throughput', record)}")


if __name__ == "__main__":
    main()
