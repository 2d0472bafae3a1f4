from __future__ import annotations

import json

import numpy as np
import pytest

from service.box import Box
from service.config import GallerySettings
from service.errors import GalleryError, ImageNotFound, ItemNotFound, LabelConflict
from service.gallery import Gallery

from .conftest import DIM, MODEL_ID, add, image_bytes, snapshot, unit_vectors


def test_added_image_is_found_by_its_own_vector(gallery: Gallery) -> None:
    vectors = unit_vectors(3, seed=1)

    enrolments = [add(gallery, f"product {n}", vectors[n], n) for n in range(3)]
    results = gallery.search(vectors, top_k=1)

    for enrolment, matches in zip(enrolments, results, strict=True):
        assert enrolment.created_item and enrolment.created_image
        assert [(m.item_id, m.image_id) for m in matches] == [(enrolment.item.item_id, enrolment.image.image_id)]
        assert matches[0].label == enrolment.item.label
        assert matches[0].score == pytest.approx(1.0, abs=1e-5)


def test_enrolment_records_box_model_hash_and_the_original_bytes(gallery: Gallery) -> None:
    enrolment = add(gallery, "cola", unit_vectors(1, seed=2)[0], 7, box=Box(1, 2, 30, 40), metadata={"sku": "A1"})

    image = gallery.get_image(enrolment.image.image_id)
    assert image.box == Box(1, 2, 30, 40)
    assert image.model_id == MODEL_ID
    assert image.media_type == "image/jpeg"
    assert gallery.image_path(image.image_id).read_bytes() == image_bytes(7)
    assert gallery.image_path(image.image_id).name == f"{image.sha256}.jpg"
    assert gallery.get_item(enrolment.item.item_id).metadata == {"sku": "A1"}
    assert enrolment.item.image_count == 1


def test_item_with_several_images_counts_once_per_query(gallery: Gallery) -> None:
    vectors = unit_vectors(8, seed=3)
    first = add(gallery, "first", vectors[0], 0, item_id="first")
    for number in range(1, 5):
        # images close to vectors[0]: they would fill the top-k without the per-item grouping
        near = vectors[0] + 0.05 * vectors[number]
        add(gallery, "first", (near / np.linalg.norm(near)).astype(np.float32), number, item_id="first")
    for number in range(5, 8):
        add(gallery, f"other {number}", vectors[number], number, item_id=f"other-{number}")

    [matches] = gallery.search(vectors[:1], top_k=4)

    assert len(matches) == 4
    assert len({m.item_id for m in matches}) == 4
    assert matches[0].item_id == "first" and matches[0].image_id == first.image.image_id
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert gallery.get_item("first").image_count == 5


def test_search_returns_fewer_items_when_the_gallery_is_small(gallery: Gallery) -> None:
    vectors = unit_vectors(3, seed=4)
    add(gallery, "a", vectors[0], 0, item_id="a")
    add(gallery, "a", vectors[1], 1, item_id="a")
    add(gallery, "b", vectors[2], 2, item_id="b")

    assert [len(row) for row in gallery.search(vectors, top_k=10)] == [2, 2, 2]
    assert gallery.search(unit_vectors(2, seed=5)[:0], top_k=3) == []


def test_empty_gallery_returns_no_matches(gallery: Gallery) -> None:
    assert gallery.search(unit_vectors(2, seed=6), top_k=3) == [[], []]


def test_repeated_image_for_same_item_is_idempotent(gallery: Gallery) -> None:
    vector = unit_vectors(1, seed=7)[0]
    first = add(gallery, "tea", vector, 1, item_id="tea-1")
    before = snapshot(gallery)

    again = add(gallery, "tea", vector, 1, item_id="tea-1")

    assert again.created_image is False and again.created_item is False
    assert again.image == first.image
    assert snapshot(gallery) == before


def test_retry_with_new_metadata_replaces_it_without_a_new_image(gallery: Gallery) -> None:
    vector = unit_vectors(1, seed=8)[0]
    add(gallery, "tea", vector, 1, item_id="tea-1", metadata={"size": "S"})

    again = add(gallery, "tea", vector, 1, item_id="tea-1", metadata={"size": "L"})

    assert again.created_image is False
    assert again.item.metadata == {"size": "L"} and again.item.image_count == 1
    assert gallery.stats().images == 1


