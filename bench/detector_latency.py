"""Single-image latency of exported PicoDet-LCNet main-body detectors in Paddle Inference (NMS inside).

Exports PicoDet-LCNet x2.5 (the PP-ShiTuV2 architecture) and a small scale at 640 and 320, then times
batch-1 predictions on CPU for three backends:

- ``plain``: oneDNN off;
- ``onednn``: a fresh ``Config`` with oneDNN on and no pass deleted (our exports run like this);
- ``no_placement``: oneDNN on without ``onednn_placement_pass``, the workaround programs with an
  interpolate op need (PaddleDetection's exports, the released tar): what that workaround costs.

Weights are random (speed does not depend on their values) except the class bias, set to 0 so that every
anchor passes the score threshold and the in-graph NMS does its full work (the worst case). Prints
medians, the ratio to PaddleClas's published 29.8 ms (x2.5 at 640, Xeon Gold 6148, MKLDNN, 10 threads)
and the oneDNN / plain ratio of the same run; writes JSON to bench/results/.

    python bench/detector_latency.py --threads 2 --runs 30
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import paddle
from machine import machine_record, write_result  # bench/ is the script's directory

from service.config import RuntimeSettings
from service.inference.runtime import ONEDNN_INCOMPATIBLE_PASSES, PaddleModel
from trainer.detection.export import export_detector
from trainer.models.picodet import DETECTOR_ARCHITECTURES, build_picodet_architecture

PUBLISHED_MS = 29.8
PUBLISHED_CONDITIONS = "x2.5 at 640, Xeon Gold 6148, MKLDNN, 10 threads (PaddleClas mainbody_detection_en.md)"


def make_runner(model_dir: Path, threads: int, *, onednn: bool, placement: bool = True) -> PaddleModel:
    settings = RuntimeSettings(cpu_threads=threads, onednn=onednn)
    return PaddleModel.create(model_dir, settings, delete_passes=() if placement else ONEDNN_INCOMPATIBLE_PASSES)


def runners(model_dir: Path, threads: int) -> dict[str, PaddleModel]:
    return {
        "plain": make_runner(model_dir, threads, onednn=False),
        "onednn": make_runner(model_dir, threads, onednn=True),
        "no_placement": make_runner(model_dir, threads, onednn=True, placement=False),
    }


def time_runner(runner: PaddleModel, feed: dict[str, np.ndarray], runs: int, warmup: int) -> tuple[list[float], int]:
    for _ in range(warmup):
        runner.run(feed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        bbox_num = runner.run(feed)[1]
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples, int(bbox_num.sum())


def export_for_bench(arch: str, size: int, out: Path) -> None:
    paddle.seed(0)
    model = build_picodet_architecture(arch)
    for level in range(len(model.strides)):
        bias = getattr(model.head, f"head_cls{level}").bias
        values = bias.numpy()
        values[: model.num_classes] = 0.0
        bias.set_value(values)
    export_detector(model, out, name=f"bench-{arch}", version="0", input_size=size)


def measure(arch: str, size: int, threads: int, runs: int, warmup: int, work: Path) -> dict[str, dict]:
    model_dir = work / f"{arch}_{size}"
    export_for_bench(arch, size, model_dir)
    rng = np.random.default_rng(0)
    feed = {
        "image": rng.standard_normal((1, 3, size, size)).astype(np.float32),
        "im_shape": np.array([[size, size]], dtype=np.float32),
        "scale_factor": np.array([[size / 480, size / 640]], dtype=np.float32),
    }
    results = {}
    for label, runner in runners(model_dir, threads).items():
        samples, boxes = time_runner(runner, feed, runs, warmup)
        results[label] = {
            "median_ms": round(statistics.median(samples), 2),
            "min_ms": round(min(samples), 2),
            "p10_ms": round(float(np.percentile(samples, 10)), 2),
            "p90_ms": round(float(np.percentile(samples, 90)), 2),
            "boxes": boxes,
        }
    return results


def print_table(results: dict[str, dict[str, dict]], field: str, title: str) -> None:
    print(f"{title:<26}{'plain':>9}{'onednn':>9}{'no_place':>9}{'onednn/plain':>14}{'vs 29.8 ms':>12}{'boxes':>7}")
    for key, variants in results.items():
        plain, onednn, no_placement = (variants[label][field] for label in ("plain", "onednn", "no_placement"))
        print(
            f"{key:<26}{plain:>9.1f}{onednn:>9.1f}{no_placement:>9.1f}{onednn / plain:>13.2f}x"
            f"{onednn / PUBLISHED_MS:>11.2f}x{variants['onednn']['boxes']:>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--small", default="picodet_lcnet_x0_35", choices=sorted(DETECTOR_ARCHITECTURES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 320])
    args = parser.parse_args()

    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as work:
        for arch in ("picodet_lcnet_x2_5", args.small):
            for size in args.sizes:
                results[f"{arch}@{size}"] = measure(arch, size, args.threads, args.runs, args.warmup, Path(work))

    machine = machine_record(args.threads)
    print(
        f"CPU: {machine['cpu']}, {args.threads} threads, batch 1, {args.runs} runs,"
        f" load average {machine['load_average_1min']:.1f}"
    )
    print(f"published: {PUBLISHED_MS} ms, {PUBLISHED_CONDITIONS}")
    print_table(results, "median_ms", "median ms")
    # On a machine other jobs load, the fastest run is the better estimate of the unloaded latency.
    print_table(results, "min_ms", "fastest run ms")

    report = {
        **machine,
        "runs": args.runs,
        "published": {"median_ms": PUBLISHED_MS, "conditions": PUBLISHED_CONDITIONS},
        "models": results,
    }
    print(f"wrote {write_result('detector_latency', report)}")


if __name__ == "__main__":
    main()
