"""PNG plots of a benchmark run: the open-set precision-recall curve and a grid of hard failures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only: never open a window, work without a display

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
from matplotlib.patches import Rectangle  # noqa: E402

from trainer.evaluation.end_to_end import SceneOutcome  # noqa: E402
from trainer.evaluation.open_set import OpenSetPoint  # noqa: E402

GRID_COLUMNS = 4


def plot_open_set(curve: Sequence[OpenSetPoint], marks: dict[str, OpenSetPoint], path: Path, title: str) -> Path:
    """Precision over recall as min_score sweeps 0 → 1, with named operating points marked."""
    figure, axes = plt.subplots(figsize=(6, 5), dpi=100)
    axes.plot([point.recall for point in curve], [point.precision for point in curve], color="tab:blue",
              drawstyle="steps-post", label="min_score 0 → 1")
    for (name, point), color in zip(marks.items(), ("tab:red", "tab:green", "tab:orange"), strict=False):
        axes.scatter([point.recall], [point.precision], color=color, zorder=3,
                     label=f"{name}: min_score {point.min_score:.3f} (P {point.precision:.2f}, R {point.recall:.2f})")
    axes.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall (correct matches / gallery-class queries)",
             ylabel="precision (correct / matched)", title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_failures(failures: Sequence[SceneOutcome], titles: dict[str, str], min_score: float, path: Path) -> Path:
    """Each scene with its main object (green) and the object the pipeline answered with (red)."""
    columns = min(GRID_COLUMNS, max(1, len(failures)))
    rows = max(1, math.ceil(len(failures) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), dpi=100, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, outcome in zip(grid.flat, failures, strict=False):
        pixels = cv2.imread(outcome.path, cv2.IMREAD_COLOR)
        if pixels is not None:
            axes.imshow(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
        _outline(axes, outcome.main_box, "lime")
        if outcome.box is not None:
            _outline(axes, [float(value) for value in outcome.box], "red")
        axes.set_title(_caption(outcome, titles, min_score), fontsize=7)
    if not failures:
        grid.flat[0].text(0.5, 0.5, "no failures", ha="center", va="center")
    figure.tight_layout()
    figure.savefig(path, bbox_inches="tight")  # keeps two-line captions of the top row inside the image
    plt.close(figure)
    return path


def _outline(axes: plt.Axes, box: Sequence[float], color: str) -> None:
    x1, y1, x2, y2 = box
    axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.5))


def _caption(outcome: SceneOutcome, titles: dict[str, str], min_score: float) -> str:
    truth = titles.get(outcome.truth, outcome.truth) + ("" if outcome.known else " (not in gallery)")
    if outcome.predicted is None:
        return f"{_short(truth)}\n→ nothing overlaps it"
    verdict = "match" if outcome.score is not None and outcome.score >= min_score else "rejected"
    answer = titles.get(outcome.predicted, outcome.predicted)
    return f"{_short(truth)}\n→ {_short(answer)} ({outcome.score:.2f}, {verdict})"


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
