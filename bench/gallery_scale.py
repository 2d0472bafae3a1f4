"""Gallery search at 10k, 100k and 1M images: latency per query and recall@1 against exact search, on real
embeddings of the shipped embedder; for the largest size also a live delete and the server's start-up to /ready
from the index snapshot, and the memory per image.

Embeddings: ``--real`` crops (default 100,000) are the recognition images of a ``shitu data synth`` dataset
(scene crops and gallery cards) under random crop, scale, rotation and light changes, embedded by
``model_store/embedder/default`` and cached in a .npy (never committed). The rest of a gallery are vectors sampled
around them (a real vector plus Gaussian noise, cosine 0.75-0.95 to it: other photos of the same product), not
uniform random vectors, on which HNSW looks far worse than on real data. Queries are further held-out
augmentations of the same products, embedded the same way.

    python bench/gallery_scale.py --synth /tmp/synth --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import faiss
import httpx
import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory
from numpy.typing import NDArray
from soak import REPO, _free_port, rss_mb, server

from service.config import GallerySettings, IndexKind, RuntimeSettings
from service.gallery import Gallery
from service.gallery.index import IndexParameters, VectorIndex, index_kind_for
from service.gallery.store import GalleryStore
from service.inference.manifest import load_manifest
from service.inference.models import load_embedder

MODEL = REPO / "model_store" / "embedder" / "default"
DIM = 512


def augment(image: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """Another photo of the same product: a random crop, scale, rotation and light."""
    height, width = image.shape[:2]
    keep = rng.uniform(0.7, 1.0)
    crop_w, crop_h = max(8, int(width * keep)), max(8, int(height * keep))
    x, y = rng.integers(0, width - crop_w + 1), rng.integers(0, height - crop_h + 1)
    part = image[y : y + crop_h, x : x + crop_w]
    side = int(rng.integers(96, 320))
    part = cv2.resize(part, (side, max(8, int(side * crop_h / crop_w))), interpolation=cv2.INTER_AREA)
    turn = cv2.getRotationMatrix2D((part.shape[1] / 2, part.shape[0] / 2), rng.uniform(-15, 15), 1.0)
    part = cv2.warpAffine(part, turn, (part.shape[1], part.shape[0]), borderMode=cv2.BORDER_REFLECT)
    light = part.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    return np.clip(light, 0, 255).astype(np.uint8)


def real_embeddings(synth: Path, count: int, queries: int,
                    cache: Path) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(gallery, query) embeddings of augmented synth crops, cached."""
    if cache.is_file():
        stored = np.load(cache)
        if len(stored) >= count + queries:
            return stored[:count], stored[count : count + queries]
    sources = [path for folder in ("crops", "gallery") for path in sorted((synth / "images" / folder).rglob("*.jpg"))]
    images = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in sources]
    embedder = load_embedder(MODEL, RuntimeSettings(cpu_threads=2, warmup=False, onednn_bf16=False), max_batch_size=32)
    rng = np.random.default_rng(0)
    total = count + queries
    out = np.empty((total, DIM), dtype=np.float32)
    started = time.monotonic()
    for start in range(0, total, 256):
        picks = rng.integers(0, len(images), min(256, total - start))
        out[start : start + len(picks)] = embedder.embed([augment(images[pick], rng) for pick in picks])
        if start % 10240 == 0:
            print(f"embedded {start}/{total} in {time.monotonic() - started:.0f} s", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out[:count], out[count:]


def gallery_vectors(real: NDArray[np.float32], size: int, seed: int = 1) -> NDArray[np.float32]:
    """The real vectors, then vectors sampled around random real ones up to ``size``."""
    if size <= len(real):
        return real[:size].copy()
    rng = np.random.default_rng(seed)
    out = np.empty((size, DIM), dtype=np.float32)
    out[: len(real)] = real
    for start in range(len(real), size, 100_000):
        stop = min(size, start + 100_000)
        centres = real[rng.integers(0, len(real), stop - start)]
        # per-dimension noise s gives cosine ~ 1/sqrt(1 + 512 s^2): 0.95 at s=0.0145, 0.75 at s=0.039
        scale = rng.uniform(0.0145, 0.039, (stop - start, 1)).astype(np.float32)
        moved = centres + rng.standard_normal((stop - start, DIM), dtype=np.float32) * scale
        out[start:stop] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    return out


def exact_top1(vectors: NDArray[np.float32], queries: NDArray[np.float32]) -> NDArray[np.int64]:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    _, ids = flat.search(queries, 1)
    return ids[:, 0].astype(np.int64)


def timed_queries(search: Any, queries: NDArray[np.float32]) -> tuple[list[float], list[Any]]:
    """One query at a time on one thread, as a request searches (``gallery.search_threads`` = 1)."""
    faiss.omp_set_num_threads(1)
    times, answers = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(search(query[np.newaxis]))
        times.append((time.perf_counter() - started) * 1000.0)
    return times, answers


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(ordered), 3), "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3)}


