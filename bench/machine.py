"""What the benchmark JSON records about the machine it ran on, and where the JSON goes."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_record(threads: int) -> dict[str, object]:
    """The machine, the Paddle build and the load a result was measured under.

    A number means nothing without them: the benchmarks run on a shared machine where other work takes the
    same cores, so the 1-minute load average at the end of the run says how far to trust the timings.
    """
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        # The distribution's metadata, so that recording the version does not import paddle.
        "paddle": _version("paddlepaddle"),
    }


def _version(distribution: str) -> str:
    """A record must not cost the measurement: a venv changed under a long run once lost a result here."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def write_result(name: str, record: dict) -> Path:
    """Write ``record`` to bench/results/<name>_<UTC time>.json; the time stamp keeps earlier runs for comparison."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}_{stamp}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def median_ms(work: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of ``work`` over ``runs`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples)
