"""Cross-request batching: concurrent calls become one batch, and every caller gets exactly its own rows back."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from service.config import BatchingSettings, RuntimeSettings
from service.errors import ModelError
from service.inference.batching import Batcher, split_detections, split_rows
from service.inference.models import WorkerPool, detector_batches, load_detector, load_embedder
from service.inference.pipeline import Recognizer
from service.inference.session import Array, Session, SessionInfo
from tests.service.images import cat, coffee, rocket

RUNTIME = RuntimeSettings(cpu_threads=1, warmup=False)


class AffineSession:
    """A real (numpy) program: y = x @ W + row index marker; records the batch sizes it ran."""

    def __init__(self, width: int = 3, fail_on: float | None = None) -> None:
        self.input_names = ("x",)
        self.weights = np.arange(width * 2, dtype=np.float32).reshape(width, 2)
        self.batches: list[int] = []
        self.fail_on = fail_on

    @property
    def info(self) -> SessionInfo:
        return SessionInfo(directory="numpy", format="numpy")

    def run(self, feed: Mapping[str, Array]) -> list[Array]:
        x = np.asarray(feed["x"], dtype=np.float32)
        if self.fail_on is not None and np.any(x == self.fail_on):
            raise RuntimeError("this input is refused")
        self.batches.append(len(x))
        time.sleep(0.02)  # long enough for the other callers to queue behind the first batch
        return [x.reshape(len(x), -1)[:, : self.weights.shape[0]] @ self.weights]

    def clone(self) -> Session:
        return self


def _concurrently(calls: list[object]) -> list[object]:
    results: list[object] = [None] * len(calls)

    def call(index: int) -> None:
        try:
            results[index] = calls[index]()  # type: ignore[operator]
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_calls_share_a_batch_and_get_their_own_rows() -> None:
    session = AffineSession()
    batcher = Batcher(workers=1, max_wait_ms=50.0, in_flight=lambda: 6)
    shared = batcher.add("m", session, max_batch=8, split=split_rows)
    batcher.start()
    inputs = [np.full((size, 3), value, dtype=np.float32) for value, size in enumerate((1, 2, 3, 1, 2, 1))]

    results = _concurrently([lambda x=x: shared.run({"x": x})[0] for x in inputs])
    batcher.close()

    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_allclose(result, x @ session.weights)  # type: ignore[arg-type]
    assert max(session.batches) > 3  # rows of several callers in one run
    assert all(size <= 8 for size in session.batches)
    assert sum(session.batches) == 10


def test_inputs_of_other_shapes_never_join_a_batch() -> None:
    session = AffineSession()
    batcher = Batcher(workers=1, max_wait_ms=50.0, in_flight=lambda: 4)
    shared = batcher.add("m", session, max_batch=8, split=split_rows)
    batcher.start()
    inputs = [np.ones((1, 3), np.float32), np.ones((1, 4), np.float32), np.ones((1, 3), np.float32),
              np.ones((1, 4), np.float32)]

    results = _concurrently([lambda x=x: shared.run({"x": x})[0] for x in inputs])
    batcher.close()

    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_allclose(result, x[:, :3] @ session.weights)  # type: ignore[arg-type]
    assert len(session.batches) >= 2


def test_a_lone_request_does_not_wait_for_company() -> None:
    batcher = Batcher(workers=1, max_wait_ms=2000.0, in_flight=lambda: 1)
    shared = batcher.add("m", AffineSession(), max_batch=8, split=split_rows)
    batcher.start()

    started = time.perf_counter()
    shared.run({"x": np.ones((1, 3), np.float32)})
    elapsed = time.perf_counter() - started
    batcher.close()

    assert elapsed < 1.0


def test_a_failing_batch_fails_its_callers_and_the_worker_lives_on() -> None:
    batcher = Batcher(workers=1, max_wait_ms=0.0, in_flight=lambda: 1)
    shared = batcher.add("m", AffineSession(fail_on=7.0), max_batch=8, split=split_rows)
    batcher.start()

    with pytest.raises(RuntimeError, match="refused"):
        shared.run({"x": np.full((1, 3), 7.0, np.float32)})
    after = shared.run({"x": np.ones((1, 3), np.float32)})[0]
    batcher.close()

    assert after.shape == (1, 2)
    with pytest.raises(ModelError, match="stopped"):
        shared.run({"x": np.ones((1, 3), np.float32)})


def test_detections_are_split_by_bbox_num() -> None:
    boxes = np.arange(6 * 6, dtype=np.float32).reshape(6, 6)
    counts = np.array([2, 0, 3, 1], dtype=np.int32)

    parts = split_detections([boxes, counts], [1, 2, 1])

    np.testing.assert_array_equal(parts[0][0], boxes[:2])
    np.testing.assert_array_equal(parts[1][0], boxes[2:5])
    np.testing.assert_array_equal(parts[1][1], [0, 3])
    np.testing.assert_array_equal(parts[2][0], boxes[5:])


@pytest.fixture(scope="module")
def recognizer(model_store_dir: Path) -> Recognizer:
    embedder = load_embedder(model_store_dir / "embedder" / "default", RUNTIME, max_batch_size=4)
    return Recognizer(embedder, load_detector(model_store_dir / "detector" / "default", RUNTIME))


def test_the_real_models_give_each_request_its_own_results(recognizer: Recognizer) -> None:
    photos = [coffee(), cat(), rocket(), coffee()[50:300, 100:400], cat()[:200, :300], rocket()[100:, :]]
    assert recognizer.detector is not None and detector_batches(recognizer.detector, RUNTIME)
    alone_boxes = [recognizer.detector.detect(photo) for photo in photos]
    alone_features = [recognizer.embedder.embed([photo, photo[:100, :100]]) for photo in photos]
    pool = WorkerPool(recognizer, request_threads=6, inference_workers=1,
                      batching=BatchingSettings(max_wait_ms=100.0, max_embedder_batch=8, max_detector_batch=4),
                      runtime=RUNTIME)
    pool._in_flight = len(photos)  # as the request threads would count them: every caller may come
    pool.prepare()
    shared = pool.recognizer
    assert shared.detector is not None

    boxes = _concurrently([lambda photo=photo: shared.detector.detect(photo) for photo in photos])  # type: ignore[union-attr]
    features = _concurrently([lambda photo=photo: shared.embedder.embed([photo, photo[:100, :100]])
                              for photo in photos])
    stats = pool.stats()
    pool.close()

    for alone, batched in zip(alone_boxes, boxes, strict=True):
        assert [d.box for d in alone] == [d.box for d in batched]  # type: ignore[attr-defined]
        np.testing.assert_allclose([d.score for d in alone], [d.score for d in batched], atol=1e-4)  # type: ignore[attr-defined]
    for alone, batched in zip(alone_features, features, strict=True):
        np.testing.assert_allclose(alone, batched, atol=1e-4)  # type: ignore[arg-type]
    assert stats["detector"]["mean_rows"] > 1 and stats["embedder"]["mean_rows"] > 2


def test_a_lone_batch_runs_on_the_wide_session_and_a_crowd_on_the_narrow_ones() -> None:
    narrow, wide = AffineSession(), AffineSession()
    in_flight = [1]
    batcher = Batcher(workers=2, max_wait_ms=0.0, in_flight=lambda: in_flight[0])
    shared = batcher.add("m", narrow, max_batch=1, split=split_rows, wide=wide)
    batcher.start()

    shared.run({"x": np.ones((1, 3), np.float32)})  # alone: every core
    in_flight[0] = 4
    _concurrently([lambda: shared.run({"x": np.ones((1, 3), np.float32)}) for _ in range(4)])
    stats = batcher.stats()["m"]
    batcher.close()

    assert (len(wide.batches), len(narrow.batches)) == (1, 4)
    assert stats["alone_on_all_threads"] == 1
