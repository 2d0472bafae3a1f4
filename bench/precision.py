"""bf16 against fp32 for the shipped embedder: feature cosine per crop, recall@1 on a generated benchmark, and
speed, in one run. The service turns bf16 on by itself where the CPU has AMX or AVX512-BF16
(``runtime.onednn_bf16`` None); this is the check that it may. Where the CPU has neither, it says so and measures
fp32 only (oneDNN would emulate bf16, slower than fp32).

    shitu data synth --out /tmp/synth --classes 1500 --scenes-per-class 1 --scene-size 256 --gallery-views 3
    python bench/precision.py --synth /tmp/synth --split test
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from machine import machine_record, median_ms, write_result  # bench/ is the script's directory
from numpy.typing import NDArray

from service.config import RuntimeSettings
from service.inference.embedder import Embedder
from service.inference.models import cpu_has_bf16, load_embedder

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "model_store" / "embedder" / "default"
COSINE_FLOOR, RECALL_SLACK = 0.999, 0.005  # issue 14's bounds


def read_list(path: Path) -> list[tuple[NDArray[np.uint8], int]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, label = line.rsplit(maxsplit=1)
        rows.append((cv2.cvtColor(cv2.imread(str(path.parent / name)), cv2.COLOR_BGR2RGB), int(label)))
    return rows


def embed_all(embedder: Embedder, images: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
    return np.concatenate([embedder.embed(images[start : start + 32]) for start in range(0, len(images), 32)])


def recall_at_1(gallery: NDArray[np.float32], gallery_labels: NDArray[np.int64], queries: NDArray[np.float32],
                query_labels: NDArray[np.int64]) -> float:
    return float(np.mean(gallery_labels[np.argmax(queries @ gallery.T, axis=1)] == query_labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synth", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    lists = arguments.synth / "recognition"
    gallery_rows = read_list(lists / f"{arguments.split}_gallery_list.txt")
    query_rows = read_list(lists / f"{arguments.split}_query_list.txt")
    gallery_labels = np.array([label for _, label in gallery_rows])
    query_labels = np.array([label for _, label in query_rows])
    variants = {"fp32": False, **({"bf16": True} if cpu_has_bf16() else {})}
    measured: dict[str, dict[str, float]] = {}
    features: dict[str, tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
    batch = [image for image, _ in query_rows[:32]]
    for name, bf16 in variants.items():
        embedder = load_embedder(MODEL, RuntimeSettings(cpu_threads=arguments.threads, onednn_bf16=bf16,
                                                        warmup=False), max_batch_size=32)
        started = time.monotonic()
        features[name] = (embed_all(embedder, [image for image, _ in gallery_rows]),
                          embed_all(embedder, [image for image, _ in query_rows]))
        measured[name] = {"recall_at_1": round(recall_at_1(features[name][0], gallery_labels, features[name][1],
                                                           query_labels), 4),
                          "embed_all_s": round(time.monotonic() - started, 1),
                          "batch_32_ms": round(median_ms(lambda embedder=embedder: embedder.embed(batch), 10), 1)}
    record = {**machine_record(arguments.threads), "benchmark": "precision", "cpu_bf16": cpu_has_bf16(),
              "gallery_images": len(gallery_rows), "queries": len(query_rows), "variants": measured}
    if "bf16" in features:
        cosines = np.concatenate([np.sum(features["fp32"][part] * features["bf16"][part], axis=1) for part in (0, 1)])
        record["cosine_bf16_fp32"] = {"min": round(float(cosines.min()), 5), "mean": round(float(cosines.mean()), 5),
                                      "share_below_floor": round(float(np.mean(cosines < COSINE_FLOOR)), 4)}
        record["recall_drop"] = round(measured["fp32"]["recall_at_1"] - measured["bf16"]["recall_at_1"], 4)
        record["bf16_speedup_batch_32"] = round(measured["fp32"]["batch_32_ms"] / measured["bf16"]["batch_32_ms"], 3)
        record["bf16_within_bounds"] = bool(cosines.min() >= COSINE_FLOOR and record["recall_drop"] <= RECALL_SLACK)
    else:
        record["note"] = "this CPU has neither AMX nor AVX512-BF16: the service runs fp32 and bf16 was not measured"
    print(record)
    print(f"wrote {write_result('precision', record)}")


if __name__ == "__main__":
    main()
