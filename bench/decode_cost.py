"""What a photo costs before the models run, by size: decoding plus the detector's and the embedder's
preprocessing (bytes to the detector tensor and six crop tensors), in today's checkout (``--baseline-ref``, its
default DCT reduction to 1280 px) and in this one (640 px), each also in parity mode (the full decode of
PaddleClas), each checkout in its own process. Then the recognition results of the demo's photos as 12 MP JPEGs in
this checkout at 640 px, 1280 px and full decode: the same products must be found.

    python bench/decode_cost.py --demo /tmp/demo --baseline-ref a6d8205
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory
from soak import REPO

SIZES = {"0.3MP": (640, 480), "3MP": (2000, 1500), "12MP": (4000, 3000), "24MP": (6000, 4000),
         "40MP": (7744, 5163)}

# Runs inside a checkout: "decode+preprocess" medians per photo and setting, one JSON line.
WORKER = r'''
import json, statistics, sys, time
from pathlib import Path
import cv2
from service.box import Box
from service.inference.image import DecodeLimits, crop, decode_image, normalize, resize
from service.inference.manifest import Preprocess
cv2.setNumThreads(1)  # as on a request thread beside the inference threads
store, photos, sides, runs = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])

def preprocess_of(kind):
    # Only the fields this checkout knows: an older checkout cannot parse today's manifests whole.
    fields = json.loads((store / kind / "default" / "manifest.json").read_text())["preprocess"]
    return Preprocess(**{key: value for key, value in fields.items() if key in Preprocess.model_fields})

detector, embedder = preprocess_of("detector"), preprocess_of("embedder")
SHARES = ((0.1, 0.1), (0.4, 0.2), (0.7, 0.5), (0.2, 0.6), (0.5, 0.6))

def prepare(data, limits):
    image = decode_image(data, limits).pixels
    height, width = image.shape[:2]
    normalize(resize(image, detector)[0], detector)
    boxes = [Box(int(width * x), int(height * y), int(width * (x + 0.2)), int(height * (y + 0.25))) for x, y in SHARES]
    for box in boxes + [Box(0, 0, width, height)]:
        normalize(resize(crop(image, box), embedder)[0], embedder)
    return image.shape

out = {}
for name, path in photos.items():
    data = Path(path).read_bytes()
    for side in sides:
        limits = DecodeLimits(10**9, 16384, side)
        shape = prepare(data, limits)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            prepare(data, limits)
            times.append((time.perf_counter() - started) * 1000.0)
        out[f"{name} {side}"] = {"ms": round(statistics.median(times), 2), "decoded": list(shape[:2])}
print(json.dumps(out))
'''


def photo_files(directory: Path) -> dict[str, str]:
    """Textured JPEGs of each size (q 92, scikit-image photos tiled with mild noise: a phone photo's entropy)."""
    from skimage import data as samples

    tiles = [samples.astronaut(), samples.coffee(), samples.chelsea(), samples.rocket()]
    rng = np.random.default_rng(0)
    files = {}
    for name, (width, height) in SIZES.items():
        canvas = np.zeros((height, width, 3), np.uint8)
        step_x, step_y = width // 4, height // 4
        for row in range(4):
            for column in range(4):
                tile = cv2.resize(tiles[(row + column) % 4], (step_x, step_y), interpolation=cv2.INTER_AREA)
                canvas[row * step_y : (row + 1) * step_y, column * step_x : (column + 1) * step_x] = tile
        noisy = np.clip(canvas.astype(np.int16) + rng.normal(0, 3, canvas.shape), 0, 255).astype(np.uint8)
        path = directory / f"{name}.jpg"
        cv2.imwrite(str(path), noisy[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        files[name] = str(path)
    return files


def measure(checkout: Path, photos: dict[str, str], sides: list[int | None], runs: int) -> dict[str, Any]:
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    result = subprocess.run([sys.executable, "-c", WORKER, str(REPO / "model_store"), json.dumps(photos),
                             json.dumps(sides), str(runs)], cwd=checkout, env=environment, capture_output=True,
                            text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def same_results(demo: Path, big: list[bytes]) -> dict[str, Any]:
    """The demo's photos as 12 MP JPEGs, recognized at 640 px, 1280 px and full decode (this checkout)."""
    from service.config import LimitsSettings, Settings
    from service.gallery import Gallery, read_list_file
    from service.importing import import_entries
    from service.inference.image import DecodeLimits
    from service.inference.models import load_recognizer
    from service.inference.pipeline import recognize_bytes

    settings = Settings()
    recognizer = load_recognizer(settings.models.model_copy(update={"store": REPO / "model_store"}),
                                 settings.runtime, settings.pipeline)
    options = recognizer.default_options(settings.pipeline)
    found: dict[str, list[list[str]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        gallery = Gallery.open(settings.gallery.model_copy(update={"path": Path(scratch) / "g"}),
                               embedding_dim=recognizer.embedder.embedding_dim,
                               model_id=recognizer.embedder.manifest.model_id)
        entries = read_list_file(demo / "gallery_list.txt", demo)
        import_entries(recognizer, gallery, entries, limits=settings.limits, options=options, detect=True)
        for side in (640, 1280, None):
            limits = DecodeLimits.of(LimitsSettings(decode_max_side_px=side, max_image_pixels=10**9))
            found[str(side)] = [sorted(o.match.label for o in recognize_bytes(recognizer, photo, options,
                                                                              gallery.search, limits=limits).objects
                                       if o.match is not None) for photo in big]
        gallery.close()
    return {"labels": found, "same_as_full_decode": {side: found[side] == found["None"] for side in found}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True)
    parser.add_argument("--baseline-ref", default="a6d8205")
    parser.add_argument("--runs", type=int, default=7)
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.demo, arguments.baseline_ref, arguments.runs), indent=2))


def run(demo: Path, baseline_ref: str, runs: int) -> dict[str, Any]:
    from http_throughput import baseline_checkout, demo_photos

    with tempfile.TemporaryDirectory() as scratch:
        photos = photo_files(Path(scratch))
        baseline = baseline_checkout(baseline_ref, Path(scratch) / "baseline")
        today = measure(baseline, photos, [1280, None], runs)
        new = measure(REPO, photos, [640, None], runs)
    rows = []
    for name in SIZES:
        old, full, ours = today[f"{name} 1280"], today[f"{name} None"], new[f"{name} 640"]
        rows.append({"photo": name, "parity_full_decode_ms": full["ms"], "today_1280_ms": old["ms"],
                     "today_decoded": old["decoded"], "new_640_ms": ours["ms"], "new_decoded": ours["decoded"],
                     "new_parity_ms": new[f"{name} None"]["ms"], "new_over_today": round(ours["ms"] / old["ms"], 3),
                     "new_over_parity": round(ours["ms"] / full["ms"], 3)})
    record = {**machine_record(threads=1), "benchmark": "decode_cost", "baseline": baseline_ref, "rows": rows,
              "recognition_12MP": same_results(demo, demo_photos(demo)["12MP"])}
    record["path"] = str(write_result("decode_cost", record))
    return record


def markdown(record: dict[str, Any]) -> str:
    lines = ["| photo | full decode (parity) ms | today (1280 px) ms | new (640 px) ms | new / today | new / parity | "
             "decoded today → new |", "|" + " --- |" * 7]
    for row in record["rows"]:
        lines.append(f"| {row['photo']} | {row['parity_full_decode_ms']} | {row['today_1280_ms']} | "
                     f"{row['new_640_ms']} | {row['new_over_today']} | {row['new_over_parity']} | "
                     f"{row['today_decoded'][1]}x"
                     f"{row['today_decoded'][0]} → {row['new_decoded'][1]}x{row['new_decoded'][0]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
