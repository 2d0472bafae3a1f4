"""Resumable HTTP download into a ``.part`` file, and its SHA-256.

An interrupted download keeps its ``.part``; the next call asks for the rest with
``Range: bytes=N-`` and appends, or starts over when the server ignores the range.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

ProgressCallback = Callable[[int, int | None], None]
"""Called with (bytes on disk, total bytes or None) as the download advances."""

_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)")


class DownloadError(RuntimeError):
    """The download failed; ``resumable`` says whether the ``.part`` file was kept for the next try."""

    def __init__(self, message: str, *, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


def _parse_content_range(header: str | None) -> tuple[int | None, int | None]:
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total and total != "*" else None)


def _expected_total(response: httpx.Response, offset: int) -> int | None:
    if response.status_code == httpx.codes.PARTIAL_CONTENT:
        start, total = _parse_content_range(response.headers.get("content-range"))
        if start != offset:
            raise DownloadError(f"server answered the range request from byte {start}, not {offset}")
        return total
    length = response.headers.get("content-length")
    return int(length) if length is not None else None


def _stream_into(
    response: httpx.Response, part: Path, offset: int, total: int | None, on_progress: ProgressCallback | None
) -> None:
    done = offset
    with part.open("ab" if offset else "wb") as output:
        # chunks as they arrive: a fixed chunk size buffers bytes that an interruption would lose
        for chunk in response.iter_bytes():
            output.write(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total)


def download(
    url: str,
    part: Path,
    *,
    client: httpx.Client,
    expected_size: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Download ``url`` into ``part``, resuming from what ``part`` already holds; returns ``part``."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == httpx.codes.REQUESTED_RANGE_NOT_SATISFIABLE:
                _, total = _parse_content_range(response.headers.get("content-range"))
                if total == offset:
                    return part
                part.unlink()
                raise DownloadError(f"server refused to resume {url} at byte {offset}; the partial file was removed")
            if response.status_code == httpx.codes.OK:
                offset = 0
            elif response.status_code != httpx.codes.PARTIAL_CONTENT:
                raise DownloadError(f"GET {url} answered HTTP {response.status_code}")
            total = _expected_total(response, offset)
            if expected_size is not None and total is not None and total != expected_size:
                raise DownloadError(f"{url} is {total} bytes, the registry expects {expected_size}")
            _stream_into(response, part, offset, total, on_progress)
    except httpx.TransportError as error:
        kept = part.stat().st_size if part.is_file() else 0
        if kept == 0:
            raise DownloadError(f"could not download {url}: {error or type(error).__name__}") from error
        raise DownloadError(
            f"download of {url} interrupted after {kept} bytes ({error}); run the same command again to resume",
            resumable=True,
        ) from error
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"download of {url} is incomplete: {size} of {total} bytes; run the same command again to resume",
            resumable=True,
        )
    return part
