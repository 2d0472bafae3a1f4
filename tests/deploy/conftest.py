from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.file_server import FileServer


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()
