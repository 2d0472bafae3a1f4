"""End-to-end recognition training on a generated 8-class dataset: loss, checkpoints, resume, export, CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from service.config import RuntimeSettings
from service.inference.models import load_embedder
from shitu.cli import app
from tests.trainer.recognition_helpers import CLASSES, PER_CLASS, make_shapes_dataset
from trainer.checkpoint import read_pdparams
from trainer.models.recognition import build_recognition_model
from trainer.recognition.checkpoints import MODEL_FILE, read_progress, resolve_checkpoint
from trainer.recognition.config import load_recognition_config
from trainer.recognition.evaluate import build_evaluation, evaluate
from trainer.recognition.train import RecognitionTrainer, TrainResult

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CI_CONFIG = REPO / "trainer" / "configs" / "recognition_ci.yaml"


@dataclass
class Run:
    data: Path
    output: Path
    trainer: RecognitionTrainer
    result: TrainResult


def _config(data: Path, output: Path, *extra: str):  # noqa: ANN202 - the config type is obvious
    return load_recognition_config(CI_CONFIG, [f"data.root={data}", f"output={output}", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Run:
    data = make_shapes_dataset(tmp_path_factory.mktemp("shapes"))
    output = tmp_path_factory.mktemp("run")
    trainer = RecognitionTrainer(_config(data, output))
    return Run(data, output, trainer, trainer.train())


def test_loss_goes_down(trained: Run) -> None:
    losses = trained.result.losses
    assert len(losses) == 9  # 3 epochs x ceil(48 / 16) steps
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.2, losses


def test_checkpoints_every_epoch_and_best_by_recall(trained: Run) -> None:
    saved = sorted(path.name for path in (trained.output / "checkpoints").iterdir())
    assert saved == ["epoch_0001", "epoch_0002", "epoch_0003"]
    assert resolve_checkpoint(trained.output).name == "epoch_0003"
    best = read_progress(trained.output / "best")
    final = read_progress(trained.output / "checkpoints" / "epoch_0003")
    assert best.best_recall1 == best.metrics["recall1"] >= final.metrics["recall1"]
    assert final.best_recall1 == best.best_recall1 and final.best_epoch == best.epoch
    assert set(final.metrics) == {"recall1", "recall5", "mAP"}


def test_frozen_stages_do_not_move(trained: Run) -> None:
    initial = build_recognition_model("efficientnet_lite0", 8, pretrained=True).state_dict()
    trained_state = read_pdparams(trained.output / "checkpoints" / "epoch_0003" / MODEL_FILE)
    # freeze_stages 4 = stem + the first three block groups (blocks 0-4), BN statistics included.
    for name in ("backbone._conv_stem.weight", "backbone._bn0._mean", "backbone._blocks.4._bn2._variance"):
        np.testing.assert_array_equal(trained_state[name], initial[name].numpy())
    moved = (
        trained_state["backbone._blocks.10._project_conv.weight"]
        - initial["backbone._blocks.10._project_conv.weight"].numpy()
    )
    assert np.abs(moved).max() > 0


def test_resume_replays_the_uninterrupted_run(trained: Run, tmp_path: Path) -> None:
    resumed = RecognitionTrainer(_config(trained.data, tmp_path))
    resumed.resume(trained.output / "checkpoints" / "epoch_0002")
    assert resumed.progress.step == 6
    result = resumed.train()
    np.testing.assert_allclose(result.losses, trained.result.losses[6:], rtol=1e-5)
    uninterrupted = read_pdparams(trained.output / "checkpoints" / "epoch_0003" / MODEL_FILE)
    replayed = read_pdparams(tmp_path / "checkpoints" / "epoch_0003" / MODEL_FILE)
    for name, value in uninterrupted.items():
        np.testing.assert_allclose(replayed[name], value, rtol=1e-5, atol=1e-7, err_msg=name)


def test_export_loads_in_the_service(trained: Run) -> None:
    embedder = load_embedder(trained.result.export_dir, RuntimeSettings(), max_batch_size=8)
    assert (
        embedder.manifest.provenance["metrics"]["recall1"] == read_progress(trained.output / "best").metrics["recall1"]
    )
    assert embedder.manifest.preprocess.size == (64, 64)  # the training size, not the architecture's 224
    recipe = embedder.manifest.provenance["recipe"]
    assert recipe["model"]["arch"] == "efficientnet_lite0" and recipe["optimizer"]["freeze_stages"] == 4
    assert "data" not in embedder.manifest.provenance  # not a `shitu data synth` dataset
    images = [
        cv2.imread(str(trained.data / f"images/class{label}_{index}.png"))[:, :, ::-1]
        for label in range(8)
        for index in range(2)
    ]
    features = embedder.embed(images)
    assert features.shape == (16, 512) and np.isfinite(features).all()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)
    cosine = features @ features.T
    same = np.equal.outer(np.arange(16) // 2, np.arange(16) // 2) & ~np.eye(16, dtype=bool)
    assert cosine[same].mean() > cosine[~same & ~np.eye(16, dtype=bool)].mean()


def test_cli_trains_pplcnetv2_with_arc_margin_and_accumulation(tmp_path: Path) -> None:
    data = make_shapes_dataset(tmp_path / "data")
    overrides = [
        f"data.root={data}",
        f"output={tmp_path / 'run'}",
        "data.eval_list=null",
        "data.augment.image_size=32",
        "model.arch=pplcnetv2_base",
        "model.pretrained=false",
        "model.head=arc_margin",
        "optimizer.freeze_stages=0",
        "batch_size=8",
        "accumulate_steps=2",
        "epochs=1",
        "max_iterations=1",
    ]
    arguments = ["train", "rec", "--config", str(CI_CONFIG)]
    for override in overrides:
        arguments += ["--set", override]
    outcome = CliRunner().invoke(app, arguments)
    assert outcome.exit_code == 0, outcome.output
    assert "trained 1 steps over 1 epochs" in outcome.output
    assert (tmp_path / "run" / "best" / "arc_head.pdparams").is_file()
    assert json.loads((tmp_path / "run" / "export" / "manifest.json").read_text())["preprocess"]["size"] == [32, 32]


def test_cli_rejects_a_bad_override(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(app, ["train", "rec", "--config", str(CI_CONFIG), "--set", "batch_size=10"])
    assert outcome.exit_code == 2
    assert "multiple of images_per_id" in outcome.output


def test_query_gallery_split_evaluation(trained: Run, tmp_path: Path) -> None:
    # Queries: image 0 of every class and of an unknown class; gallery: images 1-5. The unknown query has no
    # positive, so it is left out of the averages.
    names = {label: [f"images/class{label}_{index}.png" for index in range(PER_CLASS)] for label in range(CLASSES)}
    queries = [f"{names[label][0]} {label}" for label in range(CLASSES)] + [f"{names[0][1]} unknown"]
    gallery = [f"{name} {label}" for label in range(CLASSES) for name in names[label][1:]]
    (trained.data / "query.txt").write_text("\n".join(queries) + "\n")
    (trained.data / "gallery.txt").write_text("\n".join(gallery) + "\n")
    config = _config(
        trained.data, tmp_path, "data.eval_list=null", "data.query_list=query.txt", "data.gallery_list=gallery.txt"
    )
    split = build_evaluation(config.data, trained.trainer.model.preprocess)
    assert split is not None and not split.shared and len(split.query) == 9 and len(split.gallery) == 40
    metrics = evaluate(trained.trainer.model, split)
    assert metrics["recall1"] >= 0.75 and metrics["recall5"] >= metrics["recall1"]
    assert 0.0 < metrics["mAP"] <= 1.0
