"""``shitu data synth``: scenes, GT crops and gallery views of every split, written in parallel, deterministically.

Each scene and each gallery view draws from its own ``numpy.random.Generator`` seeded with
``(seed, split, stream, index)``, so the bytes do not depend on the number of workers or the order they run in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import Enum
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainer.synth import backgrounds
from trainer.synth.assets import ObjectAsset, load_object
from trainer.synth.cards import flatten_card
from trainer.synth.catalog import Catalog, ProductClass, render_product
from trainer.synth.difficulty import Difficulty
from trainer.synth.packaging import PackageDesign, design_package, package_kind, render_package
from trainer.synth.scenes import compose_empty, compose_scene, compose_shelf, crop, decode_jpeg, encode_jpeg
from trainer.synth.shop import catalogue_view, compose_shop_photo
from trainer.synth.splits import SPLITS, Split, stable_hash

SCENE_STREAM, VIEW_STREAM, SHELF_STREAM, EMPTY_STREAM = 1, 2, 3, 4
PACKAGE_STREAM = 0x9AC4  # a class's package design: from its name, like its card
CROP_QUALITY = 95
DISTRACTOR_SIDE = 256
# Gallery views: a shop's own photos of a product, close to the clean card.
GALLERY_DIFFICULTY = Difficulty(
    rotation_deg=5,
    perspective=0.04,
    scale=(0.8, 0.9),
    occlusion_probability=0,
    photometric=0.3,
    shadow_probability=0,
    blur_probability=0,
    jpeg_quality=(95, 95),
    targets=(1, 1),
    distractors=(0, 0),
)


class SynthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    classes: int | None = Field(None, ge=1, description="number of product classes; None: every installed one")
    scenes_per_class: int = Field(3, ge=1, description="scenes in which each class is the first product")
    gallery_views: int = Field(2, ge=1, le=3, description="views per class: a clean card, then light augmentation")
    scene_size: int = Field(512, ge=64)
    open_set_share: float = Field(0.2, ge=0, lt=1, description="share of val/test keys kept out of the gallery")
    difficulty_name: str = "default"
    difficulty: Difficulty = Difficulty()
    # Scene kinds beside the standard 1-3 products (own random streams: the standard scenes do not change).
    shelf_share: float = Field(0.3, ge=0, description="dense shelf scenes per standard scene of a split")
    shelf_products: tuple[int, int] = Field((5, 30), description="products per shelf scene (fewer when full)")
    empty_share: float = Field(0.1, ge=0, description="scenes without any product per standard scene")
    # card: every product a flat card (the first embedder's data); package: a can, bottle, box, pouch or label
    # per class, catalogue views in the gallery and shop photos as queries
    products: Literal["card", "package"] = "card"
    families: Literal["training", "heldout"] = "training"  # heldout: families never trained on (evaluation)

    def kind_count(self, kind: SceneKind, standard: int) -> int:
        share = {SceneKind.standard: 1.0, SceneKind.shelf: self.shelf_share, SceneKind.empty: self.empty_share}
        return round(standard * share[kind])


class SceneKind(str, Enum):
    standard = "standard"  # 1-3 products with distractors: recognition queries and the main-object benchmark
    shelf = "shelf"  # rows of 5-30 products side by side, touching, partly hidden: detector recall
    empty = "empty"  # background and distractors only: the detector must find nothing


@dataclass(frozen=True)
class TargetRecord:
    class_id: int
    box: tuple[int, int, int, int]
    area: int
    crop_file: str | None  # standard scenes only: shelf products are too small and hidden to be queries
    hidden: bool = False  # mostly hidden shelf product: an ignore region (COCO iscrowd)
    occluded: float | None = None  # package photos: share of the silhouette hidden by neighbours or bars


@dataclass(frozen=True)
class SceneRecord:
    split: Split
    file: str
    background: str
    targets: list[TargetRecord]
    kind: SceneKind = SceneKind.standard


@dataclass(frozen=True)
class ViewRecord:
    split: Split
    class_id: int
    view: int
    file: str


@dataclass(frozen=True)
class _Context:
    out: Path
    options: SynthOptions
    modules: Path
    classes: dict[Split, list[ProductClass]]
    backgrounds: dict[Split, list[backgrounds.BackgroundAsset]]
    distractors: dict[Split, list[ObjectAsset]]


# Per worker process: set once by the pool initialiser, read by every job.
_context: _Context | None = None
_assets: dict[str, ObjectAsset] = {}
_classes: dict[int, ProductClass] = {}


def generate(
    out: Path,
    options: SynthOptions,
    catalog: Catalog,
    classes: list[ProductClass],
    distractors: dict[Split, list[ObjectAsset]],
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> tuple[list[SceneRecord], list[ViewRecord]]:
    by_split = {split: [item for item in classes if item.split is split] for split in SPLITS}
    scene_backgrounds = {split: [item for item in catalog.backgrounds if item.split is split] for split in SPLITS}
    for split in SPLITS:
        if by_split[split] and not scene_backgrounds[split]:
            raise ValueError(f"no background is assigned to the {split.value} split")
    context = _Context(Path(out), options, catalog.modules, by_split, scene_backgrounds, distractors)
    jobs: list[tuple] = [
        ("view", split, item.class_id, view)
        for split in SPLITS
        for item in by_split[split]
        for view in range(options.gallery_views)
    ]
    for kind in SceneKind:
        jobs += [
            (kind.value, split, index)
            for split in SPLITS
            for index in range(options.kind_count(kind, len(by_split[split]) * options.scenes_per_class))
        ]
    if on_total:
        on_total(len(jobs))
    records = list(_run(context, jobs, workers, progress))
    return [r for r in records if isinstance(r, SceneRecord)], [r for r in records if isinstance(r, ViewRecord)]


def _run(context: _Context, jobs: list[tuple], workers: int, progress: Callable[[int], None] | None) -> Iterator:
    if workers <= 1:
        _initialise(context)
        results = map(_job, jobs)
        for result in results:
            if progress:
                progress(1)
            yield result
        return
    # spawn: the parent may hold threads (paddle, cv2) that fork would copy in a locked state.
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_initialise_worker, initargs=(context,)
    ) as pool:
        for result in pool.map(_job, jobs, chunksize=16):
            if progress:
                progress(1)
            yield result


def _worker_context() -> _Context:
    if _context is None:
        raise RuntimeError("a generator job ran in a process the pool did not initialise")
    return _context


def _initialise(context: _Context) -> None:
    global _context
    _context = context
    _assets.clear()
    _classes.clear()
    _classes.update({item.class_id: item for members in context.classes.values() for item in members})
    _assets.update({item.asset.name: item.asset for members in context.classes.values() for item in members})
    _assets.update({asset.name: asset for members in context.distractors.values() for asset in members})
    _product.cache_clear()
    _package_design.cache_clear()
    _object.cache_clear()


def _initialise_worker(context: _Context) -> None:
    # One OpenCV thread per worker: the pool already uses every core.
    cv2.setNumThreads(1)
    _initialise(context)


def _job(job: tuple) -> SceneRecord | ViewRecord:
    kind, *arguments = job
    runners = {SceneKind.standard.value: _scene, SceneKind.shelf.value: _shelf, SceneKind.empty.value: _empty}
    return runners[kind](*arguments) if kind in runners else _view(*arguments)


def _scene(split: Split, index: int) -> SceneRecord:
    context = _worker_context()
    options = context.options
    difficulty = options.difficulty
    rng = np.random.default_rng([options.seed, SPLITS.index(split), SCENE_STREAM, index])
    pool = context.classes[split]
    anchor = index % len(pool)
    count = min(int(rng.integers(difficulty.targets[0], difficulty.targets[1] + 1)) - 1, len(pool) - 1)
    # Draw the other products among the pool without the anchor: skip its position.
    others = sorted(int(pick) for pick in rng.choice(len(pool) - 1, count, replace=False)) if count > 0 else []
    chosen = [pool[anchor]] + [pool[pick + (pick >= anchor)] for pick in others]
    background, source, distractors = _backdrop(split, rng)
    occluded: list[float | None] = [None] * len(chosen)
    if options.products == "package":
        scene = _shop_photo(pool, chosen, source, distractors, rng)
        occluded = list(scene.occluded)
    else:
        scene = compose_scene(
            source, [_product(item.asset.name) for item in chosen], distractors, rng, difficulty, options.scene_size
        )
    name = f"{split.value}/{index:06d}"
    data = encode_jpeg(scene.image, scene.jpeg_quality)
    file = _write(context.out, f"images/scenes/{name}.jpg", data)
    photo = decode_jpeg(data)
    targets = []
    for number, (item, box, area, hidden) in enumerate(zip(chosen, scene.boxes, scene.areas, occluded, strict=True)):
        crop_file = _write(
            context.out, f"images/crops/{name}_{number}.jpg", encode_jpeg(crop(photo, box), CROP_QUALITY)
        )
        targets.append(TargetRecord(item.class_id, box, area, crop_file, occluded=hidden))
    return SceneRecord(split, file, background.name, targets)


def _shop_photo(pool: list[ProductClass], chosen: list[ProductClass], source: np.ndarray, distractors: list,
                rng: np.random.Generator) -> Any:
    """The chosen products as packages in a pose, each with a neighbour of the split that may stand in front."""
    options = _worker_context().options
    targets = [_package(item.asset.name, rng) for item in chosen]
    neighbours = [_package(pool[int(rng.integers(len(pool)))].asset.name, rng) for _ in chosen]
    return compose_shop_photo(source, targets, neighbours, distractors, rng, options.difficulty, options.scene_size)


def _package(name: str, rng: np.random.Generator) -> np.ndarray:
    """The class's package as a shop photo shows it: turned a random way, lit from a random side."""
    return render_package(_product(name), _package_design(name), turn=float(rng.uniform(-1, 1)),
                          light=float(rng.uniform(0, 1)))


