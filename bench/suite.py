"""The performance suite of issue 14 in one run: HTTP latency and throughput against today's checkout, decode
cost by photo size, gallery search by size. Writes one JSON (bench/results/suite_*.json) and a Markdown table.

    shitu data demo --out /tmp/demo
    shitu data synth --out /tmp/synth --classes 1500 --scenes-per-class 1 --scene-size 256 --shelf-share 0 \\
        --empty-share 0 --gallery-views 3
    python bench/suite.py --demo /tmp/demo --synth /tmp/synth --out-md bench/results/suite.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import decode_cost
import embedder_stage
import gallery_scale
import http_throughput
from machine import machine_record, write_result  # bench/ is the script's directory


def other_load() -> list[str]:
    """Other CPU-heavy processes at the start (a number means little if a training shares the cores)."""
    listing = subprocess.run(["ps", "-eo", "pcpu=,args="], capture_output=True, text=True).stdout.splitlines()
    own = {str(os.getpid())}
    return [line.strip()[:120] for line in listing if line.strip() and float(line.split()[0]) > 20.0
            and not any(pid in line for pid in own)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True)
    parser.add_argument("--synth", type=Path, required=True)
    parser.add_argument("--baseline-ref", default="a6d8205")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--photos", default="512px,12MP")
    parser.add_argument("--variants", default="2x1:SHITU_RUNTIME__CPU_THREADS=1,SHITU_LIMITS__INFERENCE_WORKERS=2")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--real", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "shitu_bench_embeddings.npy")
    parser.add_argument("--sections", default="http,embedder,decode,gallery")
    parser.add_argument("--out-md", type=Path, default=None)
    arguments = parser.parse_args()
    sections = set(arguments.sections.split(","))
    record: dict[str, Any] = {**machine_record(threads=2), "benchmark": "suite", "baseline": arguments.baseline_ref,
                              "other_processes_at_start": other_load(), "seconds": {}}
    tables = []
    with tempfile.TemporaryDirectory() as scratch:
        baseline = http_throughput.baseline_checkout(arguments.baseline_ref, Path(scratch) / "baseline")
        if "http" in sections:
            started = time.monotonic()
            http = http_throughput.run(baseline, arguments.demo, [int(n) for n in arguments.clients.split(",")],
                                       arguments.duration_s, arguments.photos.split(","),
                                       http_throughput.parse_variants(arguments.variants))
            record["http"] = {**http, "new_over_baseline": http_throughput.ratios(http)}
            record["seconds"]["http"] = round(time.monotonic() - started)
            tables.append("### POST /recognize over HTTP, with the detector\n\n" + http_throughput.markdown(http))
    if "embedder" in sections:
        record["embedder"] = embedder_stage.run(batch=16, rounds=20, threads=2)
        medians = record["embedder"]["median_ms"]
        tables.append("### The embedder stage against the bare predictor, batch of 16 crops\n\n"
                      "| bare predictor | batched session | stage with preprocessing | session / bare | stage / bare "
                      "|\n"
                      "| --- | --- | --- | --- | --- |\n"
                      f"| {medians['bare_predictor']} ms | {medians['batched_session']} ms | "
                      f"{medians['embedder_stage_with_preprocessing']} ms | "
                      f"{record['embedder']['batched_session_over_bare']} | {record['embedder']['stage_over_bare']} |")
    if "decode" in sections:
        started = time.monotonic()
        record["decode"] = decode_cost.run(arguments.demo, arguments.baseline_ref, runs=3)
        record["seconds"]["decode"] = round(time.monotonic() - started)
        same = record["decode"]["recognition_12MP"]["same_as_full_decode"]
        tables.append("### Decode and preprocessing by photo size\n\n" + decode_cost.markdown(record["decode"])
                      + f"\n\nRecognition of the demo's 12 MP photos, same products as the full decode: {same}")
    if "gallery" in sections:
        started = time.monotonic()
        record["gallery"] = gallery_scale.run(arguments.synth, [int(n) for n in arguments.sizes.split(",")],
                                              arguments.real, 1000, arguments.cache)
        record["seconds"]["gallery"] = round(time.monotonic() - started)
        tables.append("### Gallery search by size (one query at a time, one thread)\n\n"
                      + gallery_scale.markdown(record["gallery"]))
    record["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    path = write_result("suite", record)
    text = (f"Suite run {record['date']}, {record['cpu']}, {record['cpu_count']} cores, load average at the end "
            f"{record['load_average_1min_at_end']}; other busy processes at the start: "
            f"{record['other_processes_at_start'] or 'none'}\n\n" + "\n\n".join(tables) + "\n")
    print(text)
    print(f"wrote {path}")
    if arguments.out_md:
        arguments.out_md.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
