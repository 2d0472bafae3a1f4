"""A start from one of our own exported embedders (``model_store/embedder/<version>``): fine-tune a shipped model.

The export's anonymous weights are named by :mod:`trainer.from_export`; this builds the network the manifest
records (without a classifier: the export has none, so a fine-tuning trains a new head) and exports the marked
copy with the embedder's exporter.
"""

from __future__ import annotations

from pathlib import Path

from service.inference.manifest import ManifestError, ModelKind, load_manifest
from trainer.from_export import ConversionError, save_state, state_from_export
from trainer.models.recognition import ARCHITECTURES, RecognitionModel, build_recognition_model
from trainer.recognition.export import MODEL_STEM, export_recognition

__all__ = ["ConversionError", "export_network", "write_start"]


def export_network(model_dir: Path) -> tuple[RecognitionModel, int]:
    """A network of the architecture the export's manifest records (``provenance.recipe.model.arch``), without
    a classifier, and the export's input side."""
    try:
        manifest = load_manifest(Path(model_dir))
        arch = manifest.provenance["recipe"]["model"]["arch"]
    except (ManifestError, KeyError, TypeError) as error:
        raise ConversionError(f"{model_dir}: no embedder trained by `shitu train rec` ({error})") from error
    if manifest.kind is not ModelKind.embedder:
        raise ConversionError(f"{model_dir} holds a {manifest.kind.value}, not an embedder")
    if arch not in ARCHITECTURES:
        raise ConversionError(f"{model_dir}: unknown architecture {arch!r}")
    model = build_recognition_model(arch)
    if any(hasattr(layer, "re_parameterize") for layer in model.sublayers()):
        # the export folds parallel branches into one kernel: a sum that cannot be split back into them
        raise ConversionError(f"{arch} is re-parameterized at export; start from its training checkpoint")
    return model, manifest.preprocess.size[0]


def write_start(model_dir: Path, out: Path) -> Path:
    """Write the export's weights (backbone, projection, BNNeck) as a ``.pdparams`` for ``model.init_checkpoint``."""
    model, input_size = export_network(model_dir)

    def export_marked(scratch: Path) -> Path:
        export_recognition(model, scratch, name="markers", version="0", input_size=input_size)
        return scratch / MODEL_STEM

    state, read = state_from_export(model, Path(model_dir) / MODEL_STEM, export_marked)
    unread = sorted(set(state) - read)
    if unread:
        raise ConversionError(f"{model_dir}: the export never reads {', '.join(unread[:3])}: not this architecture")
    return save_state(state, out)
