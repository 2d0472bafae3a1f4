"""PPLCNetV2_base + BNNeck equals PaddleClas's PP-ShiTuV2 recognition model, parameter for parameter.

Weights are filled by the fixture README's rule, so the expected features come from the original
PaddleClas code; they are compared in dynamic graph and after export through Paddle Inference,
loaded the way the service loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest

from tests.parity_weights import RECOGNITION, fill_state
from tests.trainer.recognition_helpers import service_embeddings, to_batch, unit_rows
from trainer.models import RecognitionModel, build_recognition_model, load_recognition_checkpoint
from trainer.recognition.export import export_recognition

FIXTURE_CLASSES = 16
# Deploy form of PPLCNetV2_base_ShiTu + BNNeck (spec 1.5): trainable parameters + BN running statistics.
DEPLOY_TRAINABLE = 4_558_336
DEPLOY_STATISTICS = 17_280
MIN_COSINE = 0.99999
MAX_NORMALIZED_DIFFERENCE = 1e-5


@pytest.fixture(scope="module")
def reference_shapes(parity_dir: Path) -> dict[str, tuple[int, ...]]:
    entries = json.loads((parity_dir / "rec_params.json").read_text())["params"]
    return {entry["name"]: tuple(entry["shape"]) for entry in entries}


@pytest.fixture(scope="module")
def parity_model(reference_shapes: dict[str, tuple[int, ...]]) -> RecognitionModel:
    model = build_recognition_model("pplcnetv2_base", FIXTURE_CLASSES)
    state = fill_state(reference_shapes.items(), RECOGNITION)
    load_recognition_checkpoint(model, state)
    model.eval()
    return model


@pytest.fixture(scope="module")
def rgb_images(parity_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(parity_dir / f"img{index}.png"))[:, :, ::-1].copy() for index in range(3)]


@pytest.fixture(scope="module")
def expected(parity_dir: Path) -> np.ndarray:
    return unit_rows(np.load(parity_dir / "rec_features.npy"))


@pytest.fixture(scope="module")
def exported_dir(parity_model: RecognitionModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("pplcnetv2_export")
    export_recognition(parity_model, out_dir, name="parity", version="0", provenance={"weights": "fixture rule"})
    return out_dir


def assert_features_match(features: np.ndarray, expected: np.ndarray) -> None:
    normalized = unit_rows(features)
    assert normalized.shape == expected.shape
    assert (normalized * expected).sum(axis=1).min() > MIN_COSINE
    assert np.abs(normalized - expected).max() < MAX_NORMALIZED_DIFFERENCE


def model_input(model: RecognitionModel, images: list[np.ndarray]) -> paddle.Tensor:
    return paddle.to_tensor(to_batch(images, model.preprocess))


def test_state_dict_names_and_shapes_equal_paddleclas(reference_shapes: dict[str, tuple[int, ...]]) -> None:
    model = build_recognition_model("pplcnetv2_base", FIXTURE_CLASSES)
    own = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    assert sorted(set(own) - set(reference_shapes)) == []
    assert sorted(set(reference_shapes) - set(own)) == []
    assert own == reference_shapes


def test_dynamic_graph_features_match_reference(
    parity_model: RecognitionModel, rgb_images: list[np.ndarray], expected: np.ndarray
) -> None:
    with paddle.no_grad():
        outputs = parity_model(model_input(parity_model, rgb_images))
    assert outputs["logits"].shape == [3, FIXTURE_CLASSES]
    assert_features_match(outputs["features"].numpy(), expected)


def test_dropout_before_the_neck_scales_by_0_8_in_eval(parity_model: RecognitionModel) -> None:
    dropout = parity_model.backbone.dropout
    ones = paddle.ones([2, 8])
    assert np.allclose(dropout(ones).numpy(), 0.8)


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "plain"])
def test_exported_model_matches_reference_in_the_service_embedder(
    exported_dir: Path, rgb_images: list[np.ndarray], expected: np.ndarray, onednn: bool
) -> None:
    # The service's loader reads the manifest, preprocesses and runs Paddle Inference.
    assert_features_match(service_embeddings(exported_dir, rgb_images, onednn=onednn, batch_size=3), expected)
    # The batch dimension is dynamic: one image per run gives the same features.
    assert_features_match(service_embeddings(exported_dir, rgb_images, onednn=onednn, batch_size=1), expected)


def test_exported_model_is_the_folded_deploy_form(exported_dir: Path, parity_model: RecognitionModel) -> None:
    program = paddle.jit.load(str(exported_dir / "inference"))
    counts = {True: 0, False: 0}
    for parameter in program.parameters():
        counts[parameter.stop_gradient] += int(np.prod(parameter.shape))
    assert counts[False] + counts[True] == DEPLOY_TRAINABLE + DEPLOY_STATISTICS
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    assert manifest["kind"] == "embedder" and manifest["embedding_dim"] == 512
    assert manifest["architecture"] == "pplcnetv2_base" and manifest["inputs"] == ["x"]
    assert manifest["embedder"]["match_threshold"] == 0.5
    assert manifest["preprocess"]["mean"] == [0.485, 0.456, 0.406] and manifest["preprocess"]["size"] == [224, 224]
    # Export works on a copy: the caller's model still has its separate branches.
    assert not any(getattr(layer, "is_reparameterized", False) for layer in parity_model.sublayers())


def test_reparameterized_branches_give_the_same_features(
    parity_model: RecognitionModel, rgb_images: list[np.ndarray], expected: np.ndarray
) -> None:
    folded = build_recognition_model("pplcnetv2_base", FIXTURE_CLASSES)
    folded.set_state_dict(parity_model.state_dict())
    folded.eval()
    folded.reparameterize()
    with paddle.no_grad():
        features = folded.embed(model_input(folded, rgb_images)).numpy()
    assert_features_match(features, expected)


# What PaddleClas's tools/export_model.py writes with Global.export_for_fd=True (the preprocessing part).
INFERENCE_YML = """\
PreProcess:
  transform_ops:
  - ResizeImage:
      size: [224, 224]
      return_numpy: false
      interpolation: bilinear
      backend: cv2
  - NormalizeImage:
      scale: 1.0/255.0
      mean: [0.485, 0.456, 0.406]
      std: [0.229, 0.224, 0.225]
      order: hwc
  - ToCHWImage: null
