"""Dynamic batching across requests: concurrent ``run`` calls on one model go to the predictor as one batch.

A :class:`Batcher` owns ``workers`` inference threads; each has its own clone of every model's session (a
predictor is not thread-safe) and serves every model's queue, oldest job first, so the math threads in use never
exceed ``workers x cpu_threads`` however many models there are. :class:`BatchedSession` is the ``Session`` the
:class:`~service.inference.detector.Detector` and :class:`~service.inference.embedder.Embedder` see: thread-safe,
one per model, shared by every request thread.

A job whose inputs have the shapes of the batch's first job (the batch axis aside) joins the batch, up to the
model's ``max_batch`` rows. A worker waits up to ``max_wait_ms`` for more jobs, but only while some request in
flight is neither queued nor being run (it is decoding or post-processing, and may come): a lone request never
waits.

A model may come with a second, *wide* session (more math threads): a batch that holds every request in flight
while no other worker is busy runs on it, so a lone request gets all the cores, and under load each worker runs
its narrow session, side by side, without OpenMP threads fighting over the cores.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from service.errors import ModelError
from service.inference.session import Array, Session, SessionInfo

# outputs of one batched run, the row count of each job -> each job's outputs
Split = Callable[[list[Array], Sequence[int]], list[list[Array]]]


def split_rows(outputs: list[Array], sizes: Sequence[int]) -> list[list[Array]]:
    """Every output has one row per input row (embedders)."""
    bounds = np.cumsum(sizes)[:-1]
    parts = [np.split(np.asarray(output), bounds) for output in outputs]
    return [[part[job] for part in parts] for job in range(len(sizes))]


def split_detections(outputs: list[Array], sizes: Sequence[int]) -> list[list[Array]]:
    """PaddleDetection's contract: boxes of all images in one [M, 6] array, ``bbox_num`` [N] says how many each."""
    boxes, counts = np.asarray(outputs[0]), np.asarray(outputs[1]).reshape(-1)
    per_job = [int(part.sum()) for part in np.split(counts, np.cumsum(sizes)[:-1])]
    box_parts = np.split(boxes, np.cumsum(per_job)[:-1])
    count_parts = np.split(counts, np.cumsum(sizes)[:-1])
    return [[box_parts[job], count_parts[job], *outputs[2:]] for job in range(len(sizes))]


@dataclass(eq=False)
class _Job:
    model: str
    feed: Mapping[str, Array]
    rows: int
    key: tuple[tuple[int, ...], ...]
    queued_at: float
    done: threading.Event = field(default_factory=threading.Event)
    outputs: list[Array] | None = None
    error: BaseException | None = None


@dataclass
class _Model:
    session: Session
    input_names: tuple[str, ...]
    max_batch: int
    split: Split
    wide: Session | None = None
    queue: deque[_Job] = field(default_factory=deque)
    batches: int = 0
    rows: int = 0
    wide_batches: int = 0


class BatchedSession:
    """A thread-safe ``Session`` whose runs are queued and batched by a :class:`Batcher`."""

    def __init__(self, batcher: Batcher, name: str, session: Session) -> None:
        self._batcher = batcher
        self._name = name
        self._session = session

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._session.input_names

    @property
    def info(self) -> SessionInfo:
        return self._session.info

    def run(self, feed: Mapping[str, Array]) -> list[Array]:
        return self._batcher.submit(self._name, feed)

    def clone(self) -> BatchedSession:
        return self  # already shared by design