def test_same_bytes_in_two_items_share_one_file(gallery: Gallery) -> None:
    vector = unit_vectors(1, seed=9)[0]
    one = add(gallery, "one", vector, 1, item_id="one")
    two = add(gallery, "two", vector, 1, item_id="two")
    path = gallery.image_path(one.image.image_id)

    gallery.delete_item("one")

    assert two.created_image and gallery.image_path(two.image.image_id) == path
    assert path.read_bytes() == image_bytes(1)
    gallery.delete_item("two")
    assert not path.exists()


def test_label_conflict_changes_nothing(gallery: Gallery) -> None:
    vectors = unit_vectors(2, seed=10)
    add(gallery, "water", vectors[0], 0, item_id="sku-1")
    before = snapshot(gallery)

    with pytest.raises(LabelConflict) as raised:
        add(gallery, "juice", vectors[1], 1, item_id="sku-1", metadata={"x": 1})

    assert raised.value.status == 409 and raised.value.details["label"] == "water"
    assert snapshot(gallery) == before


def test_update_changes_label_and_metadata_without_reembedding(gallery: Gallery) -> None:
    vector = unit_vectors(1, seed=11)[0]
    created = add(gallery, "old", vector, 0, item_id="sku", metadata={"a": 1})

    updated = gallery.update_item("sku", label="new")
    assert updated.label == "new" and updated.metadata == {"a": 1}
    assert updated.updated_at >= created.item.updated_at
    updated = gallery.update_item("sku", metadata={"b": [1, 2]})

    assert updated.label == "new" and updated.metadata == {"b": [1, 2]}
    [[match]] = gallery.search(vector[None], top_k=1)
    assert match.label == "new" and match.image_id == created.image.image_id
    # the new label now owns the item: enrolling with the old one conflicts
    with pytest.raises(LabelConflict):
        add(gallery, "old", vector, 1, item_id="sku")


def test_delete_image_keeps_the_item(gallery: Gallery) -> None:
    vectors = unit_vectors(2, seed=12)
    first = add(gallery, "x", vectors[0], 0, item_id="x")
    second = add(gallery, "x", vectors[1], 1, item_id="x")

    deleted = gallery.delete_image(first.image.image_id)

    assert deleted == first.image
    assert [m.image_id for m in gallery.search(vectors, top_k=1)[0]] == [second.image.image_id]
    gallery.delete_image(second.image.image_id)
    assert gallery.get_item("x").image_count == 0
    assert gallery.search(vectors, top_k=1) == [[], []]
    assert gallery.check()
    with pytest.raises(ImageNotFound):
        gallery.delete_image(first.image.image_id)
    with pytest.raises(ImageNotFound):
        gallery.image_path(first.image.image_id)


def test_a_sample_is_evenly_spaced_in_enrolment_order_and_skips_deleted_images(gallery: Gallery) -> None:
    vectors = unit_vectors(9, seed=13)
    enrolments = [add(gallery, f"p{n}", vectors[n], n, item_id=f"p{n}") for n in range(9)]
    gallery.delete_image(enrolments[4].image.image_id)
    items, sampled = gallery.sampled_embeddings(3)
    kept = [n for n in range(9) if n != 4]
    assert items == [f"p{kept[0]}", f"p{kept[4]}", f"p{kept[7]}"]  # first, middle and last of the 8 left
    np.testing.assert_array_equal(sampled, vectors[[kept[0], kept[4], kept[7]]])
    everything, all_vectors = gallery.sampled_embeddings(100)
    assert everything == [f"p{n}" for n in kept] and all_vectors.shape == (8, DIM)


def test_delete_item_removes_its_images_from_search(gallery: Gallery) -> None:
    vectors = unit_vectors(3, seed=13)
    add(gallery, "x", vectors[0], 0, item_id="x")
    add(gallery, "x", vectors[1], 1, item_id="x")
    keep = add(gallery, "y", vectors[2], 2, item_id="y")

    assert gallery.delete_item("x") == 2

    assert {m.item_id for row in gallery.search(vectors, top_k=3) for m in row} == {keep.item.item_id}
    with pytest.raises(ItemNotFound):
        gallery.get_item("x")
    with pytest.raises(ItemNotFound):
        gallery.delete_item("x")
    assert gallery.check() and gallery.stats().images == 1


def test_missing_ids_raise_not_found(gallery: Gallery) -> None:
    with pytest.raises(ItemNotFound):
        gallery.item_images("nope")
    with pytest.raises(ItemNotFound):
        gallery.update_item("nope", label="x")
    with pytest.raises(ImageNotFound):
        gallery.get_image("nope")


