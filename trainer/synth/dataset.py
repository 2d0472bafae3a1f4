"""One synthetic dataset on disk: images, PaddleClas lists, COCO json, ``classes.json`` and ``synth.json``.

Layout under ``out``; paths in the lists and json files are relative to the file's own folder (``../images/…``),
so readers that default their image root to the list's folder need no option::

    images/scenes/<split>/NNNNNN.jpg         photos of 1-3 products (standard scenes)
    images/scenes/<split>/shelf_NNNNNN.jpg   dense shelves of 5-30 products (detection only)
    images/scenes/<split>/empty_NNNNNN.jpg   no product at all (detection only)
    images/crops/<split>/NNNNNN_K.jpg        ground-truth crops of their products (recognition queries)
    images/gallery/<split>/CCCCC_V.jpg       view V of class C: 0 the clean card, 1-2 lightly augmented
    recognition/train_list.txt               every train crop and view
    recognition/<val|test>_list.txt          every crop and view of the split
    recognition/<val|test>_gallery_list.txt  views of the classes in the gallery
    recognition/<val|test>_query_list.txt    crops of those classes
    recognition/<val|test>_openset_list.txt  crops of classes kept out of the gallery (rejection tuning)
    recognition/crop_attributes.json         package datasets: the hidden share of each crop's product
    detection/<split>.json                   COCO, one category ``foreground``, ``main_annotation_id`` and
                                             ``scene_kind`` per image
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.synth.catalog import Catalog, ProductClass, choose_classes, discover_catalog
from trainer.synth.generator import SceneRecord, SynthOptions, ViewRecord, generate
from trainer.synth.packaging import package_kind
from trainer.synth.splits import SPLITS, Split, split_of_key
from trainer.synth.writer import Annotation, DetectionImage, coco_document, write_json, write_label_list

FORMAT_VERSION = 1
CROP_ATTRIBUTES = "crop_attributes.json"  # package datasets: {crop path: {"occluded": share}}
UP = "../"  # from recognition/ and detection/ to images/
SYNTH_OUTPUTS = ("images", "recognition", "detection", "classes.json", "synth.json")


def synthesize(
    out: Path,
    options: SynthOptions,
    assets_dir: Path,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    catalog: Catalog | None = None,
    on_total: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Writes the dataset and returns the content of ``synth.json``."""
    out = Path(out)
    catalog = catalog or discover_catalog(assets_dir, options.families)
    classes = choose_classes(catalog.products, options.classes, options.open_set_share, heldout=catalog.heldout)
    distractors = split_distractors(catalog, classes)
    scenes, views = generate(out, options, catalog, classes, distractors, workers, progress, on_total)
    counts = write_recognition_lists(out / "recognition", classes, scenes, views)
    if options.products == "package":
        write_json(out / "recognition" / CROP_ATTRIBUTES, crop_attributes(scenes))
    for split in SPLITS:
        images = [_detection_image(record, options.scene_size) for record in scenes if record.split is split]
        write_json(out / "detection" / f"{split.value}.json", coco_document(images, f"shitu synth {split.value}"))
        counts[f"detection_{split.value}_images"] = len(images)
    write_json(out / "classes.json", [_class_entry(item, options.products == "package") for item in classes])
    summary = {
        "format_version": FORMAT_VERSION,
        "options": options.model_dump(mode="json"),
        "assets": catalog.versions,
        "backgrounds": {
            split.value: sorted(item.name for item in catalog.backgrounds if item.split is split) for split in SPLITS
        },
        "counts": counts,
    }
    write_json(out / "synth.json", summary)
    return summary


def split_distractors(catalog: Catalog, classes: list[ProductClass]) -> dict[Split, list]:
    """Clutter of a split comes from that split's keys and is never one of the chosen products' keys."""
    product_names = {asset.name for asset in catalog.products}
    chosen_keys = {item.asset.key for item in classes}
    usable = [
        asset for asset in catalog.distractors if asset.name not in product_names and asset.key not in chosen_keys
    ]
    return {split: [asset for asset in usable if split_of_key(asset.key) is split] for split in SPLITS}


def write_recognition_lists(
    folder: Path, classes: list[ProductClass], scenes: list[SceneRecord], views: list[ViewRecord]
) -> dict[str, int]:
    open_set = {item.class_id for item in classes if item.open_set}
    counts: dict[str, int] = {}
    for split in SPLITS:
        crops = [
            (UP + target.crop_file, target.class_id)
            for s in scenes
            if s.split is split
            for target in s.targets
            if target.crop_file is not None
        ]
        split_views = [(UP + view.file, view.class_id) for view in views if view.split is split]
        counts[f"{split.value}_list"] = write_label_list(folder / f"{split.value}_list.txt", split_views + crops)
        if split is Split.train:
            continue
        lists = {
            "gallery": [entry for entry in split_views if entry[1] not in open_set],
            "query": [entry for entry in crops if entry[1] not in open_set],
            "openset": [entry for entry in crops if entry[1] in open_set],
        }
        for name, entries in lists.items():
            counts[f"{split.value}_{name}_list"] = write_label_list(folder / f"{split.value}_{name}_list.txt", entries)
    return counts


def _detection_image(record: SceneRecord, size: int) -> DetectionImage:
    annotations = [Annotation(target.box, target.area, target.class_id, target.hidden) for target in record.targets]
    return DetectionImage(UP + record.file, size, size, record.background, annotations, record.kind.value)


def crop_attributes(scenes: list[SceneRecord]) -> dict[str, dict[str, Any]]:
    """Per GT crop (as the lists name it): the share of the product hidden by neighbours or bars."""
    return {UP + target.crop_file: {"occluded": target.occluded}
            for scene in scenes for target in scene.targets if target.crop_file is not None}


def _class_entry(item: ProductClass, packaged: bool) -> dict[str, Any]:
    extra = {"package": package_kind(item.asset.name).value} if packaged else {}
    return extra | {
        "id": item.class_id,
        "name": item.asset.name,
        "title": item.asset.title,
        "key": item.asset.key,
        "source": item.asset.source,
        "licence": item.asset.licence,
        "split": item.split.value,
        "open_set": item.open_set,
    }
