"""``shitu models manifest``: the manifest of a plain PaddleClas or PaddleDetection export, written for the user.

A plain export (``tools/export_model.py`` without ``export_for_fd``) holds only the program and its weights.
Its numbers come from the training config it was exported with, or from a preset: the preprocessing and
thresholds of an official PP-ShiTuV2 model (``shitu models list``), for a model fine-tuned from it.
"""

from __future__ import annotations

from pathlib import Path

from service.config import RuntimeSettings
from service.inference.manifest import MANIFEST_FILE, ManifestError, ModelKind, ModelManifest
from service.inference.paddle_configs import manifest_from_training_config
from service.registry.known import KNOWN_MODELS


def presets() -> dict[str, ModelManifest]:
    return {name: model.manifest for name, model in KNOWN_MODELS.items() if model.manifest is not None}


def describe_plain_export(model_dir: Path, runtime: RuntimeSettings, *, preset: str | None = None,
                          config: Path | None = None, name: str | None = None, version: str = "0",
                          overwrite: bool = False) -> ModelManifest:
    """Write ``manifest.json`` into ``model_dir`` from ``config`` or ``preset`` (exactly one), and return it."""
    from service.inference.models import model_input_names, probe_embedding_dim

    if (preset is None) == (config is None):
        raise ManifestError("give either a training config or a preset")
    if (model_dir / MANIFEST_FILE).is_file() and not overwrite:
        raise ManifestError(f"{model_dir / MANIFEST_FILE} exists (--overwrite replaces it)")
    inputs = list(model_input_names(model_dir))

    def embedding_dim() -> int:
        return probe_embedding_dim(model_dir, runtime)

    if config is not None:
        manifest = manifest_from_training_config(model_dir, config, embedding_dim=embedding_dim)
    else:
        known = presets()
        if preset not in known:
            raise ManifestError(f"unknown preset {preset!r}; presets: {', '.join(known)}")
        manifest = known[preset].model_copy(update={"provenance": {"source": f"preset {preset}"}})
        if manifest.kind is ModelKind.embedder:
            manifest = manifest.model_copy(update={"embedding_dim": embedding_dim()})
    manifest = ModelManifest.model_validate({**manifest.model_dump(), "name": name or model_dir.resolve().name,
                                             "version": version, "inputs": inputs})
    manifest.write(model_dir)
    return manifest