PostProcess:
  NormalizeFeatures: null
"""

# The parts of PaddleClas's GeneralRecognitionV2_PPLCNetV2_base.yaml a plain export is described by: it has
# no Infer section, and the retrieval evaluation's query transforms are the model's preprocessing.
TRAINING_YAML = """\
Global:
  image_shape: [3, 224, 224]
  eval_mode: retrieval
Arch:
  name: RecModel
  infer_output_key: features
  Backbone: {name: PPLCNetV2_base_ShiTu, class_expand: 512}
  Neck: {name: BNNeck, num_features: 512}
  Head: {name: FC, embedding_size: 512, class_num: 16}
DataLoader:
  Train:
    dataset:
      transform_ops:
        - DecodeImage: {to_rgb: True, channel_first: False}
        - RandFlipImage: {flip_code: 1}
  Eval:
    Query:
      dataset:
        name: VeriWild
        transform_ops:
          - DecodeImage: {to_rgb: True, channel_first: False}
          - ResizeImage: {size: [224, 224], return_numpy: False, interpolation: bilinear, backend: cv2}
          - NormalizeImage: {scale: 1.0/255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: hwc}
"""


def _plain_copy(exported_dir: Path, destination: Path) -> Path:
    """The export as PaddleClas writes it without export_for_fd: program and weights, nothing else."""
    import shutil

    shutil.copytree(exported_dir, destination, ignore=shutil.ignore_patterns("manifest.json", "*.yml"))
    assert sorted(path.name for path in destination.iterdir()) == ["inference.json", "inference.pdiparams"]
    return destination


def test_a_plain_paddleclas_export_serves_after_shitu_models_manifest(
    exported_dir: Path, rgb_images: list[np.ndarray], expected: np.ndarray, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from service.cli import app
    from service.config import RuntimeSettings
    from service.errors import ModelError
    from service.inference.models import load_embedder

    with_yml = _plain_copy(exported_dir, tmp_path / "with_yml")
    (with_yml / "inference.yml").write_text(INFERENCE_YML, encoding="utf-8")
    reference = service_embeddings(with_yml, rgb_images, onednn=True, batch_size=3)
    assert_features_match(reference, expected)

    plain = _plain_copy(exported_dir, tmp_path / "plain")
    with pytest.raises(ModelError, match="shitu models manifest .* --config .*--preset ppshituv2-rec"):
        load_embedder(plain, RuntimeSettings(cpu_threads=1), max_batch_size=1)

    config = tmp_path / "GeneralRecognitionV2_PPLCNetV2_base.yaml"
    config.write_text(TRAINING_YAML, encoding="utf-8")
    from_config = CliRunner().invoke(app, ["models", "manifest", str(plain), "--config", str(config)])
    assert from_config.exit_code == 0, from_config.output
    assert "embedder plain@0, 224x224 linear, 512-d" in from_config.output
    np.testing.assert_allclose(service_embeddings(plain, rgb_images, onednn=True, batch_size=3), reference, atol=1e-6)

    preset_dir = _plain_copy(exported_dir, tmp_path / "preset")
    from_preset = CliRunner().invoke(app, ["models", "manifest", str(preset_dir), "--preset", "ppshituv2-rec"])
    assert from_preset.exit_code == 0, from_preset.output
    np.testing.assert_allclose(service_embeddings(preset_dir, rgb_images, onednn=True, batch_size=3), reference,
                               atol=1e-6)
    manifest = json.loads((preset_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"]["match_threshold"] == 0.5
    assert manifest["provenance"] == {"source": "preset ppshituv2-rec"}

    again = CliRunner().invoke(app, ["models", "manifest", str(preset_dir), "--preset", "ppshituv2-rec"])
    assert again.exit_code == 2 and "exists (--overwrite replaces it)" in again.output
