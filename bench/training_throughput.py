"""Training throughput of the recognition model on this machine (images/s), with and without frozen stages.

For PPLCNetV2_base (PP-ShiTuV2) and EfficientNet-Lite0, times full training steps as ``shitu train rec`` runs
them: forward, CE (FC head) + TripletAngularMargin loss, backward and the momentum update, on PK batches of
random pixels (speed does not depend on the values). Also times the data side alone (decode-free
augmentation of one 256x256 image to the training size), which runs on the same cores. Prints a
markdown table and writes JSON to bench/results/.

    python bench/training_throughput.py --threads 2 --size 224 --batch 16 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import paddle
from machine import machine_record, write_result  # bench/ is the script's directory

from trainer.config import AugmentConfig, LossConfig, OptimizerConfig
from trainer.data.augment import TrainAugment
from trainer.losses import RecognitionLoss
from trainer.models.recognition import build_recognition_model
from trainer.schedule import WarmupCosine, backbone_stages, build_optimizer, freeze_stages, set_training_mode

ARCHITECTURES = ("pplcnetv2_base", "efficientnet_lite0")
CLASSES = 1000


def step_seconds(arch: str, frozen_stages: int, size: int, batch: int, steps: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each timed step; CPU time stays meaningful when other work shares the cores."""
    paddle.seed(0)
    model = build_recognition_model(arch, CLASSES)
    frozen = freeze_stages(backbone_stages(model.backbone), frozen_stages)
    set_training_mode(model, frozen)
    optimizer = build_optimizer(model.parameters(), WarmupCosine(0.01, 0, 100), OptimizerConfig())
    loss = RecognitionLoss(LossConfig())
    images = paddle.randn([batch, 3, size, size])
    labels = paddle.to_tensor(np.repeat(np.arange(batch // 4), 4))
    timings: list[tuple[float, float]] = []
    for _ in range(steps + 1):  # the first step allocates and is not counted
        started, cpu_started = time.perf_counter(), time.process_time()
        outputs = model(images)
        loss(outputs["features"], outputs["logits"], labels)["total"].backward()
        optimizer.step()
        optimizer.clear_grad()
        timings.append((time.perf_counter() - started, time.process_time() - cpu_started))
    return timings[1:]


def augment_seconds(size: int, count: int) -> float:
    augment = TrainAugment(AugmentConfig(image_size=size), build_recognition_model("pplcnetv2_base").preprocess)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    started = time.perf_counter()
    for _ in range(count):
        augment(pixels, rng)
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU math threads")
    parser.add_argument("--size", type=int, default=224, help="square training input side")
    parser.add_argument("--batch", type=int, default=16, help="images per step (a multiple of 4)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per case")
    parser.add_argument("--frozen", type=int, nargs="+", default=[0, 3], help="frozen leading stages per case")
    args = parser.parse_args()
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)  # the CPU math-library threads of dygraph kernels
    rows = []
    print("| architecture | frozen stages | step s | images/s | images per CPU-second |")
    print("|---|---|---|---|---|")
    for arch in ARCHITECTURES:
        for frozen in args.frozen:
            timings = step_seconds(arch, frozen, args.size, args.batch, args.steps)
            wall = statistics.median(wall for wall, _ in timings)
            cpu = statistics.median(cpu for _, cpu in timings)
            rows.append(
                {
                    "arch": arch,
                    "frozen_stages": frozen,
                    "step_s": wall,
                    "step_cpu_s": cpu,
                    "images_per_s": args.batch / wall,
                    "images_per_cpu_s": args.batch / cpu,
                }
            )
            print(f"| {arch} | {frozen} | {wall:.2f} | {args.batch / wall:.1f} | {args.batch / cpu:.1f} |", flush=True)
    augment = augment_seconds(args.size, 50)
    print(f"augmentation: {1 / augment:.0f} images/s on one core")
    result = {
        **machine_record(args.threads),
        "size": args.size,
        "batch": args.batch,
        "rows": rows,
        "augment_images_per_s": 1 / augment,
    }
    print(f"wrote {write_result('training_throughput', result)}")


if __name__ == "__main__":
    main()
