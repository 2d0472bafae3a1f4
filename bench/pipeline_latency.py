"""Service pipeline latency on CPU: crops embedded as one batch (ours) against one crop at a time (PaddleClas's
``predict_system.py``), and the whole ``Recognizer.recognize`` with the PP-ShiTu x2.5 detector at 640.

Both paths run the same exported models through the service's own runtime and preprocessing, in this
run, on this machine; weights are random (speed does not depend on their values). Prints medians and the
ratio, writes JSON to bench/results/.

    python bench/pipeline_latency.py --threads 2 --runs 30
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import paddle
from machine import machine_record, median_ms, write_result  # bench/ is the script's directory

from service.box import Box
from service.config import GallerySettings, PipelineSettings, RuntimeSettings
from service.gallery import Gallery
from service.inference.models import load_detector, load_embedder
from service.inference.pipeline import Recognizer
from trainer.detection.export import export_detector
from trainer.models import build_recognition_model
from trainer.models.picodet import build_picodet
from trainer.recognition.export import export_recognition

# Five detector boxes plus the whole image: the most PP-ShiTu ever embeds for one photo.
CROPS = [Box(40, 30, 260, 400), Box(250, 60, 450, 420), Box(420, 20, 620, 460), Box(10, 300, 200, 470),
         Box(300, 280, 600, 470), Box(0, 0, 640, 480)]


def export_models(directory: Path) -> tuple[Path, Path]:
    paddle.seed(0)
    embedder_dir, detector_dir = directory / "embedder", directory / "detector"
    export_recognition(build_recognition_model("pplcnetv2_base", None), embedder_dir, name="bench-rec", version="0")
    export_detector(build_picodet(scale=2.5), detector_dir, name="bench-det", version="0", input_size=640)
    return embedder_dir, detector_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    arguments = parser.parse_args()
    runtime = RuntimeSettings(cpu_threads=arguments.threads)
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    crops = [image[box.y1 : box.y2, box.x1 : box.x2] for box in CROPS]
    with tempfile.TemporaryDirectory() as scratch:
        embedder_dir, detector_dir = export_models(Path(scratch))
        embedder = load_embedder(embedder_dir, runtime, max_batch_size=len(crops))
        detector = load_detector(detector_dir, runtime)
        batched = median_ms(lambda: embedder.embed(crops), arguments.runs)
        one_by_one = median_ms(lambda: [embedder.embed([crop]) for crop in crops], arguments.runs)
        detect = median_ms(lambda: detector.detect(image), arguments.runs)
        gallery = Gallery.open(GallerySettings(path=Path(scratch) / "gallery"), embedding_dim=512,
                               model_id=embedder.manifest.model_id)
        recognizer = Recognizer(embedder, detector)
        options = recognizer.default_options(PipelineSettings())
        whole = median_ms(lambda: recognizer.recognize(image, options, gallery.search), arguments.runs)
        gallery.close()
    result = {
        **machine_record(arguments.threads),
        "benchmark": "pipeline_latency",
        "runs": arguments.runs,
        "crops": len(crops),
        "embed_batched_ms": round(batched, 2),
        "embed_one_by_one_ms": round(one_by_one, 2),
        "batched_speedup": round(one_by_one / batched, 3),
        "detect_x2_5_640_ms": round(detect, 2),
        "recognize_ms": round(whole, 2),
    }
    print(f"{len(crops)} crops, PPLCNetV2_base: one batch {batched:.1f} ms vs one at a time {one_by_one:.1f} ms "
          f"-> {one_by_one / batched:.2f}x")
    print(f"detector x2.5 @640: {detect:.1f} ms; recognize (random detector, whole image only): {whole:.1f} ms")
    print(f"wrote {write_result('pipeline_latency', result)}")


if __name__ == "__main__":
    main()
