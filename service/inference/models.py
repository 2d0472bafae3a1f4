"""Load the detector and the embedder named by the settings, and run them on a pool of worker threads."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from service.config import Device, ModelSettings, PipelineSettings, RuntimeSettings
from service.errors import ModelError
from service.inference.detector import Detector
from service.inference.embedder import Embedder
from service.inference.manifest import ManifestError, ModelManifest, load_manifest
from service.inference.pipeline import Recognizer
from service.inference.runtime import PaddleModel, TensorRTShapes, onednn_bf16_supported

logger = logging.getLogger(__name__)
T = TypeVar("T")


def load_embedder(model_dir: Path, runtime: RuntimeSettings, *, max_batch_size: int) -> Embedder:
    if not model_dir.is_dir():
        raise ModelError(f"embedder directory {model_dir} does not exist (SHITU_MODELS__EMBEDDER)")
    bf16 = runtime.onednn_bf16 and onednn_bf16_supported()
    if runtime.onednn_bf16 and not bf16:
        logger.warning("onednn_bf16 is set but this CPU has neither AMX nor AVX512-BF16: running fp32")
    manifest = _manifest(model_dir, lambda: probe_embedding_dim(model_dir, runtime))
    width, height = manifest.preprocess.size
    one, most = [1, 3, height, width], [runtime.tensorrt_max_batch, 3, height, width]
    model = PaddleModel.load(
        model_dir,
        runtime,
        probe=lambda names: {names[0]: np.zeros(one, dtype=np.float32)},
        bf16=bf16,
        trt_shapes=lambda: {PaddleModel.input_names_of(model_dir)[0]: (one, most, one)},
    )
    return Embedder(model, manifest, max_batch_size=max_batch_size)


def load_detector(model_dir: Path, runtime: RuntimeSettings) -> Detector:
    if not model_dir.is_dir():
        raise ModelError(f"detector directory {model_dir} does not exist (SHITU_MODELS__DETECTOR, empty disables it)")
    manifest = _manifest(model_dir, None)
    width, height = manifest.preprocess.size
    # PaddleDetection's PicoDet exports take image + scale_factor; older ones (and the released PP-ShiTu
    # detector) also im_shape. The feed holds all three: a model reads the ones it declares.
    shapes: TensorRTShapes = {"image": ([1, 3, height, width],) * 3, "im_shape": ([1, 2],) * 3,
                              "scale_factor": ([1, 2],) * 3}
    feed = {
        "image": np.zeros((1, 3, height, width), dtype=np.float32),
        "im_shape": np.array([[height, width]], dtype=np.float32),
        "scale_factor": np.ones((1, 2), dtype=np.float32),
    }
    model = PaddleModel.load(model_dir, runtime, probe=lambda _: feed, trt_shapes=lambda: {
        name: shapes[name] for name in PaddleModel.input_names_of(model_dir) if name in shapes})
    return Detector(model, manifest)


def load_recognizer(models: ModelSettings, runtime: RuntimeSettings, pipeline: PipelineSettings) -> Recognizer:
    embedder = load_embedder(models.embedder_dir, runtime, max_batch_size=pipeline.max_batch_size)
    detector = load_detector(models.detector_dir, runtime) if models.detector_dir is not None else None
    return Recognizer(embedder, detector)


def _manifest(model_dir: Path, embedding_dim: Callable[[], int] | None) -> ModelManifest:
    try:
        return load_manifest(model_dir, embedding_dim=embedding_dim)
    except ManifestError as error:
        raise ModelError(str(error)) from error


def model_input_names(model_dir: Path) -> tuple[str, ...]:
    """The input names of the program in ``model_dir``, without building an optimised predictor."""
    return PaddleModel.input_names_of(model_dir)


def probe_embedding_dim(model_dir: Path, runtime: RuntimeSettings) -> int:
    """PaddleClas exports do not state their feature size: run one standard 224x224 input (plain CPU kernels)."""
    plain = runtime.model_copy(update={"onednn": False, "device": Device.cpu, "tensorrt": False})
    model = PaddleModel.load(model_dir, plain, probe=None)
    output = model.run({model.input_names[0]: np.zeros((1, 3, 224, 224), dtype=np.float32)})[0]
    return int(np.asarray(output).reshape(1, -1).shape[1])


class WorkerPool:
    """``workers`` threads, each with its own predictors (a Paddle predictor is not thread-safe)."""

    def __init__(self, recognizer: Recognizer, workers: int, *, warmup: bool) -> None:
        self._template = recognizer
        self._warmup = warmup
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference",
                                            initializer=self._start_worker)

    def _start_worker(self) -> None:
        recognizer = self._template.clone()
        if self._warmup:
            warm_up(recognizer)
        self._local.recognizer = recognizer

    def prepare(self, workers: int) -> None:
        """Start every worker now (and warm it up), so the first requests do not pay for it."""
        barrier = threading.Barrier(workers)
        list(self._executor.map(lambda _: barrier.wait(timeout=600), range(workers)))

    async def run(self, work: Callable[[Recognizer], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._local.recognizer))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def warm_up(recognizer: Recognizer) -> None:
    image = np.full((480, 640, 3), 127, dtype=np.uint8)
    if recognizer.detector is not None:
        recognizer.detector.detect(image)
    recognizer.embedder.embed([image, image[:200, :300]])
