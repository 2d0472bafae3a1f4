"""A start from one of our own exported detectors (``model_store/detector/<version>``): fine-tune a shipped model.

The export's anonymous weights are named by :mod:`trainer.from_export`; this builds the network the manifest
records and exports the marked copy with the detector's exporter.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from service.inference.manifest import ManifestError, ModelKind, load_manifest
from trainer.detection.config import DataConfig, ModelConfig, TrainConfig, TrainDetectionConfig
from trainer.detection.export import PROGRAM_STEM, export_detector
from trainer.detection.setup import build_model
from trainer.from_export import ConversionError, save_state, state_from_export
from trainer.models.picodet import PicoDet

__all__ = ["ConversionError", "export_network", "write_start"]


def detector_state(model: PicoDet, model_dir: Path, input_size: int) -> dict:
    """The exported detector's weights under ``model``'s parameter names (``model``: an untrained network of the
    export's architecture)."""
    def export_marked(scratch: Path) -> Path:
        export_detector(model, scratch, name="markers", version="0", input_size=input_size,
                        labels=[f"class{index}" for index in range(model.num_classes)])
        return scratch / PROGRAM_STEM

    state, _ = state_from_export(model, Path(model_dir) / PROGRAM_STEM, export_marked)
    return state


def export_network(model_dir: Path) -> tuple[PicoDet, ModelConfig]:
    """A random network of the architecture the export's manifest records (``provenance.recipe.model``)."""
    try:
        manifest = load_manifest(Path(model_dir))
        settings = ModelConfig.model_validate(manifest.provenance["recipe"]["model"])
    except (ManifestError, KeyError, TypeError, ValidationError) as error:
        raise ConversionError(f"{model_dir}: no detector trained by `shitu train det` ({error})") from error
    if manifest.kind is not ModelKind.detector:
        raise ConversionError(f"{model_dir} holds a {manifest.kind.value}, not a detector")
    # only the network is built from it: no data is read, no weights but the export's are wanted
    recipe = TrainDetectionConfig(
        data=DataConfig(train_annotations=Path("unused.json")),
        model=settings.model_copy(update={"imagenet_backbone": False, "init_checkpoint": None,
                                          "backbone_checkpoint": None}),
        train=TrainConfig(sizes=[settings.input_size]),
    )
    return build_model(recipe, len(manifest.labels)), settings


def write_start(model_dir: Path, out: Path) -> Path:
    """Write the export's weights as a whole-detector ``.pdparams`` for ``model.init_checkpoint``."""
    model, settings = export_network(model_dir)
    return save_state(detector_state(model, model_dir, settings.input_size), out)
