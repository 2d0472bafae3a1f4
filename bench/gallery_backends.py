"""Both gallery back ends in one run: write throughput, search latency (plain and filtered), filtered recall, and
the memory a replica holds for its vectors.

The embedded back end (SQLite + faiss flat, and hnsw) is the baseline; the cluster back end talks to a real
PostgreSQL server (Debian's, started here in a temporary directory as tests/servers.py does) and to Milvus's gRPC
API served by milvus-lite in a process of its own, so the replica's memory holds no vectors. milvus-lite is the
Milvus API over a small Python engine: its absolute latency says nothing about a Milvus standalone or cluster,
only what the client side, the PostgreSQL lookups and the round trips cost. Recall is the fraction of the exact
filtered top-k (numpy brute force over the items whose metadata passes) that a search returns.

    python bench/gallery_backends.py --images 20000 --dim 512 --queries 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_record, median_ms, write_result  # bench/ is the script's directory
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from service.config import ClusterSettings, GalleryBackend, GallerySettings, IndexKind  # noqa: E402
from service.gallery import Gallery  # noqa: E402
from service.gallery.filters import MetadataFilter, matches, parse_filter  # noqa: E402
from tests.servers import MilvusServer, PostgresServer  # noqa: E402

MODEL_ID = "bench/embedder"
BRANDS = [f"brand-{number}" for number in range(20)]
FILTERS = {
    "brand (5%)": {"key": "brand", "eq": "brand-3"},
    "price < 10 (10%)": {"key": "price", "lt": 10},
    "brand or cheap (~15%)": {"or": [{"key": "brand", "in": ["brand-1", "brand-2"]}, {"key": "price", "lt": 5}]},
    "brand and range (1%)": {"and": [{"key": "brand", "eq": "brand-7"}, {"key": "price", "gte": 40, "lt": 60}]},
}
TOP_K = 5


def unit(rows: int, dim: int, seed: int) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def catalogue(images: int, per_item: int, seed: int) -> tuple[list[str], dict[str, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    items = [f"item-{number // per_item}" for number in range(images)]
    metadata = {item: {"brand": BRANDS[int(rng.integers(len(BRANDS)))], "price": int(rng.integers(0, 100))}
                for item in dict.fromkeys(items)}
    return items, metadata


def fill(gallery: Gallery, vectors: NDArray[np.float32], items: list[str],
         metadata: dict[str, dict[str, Any]]) -> float:
    """Images per second through ``add_image``, each acknowledged (committed in every store) before the next."""
    started = time.perf_counter()
    for number, item in enumerate(items):
        gallery.add_image(label=item, embedding=vectors[number], image_bytes=number.to_bytes(8, "big") * 8,
                          media_type="image/jpeg", item_id=item, metadata=metadata[item])
    return len(items) / (time.perf_counter() - started)


def exact(vectors: NDArray[np.float32], items: list[str], allowed: NDArray[np.bool_],
          queries: NDArray[np.float32]) -> list[list[str]]:
    results = []
    for scores in queries @ vectors[allowed].T:
        best: dict[str, float] = {}
        for item, score in zip(np.asarray(items)[allowed].tolist(), scores.tolist(), strict=True):
            best[item] = max(score, best.get(item, -2.0))
        results.append([item for item, _ in sorted(best.items(), key=lambda pair: -pair[1])[:TOP_K]])
    return results


def rss_mb() -> float:
    """This process's resident memory now (the replica's share: Milvus and PostgreSQL run in processes of their own)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def recall(gallery: Gallery, queries: NDArray[np.float32], expected: list[list[str]],
           metadata_filter: MetadataFilter | None) -> float:
    found = gallery.search(queries, TOP_K, metadata_filter)
    hits = sum(len({m.item_id for m in row} & set(want)) for row, want in zip(found, expected, strict=True))
    wanted = sum(len(want) for want in expected)
    if not wanted:  # nothing passes the filter: right when nothing was returned
        return float(not any(found_row for found_row in found))
    return hits / wanted


