"""The one error table: every failure a client can see, its machine-readable code and HTTP status.

The core raises these; it never imports the web framework. ``service.api.errors`` renders every
one as ``{"error": {"code": ..., "message": ..., "details": ...}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(ServiceError):
    code = "invalid_request"
    status = 422


class InvalidImage(ServiceError):
    code = "invalid_image"
    status = 422


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"
    status = 415


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    status = 413


class ImageTooLarge(ServiceError):
    code = "image_too_large"
    status = 422


class ItemNotFound(ServiceError):
    code = "item_not_found"
    status = 404


class ImageNotFound(ServiceError):
    code = "image_not_found"
    status = 404


class LabelConflict(ServiceError):
    code = "label_conflict"
    status = 409


class Overloaded(ServiceError):
    code = "overloaded"
    status = 429


class RateLimited(ServiceError):
    code = "rate_limited"
    status = 429


class Unauthorized(ServiceError):
    """No API key, or one the service does not know."""

    code = "unauthorized"
    status = 401


class Forbidden(ServiceError):
    """A known key without the scope the route needs, or a browser origin that is not allowed."""

    code = "forbidden"
    status = 403


class NotReady(ServiceError):
    code = "not_ready"
    status = 503


class ModelError(ServiceError):
    """A model directory cannot be loaded or does not fit the gallery (start-up error)."""

    code = "model_error"
    status = 500


class GalleryError(ServiceError):
    """The stored gallery cannot be opened or is inconsistent (start-up error)."""

    code = "gallery_error"
    status = 500


class GalleryUnavailable(GalleryError):
    """A server of the cluster gallery (Milvus, PostgreSQL) failed during a write; the write was undone."""

    code = "gallery_unavailable"
    status = 503


class RequestTimeout(ServiceError):
    code = "timeout"
    status = 504

