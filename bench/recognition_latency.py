"""Single-image latency of the exported recognition models in Paddle Inference on CPU.

Exports PPLCNetV2_base (PP-ShiTuV2; random weights: speed does not depend on their values) and the
ImageNet EfficientNet-Lite0 embedder, then times batch-1 predictions for each backend variant
(oneDNN off, oneDNN fp32, oneDNN bf16 where the CPU has AMX or AVX512-BF16), with the predictor
settings the service uses (IR optimisation on, oneDNN cache capacity 10, N math threads). Prints the
median against PaddleClas's published 6.1 ms and writes JSON to bench/results/.

    python bench/recognition_latency.py --threads 2 --runs 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory

from service.config import RuntimeSettings
from service.inference.runtime import PaddleModel, onednn_bf16_supported
from trainer.models import build_recognition_model
from trainer.recognition.export import export_imagenet_embedder, export_recognition

# PaddleClas feature_extraction.md: PPLCNetV2_base_ShiTu, Xeon Gold 6148 @2.40GHz, MKLDNN, 10 threads.
PUBLISHED_MS = 6.1
PUBLISHED_CONDITIONS = "Xeon Gold 6148 @2.40GHz, MKLDNN, 10 threads (PaddleClas feature_extraction.md)"


def make_model(model_dir: Path, threads: int, onednn: bool, bf16: bool) -> PaddleModel:
    """The service's predictor settings (IR optimisation, oneDNN cache capacity 10, N math threads)."""
    settings = RuntimeSettings(cpu_threads=threads, onednn=onednn, onednn_bf16=bf16)
    return PaddleModel.create(model_dir, settings, bf16=bf16)


def time_model(model: PaddleModel, image: np.ndarray, runs: int, warmup: int) -> tuple[list[float], np.ndarray]:
    feed = {model.input_names[0]: image}
    samples = []
    for index in range(warmup + runs):
        start = time.perf_counter()
        result = model.run(feed)[0]
        if index >= warmup:
            samples.append((time.perf_counter() - start) * 1000.0)
    return samples, np.asarray(result, dtype=np.float32)


def variants() -> list[tuple[str, bool, bool]]:
    """(label, oneDNN, bf16)."""
    found = [("plain", False, False), ("onednn_fp32", True, False)]
    if onednn_bf16_supported():
        found.append(("onednn_bf16", True, True))
    return found


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.ravel() @ b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def measure(model_dir: Path, image: np.ndarray, threads: int, runs: int, warmup: int) -> dict[str, dict]:
    results: dict[str, dict] = {}
    fp32_output: np.ndarray | None = None
    for label, onednn, bf16 in variants():
        samples, output = time_model(make_model(model_dir, threads, onednn, bf16), image, runs, warmup)
        fp32_output = output if label == "plain" else fp32_output
        results[label] = {
            "median_ms": round(statistics.median(samples), 3),
            # The fastest run is the best estimate of the uncontended latency on a shared machine.
            "min_ms": round(min(samples), 3),
            "p10_ms": round(float(np.percentile(samples, 10)), 3),
            "p90_ms": round(float(np.percentile(samples, 90)), 3),
            "cosine_vs_plain": round(cosine(output, fp32_output), 6) if fp32_output is not None else None,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        pplcnet_dir, efficientnet_dir = Path(work) / "pplcnetv2_base", Path(work) / "efficientnet_lite0"
        export_recognition(build_recognition_model("pplcnetv2_base"), pplcnet_dir, name="bench", version="0")
        export_imagenet_embedder(efficientnet_dir)
        models = {
            "pplcnetv2_base": measure(pplcnet_dir, image, args.threads, args.runs, args.warmup),
            "efficientnet_lite0": measure(efficientnet_dir, image, args.threads, args.runs, args.warmup),
        }

    # Other processes on the machine inflate the numbers; the 1-minute load average at the end says how much.
    machine = machine_record(args.threads)
    print(
        f"CPU: {machine['cpu']}, {args.threads} threads, batch 1, median of {args.runs} runs,"
        f" load average {machine['load_average_1min']:.1f}"
    )
    print(f"published PPLCNetV2_base_ShiTu: {PUBLISHED_MS} ms on {PUBLISHED_CONDITIONS}")
    header = f"{'variant':<14}{'PPLCNetV2 ms':>14}{'(min)':>8}{'vs 6.1 ms':>11}{'EffNet-L0 ms':>14}{'(min)':>8}"
    print(f"{header}{'PPLCNet/EffNet':>16}{'cos vs plain':>14}")
    for label, pplcnet in models["pplcnetv2_base"].items():
        efficientnet = models["efficientnet_lite0"][label]
        print(
            f"{label:<14}{pplcnet['median_ms']:>14.2f}{pplcnet['min_ms']:>8.2f}"
            f"{pplcnet['median_ms'] / PUBLISHED_MS:>10.2f}x"
            f"{efficientnet['median_ms']:>14.2f}{efficientnet['min_ms']:>8.2f}"
            f"{pplcnet['median_ms'] / efficientnet['median_ms']:>15.2f}x"
            f"{pplcnet['cosine_vs_plain']:>14.6f}"
        )

    report = {
        **machine,
        "runs": args.runs,
        "published": {"median_ms": PUBLISHED_MS, "conditions": PUBLISHED_CONDITIONS},
        "models": models,
    }
    print(f"wrote {write_result('recognition_latency', report)}")


if __name__ == "__main__":
    main()