def measure(name: str, open_gallery: Callable[[], Gallery], data: dict[str, Any], runs: int) -> dict[str, Any]:
    vectors, items, metadata, queries = data["vectors"], data["items"], data["metadata"], data["queries"]
    rss_before = rss_mb()
    with open_gallery() as gallery:
        writes_per_s = fill(gallery, vectors, items, metadata)
        result: dict[str, Any] = {"writes_per_s": round(writes_per_s, 1),
                                  "rss_growth_mb": round(rss_mb() - rss_before, 1)}
        single = queries[:1]
        result["search_ms"] = round(median_ms(lambda: gallery.search(single, TOP_K), runs), 3)
        store = getattr(gallery.backend, "_store", None)
        if name == "cluster" and store is not None:
            # the replica's own part of a search, whatever Milvus costs: the PostgreSQL lookup of the top-k hits
            hits = [row_id for row_id in range(1, TOP_K + 1)]
            result["replica_overhead_ms"] = round(median_ms(lambda: store.matches(hits), runs), 3)
        result["recall_unfiltered"] = round(recall(gallery, queries, data["exact"][None], None), 4)
        result["filters"] = {}
        for label, raw in FILTERS.items():
            metadata_filter = parse_filter(raw)
            repeated = median_ms(lambda f=metadata_filter: gallery.search(single, TOP_K, f), runs)
            # a filter never seen before (the embedded back end caches a selection until the next write):
            # the same selection, wrapped with a condition on a key no item has
            fresh = iter([parse_filter({"or": [raw, {"key": "unused", "eq": f"run-{n}"}]}) for n in range(runs + 3)])
            first = median_ms(lambda filters=fresh: gallery.search(single, TOP_K, next(filters)), runs)
            result["filters"][label] = {
                "search_ms": round(repeated, 3),
                "new_filter_search_ms": round(first, 3),
                "recall": round(recall(gallery, queries, data["exact"][label], metadata_filter), 4),
            }
    print(f"{name:>16}: {result['writes_per_s']:8.1f} writes/s, +{result['rss_growth_mb']} MB, "
          f"search {result['search_ms']:7.2f} ms (PostgreSQL lookup {result.get('replica_overhead_ms', '-')} ms), "
          f"recall {result['recall_unfiltered']:.3f}, "
          + ", ".join(f"{label} {value['search_ms']:.2f}/{value['new_filter_search_ms']:.2f} ms "
                      f"r={value['recall']:.3f}" for label, value in result["filters"].items()))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--per-item", type=int, default=2)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=50)
    arguments = parser.parse_args()

    items, metadata = catalogue(arguments.images, arguments.per_item, seed=1)
    vectors, queries = unit(arguments.images, arguments.dim, 2), unit(arguments.queries, arguments.dim, 3)
    expected: dict[Any, list[list[str]]] = {None: exact(vectors, items, np.ones(len(items), dtype=bool), queries)}
    for label, raw in FILTERS.items():
        allowed = np.array([matches(parse_filter(raw), metadata[item]) for item in items])
        expected[label] = exact(vectors, items, allowed, queries)
    data = {"vectors": vectors, "items": items, "metadata": metadata, "queries": queries, "exact": expected}

    work = Path(tempfile.mkdtemp(prefix="shitu-bench-"))
    postgres = PostgresServer.start()
    milvus = MilvusServer.start(work / "milvus")
    try:
        cluster = ClusterSettings(milvus_uri=milvus.uri, postgres_dsn=postgres.dsn, name="bench")
        results = {}
        for name, settings in (
            ("embedded flat", GallerySettings(path=work / "flat")),
            ("embedded hnsw", GallerySettings(path=work / "hnsw", index=IndexKind.hnsw)),
            ("cluster", GallerySettings(path=work / "shared", backend=GalleryBackend.cluster, cluster=cluster)),
        ):
            results[name] = measure(name, lambda s=settings: Gallery.open(s, embedding_dim=arguments.dim,
                                                                          model_id=MODEL_ID), data, arguments.runs)
    finally:
        milvus.stop()
        postgres.stop()
    baseline, other = results["embedded flat"], results["cluster"]
    ratios = {
        "cluster_vs_embedded_write_throughput": round(other["writes_per_s"] / baseline["writes_per_s"], 3),
        "cluster_vs_embedded_search_latency": round(other["search_ms"] / baseline["search_ms"], 2),
    }
    print("ratios:", ratios)
    record = {"arguments": vars(arguments), "machine": machine_record(threads=1), "results": results,
              "ratios": ratios, "vector_bytes": arguments.images * arguments.dim * 4}
    print(f"wrote {write_result('gallery_backends', record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
