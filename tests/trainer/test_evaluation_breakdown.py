"""``shitu eval``'s recall per family, package kind and occlusion, and its gallery-threshold points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from service.gallery import ListEntry
from shitu.cli import app
from trainer.evaluation.breakdown import class_groups, crop_groups, recall_by_group
from trainer.evaluation.gallery_threshold import QUANTILES, gallery_threshold_points
from trainer.evaluation.open_set import OpenSetQuery
from trainer.evaluation.report import JSON_FILE, MARKDOWN_FILE


def test_recall_per_group_counts_each_query_in_each_of_its_groups() -> None:
    groups = [{"package": "can", "occlusion": "clear"}, {"package": "can", "occlusion": "occluded"},
              {"package": "box", "occlusion": "clear"}, {"package": "box"}]
    found = recall_by_group(groups, [True, False, True, False])
    assert {value: (item.queries, item.recall1) for value, item in found["package"].items()} == {
        "box": (2, 0.5), "can": (2, 0.5)}
    assert found["occlusion"]["clear"].recall1 == 1.0 and found["occlusion"]["occluded"].queries == 1


def test_groups_come_from_classes_json_and_the_crop_attributes(tmp_path: Path) -> None:
    (tmp_path / "recognition").mkdir()
    (tmp_path / "classes.json").write_text(json.dumps([{"id": 0, "source": "flag-icons", "package": "box"},
                                                       {"id": 1, "source": "twemoji"}]))
    (tmp_path / "recognition/crop_attributes.json").write_text(json.dumps(
        {"../images/a.jpg": {"occluded": 0.3}, "../images/b.jpg": {"occluded": 0.01}}))
    images = tmp_path / "images"
    entries = [ListEntry(images / "a.jpg", "0"), ListEntry(images / "b.jpg", "1"), ListEntry(images / "c.jpg", "1")]
    groups = crop_groups(tmp_path, entries, class_groups(tmp_path))
    assert groups == [{"family": "flag-icons", "package": "box", "occlusion": "occluded"},
                      {"family": "twemoji", "occlusion": "clear"}, {"family": "twemoji"}]


def test_a_higher_quantile_suggests_a_stricter_threshold() -> None:
    scores = np.linspace(0.1, 0.9, 50).astype(np.float32)
    queries = [OpenSetQuery("a", True, "a", 0.95), OpenSetQuery("b", False, "a", 0.5)]
    points = gallery_threshold_points(scores, queries)
    assert [point.quantile for point in points] == list(QUANTILES)
    thresholds = [point.min_score for point in points]
    assert thresholds == sorted(thresholds) and thresholds[QUANTILES.index(0.5)] == pytest.approx(0.5, abs=1e-3)
    assert points[0].point.false_accept_rate == 1.0 and points[-1].point.false_accept_rate == 0.0


@pytest.mark.slow  # a generated package benchmark through shitu eval
def test_eval_of_a_package_benchmark_breaks_recall_down(model_environment: dict[str, str], tmp_path: Path) -> None:
    from trainer.synth.assets import AssetsMissingError, default_assets_dir, require_npm_assets
    from trainer.synth.dataset import synthesize
    from trainer.synth.generator import SynthOptions

    try:
        require_npm_assets(default_assets_dir())
    except AssetsMissingError as error:
        pytest.fail(f"{error} (make test runs it)")
    options = SynthOptions(seed=0, classes=30, scenes_per_class=2, gallery_views=1, scene_size=160,
                           open_set_share=0.3, products="package", shelf_share=0, empty_share=0)
    synthesize(tmp_path / "synth", options, default_assets_dir(), workers=1)
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "synth"), "--out", str(tmp_path / "report"),
                                      "--track", "recognizer", "--calibration-split", "test"], env=model_environment)
    assert result.exit_code == 0, result.output
    assert "recall@1 per package" in result.output and "gallery's own min_score" in result.output
    recognizer = json.loads((tmp_path / "report" / JSON_FILE).read_text())["recognizer"]
    for name in ("family", "package", "occlusion"):
        groups = recognizer["breakdown"][name]
        assert sum(item["queries"] for item in groups.values()) == recognizer["queries"]
        hits = sum(item["queries"] * item["recall1"] for item in groups.values())
        assert hits == pytest.approx(recognizer["recall1"] * recognizer["queries"])
    assert len(recognizer["gallery_thresholds"]) == len(QUANTILES)
    assert "recall@1 per package" in (tmp_path / "report" / MARKDOWN_FILE).read_text()
