"""The PicoDet post-processing has one definition: the docs state its numbers, the export and evaluation use it."""

from __future__ import annotations

import re
from pathlib import Path

from trainer.detection import export, predict
from trainer.detection.postprocess import PICODET_NMS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _text(name: str) -> str:
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())


def test_the_docs_state_the_numbers_of_the_one_definition() -> None:
    detector = _text("trainer-detector.md")
    training = _text("trainer-detection-training.md")
    nms = PICODET_NMS

    assert f"`nms_pre` = {nms.nms_pre} anchors per level" in detector
    assert (f"`multiclass_nms3` (score threshold {nms.score_threshold:g}, nms_top_k {nms.nms_top_k}, "
            f"keep_top_k {nms.keep_top_k}, IoU {nms.iou_threshold:g}") in detector
    assert re.search(rf"per level the {nms.nms_pre} best anchors, no clipping, per class the {nms.nms_top_k} best "
                     rf"scores over {nms.score_threshold:g}, NMS at IoU {nms.iou_threshold:g}, the best "
                     rf"{nms.keep_top_k} of the image", training)


def test_export_and_evaluation_take_it_from_there() -> None:
    assert export.NmsSettings is predict.NmsSettings
    assert predict.predict_dataset.__kwdefaults__["nms"] is PICODET_NMS
