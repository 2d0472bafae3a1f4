"""The frozen leading stages of a backbone, run by Paddle Inference instead of the dygraph CPU kernels.

Frozen stages only ever run forward in eval mode, so their output is that of the exported program. On a
CPU the oneDNN predictor is several times faster than dygraph (EfficientNet-Lite0 at 160 px, 7 frozen
stages, 2 cores: about 11 ms an image instead of about 50), and that forward is most of a training step
when only the last stages train. Exported once when training starts: the frozen weights never change.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import paddle
from numpy.typing import NDArray
from paddle import nn
from paddle.static import InputSpec

from service.config import RuntimeSettings
from service.inference.runtime import PaddleModel
from trainer.models.picodet import PicoDet
from trainer.models.recognition import RecognitionModel

logger = logging.getLogger(__name__)

TRUNK_STEM = "inference"


class _TrunkGraph(nn.Layer):
    def __init__(self, backbone: nn.Layer, stop: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.stop = stop

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.backbone.run_stages(x, 0, self.stop)


class FrozenTrunk:
    """Stages ``0 .. stages - 1`` of ``model``'s backbone (one with ``stage_count`` and ``run_stages``: the
    EfficientNet-Lite0 of the embedder or the detector, NanoDet-g's CSP net) as a Paddle Inference predictor."""

    def __init__(self, model: RecognitionModel | PicoDet, stages: int, image_size: int, work_dir: Path,
                 threads: int) -> None:
        if not 0 < stages <= model.backbone.stage_count:
            raise ValueError(f"a frozen trunk needs 1..{model.backbone.stage_count} stages, not {stages}")
        self.stages = stages
        backbone = copy.deepcopy(model.backbone)
        backbone.eval()
        graph = _TrunkGraph(backbone, stages)
        graph.eval()
        spec = InputSpec([None, 3, image_size, image_size], "float32", name="x")
        work_dir.mkdir(parents=True, exist_ok=True)
        paddle.jit.save(paddle.jit.to_static(graph, input_spec=[spec], full_graph=True), str(work_dir / TRUNK_STEM))
        self._model = PaddleModel.load(work_dir, RuntimeSettings(cpu_threads=threads, warmup=False), probe=None)
        logger.info("frozen stages 0..%d run in Paddle Inference (%s)", stages - 1, work_dir)

    def __call__(self, images: NDArray[np.float32]) -> paddle.Tensor:
        return paddle.to_tensor(self._model.run({"x": images.astype(np.float32, copy=False)})[0])


def network_input(trunk: FrozenTrunk | None, images: NDArray[np.float32]) -> tuple[paddle.Tensor, int]:
    """What the trainable part of the model takes for an image batch, and the stage it starts at."""
    if trunk is None:
        return paddle.to_tensor(images), 0
    return trunk(images), trunk.stages
