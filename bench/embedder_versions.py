"""Embedding time per crop of embedder versions, against the first (``model_store/embedder/v1``) in one run.

Each embedder embeds the same product crops (a tall bottle, a box, a square label; the service's ``Embedder``
with its manifest's preprocessing, letterboxing included) one crop a call; the versions take turns in bursts, so
a load change on the shared machine hits them alike. ``--size N`` adds the ImageNet EfficientNet-Lite0 exported
at N px with letterboxing (speed does not depend on the weights): the input sizes a recipe can afford.

    python bench/embedder_versions.py --embedder runs/recognition-v2/export --size 176 --size 192 --size 224
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from machine import machine_record, median_ms, write_result  # bench/ is the script's directory

from service.config import RuntimeSettings
from service.inference.embedder import Embedder
from service.inference.models import load_embedder
from trainer.models import build_recognition_model
from trainer.recognition.export import export_recognition

BASELINE = Path("model_store/embedder/v1")


def crops() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((360, 120, 3), (220, 260, 3), (200, 200, 3))]


def per_crop_ms(embedder: Embedder, images: list[np.ndarray], runs: int) -> float:
    return median_ms(lambda: [embedder.embed([image]) for image in images], runs) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", type=Path, action="append", default=[], help="an embedder directory")
    parser.add_argument("--size", type=int, action="append", default=[], help="ImageNet weights at N px")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="timed rounds per burst")
    parser.add_argument("--bursts", type=int, default=5)
    args = parser.parse_args()
    runtime = RuntimeSettings(cpu_threads=args.threads)
    images = crops()
    with tempfile.TemporaryDirectory() as work:
        directories = {"first (v1)": BASELINE, **{str(path): path for path in args.embedder}}
        for size in args.size:
            directory = Path(work) / f"imagenet-{size}"
            export_recognition(build_recognition_model("efficientnet_lite0", pretrained=True), directory,
                               name=f"imagenet-{size}", version="0", input_size=size, keep_ratio=True)
            directories[f"ImageNet {size} px, letterboxed"] = directory
        embedders = {name: load_embedder(path, runtime, max_batch_size=1) for name, path in directories.items()}
        samples: dict[str, list[float]] = {name: [] for name in embedders}
        for _ in range(args.bursts):
            for name, embedder in embedders.items():
                samples[name].append(per_crop_ms(embedder, images, args.runs))
    medians = {name: float(np.median(values)) for name, values in samples.items()}
    baseline = medians["first (default)"]
    machine = machine_record(args.threads)
    print(f"CPU: {machine['cpu']}, {args.threads} threads, one crop a call, load {machine['load_average_1min']:.1f}")
    for name, value in medians.items():
        print(f"{name:<48}{value:>8.2f} ms/crop {value / baseline:>6.2f}x the first")
    record = {"machine": machine, "runs": args.runs, "bursts": args.bursts,
              "ms_per_crop": {name: round(value, 3) for name, value in medians.items()},
              "ratio_to_first": {name: round(value / baseline, 3) for name, value in medians.items()}}
    print(f"wrote {write_result('embedder_versions', record)}")


if __name__ == "__main__":
    main()