def in_memory(vectors: NDArray[np.float32], queries: NDArray[np.float32], settings: GallerySettings) -> dict[str, Any]:
    """Exact and HNSW (the service's own VectorIndex, its default parameters) at one size."""
    truth = exact_top1(vectors, queries)
    ids = np.arange(len(vectors), dtype=np.int64)
    result: dict[str, Any] = {"images": len(vectors), "auto_uses": index_kind_for(settings, len(vectors)).value}
    for kind in (IndexKind.flat, IndexKind.hnsw):
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        started = time.monotonic()
        index = VectorIndex.build(IndexParameters.from_settings(settings.model_copy(update={"index": kind}), DIM,
                                                                len(vectors)), ids, vectors)
        build_s = time.monotonic() - started
        times, answers = timed_queries(lambda query, index=index: index.search(query, 20), queries)
        found = np.array([answer[1][0][0] for answer in answers])
        result[kind.value] = {**percentiles(times), "recall_at_1": round(float(np.mean(found == truth)), 4),
                              "build_s": round(build_s, 1)}
    return result


def bulk_store(directory: Path, vectors: NDArray[np.float32]) -> None:
    """A gallery of ``len(vectors)`` images (10 per item) written in one transaction, through the store's own
    insert statements (adding a million images through the API would take a million fsyncs)."""
    settings = GallerySettings(path=directory, index=IndexKind.flat)
    with Gallery.open(settings, embedding_dim=DIM, model_id=_model_id()):
        pass  # creates the schema and records the embedding space
    store = GalleryStore(directory / "gallery.db")
    now = time.time()
    with store.write() as connection:
        for number, vector in enumerate(vectors):
            if number % 10 == 0:
                store.insert_item(connection, f"item-{number // 10}", f"product {number // 10}", "{}", now)
            store.insert_image(connection, image_id=f"image-{number}", item_id=f"item-{number // 10}",
                               sha256=f"{number:064x}", file_name="shared.jpg", media_type="image/jpeg",
                               box=None, model_id=_model_id(), embedding=vector, now=now)
    store.close()


def _model_id() -> str:
    return load_manifest(MODEL).model_id


def at_scale(vectors: NDArray[np.float32], queries: NDArray[np.float32], settings: GallerySettings,
             work: Path) -> dict[str, Any]:
    """The largest size through the service's Gallery: build, search, delete, snapshot, then a server's start."""
    directory = work / "large"
    started = time.monotonic()
    bulk_store(directory, vectors)
    result: dict[str, Any] = {"images": len(vectors), "store_write_s": round(time.monotonic() - started, 1)}
    truth = exact_top1(vectors, queries)
    gallery_settings = settings.model_copy(update={"path": directory})
    started = time.monotonic()
    gallery = Gallery.open(gallery_settings, embedding_dim=DIM, model_id=_model_id())
    result["first_open_build_s"] = round(time.monotonic() - started, 1)
    result["index_kind"] = gallery.stats().index_kind
    times, answers = timed_queries(lambda query: gallery.search(query, 5), queries)
    found = np.array([int(answer[0][0].image_id.split("-")[1]) for answer in answers])
    result["search"] = {**percentiles(times), "recall_at_1": round(float(np.mean(found == truth)), 4)}
    deleted = answers[0][0][0].image_id
    gallery.delete_image(deleted)
    after = gallery.search(queries[:1], 5)[0]
    result["delete_visible_to_next_search"] = all(match.image_id != deleted for match in after)
    gallery.close()
    result.update(server_start(directory, settings))
    return result


