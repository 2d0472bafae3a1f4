"""The embedded gallery's search and enrolment speed in two checkouts of this repository, interleaved.

Each round runs a worker in each checkout (its own imports) that fills a fresh flat or HNSW gallery and times
``Gallery.search`` (median of 2,000 single queries on 1,000 images) and ``add_image`` (mean of 300, each
committed); alternating the checkouts round by round lets both see the same machine load. Prints every round,
the medians and the ratio NEW/OLD; writes JSON to bench/results/.

    python bench/gallery_checkouts.py OLD_CHECKOUT NEW_CHECKOUT --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from machine import machine_record, write_result  # bench/ is the script's directory

WORKER = r'''
import json, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np
from service.config import GallerySettings, IndexKind
from service.gallery import Gallery
vectors = np.random.default_rng(0).standard_normal((1000, 512)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
with tempfile.TemporaryDirectory() as directory:
    settings = GallerySettings(path=Path(directory) / "g", index=IndexKind(sys.argv[1]))
    with Gallery.open(settings, embedding_dim=512, model_id="bench") as gallery:
        started = time.perf_counter()
        for number in range(1000):
            if number == 300:
                add_ms = (time.perf_counter() - started) / 300 * 1000
            gallery.add_image(label=f"l{number}", embedding=vectors[number], image_bytes=number.to_bytes(8, "big") * 8,
                              media_type="image/jpeg", item_id=f"i{number}")
        samples = []
        for _ in range(2000):
            started = time.perf_counter()
            gallery.search(vectors[:1], 5)
            samples.append((time.perf_counter() - started) * 1e6)
print(json.dumps({"add_ms": add_ms, "search_us": statistics.median(samples)}))
'''


def run(checkout: Path, kind: str) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    completed = subprocess.run([sys.executable, "-c", WORKER, kind], cwd=checkout, env=environment,
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    samples: dict[str, dict[str, list[dict[str, float]]]] = {kind: {"old": [], "new": []} for kind in ("flat", "hnsw")}
    for round_number in range(arguments.rounds):
        for kind in samples:
            for side in ("old", "new"):
                result = run(getattr(arguments, side), kind)
                samples[kind][side].append(result)
                print(f"round {round_number + 1} {kind} {side}: search {result['search_us']:.1f} us, "
                      f"add {result['add_ms']:.2f} ms")
    summary = {}
    for kind, sides in samples.items():
        medians = {side: {key: statistics.median(run[key] for run in runs) for key in ("search_us", "add_ms")}
                   for side, runs in sides.items()}
        ratios = {key: round(medians["new"][key] / medians["old"][key], 3) for key in ("search_us", "add_ms")}
        summary[kind] = {"medians": medians, "new_over_old": ratios}
        print(f"{kind}: search {medians['old']['search_us']:.1f} -> {medians['new']['search_us']:.1f} us "
              f"({ratios['search_us']}x), add {medians['old']['add_ms']:.2f} -> {medians['new']['add_ms']:.2f} ms "
              f"({ratios['add_ms']}x)")
    record = {"checkouts": [str(arguments.old), str(arguments.new)], "machine": machine_record(threads=1),
              "rounds": samples, "summary": summary}
    print(f"wrote {write_result('gallery_checkouts', record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
