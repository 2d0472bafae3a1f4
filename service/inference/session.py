"""The seam between the model classes and an inference runtime.

:class:`Detector` and :class:`Embedder` do their pre- and post-processing in numpy and hand the runtime
nothing but named arrays, so they can be read, tested and reused without Paddle, and a second runtime
only has to implement this protocol. :class:`service.inference.runtime.PaddleModel` is the one
implementation the service ships.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.generic]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Where a session's program came from, for ``GET /info``."""

    directory: str
    format: str
    passes_deleted: tuple[str, ...] = ()


class Session(Protocol):
    """One loaded program: feed arrays by input name, get the outputs back in the program's order."""

    @property
    def input_names(self) -> tuple[str, ...]: ...

    @property
    def info(self) -> SessionInfo: ...

    def run(self, feed: Mapping[str, Array]) -> list[Array]:
        """Run once; ``feed`` may hold more inputs than the program takes (they are ignored)."""
        ...

    def clone(self) -> Session:
        """A session for another thread, sharing the weights (sessions are not thread-safe)."""
        ...
