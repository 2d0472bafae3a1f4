"""Child process of the crash test: enrols images from several threads until it is killed.

Each acknowledged enrolment is written to stdout as ``<image_id> <number>`` and flushed at once, so
the parent knows exactly which writes were acknowledged when it sends SIGKILL.
"""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings, IndexKind
from service.gallery import Gallery

from .conftest import DIM, MODEL_ID, add, unit_vectors

THREADS = 3
ITEMS = 7


def vector_for(number: int) -> NDArray[np.float32]:
    return unit_vectors(1, seed=1000 + number)[0]


def main(path: Path, kind: str) -> None:
    gallery = Gallery.open(GallerySettings(path=path, index=IndexKind(kind)), embedding_dim=DIM, model_id=MODEL_ID)
    numbers = itertools.count()
    output_lock = threading.Lock()

    def enrol_forever() -> None:
        for number in numbers:
            item = number % ITEMS
            enrolment = add(gallery, f"label-{item}", vector_for(number), number, item_id=f"item-{item}")
            with output_lock:
                sys.stdout.write(f"{enrolment.image.image_id} {number}\n")
                sys.stdout.flush()

    threads = [threading.Thread(target=enrol_forever, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
