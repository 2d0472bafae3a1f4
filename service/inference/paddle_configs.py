"""Translate PaddleDetection's and PaddleClas's configs into a manifest: the deploy configs their exports write
(``infer_cfg.yml``, ``inference.yml``) and, for a plain export that has neither, the training YAML it came from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from service.inference.manifest import Interpolation, ManifestError, ModelKind, ModelManifest, Preprocess

# cv2 interpolation codes as PaddleDetection writes them (`interp: 2` is INTER_CUBIC).
_CV2_CODES = {0: Interpolation.nearest, 1: Interpolation.linear, 2: Interpolation.cubic, 3: Interpolation.area}
_NAMES = {"nearest": Interpolation.nearest, "bilinear": Interpolation.linear, "linear": Interpolation.linear,
          "bicubic": Interpolation.cubic, "cubic": Interpolation.cubic, "area": Interpolation.area}


def manifest_from_paddle_config(
    model_dir: Path, *, embedding_dim: Callable[[], int] | None = None
) -> ModelManifest | None:
    detection = model_dir / "infer_cfg.yml"
    classification = model_dir / "inference.yml"
    if detection.is_file():
        return _detector_manifest(model_dir, _read(detection))
    if classification.is_file():
        if embedding_dim is None:
            raise ManifestError(f"{classification}: the embedding size is only known by running the model")
        return _embedder_manifest(model_dir, _read(classification), embedding_dim())
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError(f"{path}: {error}") from error
    if not isinstance(content, dict):
        raise ManifestError(f"{path}: expected a mapping at the top level")
    return content


def _detector_manifest(model_dir: Path, config: dict[str, Any]) -> ModelManifest:
    steps = {step.get("type"): step for step in config.get("Preprocess", []) if isinstance(step, dict)}
    resize, norm = steps.get("Resize"), steps.get("NormalizeImage")
    if resize is None or norm is None or set(steps) - {"Resize", "NormalizeImage", "Permute"}:
        raise ManifestError(f"{model_dir}/infer_cfg.yml: only Resize + NormalizeImage + Permute are supported")
    height, width = resize["target_size"]
    preprocess = Preprocess(
        size=(int(width), int(height)),
        interpolation=_CV2_CODES.get(int(resize.get("interp", 1)), Interpolation.linear),
        keep_ratio=bool(resize.get("keep_ratio", False)),
        scale=1.0 / 255.0 if norm.get("is_scale", True) else 1.0,
        mean=tuple(norm.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(norm.get("std", (0.229, 0.224, 0.225))),
    )
    return ModelManifest(
        kind=ModelKind.detector,
        name=model_dir.name,
        architecture=str(config.get("arch", "")),
        preprocess=preprocess,
        labels=[str(label) for label in config.get("label_list", ["foreground"])],
        provenance={"source": "infer_cfg.yml"},
    )


def _embedder_manifest(model_dir: Path, config: dict[str, Any], embedding_dim: int) -> ModelManifest:
    operations = config.get("PreProcess", {}).get("transform_ops", [])
    steps = {name: (options or {}) for step in operations if isinstance(step, dict) for name, options in step.items()}
    resize, norm = steps.get("ResizeImage"), steps.get("NormalizeImage", {})
    if resize is None or "size" not in resize or set(steps) - {"ResizeImage", "NormalizeImage", "ToCHWImage"}:
        raise ManifestError(f"{model_dir}/inference.yml: only a fixed-size ResizeImage + NormalizeImage is supported")
    size = resize["size"]
    width, height = (size, size) if isinstance(size, int) else size
    scale = norm.get("scale", 1.0 / 255.0)
    preprocess = Preprocess(
        size=(int(width), int(height)),
        interpolation=_NAMES.get(str(resize.get("interpolation", "bilinear")), Interpolation.linear),
        scale=float(eval_fraction(scale)),
        mean=tuple(norm.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(norm.get("std", (0.229, 0.224, 0.225))),
    )
    return ModelManifest(kind=ModelKind.embedder, name=model_dir.name, preprocess=preprocess,
                         embedding_dim=embedding_dim, provenance={"source": "inference.yml"})


def eval_fraction(value: object) -> float:
    """PaddleClas writes ``scale: 1.0/255.0`` as a string."""
    if isinstance(value, int | float):
        return float(value)
    numerator, _, denominator = str(value).partition("/")
    try:
        return float(numerator) / (float(denominator) if denominator else 1.0)
    except ValueError as error:
        raise ManifestError(f"cannot read the scale {value!r}") from error


def read_training_config(path: Path) -> dict[str, Any]:
    """A PaddleClas or PaddleDetection training YAML, PaddleDetection's ``_BASE_`` files merged in first."""
    config = _read(path)
    merged: dict[str, Any] = {}
    for base in config.pop("_BASE_", None) or []:
        merged = _merged(merged, read_training_config((path.parent / str(base)).resolve()))
    return _merged(merged, config)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        result[key] = _merged(result[key], value) if isinstance(value, dict) and isinstance(
            result.get(key), dict) else value
    return result


def manifest_from_training_config(
    model_dir: Path, config_path: Path, *, embedding_dim: Callable[[], int]
) -> ModelManifest:
    """The manifest of a plain export, from the training config it was exported with (``-c ….yaml``).

    PaddleDetection: ``TestReader.sample_transforms``. PaddleClas: ``Infer.transforms``, else the retrieval
    evaluation's ``DataLoader.Eval.Query`` transforms (GeneralRecognitionV2 configs have no ``Infer``).
    """
    config = read_training_config(config_path)
    if "TestReader" in config or "architecture" in config:
        manifest = _detector_manifest(model_dir, _detection_deploy_config(config, config_path))
    elif "Arch" in config:
        manifest = _embedder_manifest(model_dir, _classification_deploy_config(config, config_path), embedding_dim())
    else:
        raise ManifestError(f"{config_path}: neither a PaddleClas (Arch) nor a PaddleDetection (TestReader) config")
    return manifest.model_copy(update={"provenance": {"source": f"training config {config_path.name}"}})


def _detection_deploy_config(config: dict[str, Any], config_path: Path) -> dict[str, Any]:
    transforms = (config.get("TestReader") or {}).get("sample_transforms") or []
    steps = [{"type": name, **(options or {})} for step in transforms if isinstance(step, dict)
             for name, options in step.items() if name != "Decode"]
    if not steps:
        raise ManifestError(f"{config_path}: no TestReader.sample_transforms")
    classes = int(config.get("num_classes", 1))
    labels = ["foreground"] if classes == 1 else [str(index) for index in range(classes)]
    return {"Preprocess": steps, "arch": config.get("architecture", ""), "label_list": labels}


def _classification_deploy_config(config: dict[str, Any], config_path: Path) -> dict[str, Any]:
    evaluation = (config.get("DataLoader") or {}).get("Eval") or {}
    dataset = ((evaluation.get("Query") or evaluation).get("dataset")) or {}
    operations = (config.get("Infer") or {}).get("transforms") or dataset.get("transform_ops") or []
    steps = []
    for step in operations:
        name, options = next(iter(step.items())) if isinstance(step, dict) else (str(step), None)
        if name == "DecodeImage":
            if not (options or {}).get("to_rgb", True):
                raise ManifestError(f"{config_path}: DecodeImage.to_rgb false (BGR input) is not supported")
            continue
        steps.append({name: options})
    if not steps:
        raise ManifestError(f"{config_path}: no Infer.transforms or DataLoader.Eval transform_ops")
    return {"PreProcess": {"transform_ops": steps}}
