"""Everything the running service owns, built by the app's lifespan and closed with it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from service.config import Settings
from service.errors import Overloaded, RequestTimeout
from service.gallery import Gallery, read_list_file
from service.importing import import_entries
from service.inference.models import WorkerPool, load_recognizer
from service.inference.pipeline import RecognizeOptions, Recognizer

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ServiceState:
    settings: Settings
    recognizer: Recognizer
    pool: WorkerPool
    gallery: Gallery
    defaults: RecognizeOptions
    in_flight: int = 0

    @property
    def model_ids(self) -> tuple[str, str | None]:
        detector = self.recognizer.detector
        return self.recognizer.embedder.manifest.model_id, detector.manifest.model_id if detector else None

    def options(self, **overrides: Any) -> RecognizeOptions:
        """The defaults with a request's given fields (``None``: not given)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        options = self.defaults.with_min_score(given.pop("min_score")) if "min_score" in given else self.defaults
        return replace(options, **given)

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Overload is a 429 at once, not a growing queue of requests that will time out anyway."""
        # Only the event loop thread touches the counter, so no lock is needed.
        if self.in_flight >= self.settings.limits.max_concurrent_requests:
            raise Overloaded(
                f"{self.in_flight} requests in flight, the limit is {self.settings.limits.max_concurrent_requests}; "
                "retry shortly",
                retry_after_s=1,
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def infer(self, work: Callable[[Recognizer], T]) -> T:
        try:
            return await asyncio.wait_for(self.pool.run(work), timeout=self.settings.limits.request_timeout_s)
        except asyncio.TimeoutError as error:
            raise RequestTimeout(f"inference took longer than {self.settings.limits.request_timeout_s} s") from error


def open_state(settings: Settings) -> ServiceState:
    """Load models and gallery (blocking: call it from a thread)."""
    recognizer = load_recognizer(settings.models, settings.runtime, settings.pipeline)
    embedder = recognizer.embedder
    gallery = Gallery.open(settings.gallery, embedding_dim=embedder.embedding_dim, model_id=embedder.manifest.model_id)
    defaults = recognizer.default_options(settings.pipeline)
    if settings.gallery.demo is not None and gallery.stats().images == 0:
        _import_demo(settings.gallery.demo, recognizer, gallery, settings, defaults)
    pool = WorkerPool(recognizer, settings.limits.inference_workers, warmup=settings.runtime.warmup)
    pool.prepare(settings.limits.inference_workers)
    return ServiceState(settings=settings, recognizer=recognizer, pool=pool, gallery=gallery, defaults=defaults)


def _import_demo(list_file: Path, recognizer: Recognizer, gallery: Gallery, settings: Settings,
                 defaults: RecognizeOptions) -> None:
    entries = read_list_file(list_file, list_file.parent)
    report = import_entries(recognizer, gallery, entries, limits=settings.limits, options=defaults,
                            detect=settings.gallery.detect_on_enroll)
    logger.info("demo gallery %s: %d images added, %d failed", list_file, report.added, len(report.failed))


def close_state(state: ServiceState) -> None:
    state.pool.close()
    state.gallery.close()