def server_start(directory: Path, settings: GallerySettings) -> dict[str, Any]:
    """Seconds from process start to /ready on the large gallery (from its snapshot), and the memory per image
    against the same server on an empty gallery."""
    environment = {"SHITU_GALLERY__INDEX": settings.index.value,
                   "SHITU_GALLERY__EXACT_MAX_IMAGES": str(settings.exact_max_images),
                   "SHITU_RUNTIME__CPU_THREADS": "2"}
    rss: dict[str, float] = {}
    ready_s: dict[str, float] = {}
    for name, path in (("empty", directory.parent / "empty"), ("large", directory)):
        port = _free_port()
        started = time.monotonic()
        with server(path, port, REPO / "model_store", "detector/default", environment=environment) as process:
            ready_s[name] = round(time.monotonic() - started, 1)
            rss[name] = rss_mb(process.pid)
            info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=30).json()["gallery"]
    images = info["images"]
    return {"server_start_to_ready_s": ready_s, "server_rss_mb": rss, "server_index_kind": info["index_kind"],
            "server_images": images,
            "memory_per_image_bytes": round((rss["large"] - rss["empty"]) * 2**20 / max(images, 1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synth", type=Path, required=True, help="a `shitu data synth` output")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--real", type=int, default=100_000, help="real embedded crops")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "shitu_bench_embeddings.npy")
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.synth, [int(n) for n in arguments.sizes.split(",")], arguments.real,
                         arguments.queries, arguments.cache), indent=2))


def run(synth: Path, sizes: list[int], real_count: int, query_count: int, cache: Path) -> dict[str, Any]:
    real, queries = real_embeddings(synth, real_count, query_count, cache)
    settings = GallerySettings()  # the service's defaults: auto, its threshold and HNSW parameters
    record: dict[str, Any] = {**machine_record(threads=1), "benchmark": "gallery_scale", "real_embeddings": len(real),
                              "queries": len(queries), "settings": settings.model_dump(mode="json"), "sizes": []}
    with tempfile.TemporaryDirectory() as work:
        for size in sizes:
            vectors = gallery_vectors(real, size)
            if size == max(sizes):
                record["sizes"].append(at_scale(vectors, queries, settings, Path(work)))
            else:
                record["sizes"].append(in_memory(vectors, queries, settings))
            print(json.dumps(record["sizes"][-1]), flush=True)
    record["path"] = str(write_result("gallery_scale", record))
    return record


def markdown(record: dict[str, Any]) -> str:
    lines = ["| images | index | search p50 / p99 ms | recall@1 vs exact | notes |", "| --- | --- | --- | --- | --- |"]
    for size in record["sizes"]:
        if "search" in size:
            lines.append(f"| {size['images']:,} | {size['index_kind']} (service, auto) | {size['search']['p50_ms']} / "
                         f"{size['search']['p99_ms']} | {size['search']['recall_at_1']} | first build "
                         f"{size['first_open_build_s']} s; server start to /ready "
                         f"{size['server_start_to_ready_s']['large']} s (empty gallery "
                         f"{size['server_start_to_ready_s']['empty']} s); delete visible to the next search: "
                         f"{size['delete_visible_to_next_search']}; {size['memory_per_image_bytes']} bytes/image |")
            continue
        for kind in ("flat", "hnsw"):
            part = size[kind]
            used = " (auto)" if size["auto_uses"] == kind else ""
            lines.append(f"| {size['images']:,} | {kind}{used} | {part['p50_ms']} / {part['p99_ms']} | "
                         f"{part['recall_at_1']} | build {part['build_s']} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