def test_list_items_pages_in_creation_order_and_filters_by_label(gallery: Gallery) -> None:
    vectors = unit_vectors(5, seed=14)
    ids = [add(gallery, "even" if n % 2 == 0 else "odd", vectors[n], n).item.item_id for n in range(5)]

    first_page, total = gallery.list_items(offset=0, limit=2)
    second_page, _ = gallery.list_items(offset=2, limit=2)
    evens, even_total = gallery.list_items(label="even")

    assert total == 5 and [i.item_id for i in first_page + second_page] == ids[:4]
    assert even_total == 3 and [i.item_id for i in evens] == ids[0::2]
    assert gallery.list_items(label="none") == ([], 0)


def test_generated_ids_are_url_safe_and_unique(gallery: Gallery) -> None:
    vectors = unit_vectors(4, seed=15)
    enrolments = [add(gallery, "same label", vectors[n], n) for n in range(4)]

    ids = {e.item.item_id for e in enrolments} | {e.image.image_id for e in enrolments}
    assert len(ids) == 8
    assert all(identifier.isalnum() for identifier in ids)


def test_reopen_finds_the_same_gallery_and_index(settings: GallerySettings) -> None:
    vectors = unit_vectors(6, seed=16)
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        for number in range(6):
            add(gallery, f"label {number % 3}", vectors[number], number, item_id=f"item-{number % 3}")
        gallery.delete_image(gallery.item_images("item-0")[0].image_id)
        gallery.update_item("item-1", metadata={"k": "v"})
        expected = snapshot(gallery)[:3], gallery.search(vectors, top_k=3)

    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as reopened:
        assert reopened.check()
        assert (snapshot(reopened)[:3], reopened.search(vectors, top_k=3)) == expected


def test_reopen_with_another_model_or_size_is_refused(settings: GallerySettings) -> None:
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        add(gallery, "x", unit_vectors(1, seed=17)[0], 0)

    with pytest.raises(GalleryError, match="reembed"):
        Gallery.open(settings, embedding_dim=DIM, model_id="embedder/other")
    with pytest.raises(GalleryError, match="size"):
        Gallery.open(settings, embedding_dim=DIM * 2, model_id=MODEL_ID)
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        assert gallery.stats().images == 1


def test_an_empty_gallery_accepts_a_new_model(settings: GallerySettings) -> None:
    Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID).close()

    with Gallery.open(settings, embedding_dim=DIM * 2, model_id="embedder/other") as gallery:
        add(gallery, "x", unit_vectors(1, seed=18, dim=DIM * 2)[0], 0)
        assert gallery.stats().embedding_dim == DIM * 2 and gallery.stats().model_id == "embedder/other"


def test_a_second_open_of_the_same_embedded_directory_is_refused(embedded_settings: GallerySettings) -> None:
    with Gallery.open(embedded_settings, embedding_dim=DIM, model_id=MODEL_ID):
        with pytest.raises(GalleryError, match="another process"):
            Gallery.open(embedded_settings, embedding_dim=DIM, model_id=MODEL_ID)


def test_closed_gallery_refuses_calls(settings: GallerySettings) -> None:
    gallery = Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID)
    gallery.close()

    with pytest.raises(GalleryError, match="closed"):
        gallery.search(unit_vectors(1, seed=19), top_k=1)


def test_stats_report_counts_and_space(gallery: Gallery) -> None:
    vectors = unit_vectors(3, seed=20)
    for number in range(3):
        add(gallery, "l", vectors[number], number, item_id="one" if number else "two")

    stats = gallery.stats()

    assert (stats.items, stats.images, stats.index_size, stats.masked_deletions) == (2, 3, 3, 0)
    assert (stats.index_kind, stats.embedding_dim, stats.model_id) == ("flat", DIM, MODEL_ID)
    assert json.dumps(gallery.get_item("one").metadata) == "{}"


def test_open_stored_uses_the_recorded_embedding_space(settings: GallerySettings) -> None:
    with pytest.raises(GalleryError, match="no gallery"):
        Gallery.open_stored(settings)
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        add(gallery, "x", unit_vectors(1, seed=21)[0], 0)

    with Gallery.open_stored(settings) as gallery:
        assert (gallery.embedding_dim, gallery.model_id, gallery.stats().images) == (DIM, MODEL_ID, 1)
