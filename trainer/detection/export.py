"""Export a PicoDet to a Paddle Inference model with PaddleDetection's PicoDet export contract.

Inputs ``image`` [N,3,S,S] and ``scale_factor`` [N,2] (S/h, S/w), as PaddleDetection's exports (no ``im_shape``:
nothing is clipped to the input frame, so the graph does not need it). Outputs by position: 0 = ``bbox`` [M,6]
rows (class, score, x1, y1, x2, y2) in original-image pixels, not clipped to the image, sorted by score per image;
1 = ``bbox_num`` [N] int32. Score threshold and NMS run inside the graph: the one definition in ``postprocess.py``.
Beside the program: ``infer_cfg.yml`` (PaddleDetection's deploy config, for tools that read it) and our
``manifest.json`` (what the service reads).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import paddle
import yaml
from paddle import _C_ops, nn
from paddle.static import InputSpec

from service.inference.manifest import DetectorDefaults, Interpolation, ModelKind, ModelManifest, Preprocess
from trainer.detection.postprocess import NmsSettings
from trainer.models.picodet import SIZE_MULTIPLE, PicoDet

PROGRAM_STEM = "inference"
INPUT_NAMES = ("image", "scale_factor")
CV2_INTER_CUBIC = 2


class DetectorWithPostProcess(nn.Layer):
    """The network plus decoding, per-level top-k, rescaling to the original image and multi-class NMS."""

    def __init__(self, model: PicoDet, nms: NmsSettings) -> None:
        super().__init__()
        self.model = model
        self.nms = nms

    def forward(self, image: paddle.Tensor, scale_factor: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        scores, boxes = self.model.head.decode_levels(*self.model(image))
        scores, boxes = _top_anchors_per_level(scores, boxes, self.nms.nms_pre)
        # No clipping before NMS, as PaddleDetection's PicoHead.post_process: clipped boxes overlap more, and
        # another set would survive. The service clips where it crops. scale_factor is (y, x), boxes x1y1x2y2.
        factor = scale_factor.unsqueeze(1)
        boxes = boxes / paddle.concat([factor[:, :, 1:], factor[:, :, :1]] * 2, axis=-1)
        # Paddle has no public multi-class NMS API; this is the op PaddleDetection's exports carry.
        bbox, _, bbox_num = _C_ops.multiclass_nms3(
            boxes,
            scores,
            None,
            self.nms.score_threshold,
            self.nms.nms_top_k,
            self.nms.keep_top_k,
            self.nms.iou_threshold,
            True,  # normalized: IoU without PaddleDetection's legacy +1 pixel
            1.0,  # nms_eta: plain greedy NMS
            -1,  # background_label: none, every class is an object class
        )
        return bbox, bbox_num


def _top_anchors_per_level(
    scores: list[paddle.Tensor], boxes: list[paddle.Tensor], nms_pre: int
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Keep the ``nms_pre`` anchors with the best class score on each level, as PaddleDetection does before NMS."""
    kept_scores, kept_boxes = [], []
    for level, level_scores in enumerate(scores):
        level_boxes = boxes[level]
        if level_scores.shape[2] > nms_pre:
            _, index = paddle.topk(level_scores.max(axis=1), nms_pre, axis=1)
            level_scores = paddle.take_along_axis(level_scores, index.unsqueeze(1), axis=2)
            level_boxes = paddle.take_along_axis(level_boxes, index.unsqueeze(2), axis=1)
        kept_scores.append(level_scores)
        kept_boxes.append(level_boxes)
    return paddle.concat(kept_scores, axis=2), paddle.concat(kept_boxes, axis=1)


def infer_config(input_size: int, labels: list[str], preprocess: Preprocess) -> dict[str, Any]:
    """PaddleDetection's ``infer_cfg.yml`` for this export (``interp: 2`` is cv2.INTER_CUBIC)."""
    return {
        "mode": "paddle",
        "draw_threshold": 0.5,
        "metric": "COCO",
        "use_dynamic_shape": False,
        "arch": "PicoDet",
        "min_subgraph_size": 3,
        "Preprocess": [
            {"type": "Resize", "interp": CV2_INTER_CUBIC, "keep_ratio": False, "target_size": [input_size] * 2},
            {"type": "NormalizeImage", "is_scale": True, "mean": list(preprocess.mean), "std": list(preprocess.std)},
            {"type": "Permute"},
        ],
        "label_list": list(labels),
    }


def export_detector(
    model: PicoDet,
    out_dir: Path,
    *,
    name: str,
    version: str,
    input_size: int = 640,
    labels: list[str] | None = None,
    provenance: dict[str, Any] | None = None,
    architecture: str | None = None,
    nms: NmsSettings | None = None,
) -> ModelManifest:
    """Write ``inference.json`` + ``inference.pdiparams`` + ``infer_cfg.yml`` + ``manifest.json`` into ``out_dir``."""
    labels = list(labels) if labels is not None else ["foreground"]
    nms = nms or NmsSettings()
    if input_size <= 0 or input_size % SIZE_MULTIPLE:
        raise ValueError(f"input_size must be a positive multiple of {SIZE_MULTIPLE}, got {input_size}")
    if len(labels) != model.num_classes:
        raise ValueError(f"{len(labels)} labels for a detector of {model.num_classes} classes")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    specs = [
        InputSpec([None, 3, input_size, input_size], "float32", INPUT_NAMES[0]),
        InputSpec([None, 2], "float32", INPUT_NAMES[1]),
    ]
    try:
        paddle.jit.save(DetectorWithPostProcess(model, nms), str(out_dir / PROGRAM_STEM), input_spec=specs)
    finally:
        model.train(was_training)
    preprocess = Preprocess(size=(input_size, input_size), interpolation=Interpolation.cubic, keep_ratio=False)
    config = infer_config(input_size, labels, preprocess)
    (out_dir / "infer_cfg.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    manifest = ModelManifest(
        kind=ModelKind.detector,
        name=name,
        version=version,
        architecture=architecture or model.architecture,
        preprocess=preprocess,
        inputs=list(INPUT_NAMES),
        labels=labels,
        detector=DetectorDefaults(score_threshold=0.2, max_detections=5),
        provenance={**(provenance or {}), "post_process": asdict(nms)},
    )
    manifest.write(out_dir)
    return manifest