class Batcher:
    """``workers`` inference threads over one queue per model; ``in_flight`` says how many requests may still come."""

    def __init__(self, *, workers: int, max_wait_ms: float, in_flight: Callable[[], int],
                 warm_up: Callable[[dict[str, Session]], None] | None = None) -> None:
        self._workers = workers
        self._max_wait_s = max_wait_ms / 1000.0
        self._in_flight = in_flight
        self._warm_up = warm_up
        self._models: dict[str, _Model] = {}
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._outstanding = 0  # jobs submitted and not yet answered (queued or in a running batch)
        self._busy = 0  # workers running a batch
        self._closed = False

    def add(self, name: str, session: Session, *, max_batch: int, split: Split,
            wide: Session | None = None) -> BatchedSession:
        if self._threads:
            raise RuntimeError("models are added before the batcher starts")
        self._models[name] = _Model(session, session.input_names, max_batch, split, wide)
        return BatchedSession(self, name, session)

    def start(self) -> None:
        """Clones every session per worker and warms the clones up; returns when all workers are ready."""
        ready = threading.Barrier(self._workers + 1)
        for number in range(self._workers):
            thread = threading.Thread(target=self._serve, args=(ready,), name=f"inference-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        ready.wait(timeout=600)

    def stats(self) -> dict[str, dict[str, float]]:
        with self._condition:
            return {name: {"batches": model.batches, "rows": model.rows,
                           "mean_rows": round(model.rows / model.batches, 2) if model.batches else 0.0,
                           "alone_on_all_threads": model.wide_batches}
                    for name, model in self._models.items()}

    def submit(self, name: str, feed: Mapping[str, Array]) -> list[Array]:
        model = self._models[name]
        missing = [input_name for input_name in model.input_names if input_name not in feed]
        if missing:
            raise ModelError(f"the {name} model needs inputs {missing}")
        arrays = {input_name: np.ascontiguousarray(feed[input_name]) for input_name in model.input_names}
        rows = {int(array.shape[0]) for array in arrays.values()}
        if len(rows) != 1:
            raise ModelError(f"the inputs of the {name} model disagree on the batch size: {sorted(rows)}")
        key = tuple(tuple(array.shape[1:]) for array in arrays.values())
        job = _Job(name, arrays, rows.pop(), key, time.monotonic())
        with self._condition:
            if self._closed:
                raise ModelError("the inference workers are stopped")
            model.queue.append(job)
            self._outstanding += 1
            self._condition.notify_all()  # a worker waiting to fill its batch, or an idle one
        try:
            job.done.wait()
        finally:
            with self._condition:
                self._outstanding -= 1
        if job.error is not None:
            raise job.error
        assert job.outputs is not None
        return job.outputs

    def close(self) -> None:
        with self._condition:
            self._closed = True
            for model in self._models.values():
                while model.queue:
                    job = model.queue.popleft()
                    job.error = ModelError("the inference workers are stopped")
                    job.done.set()
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)

    # -- the workers -------------------------------------------------------------------------------------

    def _serve(self, ready: threading.Barrier) -> None:
        # Cloned in the thread that runs them: Paddle keeps oneDNN's kernel cache per thread.
        sessions: dict[str, Session] = {}
        wide: dict[str, Session] = {}
        try:
            sessions = {name: model.session.clone() for name, model in self._models.items()}
            wide = {name: model.wide.clone() for name, model in self._models.items() if model.wide is not None}
            if self._warm_up is not None:
                self._warm_up(sessions)
                if wide:
                    self._warm_up({**sessions, **wide})
        finally:
            ready.wait(timeout=600)
        while True:
            taken = self._take()
            if taken is None:
                return
            name, jobs, alone = taken
            try:
                self._run(name, wide[name] if alone and name in wide else sessions[name], jobs)
            finally:
                with self._condition:
                    self._busy -= 1

    def _take(self) -> tuple[str, list[_Job], bool] | None:
        """The next batch, and whether it is alone: no other worker busy and every request in flight in it."""
        with self._condition:
            while not self._closed and not any(model.queue for model in self._models.values()):
                self._condition.wait()
            if self._closed:
                return None
            name = min((model.queue[0].queued_at, name) for name, model in self._models.items() if model.queue)[1]
            model = self._models[name]
            first = model.queue.popleft()
            jobs, rows = [first], first.rows
            deadline = time.monotonic() + self._max_wait_s
            while True:
                rows += self._gather(model, first.key, jobs, rows)
                remaining = deadline - time.monotonic()
                # Wait only while some request in flight is not already queued or running: it may still come.
                may_come = self._in_flight() - self._outstanding
                if rows >= model.max_batch or remaining <= 0 or may_come <= 0 or self._closed:
                    break
                self._condition.wait(remaining)
            alone = self._busy == 0 and self._in_flight() <= len(jobs) and not any(
                other.queue for other in self._models.values())
            self._busy += 1
            model.batches += 1
            model.rows += rows
            model.wide_batches += alone and model.wide is not None
            return name, jobs, alone

    @staticmethod
    def _gather(model: _Model, key: tuple[tuple[int, ...], ...], jobs: list[_Job], rows: int) -> int:
        """Moves the queued jobs of the same shapes that fit into ``jobs``; returns the rows added."""
        added = 0
        for job in list(model.queue):
            if job.key == key and rows + added + job.rows <= model.max_batch:
                model.queue.remove(job)
                jobs.append(job)
                added += job.rows
        return added

    def _run(self, name: str, session: Session, jobs: list[_Job]) -> None:
        model = self._models[name]
        try:
            if len(jobs) == 1:
                results = [session.run(jobs[0].feed)]
            else:
                feed = {input_name: np.concatenate([job.feed[input_name] for job in jobs])
                        for input_name in model.input_names}
                results = model.split(session.run(feed), [job.rows for job in jobs])
            for job, outputs in zip(jobs, results, strict=True):
                job.outputs = outputs
        except BaseException as error:  # the callers get the runtime's error; the worker lives on
            for job in jobs:
                job.error = error
        finally:
            for job in jobs:
                job.done.set()
