"""Shared by the recognition tests: run an exported model in Paddle Inference and preprocess like the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle.inference as paddle_inference

from service.inference.image import normalize, resize
from service.inference.manifest import Preprocess


def predict(model_dir: Path, batch: np.ndarray, *, onednn: bool, threads: int = 2) -> np.ndarray:
    """Output 0 of ``inference.json`` for ``batch``, on CPU with oneDNN on or off."""
    config = paddle_inference.Config(str(model_dir / "inference.json"), str(model_dir / "inference.pdiparams"))
    config.disable_glog_info()
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    # A fresh Config has oneDNN on already; set both ways explicitly so each case is what it says.
    if onednn:
        config.enable_mkldnn()
    else:
        config.disable_mkldnn()
    predictor = paddle_inference.create_predictor(config)
    assert predictor.get_input_names() == ["x"]
    handle = predictor.get_input_handle("x")
    handle.reshape(list(batch.shape))
    handle.copy_from_cpu(np.ascontiguousarray(batch, dtype=np.float32))
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def to_batch(images: list[np.ndarray], preprocess: Preprocess) -> np.ndarray:
    """RGB uint8 images → the model's input batch, with the service's resize and normalisation."""
    return np.stack([normalize(resize(image, preprocess)[0], preprocess) for image in images])


def unit_rows(features: np.ndarray) -> np.ndarray:
    return features / np.linalg.norm(features, axis=1, keepdims=True)
