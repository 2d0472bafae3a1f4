"""Everything the running service owns, built by the app's lifespan and closed with it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from service.config import MinScoreSource, Settings, inference_workers, lone_cpu_threads
from service.errors import Overloaded, RequestTimeout
from service.gallery import Gallery, read_list_file
from service.gallery.threshold import GalleryThreshold, ThresholdEstimator
from service.importing import import_entries
from service.inference.models import WorkerPool, load_recognizer
from service.inference.pipeline import RecognizeOptions, Recognizer

logger = logging.getLogger(__name__)
T = TypeVar("T")


class CommitGate:
    """Settles, once, a race between a write's commit and its request's timeout: exactly one of them wins.

    The worker asks ``begin_commit`` right before it writes; the timeout asks ``abandon``. A write that began
    committing is always waited for and answered, so no client gets an error for a write that happened.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcome: str | None = None

    def begin_commit(self) -> bool:
        with self._lock:
            self._outcome = self._outcome or "commit"
            return self._outcome == "commit"

    def abandon(self) -> bool:
        with self._lock:
            self._outcome = self._outcome or "abandoned"
            return self._outcome == "abandoned"


@dataclass
class ServiceState:
    settings: Settings
    recognizer: Recognizer
    pool: WorkerPool
    gallery: Gallery
    defaults: RecognizeOptions  # settings over the manifests
    threshold: ThresholdEstimator
    in_flight: dict[str, int] = field(default_factory=lambda: {"read": 0, "write": 0})

    @property
    def model_ids(self) -> tuple[str, str | None]:
        detector = self.recognizer.detector
        return self.recognizer.embedder.manifest.model_id, detector.manifest.model_id if detector else None

    @property
    def uses_gallery_threshold(self) -> bool:
        """``pipeline.min_score_source=gallery`` and no explicit ``pipeline.min_score``."""
        pipeline = self.settings.pipeline
        return pipeline.min_score_source is MinScoreSource.gallery and pipeline.min_score is None

    def gallery_threshold(self) -> GalleryThreshold:
        """Blocking when the estimate is stale: call it from a thread."""
        return self.threshold.current()

    def effective_defaults(self, threshold: GalleryThreshold | None = None) -> RecognizeOptions:
        """The defaults, with the gallery's suggested min_score where the settings ask for it and it exists."""
        if not self.uses_gallery_threshold:
            return self.defaults
        suggested = (threshold or self.gallery_threshold()).suggested_min_score
        return self.defaults if suggested is None else self.defaults.with_min_score(suggested)

    async def request_defaults(self) -> RecognizeOptions:
        return await asyncio.to_thread(self.effective_defaults) if self.uses_gallery_threshold else self.defaults

    def options(self, base: RecognizeOptions | None = None, **overrides: Any) -> RecognizeOptions:
        """``base`` (the defaults when None) with a request's given fields (``None``: not given)."""
        base = base or self.defaults
        given = {name: value for name, value in overrides.items() if value is not None}
        options = base.with_min_score(given.pop("min_score")) if "min_score" in given else base
        return replace(options, **given)

    @asynccontextmanager
    async def admission(self, kind: str = "read") -> AsyncIterator[None]:
        """Overload is a 429 at once, not a growing queue; writes have their own slots, so reads never starve them."""
        limits = self.settings.limits
        limit = limits.max_concurrent_writes if kind == "write" else limits.max_concurrent_requests
        # Only the event loop thread touches the counters, so no lock is needed.
        if self.in_flight[kind] >= limit:
            raise Overloaded(f"{self.in_flight[kind]} {kind}s in flight, the limit is {limit}; retry shortly",
                             retry_after_s=1)
        self.in_flight[kind] += 1
        try:
            yield
        finally:
            self.in_flight[kind] -= 1

    async def infer(self, work: Callable[[Recognizer], T]) -> T:
        try:
            return await asyncio.wait_for(self.pool.run(work), timeout=self.settings.limits.request_timeout_s)
        except asyncio.TimeoutError as error:
            raise RequestTimeout(f"inference took longer than {self.settings.limits.request_timeout_s} s") from error

    async def infer_write(self, work: Callable[[Recognizer, CommitGate], T]) -> T:
        """Like ``infer``, but a write that reached its commit is answered with its result, however long it took."""
        gate = CommitGate()
        future = asyncio.ensure_future(self.pool.run(lambda recognizer: work(recognizer, gate)))
        # An abandoned write ends with RequestTimeout in its worker; nobody awaits it, so retrieve it here.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=self.settings.limits.request_timeout_s)
        except asyncio.TimeoutError as error:
            if gate.abandon():
                raise RequestTimeout(f"inference took longer than {self.settings.limits.request_timeout_s} s; "
                                     "nothing was stored") from error
            return await future


def open_state(settings: Settings) -> ServiceState:
    """Load models and gallery (blocking: call it from a thread)."""
    recognizer = load_recognizer(settings.models, settings.runtime, settings.pipeline)
    embedder = recognizer.embedder
    gallery = Gallery.open(settings.gallery, embedding_dim=embedder.embedding_dim, model_id=embedder.manifest.model_id)
    defaults = recognizer.default_options(settings.pipeline)
    if settings.gallery.demo is not None and gallery.stats().images == 0:
        _import_demo(settings.gallery.demo, recognizer, gallery, settings, defaults)
    limits = settings.limits
    lone = None
    if lone_cpu_threads(settings.runtime) > settings.runtime.cpu_threads:
        wide = settings.runtime.model_copy(update={"cpu_threads": lone_cpu_threads(settings.runtime)})
        lone = load_recognizer(settings.models, wide, settings.pipeline)
    # Every admitted request runs at once: its Python work overlaps the models', and its model inputs can join
    # other requests' batches. Admission (429) bounds the threads.
    pool = WorkerPool(recognizer, request_threads=limits.max_concurrent_requests + limits.max_concurrent_writes,
                      inference_workers=inference_workers(settings), batching=settings.batching,
                      runtime=settings.runtime, lone=lone)
    pool.prepare()
    return ServiceState(settings=settings, recognizer=pool.recognizer, pool=pool, gallery=gallery,
                        defaults=defaults, threshold=ThresholdEstimator(gallery, settings.gallery))


def _import_demo(list_file: Path, recognizer: Recognizer, gallery: Gallery, settings: Settings,
                 defaults: RecognizeOptions) -> None:
    entries = read_list_file(list_file, list_file.parent)
    report = import_entries(recognizer, gallery, entries, limits=settings.limits, options=defaults,
                            detect=settings.gallery.detect_on_enroll)
    logger.info("demo gallery %s: %d images added, %d failed", list_file, report.added, len(report.failed))


def close_state(state: ServiceState) -> None:
    state.pool.close()
    state.gallery.close()
