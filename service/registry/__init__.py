"""Known models and ``shitu models pull``: download, verify, extract safely, install atomically."""

from service.registry.archive import UnsafeArchiveError, extract_archive
from service.registry.download import DownloadError, download
from service.registry.known import KNOWN_MODELS, ArtifactKind, KnownModel, UnknownModelError, get_known_model
from service.registry.pull import PullError, PullResult, pull_model

__all__ = [
    "KNOWN_MODELS",
    "ArtifactKind",
    "DownloadError",
    "KnownModel",
    "PullError",
    "PullResult",
    "UnknownModelError",
    "UnsafeArchiveError",
    "download",
    "extract_archive",
    "get_known_model",
    "pull_model",
]
