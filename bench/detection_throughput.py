"""Training throughput of the PicoDet main-body detector on this machine (images/s).

Times full training steps as ``shitu train det`` runs them: forward, SimOTA assignment, VFL + DFL + GIoU,
backward, the momentum update and the EMA update, on batches of random pixels with three random boxes per
image (speed does not depend on the values). Also times the data side alone (crop, flip, colour distortion,
resize and normalisation of one decoded 640x480 image), which shares the same cores. Prints a markdown table
and writes JSON to bench/results/.

    python bench/detection_throughput.py --threads 2 --cases 2.5:320:4 2.5:640:2 0.35:320:8 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import paddle
from machine import machine_record, write_result  # bench/ is the script's directory
from paddle.regularizer import L2Decay

from trainer.detection.augment import Annotated, AugmentConfig, augment_sample, normalize, resize
from trainer.detection.ema import ModelEMA
from trainer.detection.losses import PicoDetLoss
from trainer.models.picodet import build_picodet


def random_boxes(rng: np.random.Generator, size: int, count: int = 3) -> np.ndarray:
    corner = rng.uniform(0, size * 0.6, (count, 2))
    return np.concatenate([corner, corner + rng.uniform(size * 0.1, size * 0.4, (count, 2))], axis=1).astype(np.float32)


def step_seconds(scale: float, size: int, batch: int, steps: int) -> list[float]:
    paddle.seed(0)
    rng = np.random.default_rng(0)
    model = build_picodet(scale, 1)
    optimizer = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters(), weight_decay=L2Decay(4e-5))
    ema = ModelEMA(model)
    criterion = PicoDetLoss(model.strides, model.head.reg_max)
    images = paddle.randn([batch, 3, size, size])
    boxes = [random_boxes(rng, size) for _ in range(batch)]
    labels = [np.zeros(len(item), np.int64) for item in boxes]
    timings = []
    for _ in range(steps + 1):  # the first step allocates and is not counted
        started = time.perf_counter()
        criterion(*model(images), boxes, labels)["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
        ema.update()
        timings.append(time.perf_counter() - started)
    return timings[1:]


def augment_seconds(size: int, count: int) -> float:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    boxes = random_boxes(rng, 480)
    config = AugmentConfig()
    started = time.perf_counter()
    for _ in range(count):
        sample = augment_sample(Annotated(pixels, boxes, np.zeros(len(boxes), np.int64)), config, rng)
        normalize(resize(sample, size).image)
    return (time.perf_counter() - started) / count


def parse_case(text: str) -> tuple[float, int, int]:
    scale, size, batch = text.split(":")
    return float(scale), int(size), int(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU math threads")
    parser.add_argument(
        "--cases", nargs="+", default=["2.5:320:4", "2.5:640:2", "0.35:320:8"], help="scale:input side:batch"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    args = parser.parse_args()
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)  # the CPU math-library threads of dygraph kernels
    rows = []
    print("| LCNet scale | input | batch | s/step | images/s |\n|---|---|---|---|---|")
    for scale, size, batch in map(parse_case, args.cases):
        seconds = statistics.median(step_seconds(scale, size, batch, args.steps))
        rows.append({"scale": scale, "size": size, "batch": batch, "step_s": seconds, "images_per_s": batch / seconds})
        print(f"| x{scale:g} | {size} | {batch} | {seconds:.2f} | {batch / seconds:.2f} |", flush=True)
    augment = augment_seconds(640, 30)
    print(f"augmentation to 640: {1 / augment:.0f} images/s on one core")
    result = {**machine_record(args.threads), "rows": rows, "augment_images_per_s_640": 1 / augment}
    print(f"wrote {write_result('detection_throughput', result)}")


if __name__ == "__main__":
    main()
