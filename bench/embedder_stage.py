"""The service's embedder stage against the bare Paddle predictor on the same batch, in one process, interleaved:
what the batcher's queue, hand-off and split cost per call, and what the preprocessing adds on top.

    python bench/embedder_stage.py --batch 16 --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory
from soak import REPO

from service.config import BatchingSettings, RuntimeSettings
from service.inference.image import normalize, resize
from service.inference.models import WorkerPool, load_embedder
from service.inference.pipeline import Recognizer
from service.inference.runtime import PaddleModel

MODEL = REPO / "model_store" / "embedder" / "default"


def run(batch: int, rounds: int, threads: int) -> dict[str, Any]:
    runtime = RuntimeSettings(cpu_threads=threads, warmup=False)
    embedder = load_embedder(MODEL, runtime, max_batch_size=batch)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (int(rng.integers(120, 400)), int(rng.integers(120, 400)), 3), dtype=np.uint8)
             for _ in range(batch)]
    preprocess = embedder.manifest.preprocess
    tensor = np.stack([normalize(resize(crop, preprocess)[0], preprocess) for crop in crops])
    bare = PaddleModel.create(MODEL, runtime)
    feed = {bare.input_names[0]: tensor}
    pool = WorkerPool(Recognizer(embedder, None), request_threads=1, inference_workers=1,
                      batching=BatchingSettings(max_embedder_batch=batch), runtime=runtime)
    pool.prepare()
    shared = pool.recognizer.embedder
    work: dict[str, Callable[[], object]] = {
        "bare_predictor": lambda: bare.run(feed),
        "batched_session": lambda: shared.session.run(feed),
        "embedder_stage_with_preprocessing": lambda: shared.embed(crops),
    }
    samples: dict[str, list[float]] = {name: [] for name in work}
    for call in work.values():
        call()
    for _ in range(rounds):  # interleaved: all three see the same machine
        for name, call in work.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000.0)
    pool.close()
    medians = {name: round(statistics.median(times), 2) for name, times in samples.items()}
    return {"batch": batch, "rounds": rounds, "median_ms": medians,
            "batched_session_over_bare": round(medians["batched_session"] / medians["bare_predictor"], 3),
            "stage_over_bare": round(medians["embedder_stage_with_preprocessing"] / medians["bare_predictor"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    record = {**machine_record(arguments.threads), "benchmark": "embedder_stage",
              **run(arguments.batch, arguments.rounds, arguments.threads)}
    print(record)
    print(f"wrote {write_result('embedder_stage', record)}")


if __name__ == "__main__":
    main()