def _backdrop(split: Split, rng: np.random.Generator, least_clutter: int = 0) -> tuple:
    """A background of the split (its asset and pixels) and the clutter to paste on it."""
    context = _worker_context()
    options, difficulty = context.options, context.options.difficulty
    background = context.backgrounds[split][int(rng.integers(len(context.backgrounds[split])))]
    clutter = context.distractors[split]
    low, high = max(difficulty.distractors[0], least_clutter), max(difficulty.distractors[1], least_clutter)
    clutter_count = int(rng.integers(low, high + 1)) if clutter else 0
    picked = [_object(clutter[int(rng.integers(len(clutter)))].name) for _ in range(clutter_count)]
    distractors = [rgba for rgba in picked if rgba is not None]
    source = backgrounds.load_background(background, round(options.scene_size * 1.25))
    return background, source, distractors


def _shelf(split: Split, index: int) -> SceneRecord:
    options = _worker_context().options
    rng = np.random.default_rng([options.seed, SPLITS.index(split), SHELF_STREAM, index])
    pool = _worker_context().classes[split]
    picks = sorted(int(pick) for pick in rng.choice(len(pool), min(len(pool), 12), replace=False))
    chosen = [pool[pick] for pick in picks]
    background, source, distractors = _backdrop(split, rng)
    products = ([_package(item.asset.name, rng) for item in chosen] if options.products == "package"
                else [_product(item.asset.name) for item in chosen])
    scene = compose_shelf(source, products, distractors, rng,
                          options.difficulty, options.scene_size, options.shelf_products)
    file = _write(_worker_context().out, f"images/scenes/{split.value}/shelf_{index:06d}.jpg",
                  encode_jpeg(scene.image, scene.jpeg_quality))
    targets = [
        TargetRecord(chosen[pick].class_id, box, area, None, hidden)
        for pick, box, area, hidden in zip(scene.products, scene.boxes, scene.areas, scene.hidden, strict=True)
    ]
    return SceneRecord(split, file, background.name, targets, SceneKind.shelf)


