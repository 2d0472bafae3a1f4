"""Paddle Inference: the only module of the project that imports ``paddle.inference``.

A :class:`PaddleModel` owns one predictor and implements :class:`service.inference.session.Session`, the
only face of it the model classes and routes see. Predictors are not thread-safe, so every worker thread
gets its own through :meth:`PaddleModel.clone`, which shares the weights and the optimised program.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Paddle's Intel OpenMP keeps its math threads spinning for 200 ms after every run (KMP_BLOCKTIME's default):
# on a small machine they take the cores the request threads need to decode and prepare the next inputs. 1 ms
# still covers the gaps between the layers of one run. Read when OpenMP starts, so before Paddle is imported;
# a value in the environment wins.
os.environ.setdefault("KMP_BLOCKTIME", "1")

import paddle.inference as paddle_inference  # noqa: E402  (after the OpenMP setting above)

from service.config import Device, Precision, RuntimeSettings
from service.errors import ModelError
from service.inference.manifest import MODEL_STEMS
from service.inference.session import Array, SessionInfo

logger = logging.getLogger(__name__)
# input name -> (min, max, optimal) shapes of a TensorRT dynamic-shape profile
TensorRTShapes = dict[str, tuple[list[int], list[int], list[int]]]
# input names -> a feed that exercises the program once
Probe = Callable[[tuple[str, ...]], Mapping[str, Array]]

# Paddle 3.3.1's oneDNN executor cannot convert some attribute kinds of PIR programs (for example the
# double-array ``scale`` of interpolate ops, e.g. the neck upsampling of PaddleDetection 3.x PicoDet) and raises
# ``ConvertPirAttribute2RuntimeAttribute`` on the first run. Without the placement pass the program runs,
# with oneDNN kernels where the other oneDNN passes place them. Our own exports avoid such attributes, so
# this is only applied, with a warning, to programs that fail the probe run.
ONEDNN_INCOMPATIBLE_PASSES = ("onednn_placement_pass",)


@dataclass(frozen=True, slots=True)
class ModelFiles:
    program: Path
    params: Path

    @property
    def legacy(self) -> bool:
        """PaddlePaddle 2.x ``.pdmodel`` program (the format of the released PP-ShiTuV2 tars)."""
        return self.program.suffix == ".pdmodel"


def find_model_files(model_dir: Path) -> ModelFiles:
    """``inference.json`` (3.x PIR) or ``inference.pdmodel`` (2.x), stem ``inference`` or ``model``."""
    for stem in MODEL_STEMS:
        params = model_dir / f"{stem}.pdiparams"
        for suffix in (".json", ".pdmodel"):
            program = model_dir / f"{stem}{suffix}"
            if program.is_file() and params.is_file():
                return ModelFiles(program=program, params=params)
    raise ModelError(
        f"no Paddle inference model in {model_dir}: expected inference.json|pdmodel + inference.pdiparams "
        "(or the stem 'model')",
        model_dir=str(model_dir),
    )


class PaddleModel:
    """One Paddle Inference predictor: feed inputs by name, read outputs by position (a ``Session``)."""

    def __init__(self, predictor: paddle_inference.Predictor, files: ModelFiles, *,
                 passes_deleted: tuple[str, ...] = ()) -> None:
        self._predictor = predictor
        self.files = files
        self.passes_deleted = passes_deleted
        self.input_names: tuple[str, ...] = tuple(predictor.get_input_names())
        self._output_names: tuple[str, ...] = tuple(predictor.get_output_names())

    @classmethod
    def load(cls, model_dir: Path, settings: RuntimeSettings, *, probe: Probe | None,
             bf16: bool = False, trt_shapes: Callable[[], TensorRTShapes] | None = None) -> PaddleModel:
        """Load and run ``probe`` once, so a program the runtime cannot execute fails here, not on a request."""
        files = find_model_files(Path(model_dir))
        shapes = trt_shapes() if trt_shapes is not None and settings.tensorrt else None
        model = cls._create(files, settings, bf16=bf16, trt_shapes=shapes, delete=())
        if probe is None:
            return model
        feed = probe(model.input_names)
        try:
            model.run(feed)
        except NotImplementedError as error:
            if "ConvertPirAttribute2RuntimeAttribute" not in str(error) or files.legacy:
                raise ModelError(f"Paddle Inference cannot run {files.program}: {error}") from error
            logger.warning("%s: the oneDNN executor cannot run this program (%s); reloading without %s",
                           files.program, str(error).splitlines()[0][:160], ", ".join(ONEDNN_INCOMPATIBLE_PASSES))
            model = cls._create(files, settings, bf16=bf16, trt_shapes=shapes, delete=ONEDNN_INCOMPATIBLE_PASSES)
            model.run(feed)
        return model

    @classmethod
    def create(cls, model_dir: Path, settings: RuntimeSettings, *, bf16: bool = False,
               delete_passes: tuple[str, ...] = ()) -> PaddleModel:
        """Exactly the configured predictor: no probe run, no fallback (benchmarks and tests compare setups)."""
        return cls._create(find_model_files(Path(model_dir)), settings, bf16=bf16, trt_shapes=None,
                           delete=delete_passes)

    @classmethod
    def _create(cls, files: ModelFiles, settings: RuntimeSettings, *, bf16: bool, trt_shapes: TensorRTShapes | None,
                delete: tuple[str, ...]) -> PaddleModel:
        config = _make_config(files, settings, bf16=bf16, trt_shapes=trt_shapes)
        for name in delete:
            config.delete_pass(name)
        try:
            predictor = paddle_inference.create_predictor(config)
        except Exception as error:  # Paddle raises bare RuntimeError/ValueError subclasses with C++ traces
            raise ModelError(f"Paddle Inference cannot load {files.program}: {error}") from error
        logger.info("loaded %s (oneDNN %s, bf16 %s)", files.program, config.mkldnn_enabled(), bf16)
        return cls(predictor, files, passes_deleted=delete)

    @staticmethod
    def input_names_of(model_dir: Path) -> tuple[str, ...]:
        """Input names without building an optimised predictor (for probes and TensorRT profiles)."""
        files = find_model_files(Path(model_dir))
        config = paddle_inference.Config(str(files.program), str(files.params))
        config.disable_glog_info()
        config.switch_ir_optim(False)
        config.disable_mkldnn()
        return tuple(paddle_inference.create_predictor(config).get_input_names())

    @property
    def info(self) -> SessionInfo:
        return SessionInfo(
            directory=str(self.files.program.parent),
            format="paddle-2.x pdmodel" if self.files.legacy else "paddle-3.x json",
            passes_deleted=self.passes_deleted,
        )

    def clone(self) -> PaddleModel:
        return PaddleModel(self._predictor.clone(), self.files, passes_deleted=self.passes_deleted)

    def run(self, feed: Mapping[str, Array]) -> list[Array]:
        """Run once; ``feed`` may hold more inputs than the model takes (they are ignored)."""
        missing = [name for name in self.input_names if name not in feed]
        if missing:
            raise ModelError(f"{self.files.program} needs inputs {missing}")
        for name in self.input_names:
            handle = self._predictor.get_input_handle(name)
            array = np.ascontiguousarray(feed[name])
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        self._predictor.run()
        return [self._predictor.get_output_handle(name).copy_to_cpu() for name in self._output_names]


def _make_config(files: ModelFiles, settings: RuntimeSettings, *, bf16: bool,
                 trt_shapes: TensorRTShapes | None) -> paddle_inference.Config:
    config = paddle_inference.Config(str(files.program), str(files.params))
    config.disable_glog_info()
    config.switch_ir_optim(True)
    # enable_memory_optim() is left off on purpose: in Paddle 3.3.1 it makes create_predictor fail.
    if settings.device is Device.gpu:
        config.enable_use_gpu(settings.gpu_memory_mb, settings.gpu_id)
        if settings.tensorrt:
            _enable_tensorrt(config, settings, trt_shapes)
        return config
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(settings.cpu_threads)
    if settings.onednn:
        config.enable_mkldnn()
        config.set_mkldnn_cache_capacity(settings.onednn_cache_capacity)
        if bf16:
            config.enable_mkldnn_bfloat16()
    else:
        config.disable_mkldnn()
    return config


def _enable_tensorrt(config: paddle_inference.Config, settings: RuntimeSettings,
                     trt_shapes: TensorRTShapes | None) -> None:
    precision = (
        paddle_inference.PrecisionType.Half
        if settings.tensorrt_precision is Precision.fp16
        else paddle_inference.PrecisionType.Float32
    )
    config.enable_tensorrt_engine(
        workspace_size=settings.tensorrt_workspace_mb << 20,
        max_batch_size=settings.tensorrt_max_batch,
        min_subgraph_size=3,
        precision_mode=precision,
        use_static=settings.tensorrt_cache_dir is not None,
        use_calib_mode=False,
    )
    if settings.tensorrt_cache_dir is not None:
        settings.tensorrt_cache_dir.mkdir(parents=True, exist_ok=True)
        config.set_optim_cache_dir(str(settings.tensorrt_cache_dir))
    if trt_shapes:
        minimum = {name: shapes[0] for name, shapes in trt_shapes.items()}
        maximum = {name: shapes[1] for name, shapes in trt_shapes.items()}
        optimum = {name: shapes[2] for name, shapes in trt_shapes.items()}
        config.set_trt_dynamic_shape_info(minimum, maximum, optimum)


BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> frozenset[str]:
    """The first CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.split(":", 1)[1].split()) if ":" in line else frozenset()


def onednn_bf16_supported(flags: frozenset[str] | None = None) -> bool:
    """bf16 oneDNN kernels pay off only with AMX or AVX512-BF16 (elsewhere oneDNN emulates them, slower than fp32)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_FLAGS)
