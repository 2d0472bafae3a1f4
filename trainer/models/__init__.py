"""Networks of the trainer: the recognition model (PP-ShiTuV2 PPLCNetV2_base, EfficientNet-Lite0) and PicoDet."""

from trainer.models.recognition import (
    ARCHITECTURES,
    RecognitionModel,
    build_recognition_model,
    load_recognition_checkpoint,
)

__all__ = ["ARCHITECTURES", "RecognitionModel", "build_recognition_model", "load_recognition_checkpoint"]
