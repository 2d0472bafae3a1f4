"""The gallery core: items and their images in SQLite, searched through an in-memory faiss index.

Framework-free: nothing here imports the web framework or paddle.
"""

from service.gallery.gallery import Gallery
from service.gallery.listfile import ListEntry, export_gallery, read_list_file
from service.gallery.reembed import EmbedFunction, reembed_gallery
from service.gallery.types import Enrolment, GalleryImage, GalleryItem, GalleryMatch, GalleryStats

__all__ = [
    "EmbedFunction",
    "Enrolment",
    "Gallery",
    "GalleryImage",
    "GalleryItem",
    "GalleryMatch",
    "GalleryStats",
    "ListEntry",
    "export_gallery",
    "read_list_file",
    "reembed_gallery",
]
