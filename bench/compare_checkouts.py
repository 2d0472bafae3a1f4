"""The pipeline's latency in two checkouts of this repository (say main and a refactoring branch), interleaved.

Each checkout runs in its own worker process with the same exported models (seeded random weights, the x2.5
detector at 640 with its class bias at 0 so boxes pass, PPLCNetV2_base), and the driver alternates short bursts
between the two, so both see the same machine load; a sequential A-then-B run on a shared machine mostly measures
the neighbours. Prints the medians and the ratio B/A per stage, and whether both checkouts return the same
recognition results for the same photos (boxes, sources, matches, candidate scores); writes JSON to bench/results/.

    python bench/compare_checkouts.py OLD_CHECKOUT NEW_CHECKOUT --threads 2 --bursts 20 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from machine import machine_record, write_result  # bench/ is the script's directory

STAGES = ("embed_6_crops", "detect", "recognize")

# Runs inside each checkout (its own imports); answers "RUN n" with the timings of n rounds of every stage.
WORKER = r'''
import json, sys, tempfile, time
from pathlib import Path
import numpy as np, paddle
from service.config import GallerySettings, PipelineSettings, RuntimeSettings
from service.gallery import Gallery
from service.inference.models import load_detector, load_embedder
from service.inference.pipeline import Recognizer
from trainer.models import build_recognition_model
from trainer.models.picodet import build_picodet
try:
    from trainer.detection.export import export_detector
    from trainer.recognition.export import export_recognition
except ImportError:  # checkouts from before the trainer's restructure
    from trainer.export_detection import export_detector
    from trainer.export_recognition import export_recognition

scratch = Path(tempfile.mkdtemp())
paddle.seed(0)
export_recognition(build_recognition_model("pplcnetv2_base", None), scratch / "rec", name="ab-rec", version="0")
detector_net = build_picodet(scale=2.5)
for level in range(len(detector_net.strides)):
    bias = getattr(detector_net.head, f"head_cls{level}").bias
    bias.set_value(np.zeros_like(bias.numpy()))
export_detector(detector_net, scratch / "det", name="ab-det", version="0", input_size=640)
runtime = RuntimeSettings(cpu_threads=int(sys.argv[1]))
embedder = load_embedder(scratch / "rec", runtime, max_batch_size=8)
recognizer = Recognizer(embedder, load_detector(scratch / "det", runtime))
gallery = Gallery.open(GallerySettings(path=scratch / "g"), embedding_dim=embedder.embedding_dim,
                       model_id=embedder.manifest.model_id)
image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
crops = [image[30:400, 40:260], image[60:420, 250:450], image[20:460, 420:620], image[300:470, 10:200],
         image[280:470, 300:600], image]
options = recognizer.default_options(PipelineSettings())
work = {"embed_6_crops": lambda: embedder.embed(crops), "detect": lambda: recognizer.detector.detect(image),
        "recognize": lambda: recognizer.recognize(image, options, gallery.search)}
for run in work.values():
    run()
print("READY", flush=True)


def results():
    from skimage import data as photos
    for label, photo in (("coffee", photos.coffee()), ("cat", photos.chelsea()), ("rocket", photos.rocket())):
        gallery.add_image(label=label, embedding=embedder.embed([photo])[0], image_bytes=label.encode(),
                          media_type="image/jpeg", item_id=label)
    found = {}
    chosen = recognizer.default_options(PipelineSettings(sliding_windows=True, min_score=0.2))
    for name, photo in (("coffee", photos.coffee()), ("astronaut", photos.astronaut()), ("noise", image)):
        found[name] = [[o.box.x1, o.box.y1, o.box.x2, o.box.y2, o.source.value, round(o.detection_score, 5),
                        o.match.item_id if o.match else None, [[c.item_id, round(c.score, 5)] for c in o.candidates]]
                       for o in recognizer.recognize(photo, chosen, gallery.search).objects]
    return found


for line in sys.stdin:
    if line.startswith("RESULTS"):
        print(json.dumps(results()), flush=True)
        continue
    rounds = int(line.split()[1])
    times = {name: [] for name in work}
    for _ in range(rounds):
        for name, run in work.items():
            started = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - started) * 1000.0)
    print(json.dumps(times), flush=True)
'''


def start(checkout: Path, threads: int) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(threads)], cwd=checkout, env=environment,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("READY"):
            return process
    raise RuntimeError(f"the worker in {checkout} exited before it was ready")


def burst(process: subprocess.Popen[str], runs: int, command: str | None = None) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(command or f"RUN {runs}\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bursts", type=int, default=20, help="alternations between the checkouts")
    parser.add_argument("--runs", type=int, default=5, help="rounds of every stage per burst")
    arguments = parser.parse_args()
    workers = {"old": start(arguments.old, arguments.threads), "new": start(arguments.new, arguments.threads)}
    samples: dict[str, dict[str, list[float]]] = {side: {stage: [] for stage in STAGES} for side in workers}
    try:
        outputs = {side: burst(process, 0, command="RESULTS\n") for side, process in workers.items()}
        for index in range(arguments.bursts):
            order = ("old", "new") if index % 2 == 0 else ("new", "old")  # neither always goes first
            for side in order:
                for stage, times in burst(workers[side], arguments.runs).items():
                    samples[side][stage] += times
    finally:
        for process in workers.values():
            process.kill()
    medians = {side: {stage: round(statistics.median(times), 2) for stage, times in stages.items()}
               for side, stages in samples.items()}
    ratios = {stage: round(medians["new"][stage] / medians["old"][stage], 3) for stage in STAGES}
    identical = outputs["old"] == outputs["new"]
    rows = sum(len(objects) for objects in outputs["new"].values())
    result = {**machine_record(arguments.threads), "benchmark": "compare_checkouts", "old": str(arguments.old),
              "new": str(arguments.new), "samples_per_stage": arguments.bursts * arguments.runs,
              "median_ms": medians, "new_over_old": ratios, "identical_results": identical, "result_rows": rows}
    for stage in STAGES:
        print(f"{stage}: old {medians['old'][stage]:.1f} ms, new {medians['new'][stage]:.1f} ms -> "
              f"new/old {ratios[stage]:.3f}")
    print(f"recognition results of both checkouts: {'identical' if identical else 'DIFFERENT'} ({rows} objects)")
    print(f"wrote {write_result('compare_checkouts', result)}")


if __name__ == "__main__":
    main()
