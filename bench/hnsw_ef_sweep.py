"""HNSW graph and search width against recall at one gallery size: the service's ``VectorIndex`` built once per
(``hnsw_m``, ``hnsw_ef_construction``) pair, searched at each ``hnsw_ef_search``, against exact search, on the same
embeddings as ``gallery_scale.py`` (its cache).

    python bench/hnsw_ef_sweep.py --synth data/pack800 --cache data/bench_embeddings_v2.npy --size 1000000 \
        --graphs 32:40,32:200 --ef-search 64,128,256
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from pathlib import Path

import faiss
import gallery_scale
import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory

from service.config import GallerySettings
from service.gallery.index import IndexParameters, VectorIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synth", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--real", type=int, default=100_000)
    parser.add_argument("--ef-search", default="64,128,256,512")
    parser.add_argument("--graphs", default="32:40", help="hnsw_m:hnsw_ef_construction pairs, comma-separated")
    arguments = parser.parse_args()
    real, queries = gallery_scale.real_embeddings(arguments.synth, arguments.real, 1000, arguments.cache)
    vectors = gallery_scale.gallery_vectors(real, arguments.size)
    truth = gallery_scale.exact_top1(vectors, queries)
    record = {**machine_record(threads=1), "benchmark": "hnsw_ef_sweep", "images": len(vectors), "rows": []}
    for graph in arguments.graphs.split(","):
        m, ef_construction = (int(value) for value in graph.split(":"))
        settings = GallerySettings(hnsw_m=m, hnsw_ef_construction=ef_construction)
        parameters = IndexParameters.from_settings(settings, vectors.shape[1], len(vectors))
        faiss.omp_set_num_threads(2)
        started = time.monotonic()
        index = VectorIndex.build(parameters, np.arange(len(vectors), dtype=np.int64), vectors)
        build_s = round(time.monotonic() - started, 1)
        for ef_search in (int(value) for value in arguments.ef_search.split(",")):
            object.__setattr__(index, "parameters", dataclasses.replace(parameters, hnsw_ef_search=ef_search))
            times, answers = gallery_scale.timed_queries(functools.partial(index.search, k=20), queries)
            found = np.array([answer[1][0][0] for answer in answers])
            row = {"hnsw_m": m, "ef_construction": ef_construction, "build_s": build_s, "ef_search": ef_search,
                   **gallery_scale.percentiles(times), "recall_at_1": round(float(np.mean(found == truth)), 4)}
            record["rows"].append(row)
            print(json.dumps(row), flush=True)
        del index  # one graph in memory at a time (3+ GB at a million)
    print(f"wrote {write_result('hnsw_ef_sweep', record)}")


if __name__ == "__main__":
    main()
