"""Moving a gallery between back ends (``shitu gallery migrate``), embeddings included: nothing is embedded again.

Each image goes over as it was (item and image ids, label, metadata, box, model id, times, embedding, file),
one at a time through the target's own write path, so a target that is interrupted holds only whole images
and running the migration again completes it (images already there are skipped). The source is only read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.config import GalleryBackend, GallerySettings
from service.errors import GalleryError
from service.gallery.gallery import Gallery


@dataclass(frozen=True, slots=True)
class MigrationReport:
    moved: int
    already_there: int
    items: int
    images: int


def same_gallery(source: GallerySettings, target: GallerySettings) -> bool:
    if source.backend is not target.backend:
        return False
    if source.backend is GalleryBackend.embedded:
        return source.path.resolve() == target.path.resolve()
    return (source.cluster.postgres_dsn, source.cluster.name) == (target.cluster.postgres_dsn, target.cluster.name)


def migrate_gallery(
    source: GallerySettings, target: GallerySettings, progress: Callable[[int], None] | None = None
) -> MigrationReport:
    """Copies every image of ``source`` into ``target`` (created when missing, in the source's embedding space)."""
    if same_gallery(source, target):
        raise GalleryError("the source and the target of the migration are the same gallery")
    moved = already_there = 0
    with Gallery.open_stored(source) as origin, Gallery.open(
        target, embedding_dim=origin.embedding_dim, model_id=origin.model_id
    ) as destination:
        files = origin.backend.files
        for record in origin.backend.stored_images():
            if destination.restore(record, files.path(record.file_name).read_bytes()):
                moved += 1
            else:
                already_there += 1
            if progress is not None:
                progress(moved + already_there)
        expected, got = origin.stats(), destination.stats()
        missing = {image.image_id for image, _ in origin.images_with_labels()} - {
            image.image_id for image, _ in destination.images_with_labels()
        }
        if missing or not destination.check(thorough=True):
            raise GalleryError(f"the target lacks {len(missing)} of the source's images after the migration")
    return MigrationReport(moved=moved, already_there=already_there, items=got.items, images=expected.images)
