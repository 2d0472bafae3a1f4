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

from service.config import BatchingSettings, Device, ModelSettings, PipelineSettings, RuntimeSettings
from service.errors import ModelError
from service.inference.batching import Batcher, split_detections, split_rows
from service.inference.detector import Detector
from service.inference.embedder import Embedder
from service.inference.manifest import ManifestError, ModelManifest, load_manifest
from service.inference.pipeline import Recognizer
from service.inference.runtime import PaddleModel, TensorRTShapes, onednn_bf16_supported
from service.inference.session import Session

logger = logging.getLogger(__name__)
T = TypeVar("T")


def load_embedder(model_dir: Path, runtime: RuntimeSettings, *, max_batch_size: int) -> Embedder:
    if not model_dir.is_dir():
        raise ModelError(f"embedder directory {model_dir} does not exist (SHITU_MODELS__EMBEDDER)")
    bf16 = embedder_precision(runtime) == "bf16"
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


def cpu_has_bf16() -> bool:
    """AMX or AVX512-BF16 (checked at start; ``/info`` reports it)."""
    return onednn_bf16_supported()


def embedder_precision(runtime: RuntimeSettings) -> str:
    """bf16 where asked for or left to the CPU (None) and the CPU has AMX or AVX512-BF16 with oneDNN on; else fp32."""
    if runtime.device is not Device.cpu or not runtime.onednn or runtime.onednn_bf16 is False:
        return "fp32"
    return "bf16" if onednn_bf16_supported() else "fp32"


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
    """Runs every admitted request at once on request threads (decode, pre- and post-processing, search) and the
    models on the batcher's inference threads, where concurrent requests' inputs are batched."""

    def __init__(self, recognizer: Recognizer, *, request_threads: int, inference_workers: int,
                 batching: BatchingSettings, runtime: RuntimeSettings, lone: Recognizer | None = None) -> None:
        """``lone``: the same models with more math threads, for a batch that runs alone."""
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self._warmup = runtime.warmup
        self._batcher = Batcher(workers=inference_workers, max_wait_ms=batching.max_wait_ms,
                                in_flight=lambda: self._in_flight, warm_up=self._warm_up_worker)
        self._template = recognizer
        embedder_batch = batching.max_embedder_batch
        if runtime.tensorrt:  # the engine's dynamic shape ends there
            embedder_batch = min(embedder_batch, runtime.tensorrt_max_batch)
        embedder = recognizer.embedder
        shared_embedder = Embedder(self._batcher.add("embedder", embedder.session, max_batch=embedder_batch,
                                                     split=split_rows, wide=lone.embedder.session if lone else None),
                                   embedder.manifest,
                                   max_batch_size=min(embedder.max_batch_size, embedder_batch))
        detector = recognizer.detector
        shared_detector = None
        if detector is not None:
            detector_batch = batching.max_detector_batch if detector_batches(detector, runtime) else 1
            wide = lone.detector.session if lone is not None and lone.detector is not None else None
            shared_detector = Detector(self._batcher.add("detector", detector.session, max_batch=detector_batch,
                                                         split=split_detections, wide=wide), detector.manifest)
        self.recognizer = Recognizer(shared_embedder, shared_detector)
        self._executor = ThreadPoolExecutor(max_workers=request_threads, thread_name_prefix="request")

    def _warm_up_worker(self, sessions: dict[str, Session]) -> None:
        if not self._warmup:
            return
        template = self._template
        detector = Detector(sessions["detector"], template.detector.manifest) if template.detector else None
        warm_up(Recognizer(Embedder(sessions["embedder"], template.embedder.manifest,
                                    max_batch_size=template.embedder.max_batch_size), detector))

    def prepare(self) -> None:
        """Start every inference worker now (and warm it up), so the first requests do not pay for it."""
        self._batcher.start()

    def stats(self) -> dict[str, dict[str, float]]:
        """Batches run and rows per model since the start (how well batching works)."""
        return self._batcher.stats()

    async def run(self, work: Callable[[Recognizer], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._counted, work)

    def _counted(self, work: Callable[[Recognizer], T]) -> T:
        with self._count_lock:
            self._in_flight += 1
        try:
            return work(self.recognizer)
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._batcher.close()


def detector_batches(detector: Detector, runtime: RuntimeSettings) -> bool:
    """Whether the program takes several images at once and says how many boxes each has (``bbox_num``)."""
    if runtime.tensorrt:  # the engine's shape profile is for one image
        return False
    width, height = detector.manifest.preprocess.size
    feed = {"image": np.zeros((2, 3, height, width), dtype=np.float32),
            "im_shape": np.full((2, 2), (height, width), dtype=np.float32),
            "scale_factor": np.ones((2, 2), dtype=np.float32)}
    try:
        outputs = detector.session.run(feed)
    except Exception as error:  # Paddle raises plain RuntimeErrors for shapes a program cannot take
        logger.info("the detector runs one image at a time: %s", str(error).splitlines()[0][:160])
        return False
    return len(outputs) >= 2 and np.asarray(outputs[1]).reshape(-1).shape == (2,)


def warm_up(recognizer: Recognizer) -> None:
    image = np.full((480, 640, 3), 127, dtype=np.uint8)
    if recognizer.detector is not None:
        recognizer.detector.detect(image)
    recognizer.embedder.embed([image, image[:200, :300]])
