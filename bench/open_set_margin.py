"""Does a margin rule reject unknown products better than the plain ``min_score``? One run, against the plain rule.

Issue 15's open-set F1 is measured with PP-ShiTu's rule: a query crop is matched when its top-1 cosine is at least
``min_score``. A common alternative scores the gap instead: ``top1 - alpha * top2``, where top2 is the best score
of any *other* gallery item (an unknown product tends to be near several items; a known one stands out from the
rest). For each ``alpha`` (0 is the plain rule, the baseline), the threshold is calibrated on the validation split
(best F1, as ``shitu eval --record`` does) and applied to the test split, whose F1 is reported with its ratio to
the baseline's; the best F1 any threshold could reach on test (an oracle) bounds what the rule can give.

    python bench/open_set_margin.py --data data/pack800 --embedder model_store/embedder/default
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np
from machine import machine_record, write_result  # bench/ is the script's directory

from service.config import LimitsSettings, RuntimeSettings
from service.inference.embedder import Embedder
from service.inference.models import load_embedder
from trainer.evaluation.data import load_split
from trainer.evaluation.open_set import OpenSetQuery, balanced, calibrate, point_at
from trainer.evaluation.recognizer_track import embed_entries

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
# The margin can be negative or small: a grid over its whole range, as fine as the service's 0.005.
THRESHOLDS = tuple(float(value) for value in np.round(np.arange(-0.5, 1.0001, 0.005), 3))


def scored_queries(embedder: Embedder, data: Path, split: str,
                   limits: LimitsSettings) -> list[tuple[OpenSetQuery, float]]:
    """Each balanced open-set query with its top-2 score (the best gallery item of another label)."""
    loaded = load_split(data, split)
    gallery = embed_entries(embedder, loaded.gallery, limits)
    labels = np.array([entry.label for entry in loaded.gallery])
    queries = []
    for entries, known in ((loaded.queries, True), (loaded.open_set_queries, False)):
        similarity = embed_entries(embedder, entries, limits) @ gallery.T
        for row, entry in enumerate(entries):
            best = int(similarity[row].argmax())
            others = similarity[row][labels != labels[best]]
            second = float(others.max()) if others.size else -1.0
            queries.append((OpenSetQuery(truth=entry.label, known=known, predicted=str(labels[best]),
                                         score=float(similarity[row, best])), second))
    kept = {id(query) for query in balanced([query for query, _ in queries])}
    return [(query, second) for query, second in queries if id(query) in kept]


def with_margin(queries: list[tuple[OpenSetQuery, float]], alpha: float) -> list[OpenSetQuery]:
    return [OpenSetQuery(query.truth, query.known, query.predicted, (query.score or 0.0) - alpha * second)
            for query, second in queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `shitu data synth` directory with open-set lists")
    parser.add_argument("--embedder", type=Path, default=Path("model_store/embedder/default"))
    arguments = parser.parse_args()

    embedder = load_embedder(arguments.embedder, RuntimeSettings(cpu_threads=2, warmup=False), max_batch_size=32)
    limits = LimitsSettings()
    val, test = (scored_queries(embedder, arguments.data, split, limits) for split in ("val", "test"))
    rows = []
    for alpha in ALPHAS:
        calibrated = calibrate([point_at(with_margin(val, alpha), threshold) for threshold in THRESHOLDS])
        assert calibrated is not None, "nothing matched on val"
        on_test = point_at(with_margin(test, alpha), calibrated.min_score)
        oracle = max(point_at(with_margin(test, alpha), threshold).f1 for threshold in THRESHOLDS)
        rows.append({"alpha": alpha, "threshold": calibrated.min_score, "val_f1": round(calibrated.f1, 4),
                     "test": {key: round(value, 4) for key, value in asdict(on_test).items()},
                     "test_oracle_f1": round(oracle, 4)})
    baseline = rows[0]["test"]["f1"]
    for row in rows:
        row["test_f1_over_plain"] = round(row["test"]["f1"] / baseline, 3) if baseline else None
        print(f"alpha {row['alpha']:.2f}: threshold {row['threshold']:.3f} (val F1 {row['val_f1']:.3f}), test "
              f"P {row['test']['precision']:.3f} R {row['test']['recall']:.3f} F1 {row['test']['f1']:.3f} "
              f"({row['test_f1_over_plain']}x the plain rule), best any threshold {row['test_oracle_f1']:.3f}")
    record = {**machine_record(threads=2), "benchmark": "open_set_margin", "data": str(arguments.data),
              "embedder": str(arguments.embedder), "queries": {"val": len(val), "test": len(test)}, "rows": rows}
    print(write_result("open_set_margin", record))


if __name__ == "__main__":
    main()