def _empty(split: Split, index: int) -> SceneRecord:
    options = _worker_context().options
    rng = np.random.default_rng([options.seed, SPLITS.index(split), EMPTY_STREAM, index])
    background, source, distractors = _backdrop(split, rng, least_clutter=1)
    image = compose_empty(source, distractors, rng, options.difficulty, options.scene_size)
    quality = int(rng.integers(options.difficulty.jpeg_quality[0], options.difficulty.jpeg_quality[1] + 1))
    name = f"images/scenes/{split.value}/empty_{index:06d}.jpg"
    file = _write(_worker_context().out, name, encode_jpeg(image, quality))
    return SceneRecord(split, file, background.name, [], SceneKind.empty)


def _view(split: Split, class_id: int, view: int) -> ViewRecord:
    context = _worker_context()
    item = _classes[class_id]
    card = _product(item.asset.name)
    if context.options.products == "package":
        image = _catalogue_view(item.asset.name, np.random.default_rng(
            [context.options.seed, SPLITS.index(split), VIEW_STREAM, class_id, view]), view)
    elif view == 0:
        image = flatten_card(card)
    else:
        rng = np.random.default_rng([context.options.seed, SPLITS.index(split), VIEW_STREAM, class_id, view])
        side = max(card.shape[:2])
        plain = np.empty((side, side, 3), np.uint8)
        plain[:] = rng.integers(200, 256, 3)
        scene = compose_scene(plain, [card], [], rng, GALLERY_DIFFICULTY, side)
        image = crop(scene.image, scene.boxes[0])
    file = _write(
        context.out, f"images/gallery/{split.value}/{class_id:05d}_{view}.jpg", encode_jpeg(image, CROP_QUALITY)
    )
    return ViewRecord(split, class_id, view, file)


def _catalogue_view(name: str, rng: np.random.Generator, view: int) -> np.ndarray:
    """View 0: frontal on white; views 1-2: turned a little, another light background (a retailer's other shots)."""
    turn = 0.0 if view == 0 else float(rng.uniform(-0.3, 0.3))
    package = render_package(_product(name), _package_design(name), turn=turn, light=0.6)
    return catalogue_view(package, rng, plain=view == 0)


def _write(out: Path, relative: str, data: bytes) -> str:
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return relative


# Every class of a split: shelf scenes draw a dozen products at random, and a miss re-rasterises an SVG
# (about 25 times the cost of composing the shelf). A card is at most 256x256 RGBA: 2048 of them ~0.5 GB.
@functools.lru_cache(maxsize=2048)
def _product(name: str) -> np.ndarray:
    return render_product(_assets[name], _worker_context().modules)


@functools.lru_cache(maxsize=4096)
def _package_design(name: str) -> PackageDesign:
    return design_package(package_kind(name), np.random.default_rng([PACKAGE_STREAM, stable_hash(name)]))


@functools.lru_cache(maxsize=512)
def _object(name: str) -> np.ndarray | None:
    """A distractor, or ``None`` for an empty clip-art file (the scene then has one distractor less)."""
    try:
        return load_object(_assets[name], _worker_context().modules, DISTRACTOR_SIDE)
    except ValueError:
        return None
