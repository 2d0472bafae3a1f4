"""The bodies of ``shitu data synth`` and ``shitu data demo`` (the typer wiring is in ``trainer/cli.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trainer.synth.assets import AssetsMissingError, default_assets_dir
from trainer.synth.dataset import SYNTH_OUTPUTS, synthesize
from trainer.synth.demo import build_demo
from trainer.synth.difficulty import Difficulty, preset
from trainer.synth.generator import SynthOptions
from trainer.synth.writer import prepare_output


def difficulty_with_overrides(name: str, overrides: list[str]) -> Difficulty:
    """A preset with ``knob=value`` overrides; ranges are written ``low,high`` (``scale=0.1,0.5``)."""
    values = preset(name).model_dump()
    for override in overrides:
        knob, separator, text = override.partition("=")
        if not separator or knob not in values:
            raise ValueError(f"{override!r}: expected knob=value with a knob among {', '.join(values)}")
        parsed = yaml.safe_load(f"[{text}]") if "," in text else yaml.safe_load(text)
        values[knob] = tuple(parsed) if isinstance(parsed, list) else parsed
    return Difficulty.model_validate(values)


def run_synth(
    out: Path,
    seed: int,
    classes: int | None,
    scenes_per_class: int,
    difficulty: str,
    knobs: list[str],
    gallery_views: int,
    scene_size: int,
    open_set_share: float,
    workers: int,
    assets_dir: Path | None,
    overwrite: bool,
    *,
    shelf_share: float = 0.3,
    empty_share: float = 0.1,
    products: str = "card",
    families: str = "training",
) -> None:
    try:
        options = SynthOptions(
            products=products,
            families=families,
            shelf_share=shelf_share,
            empty_share=empty_share,
            seed=seed,
            classes=classes,
            scenes_per_class=scenes_per_class,
            gallery_views=gallery_views,
            scene_size=scene_size,
            open_set_share=open_set_share,
            difficulty_name=difficulty,
            difficulty=difficulty_with_overrides(difficulty, knobs),
        )
        prepare_output(out, overwrite, SYNTH_OUTPUTS)
    except (ValueError, FileExistsError) as error:  # pydantic's ValidationError is a ValueError
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("synth", total=None)
        try:
            summary = synthesize(
                out,
                options,
                assets_dir or default_assets_dir(),
                workers=workers or os.cpu_count() or 1,
                progress=lambda done: bar.advance(task, done),
                on_total=lambda total: bar.update(task, total=total),
            )
        except AssetsMissingError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from error
    counts = summary["counts"]
    typer.echo(
        f"wrote {out}: {counts['detection_train_images']}/{counts['detection_val_images']}/"
        f"{counts['detection_test_images']} train/val/test scenes (standard, shelf and empty), "
        f"{counts['train_list']}/{counts['val_list']}/{counts['test_list']} recognition images"
    )


def run_demo(out: Path, assets_dir: Path | None, overwrite: bool) -> None:
    try:
        summary = build_demo(out, assets_dir or default_assets_dir(), overwrite=overwrite)
    except (AssetsMissingError, FileExistsError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"wrote {out}: {summary['products']} products in gallery_list.txt, {summary['queries']} query photos")
