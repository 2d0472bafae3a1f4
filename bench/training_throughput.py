"""Training throughput of the recognition model on this machine (images/s), with and without frozen stages.

With ``--frozen-runtime dygraph inference`` each case with frozen stages is also timed with those stages run
by Paddle Inference (``optimizer.frozen_runtime=inference``), and the ratio to dygraph of the same run printed.

For PPLCNetV2_base (PP-ShiTuV2) and EfficientNet-Lite0, times full training steps as ``shitu train rec`` runs
them: forward, CE (FC head) + TripletAngularMargin loss, backward and the momentum update, on PK batches of
random pixels (speed does not depend on the values). Also times the data side alone (decode-free
augmentation of one 256x256 image to the training size), which runs on the same cores. Prints a
markdown table and writes JSON to bench/results/.

    python bench/training_throughput.py --threads 2 --size 224 --batch 16 --steps 4
    python bench/training_throughput.py --size 160 --batch 64 --frozen 7 --frozen-runtime dygraph inference
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

from trainer.frozen_trunk import FrozenTrunk, network_input
from trainer.models.recognition import build_recognition_model
from trainer.recognition.config import AugmentConfig, LossConfig, OptimizerConfig
from trainer.recognition.data.augment import TrainAugment
from trainer.recognition.losses import RecognitionLoss
from trainer.schedule import WarmupCosine, backbone_stages, build_optimizer, freeze_stages, set_training_mode

ARCHITECTURES = ("pplcnetv2_base", "efficientnet_lite0")
CLASSES = 1000


def step_seconds(
    arch: str, frozen_stages: int, size: int, batch: int, steps: int, trunk_threads: int | None, work: Path
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each timed step; CPU time stays meaningful when other work shares the cores.

    ``trunk_threads`` set: the frozen stages run in Paddle Inference on that many threads.
    """
    paddle.seed(0)
    model = build_recognition_model(arch, CLASSES)
    frozen = freeze_stages(backbone_stages(model.backbone), frozen_stages)
    set_training_mode(model, frozen)
    trunk = None
    if trunk_threads is not None and frozen_stages:
        trunk = FrozenTrunk(model, frozen_stages, size, work / f"{arch}_{frozen_stages}", threads=trunk_threads)
    optimizer = build_optimizer(model.parameters(), WarmupCosine(0.01, 0, 100), OptimizerConfig())
    loss = RecognitionLoss(LossConfig())
    images = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = paddle.to_tensor(np.repeat(np.arange(batch // 4), 4))
    timings: list[tuple[float, float]] = []
    for _ in range(steps + 1):  # the first step allocates and is not counted
        started, cpu_started = time.perf_counter(), time.process_time()
        outputs = model(*network_input(trunk, images))
        loss(outputs["features"], outputs["logits"], labels)["total"].backward()
        optimizer.step()
        optimizer.clear_grad()
        timings.append((time.perf_counter() - started, time.process_time() - cpu_started))
    return timings[1:]


def measure_case(args: argparse.Namespace, arch: str, frozen: int, runtime: str, work: Path) -> dict[str, object]:
    trunk_threads = args.threads if runtime == "inference" else None
    timings = step_seconds(arch, frozen, args.size, args.batch, args.steps, trunk_threads, work)
    wall = statistics.median(wall for wall, _ in timings)
    cpu = statistics.median(cpu for _, cpu in timings)
    print(f"| {arch} | {frozen} | {runtime} | {wall:.2f} | {args.batch / wall:.1f} | {args.batch / cpu:.1f} |",
          flush=True)
    return {
        "arch": arch,
        "frozen_stages": frozen,
        "frozen_runtime": runtime,
        "step_s": wall,
        "step_cpu_s": cpu,
        "images_per_s": args.batch / wall,
        "images_per_cpu_s": args.batch / cpu,
    }


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
    parser.add_argument("--frozen-runtime", nargs="+", choices=["dygraph", "inference"], default=["dygraph"],
                        help="where frozen stages run; both: the ratio of the same run is printed")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    args = parser.parse_args()
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)  # the CPU math-library threads of dygraph kernels
    rows = []
    print("| architecture | frozen stages | frozen runtime | step s | images/s | images per CPU-second |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for arch in args.architectures:
            for frozen in args.frozen:
                for runtime in args.frozen_runtime if frozen else ["dygraph"]:
                    rows.append(measure_case(args, arch, frozen, runtime, Path(work)))
    for faster in (row for row in rows if row["frozen_runtime"] == "inference"):
        slower = next((row for row in rows if row["frozen_runtime"] == "dygraph"
                       and (row["arch"], row["frozen_stages"]) == (faster["arch"], faster["frozen_stages"])), None)
        if slower is None:
            continue
        print(f"{faster['arch']}, {faster['frozen_stages']} frozen stages: Paddle Inference trunk "
              f"{faster['images_per_s'] / slower['images_per_s']:.2f}x the dygraph images/s of this run")
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
